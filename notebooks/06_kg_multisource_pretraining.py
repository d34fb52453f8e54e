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
# # 06 · Multi-source knowledge graphs and joint pre-training
#
# **Goals.** Meet DBP-5L — DBpedia in Greek, Japanese, Spanish, French and English, linked by
# seed alignment links — remove every fact that would leak a target's valid or test triple into
# pre-training, train one *teacher* jointly over all five graphs (RotatE, linked by swapping),
# and look at the aligned entities of the five languages in one UMAP.
#
# **Learning objectives.** After this notebook you can
#
# * describe a multi-source KG: local entity ids, shared relations, seed alignment links;
# * explain test leakage through alignment and remove it for every target at once;
# * write RotatE's score and train it with negative sampling, with linked graphs joined by
#   swapping;
# * evaluate tail prediction with filtered MRR and Hits@k, ties counted realistically.
#
# **Run time** (quick mode, 2 idle CPU cores): 26 s (first run 28 s). **Paper mode:** not
# measured. **Needs a GPU:** advised for paper mode. **Depends on:** none.
# (The teacher is cached for notebook 07 and the benchmark.)
#
# **Data.** DBP-5L is found through, in order: `DATA_DIR` below, the variable `SELLAKIT_DBP5L`,
# the kit's cache, a download from the KEnS repository. Where none has it (an offline machine
# without a copy), the notebook runs on a *derived stand-in* cut from PyKEEN's UMLS — three
# small overlapping sources named `s0`, `s1`, `s2` — and says so in every title and table. The
# cell after the imports tells you which one you got.

# %% tags=["parameters"]
from sellakit.config import preset_name, quick_mode

QUICK = quick_mode()
SEED = 2025
# DBP-5L folder (the KEnS `data/`); None: $SELLAKIT_DBP5L, the cache, a download, else the
# derived stand-in.
DATA_DIR = None
MODE = "swapping"  # or "sharing", "mapping"
N_MAP = 300  # aligned entity groups drawn in the UMAP

# %% [markdown]
# ## 1. Five graphs and their links
#
# Entity ids are local to each language; relation ids are shared (DBpedia properties). About
# 77 % of Greek entities appear in a triple. Links join entities of two languages. (On the
# stand-in: three sources with their own entity ids over UMLS's relations; half of the true
# links are hidden.)

# %%
from dataclasses import replace  # the exercises use it

import numpy as np
import pandas as pd
import plotly.express as px
from IPython.display import Markdown

from sellakit.kg import (TeacherConfig, filtered_test_metrics, kg_scorer, load_multisource,
                         load_or_pretrain_teacher)
from sellakit.runner import record
from sellakit.viz import maps
from sellakit.viz import captioned, save_figures

ms = load_multisource(DATA_DIR)
Markdown(f"> **Stand-in, not DBP-5L.** {ms.note}" if ms.note else f"Data: {ms!r}")

# %%
captioned(ms.summary(), ms, "Entities, triples and links per graph")

# %%
langs = list(ms.kgs)
links = pd.DataFrame(0, index=langs, columns=langs)
for (a, b), pairs in ms.links.items():
    links.loc[a, b] = links.loc[b, a] = len(pairs)
figures = {"06_alignment_links": px.imshow(links, text_auto=True, color_continuous_scale="Blues",
                                           title=f"Seed alignment links per pair — {ms.title}")}
figures["06_alignment_links"]

# %% [markdown]
# ## 2. No leakage
#
# A Greek test fact *(Athens, country, Greece)* may also sit, in English ids, in English train.
# Through the alignment (joined transitively) every triple is mapped to a canonical form; each
# training triple whose canonical form is a valid or test fact of **any** language is dropped.
# Because every language is protected at once, this one teacher can serve every target.

# %%
teacher_cfg = TeacherConfig.preset(preset_name(QUICK), mode=MODE)
teacher = load_or_pretrain_teacher(ms, teacher_cfg)
joint = teacher.joint
captioned(pd.DataFrame({"train": {k: len(v.train) for k, v in ms.kgs.items()},
                        "removed (leak)": joint.removed,
                        "kept": {k: len(v) for k, v in joint.kg_triples.items()}}),
          ms, "Training triples removed as leaks")

# %% [markdown]
# ## 3. The teacher
#
# RotatE (each relation a rotation in the complex plane), dimension
# `teacher_cfg.train.dim`, trained with a sampled softmax on the union of the five graphs plus
# the *bridging* triples of swapping: every triple of a linked entity copied with its partner in
# its place, so facts flow across languages. The epoch is chosen on mean validation MRR.

# %%
print(f"{len(joint.triples):,} training triples ({joint.n_bridges:,} bridges), "
      f"{joint.n_entities:,} entities; trained in {teacher.seconds} s"
      f"{' (read from the cache)' if teacher.cached else ''}, epoch {teacher.best_epoch}")
per_language = pd.DataFrame({lang: filtered_test_metrics(ms, lang, kg_scorer(teacher.model,
                                                                              joint.ids[lang]))
                             for lang in langs}).T[["mrr", "hits@1", "hits@3", "hits@10"]]
captioned(per_language, ms, "Teacher: filtered test metrics per graph (tails)")

# %%
figures["06_teacher_valid_mrr"] = px.line(teacher.history.dropna(subset=["valid_mrr"]),
                                          x="epoch", y="valid_mrr", markers=True,
                                          title=f"Teacher: mean validation MRR — {ms.title}")
figures["06_teacher_valid_mrr"]

# %% [markdown]
# ## 4. Aligned entities across languages
#
# Take entities of the first graph (Greek on DBP-5L) linked to every other graph; draw each
# graph's copy (the teacher's entity vectors) in one UMAP. With swapping the copies of one
# entity share their neighbourhoods, so they land close together.

# %%
anchor = langs[0]
groups = {}
for (a, b), pairs in ms.links.items():
    if anchor in (a, b):
        other = b if a == anchor else a
        for x, y in (pairs if a == anchor else pairs[:, ::-1]):
            groups.setdefault(int(x), {})[other] = int(y)
full = [x for x, g in groups.items() if len(g) == len(langs) - 1][:N_MAP]
rows, vectors = [], []
table = teacher.model.entity_table().detach().cpu().numpy()
for x in full:
    for lang, local in [(anchor, x), *groups[x].items()]:
        vectors.append(table[joint.ids[lang][local]])
        rows.append({"language": lang, "group": x,
                     "label": ms.kgs[lang].entity_labels[local].rsplit("/", 1)[-1]})
frame = pd.DataFrame(rows)
xy = maps.fit_frame(np.asarray(vectors), settings=maps.UMAPSettings(seed=SEED))["reference"]
figures["06_map_aligned_entities"] = maps.map_scatter(
    xy, frame.rename(columns={"label": "title"}), "language",
    f"Teacher entity vectors of {len(full)} entities in {len(langs)} graphs (UMAP) — "
    f"{ms.title}")
figures["06_map_aligned_entities"]

# %%
# How close are the copies? Share of copies whose nearest other-language vector is their group.
from sklearn.neighbors import NearestNeighbors

vecs = np.asarray(vectors)
nn = NearestNeighbors(n_neighbors=6, metric="cosine").fit(vecs)
_, idx = nn.kneighbors(vecs)
lang_arr, group_arr = frame.language.to_numpy(), frame.group.to_numpy()
hits = [group_arr[next(j for j in row[1:] if lang_arr[j] != lang_arr[i])] == group_arr[i]
        for i, row in enumerate(idx)]
same_group_nn = float(np.mean(hits))
print(f"nearest other-language neighbour is the same entity for {same_group_nn:.1%} "
      f"(chance about {1 / len(full):.2%})")

# %%
saved = save_figures(figures)
[p.name for p in saved]

# %% [markdown]
# ## Summary and exercises
#
# One teacher, trained once over five linked graphs with every valid/test fact of every
# language removed, ranks each language's test tails and puts the copies of an entity next to
# each other. Notebook 07 distils it into a small student for one target. (On the stand-in the
# same steps run on three small sources of one graph: the mechanics are the same, the numbers
# say nothing about DBP-5L.)
#
# 1. Set `MODE = "sharing"`: one vector per aligned entity. What happens to the UMAP? To the
#    teacher's MRR?
# 2. `MODE = "mapping"` keeps the copies apart and pulls them together with a loss. Compare
#    `same_group_nn` across the three modes.
# 3. How many Greek training triples did leakage removal drop, and why so many? (Hint: the
#    other languages' validation splits are 30 % of their facts.)
# 4. Put a GNN encoder in front of the teacher:
#    `teacher_cfg = replace(teacher_cfg, train=replace(teacher_cfg.train, encoder="gnn"))`
#    (each entity also reads up to 10 of its in-edges). Is the teacher's MRR higher? Is one
#    epoch slower?

# %%
record(dataset=ms.name, derived=ms.derived, n_kgs=len(ms.kgs),
       n_links=int(sum(len(p) for p in ms.links.values())),
       leak_removed=joint.removed, teacher_triples=int(len(joint.triples)),
       teacher_bridges=int(joint.n_bridges), teacher_seconds=teacher.seconds,
       teacher_dim=teacher_cfg.train.dim, mode=MODE, seed=SEED,
       teacher_test={lang: per_language.loc[lang].to_dict() for lang in langs},
       same_group_nn=same_group_nn, n_map_entities=len(full),
       figures=sorted(p.name for p in saved))
