# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · Local re-training with three-level distillation
#
# **Goals.** Reuse notebook 06's teacher (trained once) for one target language: link the
# target to the teacher, cut the *linked subgraph*, re-train a small student on it with
# feature, network and prediction distillation, and compare it with a student from scratch, a
# joint model retrained on everything, and the student with each KD term removed — in MRR and
# in wall time.
# **Run time:** about 10 minutes in quick mode on 2 shared CPU cores (five student runs and one
# joint retrain; plus notebook 06's teacher when it is not cached yet).

# %% tags=["parameters"]
import os
from pathlib import Path

QUICK = os.environ.get("SELLAKIT_QUICK", "1") != "0"
SEED = 2025
DATA_DIR = os.environ.get("SELLAKIT_DBP5L") or (
    "../../shared/data/dbp5l" if Path("../../shared/data/dbp5l").exists() else None)
TARGET = "el"
FANOUT = 3 if QUICK else 50  # background triples kept per linked entity and direction
STUDENT_EPOCHS = 6 if QUICK else None  # None: the preset's (quick bench: 10)
JOINT = True  # the joint retrain (teacher-size, all five KGs) is the slowest part

# %% [markdown]
# ## 1. The teacher, reused
#
# Same data, same config as notebook 06, so this reads it from the cache (or trains it once).

# %%
from dataclasses import replace

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import torch

from sellakit.kg.compare import StudentConfig, compare_on_target, teacher_config
from sellakit.kg.data import load_dbp5l
from sellakit.kg.pretrain import load_or_pretrain_teacher
from sellakit.kg.subgraph import build_linked_subgraph
from sellakit.runner import record
from sellakit.viz.figures import save_figures

ms = load_dbp5l(DATA_DIR)
preset = "quick" if QUICK else "paper"
teacher_cfg = teacher_config(preset)
student_cfg = replace(getattr(StudentConfig, preset)(), fanout=FANOUT)
if STUDENT_EPOCHS:
    student_cfg = replace(student_cfg, train=replace(student_cfg.train, epochs=STUDENT_EPOCHS))
teacher = load_or_pretrain_teacher(ms, teacher_cfg)
print(f"teacher: {teacher_cfg.train.model} d={teacher_cfg.train.dim}, trained once in "
      f"{teacher.seconds} s{' (from the cache)' if teacher.cached else ''}; "
      f"student d={student_cfg.train.dim}")

# %% [markdown]
# ## 2. The linked subgraph
#
# Target entities with seed links are joined to their copies in the other languages; around
# each copy we keep its 1-hop facts (at most `FANOUT` per direction) from the teacher's
# leak-free training data; swapping copies each fact across the link. The drawing shows one
# Greek entity: its own facts (blue), its linked copies (orange) and their facts (grey).

# %%
sub = build_linked_subgraph(ms, teacher.joint, TARGET, fanout=FANOUT, seed=SEED)
pd.Series(sub.summary())

# %%
import networkx as nx

degree = np.bincount(ms.kgs[TARGET].train[:, [0, 2]].ravel(), minlength=sub.n_target_entities)
linked = np.unique(sub.links[:, 0])
centre = int(linked[np.argmax(np.minimum(degree[linked], 6) * 100 -
                              np.abs(degree[linked] - 6))])
near = {centre} | set(sub.links[sub.links[:, 0] == centre, 1].tolist())
edges = [(h, t) for h, r, t in sub.triples if (h in near or t in near)][:120]
graph = nx.Graph(edges)
pos = nx.spring_layout(graph, seed=SEED)


def label(i: int) -> str:
    lang, local = sub.origin[i]
    return f"{lang}: {ms.kgs[lang].entity_labels[local].rsplit('/', 1)[-1]}"


kind = {i: "centre" if i == centre else "linked copy" if i in near else
        TARGET if sub.origin[i][0] == TARGET else "background" for i in graph.nodes}
edge_x, edge_y = [], []
for a, b in graph.edges:
    edge_x += [pos[a][0], pos[b][0], None]
    edge_y += [pos[a][1], pos[b][1], None]
fig = go.Figure(go.Scatter(x=edge_x, y=edge_y, mode="lines", line={"color": "#ccc"},
                           hoverinfo="skip", showlegend=False))
for name, colour in (("centre", "crimson"), ("linked copy", "darkorange"),
                     (TARGET, "royalblue"), ("background", "grey")):
    nodes = [i for i in graph.nodes if kind[i] == name]
    fig.add_trace(go.Scatter(x=[pos[i][0] for i in nodes], y=[pos[i][1] for i in nodes],
                             mode="markers", name=name, text=[label(i) for i in nodes],
                             marker={"color": colour, "size": 9}))
fig.update_layout(title=f"Linked subgraph around {label(centre)}", xaxis_visible=False,
                  yaxis_visible=False)
figures = {"07_linked_subgraph": fig}
fig

# %% [markdown]
# ## 3. Scratch, joint, KD and its ablations
#
# Every model is chosen on the target's validation MRR and scored on its test split once:
# filtered tail ranking over the target's entities, realistic ties.

# %%
result = compare_on_target(ms, TARGET, teacher, student_cfg, teacher_cfg, joint=JOINT)
models = result.pop("_models")
rows = {"teacher (reused)": {**result["teacher"], "seconds": None},
        "scratch": result["scratch"], "student + KD": result["kd"],
        **{f"KD {k}": v for k, v in result["ablations"].items()}}
if JOINT:
    rows["joint retrain"] = result["joint"]
table = pd.DataFrame(rows).T[["mrr", "hits@1", "hits@3", "hits@10", "seconds"]]
table

# %%
timed = table.dropna(subset=["seconds"]).reset_index(names="model")
figures["07_time_vs_mrr"] = px.scatter(timed, x="seconds", y="mrr", text="model", log_x=True,
                                       title=f"Test MRR against training wall time ({TARGET}); "
                                             f"teacher paid once: {teacher.seconds} s")
figures["07_time_vs_mrr"].update_traces(textposition="top center")
figures["07_time_vs_mrr"]

# %% [markdown]
# ## 4. Compare predictions
#
# Pick a test query; see the top 5 tails of the teacher, the KD student and the scratch
# student (the true tail marked).

# %%
import ipywidgets as W

from sellakit.kg.pretrain import kg_scorer

kg = ms.kgs[TARGET]
labels = [x.rsplit("/", 1)[-1] for x in kg.entity_labels]
rel_labels = [x.rsplit("/", 1)[-1] for x in ms.relation_labels]
scorers = {"teacher": kg_scorer(teacher.model, teacher.joint.ids[TARGET]),
           "student + KD": lambda h, r: models["kd"].model.score_tails(h, r, kg.n_entities),
           "scratch": lambda h, r: models["scratch"].model.score_tails(h, r, kg.n_entities)}
queries = kg.test[:200]
pick = W.Dropdown(options=[(f"{labels[h]} —{rel_labels[r]}→ ?", i)
                           for i, (h, r, t) in enumerate(queries)], description="query")
view = W.HTML()


def show(_=None) -> None:
    h, r, t = queries[pick.value]
    cells = []
    for name, score in scorers.items():
        with torch.no_grad():
            s = score(torch.tensor([h]), torch.tensor([r]))[0]
        top = torch.topk(s, 5).indices.tolist()
        items = "".join(f"<li>{'<b>' if e == t else ''}{labels[e]}{'</b> ✓' if e == t else ''}"
                        "</li>" for e in top)
        cells.append(f"<td style='vertical-align:top;padding:0 12px'><b>{name}</b><ol>{items}"
                     "</ol></td>")
    view.value = f"<p>true tail: <b>{labels[t]}</b></p><table><tr>{''.join(cells)}</tr></table>"


pick.observe(show, "value")
show()
W.VBox([pick, view])

# %%
saved = save_figures(figures)
[p.name for p in saved]

# %% [markdown]
# ## Summary and exercises
#
# The teacher is paid for once; per target, the student re-trains on a subgraph a fraction of
# the size of all five graphs. Read the table: does KD beat the student from scratch? Which
# term matters most (the largest drop when removed)? Where does the joint retrain sit on the
# time axis?
#
# 1. Set `FANOUT = 3` and `30`. How do subgraph size, time and MRR move?
# 2. Turn on predicted links: `replace(student_cfg, predicted_links=True)`. How many are added?
# 3. Change `TARGET` to `"ja"`; the teacher is reused as is (no retraining).
# 4. Raise the temperature: `replace(student_cfg, kd=replace(student_cfg.kd, temperature=4))`.
# 5. Give the student a GNN encoder (each entity also reads up to 10 in-edges):
#    `replace(student_cfg, train=replace(student_cfg.train, encoder="gnn"))`. Does the student
#    from scratch gain more than the student with KD? (On the H200 run of `el` with every model
#    a GNN, `bench/kg_dbp5l_el_gnn_quick_h200.md`, scratch rose and the teacher fell.)

# %%
record(target=TARGET, dataset=ms.name, teacher_seconds=teacher.seconds,
       teacher=result["teacher"], scratch=result["scratch"], kd=result["kd"],
       ablations=result["ablations"], joint=result.get("joint"), subgraph=result["subgraph"],
       student_dim=student_cfg.train.dim, teacher_dim=teacher_cfg.train.dim, seed=SEED,
       figures=sorted(p.name for p in saved))
