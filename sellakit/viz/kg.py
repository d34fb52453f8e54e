"""Pictures and widgets of notebooks 06-07: captioned tables, the linked subgraph, a query
explorer. Every caption and title names the data (:attr:`MultiSourceKG.title`), so a figure of
the derived stand-in can never pass for DBP-5L.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from sellakit.kg import LinkedSubgraph, MultiSourceKG
from sellakit.kg.evaluate import FilterIndex, ranks_from_scores

__all__ = ["captioned", "linked_subgraph_figure", "QueryExplorer", "sweep_gaps"]

TailScorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def captioned(frame: pd.DataFrame, ms: MultiSourceKG, what: str):
    """``frame`` as a table whose caption says what it shows and on which data."""
    return frame.style.set_caption(f"{what} — {ms.title}").format(precision=4)


def sweep_gaps(results: dict, comparisons: tuple[str, ...] = ("kd - scratch", "kd - j2",
                                                              "kd - no_kd")) -> pd.DataFrame:
    """The low-resource sweep's ``comparisons`` (default KD − scratch, KD − J2 and KD − no KD;
    MRR points, with the interval's distances ``plus`` / ``minus``) per target and point, in
    long form: ``axis`` is "facts" (every link kept) or "links" (every fact kept),
    ``fraction`` the share kept (the full point belongs to both axes)."""
    rows = []
    for point in results["points"]:
        axes = [axis for axis, other in (("facts", "links"), ("links", "facts"))
                if point[other] == 1.0]
        for axis in axes:
            for name in comparisons:
                c = point["comparisons"].get(name)
                if c:
                    rows.append({"target": point["target"], "axis": axis,
                                 "fraction": point[axis], "comparison": name,
                                 "gap": 100 * c["diff"], "plus": 100 * (c["hi"] - c["diff"]),
                                 "minus": 100 * (c["diff"] - c["lo"])})
    return pd.DataFrame(rows)


def _short(label: str) -> str:
    """The last path segment of a DBpedia IRI (the whole label elsewhere)."""
    return label.rsplit("/", 1)[-1]


def linked_subgraph_figure(ms: MultiSourceKG, sub: LinkedSubgraph, target: str, *,
                           seed: int = 0, max_edges: int = 120) -> go.Figure:
    """One target entity of the linked subgraph: its own facts, its linked copies in the other
    KGs and their facts (spring layout, at most ``max_edges`` edges).

    The centre is a linked entity of moderate degree (about 6), so the drawing stays legible.
    When the subgraph joins links by sharing, the copies *are* the centre: its background
    facts hang off it directly.
    """
    import networkx as nx

    degree = np.bincount(ms.kgs[target].train[:, [0, 2]].ravel(),
                         minlength=sub.n_target_entities)
    linked = np.unique(sub.links[:, 0])
    centre = int(linked[np.argmax(np.minimum(degree[linked], 6) * 100 -
                                  np.abs(degree[linked] - 6))])
    near = {centre} | set(sub.links[sub.links[:, 0] == centre, 1].tolist())
    graph = nx.Graph([(h, t) for h, _, t in sub.triples if h in near or t in near][:max_edges])
    pos = nx.spring_layout(graph, seed=seed)

    def label(i: int) -> str:
        kg_name, local = sub.origin[i]
        return f"{kg_name}: {_short(ms.kgs[kg_name].entity_labels[local])}"

    kind = {i: "centre" if i == centre else "linked copy" if i in near else
            target if sub.origin[i][0] == target else "background" for i in graph.nodes}
    edge_x, edge_y = [], []
    for a, b in graph.edges:
        edge_x += [pos[a][0], pos[b][0], None]
        edge_y += [pos[a][1], pos[b][1], None]
    fig = go.Figure(go.Scatter(x=edge_x, y=edge_y, mode="lines", line={"color": "#ccc"},
                               hoverinfo="skip", showlegend=False))
    for name, colour in (("centre", "crimson"), ("linked copy", "darkorange"),
                         (target, "royalblue"), ("background", "grey")):
        nodes = [i for i in graph.nodes if kind[i] == name]
        fig.add_trace(go.Scatter(x=[pos[i][0] for i in nodes], y=[pos[i][1] for i in nodes],
                                 mode="markers", name=name, text=[label(i) for i in nodes],
                                 marker={"color": colour, "size": 9}))
    fig.update_layout(title=f"Linked subgraph around {label(centre)} — {ms.title}",
                      xaxis_visible=False, yaxis_visible=False)
    return fig


class QueryExplorer:
    """Pick a test query ``(h, r, ?)`` of the target; see each scorer's top-``k`` tails (the
    true tail in bold) and the true tail's rank, filtered as the lesson measures it (the
    query's other known tails removed, realistic ties) or raw (untick *filtered*).

    Attributes:
        widget: the ipywidgets box to display.
        filtered: the checkbox (on: the other known true tails are out of the ranking).
        shown: what the last query showed, ``{scorer name: [top entity labels]}``.
        ranks: the true tail's rank for each scorer in the last query (filtered when ticked).
    """

    def __init__(self, ms: MultiSourceKG, target: str, scorers: dict[str, TailScorer], *,
                 n_queries: int = 200, k: int = 5):
        import ipywidgets as W

        kg = ms.kgs[target]
        self.labels = [_short(x) for x in kg.entity_labels]
        relations = ms.relation_labels or [f"r{i}" for i in range(ms.n_relations)]
        self.relation_labels = [_short(x) for x in relations]
        self.scorers, self.k, self.queries = scorers, k, kg.test[:n_queries]
        self.known = FilterIndex(kg.all_triples(), ms.n_relations, kg.n_entities)
        self.pick = W.Dropdown(
            options=[(f"{self.labels[h]} —{self.relation_labels[r]}→ ?", i)
                     for i, (h, r, _) in enumerate(self.queries)], description="query")
        self.filtered = W.Checkbox(value=True, description="filtered (other known tails out)")
        self.view = W.HTML()
        self.shown: dict[str, list[str]] = {}
        self.ranks: dict[str, float] = {}
        self.pick.observe(self.show, "value")
        self.filtered.observe(self.show, "value")
        self.widget = W.VBox([W.HTML(f"<i>{ms.title}, target {target}</i>"), self.pick,
                              self.filtered, self.view])
        self.show()

    def _ranked(self, score: TailScorer, h: int, r: int, t: int) -> tuple[list[int], float]:
        """The top-``k`` tails and the true tail's realistic rank, filtered when ticked."""
        heads, rels = torch.tensor([h]), torch.tensor([r])
        with torch.no_grad():
            scores = score(heads, rels).to(torch.float64)
        known = self.known.mask(heads, rels, scores.shape[1]) if self.filtered.value else None
        rank = float(ranks_from_scores(scores, torch.tensor([t]), known)[0])
        if known is not None:
            known[0, t] = False
            scores = scores.masked_fill(known, float("-inf"))
        return torch.topk(scores[0], self.k).indices.tolist(), rank

    def show(self, _=None) -> None:
        h, r, t = (int(x) for x in self.queries[self.pick.value])
        cells, self.shown, self.ranks = [], {}, {}
        for name, score in self.scorers.items():
            top, self.ranks[name] = self._ranked(score, h, r, t)
            self.shown[name] = [self.labels[e] for e in top]
            items = "".join(f"<li>{'<b>' if e == t else ''}{self.labels[e]}"
                            f"{'</b> ✓' if e == t else ''}</li>" for e in top)
            cells.append(f"<td style='vertical-align:top;padding:0 12px'><b>{name}</b>"
                         f"<ol>{items}</ol>true tail's rank: <b>{self.ranks[name]:g}</b></td>")
        which = "filtered" if self.filtered.value else "raw (known tails compete)"
        self.view.value = (f"<p>true tail: <b>{self.labels[t]}</b>; ranks {which}</p>"
                           f"<table class='sellakit-query'><tr>{''.join(cells)}</tr></table>")
