"""Pictures of SeLLa-Rec's prompts (notebook 05): tokens with the slots highlighted, what each
projected slot vector is closest to in the LLM's vocabulary, validation curves, and a widget to
score any (user, item) pair with every trained method.
"""

from __future__ import annotations

import html

import ipywidgets as widgets
import pandas as pd
import plotly.graph_objects as go
import numpy as np
import torch

from sellakit.rec import (KG_TOKEN, SLOT_ABLATIONS, SLOT_TOKENS, EncodedPrompt, RecRun,
                          SpecialTokenRec, collate, score_rows, template_for)

__all__ = ["prompt_html", "nearest_vocabulary", "valid_curves", "ScoreExplorer",
           "paired_forest", "stage1_curve"]

_COLOURS = {"user": "#f4a261", "item": "#2a9d8f", "warm": "#e9c46a", "kg": "#a5b4fc"}
#: How the explorer says a slot was switched off, per :data:`~sellakit.rec.SLOT_ABLATIONS` mode.
_SWITCHED = {"zero": "zeroed", "shuffle": "read from another row"}


def prompt_html(tokenizer, prompt: EncodedPrompt) -> str:
    """The prompt token by token (boxes), slot tokens coloured and labelled with their index."""
    slot_at = {pos: name for name, pos in prompt.slots.items()}
    cells = []
    for index, token_id in enumerate(prompt.ids):
        text = html.escape(tokenizer.decode([token_id]))
        if index in slot_at:
            name = slot_at[index]
            cells.append(f'<span class="sellakit-slot" data-slot="{name}" title="position {index}"'
                         f' style="background:{_COLOURS[name]};padding:1px 3px;border-radius:3px;'
                         f'font-weight:bold">{text}<sub>{index}</sub></span>')
        else:
            cells.append(f'<span style="border-bottom:1px solid #ccc">{text}</span>')
    return ('<div class="sellakit-prompt" style="font-family:monospace;white-space:pre-wrap;'
            'line-height:1.8">' + "".join(cells) + "</div>")


@torch.no_grad()
def nearest_vocabulary(model: SpecialTokenRec, tokenizer, prompt: EncodedPrompt, uid: int,
                       iid: int, k: int = 5) -> pd.DataFrame:
    """For each slot vector of one prompt, the ``k`` vocabulary tokens whose input embeddings
    are nearest by cosine (and the vector's norm next to the vocabulary's typical norm). The
    slot tokens' own rows are left out: never read, and drawn anew by each process's resize."""
    batch = collate([prompt], tokenizer.pad_token_id)
    batch.update(uid=torch.tensor([uid]), iid=torch.tensor([iid]))
    device = next(model.parameters()).device
    vectors = model.slot_vectors({k_: v.to(device) for k_, v in batch.items()})
    table = model.llm.get_input_embeddings().weight.float()
    unit = table / table.norm(dim=1, keepdim=True).clamp(min=1e-12)
    vocab = tokenizer.get_vocab()
    slot_rows = [vocab[t] for tokens in SLOT_TOKENS.values() for t in tokens.values()
                 if t in vocab] + ([vocab[KG_TOKEN]] if KG_TOKEN in vocab else [])
    slot_rows = [r for r in slot_rows if r < len(unit)]
    rows = []
    for name, vector in vectors.items():
        vector = vector[0].float()
        sims = unit @ (vector / vector.norm().clamp(min=1e-12))
        sims[slot_rows] = -float("inf")
        top = sims.topk(k)
        rows.append({"slot": name, "norm": round(float(vector.norm()), 2),
                     "vocabulary median norm": round(float(table.norm(dim=1).median()), 2),
                     "nearest tokens (cosine)": ", ".join(
                         f"{tokenizer.decode([int(i)])!r} {float(s):.2f}"
                         for s, i in zip(top.values, top.indices))})
    return pd.DataFrame(rows)


def valid_curves(run: RecRun) -> go.Figure:
    """Validation AUC per optimiser step of each LLM method; stars mark the kept checkpoint."""
    fig = go.Figure()
    for name, trained in run.training.items():
        history = trained.history
        fig.add_trace(go.Scatter(x=history.step, y=history.valid_auc, mode="lines+markers",
                                 name=name))
        best = history[history.step == trained.best_step]
        fig.add_trace(go.Scatter(x=best.step, y=best.valid_auc, mode="markers", showlegend=False,
                                 marker={"size": 12, "symbol": "star"}))
    return fig.update_layout(title="Validation AUC while training (stars: checkpoint kept)",
                             xaxis_title="optimiser step", yaxis_title="valid AUC")


def paired_forest(rows: pd.DataFrame, *, title: str) -> go.Figure:
    """A forest plot: one line per row of ``rows`` (columns ``label``, ``diff``, ``lo``,
    ``hi``), the point at the paired difference and the bar its 95% interval; the dashed
    line at 0 is "no difference"."""
    fig = go.Figure(go.Scatter(
        x=rows["diff"], y=rows["label"], mode="markers", marker={"size": 10},
        error_x={"type": "data", "symmetric": False, "array": rows["hi"] - rows["diff"],
                 "arrayminus": rows["diff"] - rows["lo"]}, showlegend=False))
    fig.add_vline(x=0, line_dash="dash", line_color="grey")
    return fig.update_layout(title=title, xaxis_title="paired difference (95% interval)",
                             yaxis={"autorange": "reversed"})


def stage1_curve(curve: dict) -> go.Figure:
    """Stage 1's validation AUC by training rows (``rec-curve``'s results), one line per
    variant (named by its LoRA and loss), the item rate's validation AUC and chance (0.5) as
    dashed lines, the axis from 0."""
    from sellakit.benchmarks.rec_study import CURVE_VARIANTS
    from sellakit.viz.plots import CHANCE

    runs = pd.DataFrame(curve["runs"].values()).sort_values(["variant", "train_rows"])
    fig = go.Figure()
    for variant, part in runs.groupby("variant", sort=False):
        known = CURVE_VARIANTS.get(variant)
        fig.add_trace(go.Scatter(x=part.train_rows, y=[r["auc"] for r in part.valid],
                                 mode="lines+markers",
                                 name=known.help if known else variant))
    rate = curve.get("item_rate", {}).get("valid", {}).get("auc")
    if rate is not None:
        fig.add_hline(y=rate, line_dash="dash", annotation_text="item rate (every train row)")
    fig.add_hline(y=CHANCE["auc"], line_dash="dot", line_color="grey",
                  annotation_text=f"chance ({CHANCE['auc']})")
    # the variants' names are long: listed under the plot, one per line, the plot keeps the width
    return fig.update_layout(title="TALLRec-style stage 1: validation AUC by training rows",
                             xaxis_title="training rows", xaxis_type="log",
                             xaxis_tickvals=sorted(runs.train_rows.unique()),
                             yaxis_title="valid AUC", yaxis_range=[0, 1],
                             legend={"yanchor": "top", "y": -0.2, "xanchor": "left", "x": 0},
                             margin={"b": 140})


class ScoreExplorer:
    """Pick a user and one of their test items: see the SeLLa-Rec prompt and every method's
    score; switch one of ``switchable``'s slots off (zeroed, or the vector of another test row
    whose user and item differ: :func:`~sellakit.rec.slot_ablation`) and see its score move;
    scores go through :func:`~sellakit.rec.score_rows` (the kit's cache under
    ``run_methods(cache_scores=True)``).
    ``explorer.last`` keeps the last scores (a frame; ``attrs["switched_off"]`` the move)."""

    def __init__(self, run: RecRun, mf_scores: callable, switchable: str = "sella"):
        self.run, self.mf_scores, self.switchable = run, mf_scores, switchable
        test = run.rows["test"]
        users = sorted(test.uid.unique().tolist())
        self.user = widgets.Dropdown(options=users, value=users[0], description="user")
        self.item = widgets.Dropdown(description="item", layout={"width": "60%"})
        slots = list(run.builders[template_for(switchable)].slot_ids) \
            if switchable in run.models else []
        self.switch = widgets.Dropdown(options=[("none", None)] + [(s, s) for s in slots],
                                       value=None, description="slot off")
        self.mode = widgets.ToggleButtons(options=SLOT_ABLATIONS, value=SLOT_ABLATIONS[0])
        self.prompt = widgets.HTML()
        self.table = widgets.HTML()
        self.last: pd.DataFrame | None = None
        self.user.observe(lambda _: self.on_user(), names="value")
        for control in (self.item, self.switch, self.mode):
            control.observe(lambda _: self.on_item(), names="value")
        self.on_user()
        self.widget = widgets.VBox([widgets.HBox([self.user, self.item]),
                                    widgets.HBox([self.switch, self.mode]), self.prompt,
                                    self.table])

    def switched_off(self, row: pd.DataFrame, intact: float) -> dict | None:
        """``switchable``'s score of ``row`` with the chosen slot switched off, and the move
        from ``intact`` (None when no slot is chosen)."""
        slot, mode = self.switch.value, self.mode.value
        if slot is None:
            return None
        test, name = self.run.rows["test"], self.switchable
        uid, iid = int(row.uid.iloc[0]), int(row.iid.iloc[0])
        others = test[(test.uid != uid) & (test.iid != iid)]  # a donor sharing neither
        donor = others.iloc[[np.random.default_rng(uid * 100_003 + iid).integers(len(others))]]
        score = float(score_rows(self.run, name, row, slot=slot, mode=mode, donors=donor)[0])
        return {"method": name, "slot": slot, "mode": mode, "score": score,
                "move": score - intact, "donor": {"uid": int(donor.uid.iloc[0]),
                                                  "iid": int(donor.iid.iloc[0])}}

    def on_user(self) -> None:
        rows = self.run.rows["test"]
        rows = rows[rows.uid == self.user.value]
        options = [(f"{self.run.titles[r.iid]} (label {r.label})", int(i))
                   for i, r in rows.iterrows()]
        self.item.options = options
        self.item.value = options[0][1]  # new options leave no selection; pick (and score) one

    def on_item(self) -> pd.DataFrame | None:
        if self.item.value is None:
            return None
        row = self.run.rows["test"].loc[[self.item.value]]
        uid, iid = int(row.uid.iloc[0]), int(row.iid.iloc[0])
        scores = {"mf": float(self.mf_scores(row)[0])} if "mf" in self.run.results else {}
        for name in self.run.models:  # read back from the kit's cache under cache_scores
            scores[name] = float(score_rows(self.run, name, row)[0])
        sella = self.run.builders.get("sella")
        if sella is not None:
            self.prompt.value = prompt_html(self.run.backbone.tokenizer,
                                            sella.encode_rows(row, self.run.titles)[0])
        self.last = pd.DataFrame({"method": list(scores), "P(Yes)": list(scores.values())})
        off = self.switched_off(row, scores[self.switchable]) if self.switchable in scores \
            else None
        self.last.attrs.update(uid=uid, iid=iid, label=int(row.label.iloc[0]), switched_off=off)
        moved = "" if off is None else (
            f"<p class='sellakit-switched'>{off['method']} with its {off['slot']} slot "
            f"{_SWITCHED[off['mode']]}: P(Yes) "
            f"{off['score']:.3f} ({off['move']:+.3f})</p>")
        self.table.value = (f"<b>user {uid}, {html.escape(self.run.titles[iid])}, label "
                            f"{int(row.label.iloc[0])}</b>" + self.last.round(3).to_html(
                                index=False, classes="sellakit-scores") + moved)
        return self.last
