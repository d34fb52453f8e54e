"""Notebook 08's pictures: the KG, CF and LLM item spaces side by side, and a movie explorer that
shows a movie's KG facts and neighbours and each method's score with and without ``<KG_ID>``.

The explorer reads per-row scores (``sellakit bench rec-kg``'s long frame: ``method``, ``seed``,
``iid``, ``label``, ``item_cold``, ``score``; ablated scores as ``<method>|<mode>``), so picking a
movie costs a table lookup, not a forward pass. Its callback returns what it drew and keeps it
in ``explorer.last`` (tests set a widget's value and read that).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import ipywidgets as widgets
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from sellakit.kg.items import FilmFacts
from sellakit.viz.palette import colour_map
from sellakit.viz.widgets import nearest_items

__all__ = ["space_maps", "KGMovieExplorer"]


def space_maps(coords: Mapping[str, np.ndarray], labels: Sequence[str],
               hover: Sequence[str], title: str) -> go.Figure:
    """One panel per space (same items, same order), every panel coloured by ``labels`` with
    one palette and one legend, so a group's place can be compared across spaces."""
    from plotly.subplots import make_subplots

    labels = np.asarray(labels, dtype=object)
    hover = np.asarray(hover, dtype=object)
    colours = colour_map(labels)
    fig = make_subplots(rows=1, cols=len(coords), subplot_titles=list(coords),
                        horizontal_spacing=0.02)
    for col, xy in enumerate(coords.values(), start=1):
        for label, colour in colours.items():
            own = labels == label
            fig.add_trace(go.Scattergl(
                x=xy[own, 0], y=xy[own, 1], mode="markers", name=str(label),
                legendgroup=str(label), showlegend=col == 1, text=hover[own],
                marker={"size": 4, "color": colour, "opacity": 0.7},
                hovertemplate="%{text}<extra>" + html.escape(str(label)) + "</extra>"),
                row=1, col=col)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return fig.update_layout(title=title, legend={"itemsizing": "constant",
                                                  "orientation": "h", "y": -0.05})


class KGMovieExplorer:
    """Pick a movie of the test rows: its KG facts, its nearest movies by KG vector, and each
    KG method's mean P(Yes) on the movie's test rows with ``<KG_ID>``, with it ablated
    (``mode``: zeroed or shuffled across items) and for the same method without the slot.

    Args:
        facts: the film facts of the split's items.
        vectors: the items' KG vectors (row = iid; zero where unknown).
        known: items with a KG vector (neighbours are searched among them).
        scores: per-row test scores in long form (see the module docstring).
        partners: each KG method -> the same method without ``<KG_ID>``.
        modes: the ablation modes present in ``scores``.
    """

    def __init__(self, facts: FilmFacts, vectors: np.ndarray, known: np.ndarray,
                 scores: pd.DataFrame, partners: Mapping[str, str],
                 modes: Sequence[str] = ("zero", "shuffle"), k: int = 6):
        self.facts, self.vectors, self.known, self.k = facts, vectors, known, k
        self.partners = {m: p for m, p in partners.items() if m in set(scores.method)}
        self.mean = scores.groupby(["iid", "method"]).score.mean()  # seed and row mean
        rows = scores.drop_duplicates(["seed", "row"])
        rows = rows[rows.seed == rows.seed.min()]
        self.rows = rows.groupby("iid").agg(rows=("label", "size"), liked=("label", "sum"),
                                            item_cold=("item_cold", "first"))
        titles = facts.titles
        order = self.rows.sort_values("rows", ascending=False).index
        options = [(f"{titles[i]}" + (" (item-cold)" if self.rows.item_cold[i] else ""),
                    int(i)) for i in order]
        self.movie = widgets.Dropdown(options=options, value=options[0][1],
                                      description="Movie", layout={"width": "560px"})
        self.mode = widgets.ToggleButtons(options=list(modes), description="<KG_ID>")
        self.scores_out, self.facts_out = widgets.HTML(), widgets.HTML()
        self.last: dict = {}
        self.movie.observe(lambda _: self.show(), names="value")
        self.mode.observe(lambda _: self.show(), names="value")
        self.show()
        self.widget = widgets.VBox([widgets.HBox([self.movie, self.mode]), self.scores_out,
                                    self.facts_out])

    def score_table(self, iid: int, mode: str) -> pd.DataFrame:
        """Per KG method: mean P(Yes) on ``iid``'s test rows with the slot, ablated, and the
        method without the slot."""
        def mean(method: str) -> float:
            return float(self.mean.get((iid, method), np.nan))

        return pd.DataFrame([{"method": name, "with <KG_ID>": mean(name),
                              f"<KG_ID> {mode}": mean(f"{name}|{mode}"),
                              "without <KG_ID>": mean(partner), "that is": partner}
                             for name, partner in self.partners.items()])

    def show(self) -> dict:
        """Draw the chosen movie's scores, facts and KG neighbours; return them."""
        iid, mode, titles = int(self.movie.value), self.mode.value, self.facts.titles
        table = self.score_table(iid, mode)
        info = self.rows.loc[iid]
        facts = self.facts.of(iid)
        near = (nearest_items(self.vectors, iid, self.k, candidates=self.known)
                if self.known[iid] else pd.DataFrame({"iid": [], "cosine": []}))
        neighbours = pd.DataFrame({"movie": [titles[i] for i in near.iid],
                                   "cosine": near.cosine})
        self.last = {"iid": iid, "mode": mode, "scores": table, "facts": facts,
                     "neighbours": neighbours, "rows": int(info.rows), "liked": int(info.liked)}
        cold = " · item-cold: no CF vector trained" if info.item_cold else ""
        self.scores_out.value = (
            f"<b>{html.escape(titles[iid])}</b>: {int(info.rows)} test rows, "
            f"{int(info.liked)} liked{cold}"
            + table.round(3).to_html(index=False, classes="sellakit-kg-scores"))
        unknown = "" if self.known[iid] else "<p>No KG vector: the movie has no KG link.</p>"
        self.facts_out.value = (
            "<div style='display:flex;gap:2em'><div><b>KG facts</b> (most shared first)"
            + facts.head(12).to_html(index=False, classes="sellakit-kg-facts")
            + "</div><div><b>Nearest movies by KG vector</b>" + unknown
            + neighbours.to_html(index=False, classes="sellakit-kg-neighbours")
            + "</div></div>")
        return self.last
