"""Plotly figures for the notebooks: the protocol (01) and CF training (02).

Each function takes plain frames or dicts and returns a ``plotly.graph_objects.Figure``; saving
is :func:`sellakit.viz.figures.save_figures`'s job.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from sellakit.data.protocol import CTRSplit
from sellakit.viz.palette import colour_map

__all__ = ["monthly_activity", "popularity_long_tail", "label_balance", "warm_cold",
           "history_lengths", "learning_curves", "metric_bars", "measure_curves",
           "cosine_histogram", "popularity_vs_cosine", "recall_curve", "genre_highlight"]

SPLIT_COLOURS = {"train": "#4C78A8", "valid": "#F58518", "test": "#54A24B"}


def _stack(split: CTRSplit) -> pd.DataFrame:
    return pd.concat([f.assign(split=n) for n, f in split.frames().items()], ignore_index=True)


def monthly_activity(split: CTRSplit) -> go.Figure:
    """Rows per month index, coloured by the split each month belongs to."""
    counts = _stack(split).groupby(["month", "split"]).size().reset_index(name="rows")
    fig = px.bar(counts, x="month", y="rows", color="split", color_discrete_map=SPLIT_COLOURS,
                 title=f"{split.name}: rows per month (months since the first rating)")
    return fig.update_layout(xaxis_title="month index", yaxis_title="rows")


def popularity_long_tail(split: CTRSplit) -> go.Figure:
    """Item interaction counts in train, sorted: the long tail on log-log axes."""
    counts = np.sort(split.train.iid.value_counts().to_numpy())[::-1]
    share = counts.cumsum() / counts.sum()
    head = int(np.searchsorted(share, 0.5)) + 1
    fig = go.Figure(go.Scatter(x=np.arange(1, len(counts) + 1), y=counts, mode="lines",
                               name="train rows per item"))
    fig.update_layout(title=f"{split.name}: item popularity in train — {head} of {len(counts)} "
                      "items carry half the rows", xaxis_title="item rank", yaxis_title="rows",
                      xaxis_type="log", yaxis_type="log")
    return fig


def label_balance(split: CTRSplit) -> go.Figure:
    """Share of positive rows (rating >= 4) per split."""
    summary = split.summary().reset_index()
    fig = px.bar(summary, x="split", y="positive_rate", color="split", text="positive_rate",
                 color_discrete_map=SPLIT_COLOURS, range_y=[0, 1],
                 title=f"{split.name}: share of positive labels")
    return fig.update_layout(showlegend=False)


def warm_cold(split: CTRSplit) -> go.Figure:
    """Warm (user and item seen in train) versus cold rows, per evaluation split."""
    frames = _stack(split)
    frames = frames[frames.split != "train"]
    frames["kind"] = np.where(frames.not_cold == 1, "warm", "cold")
    counts = frames.groupby(["split", "kind"]).size().reset_index(name="rows")
    return px.bar(counts, x="split", y="rows", color="kind", barmode="stack",
                  category_orders={"split": ["valid", "test"], "kind": ["warm", "cold"]},
                  title=f"{split.name}: warm and cold rows")


def history_lengths(split: CTRSplit, cap: int = 10) -> go.Figure:
    """Distribution of history lengths (earlier liked items), with the prompt cap marked."""
    lengths = _stack(split).assign(length=lambda f: f.his.map(len))
    fig = px.histogram(lengths, x="length", color="split", color_discrete_map=SPLIT_COLOURS,
                       nbins=80, barmode="overlay", opacity=0.6,
                       title=f"{split.name}: liked items before each row")
    fig.add_vline(x=cap, line_dash="dash", annotation_text=f"prompt keeps the last {cap}")
    return fig.update_layout(xaxis_title="history length", yaxis_type="log")


def learning_curves(histories: dict[str, pd.DataFrame], best_epochs: dict[str, int]
                    ) -> go.Figure:
    """Validation AUC per epoch for each model, the selected epoch marked by a star of the
    line's colour."""
    fig = go.Figure()
    colours = colour_map(histories)
    for name, history in histories.items():
        fig.add_trace(go.Scatter(x=history.epoch, y=history.valid_auc, mode="lines", name=name,
                                 line={"color": colours[name]}, legendgroup=name))
        best = history[history.epoch == best_epochs[name]]
        fig.add_trace(go.Scatter(x=best.epoch, y=best.valid_auc, mode="markers",
                                 marker={"size": 14, "symbol": "star", "color": colours[name],
                                         "line": {"width": 1, "color": "black"}},
                                 name=f"{name}: selected", legendgroup=name, showlegend=False))
    return fig.update_layout(title="Validation AUC per epoch (stars: epoch kept)",
                             xaxis_title="epoch", yaxis_title="valid AUC")


#: Legend names of the evaluation slices (the keys a result dict holds them under).
SLICE_NAMES = {"test": "all test rows", "test_warm": "warm rows (user and item seen in train)",
               "test_cold": "cold rows", "test_item_cold": "rows of an unseen item",
               "valid": "validation rows"}
#: Where a metric's chance level lies (a random ranker), drawn as a dashed line.
CHANCE = {"auc": 0.5, "uauc": 0.5}


def metric_bars(results: dict[str, dict], metric: str = "auc",
                slices: tuple[str, ...] = ("test", "test_warm", "test_cold"),
                published: dict[str, float] | None = None) -> go.Figure:
    """Grouped bars of ``metric`` per model and slice, from 0, with the chance line and each
    bar's 95% interval where the result holds one (``<metric>_lo`` / ``<metric>_hi``, e.g.
    :func:`sellakit.metrics.auc_bounds`). ``published`` values (``{model: value}`` for all
    test rows, or ``{model: {slice: value}}``) are black bars drawn over the bar of their own
    slice, not over the middle of the group."""
    rows = [{"model": m, "slice": SLICE_NAMES.get(s, s), metric: r[s][metric],
             "plus": _gap(r[s], metric, "hi"), "minus": _gap(r[s], metric, "lo")}
            for m, r in results.items() for s in slices]
    frame = pd.DataFrame(rows)
    shown = frame.plus.notna().any()
    fig = px.bar(frame, x="model", y=metric, color="slice", barmode="group",
                 error_y="plus" if shown else None, error_y_minus="minus" if shown else None,
                 category_orders={"model": list(results),
                                  "slice": [SLICE_NAMES.get(s, s) for s in slices]},
                 title=f"Test {metric.upper()} by model and slice"
                 + (" (whiskers: 95% interval, DeLong)" if shown else ""))
    gap = 0.2  # set below: each bar is (1 - gap) / len(slices) wide, groups centred on models
    width = (1 - gap) / len(slices)
    for i, model in enumerate(results):
        values = (published or {}).get(model)
        values = values if isinstance(values, dict) else {slices[0]: values}
        for slice_name, value in values.items():
            if value is None or slice_name not in slices:
                continue
            left = i - (1 - gap) / 2 + slices.index(slice_name) * width
            fig.add_shape(type="line", x0=left, x1=left + width, y0=value, y1=value,
                          xref="x", yref="y", line={"color": "black", "width": 3})
    if published:  # one legend entry for the shapes
        first = SLICE_NAMES.get(slices[0], slices[0])
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line={"color": "black",
                                 "width": 3}, name=f"published (CoLLM), {first}"))
    if metric in CHANCE:
        fig.add_hline(y=CHANCE[metric], line_dash="dash", line_color="grey",
                      annotation_text=f"chance ({CHANCE[metric]})")
    return fig.update_layout(yaxis_range=[0, 1], bargap=gap, bargroupgap=0,
                             legend_title_text="rows")


def _gap(values: dict, metric: str, side: str) -> float:
    """Distance from the value to its interval's ``side`` end (NaN where none is recorded)."""
    end = values.get(f"{metric}_{side}")
    if end is None or end != end:
        return float("nan")
    return abs(end - values[metric])


def measure_curves(history: pd.DataFrame, columns: list[str]) -> go.Figure:
    """Alignment measures per epoch (one line each), with validation AUC for reference."""
    fig = go.Figure()
    for column in columns + ["valid_auc"]:
        part = history.dropna(subset=[column])
        fig.add_trace(go.Scatter(x=part.epoch, y=part[column], mode="lines+markers", name=column))
    return fig.update_layout(title="Alignment measures and validation AUC over training",
                             xaxis_title="epoch", yaxis_title="value")


def cosine_histogram(cosines: dict[str, np.ndarray]) -> go.Figure:
    """Overlaid histograms of pairwise cosines, one per table (e.g. raw and centred states):
    a table whose cosines crowd near 1 is mostly one shared direction."""
    edges = np.linspace(-1, 1, 81)  # binned here: a figure of 10^5 raw values is slow to save
    centres = (edges[:-1] + edges[1:]) / 2
    fig = go.Figure([go.Bar(x=centres, y=np.histogram(values, edges)[0] / len(values),
                            name=name, opacity=0.6, width=edges[1] - edges[0])
                     for name, values in cosines.items()])
    return fig.update_layout(barmode="overlay", xaxis_title="cosine of two items' vectors",
                             yaxis_title="share of pairs", xaxis_range=[-1, 1],
                             title="Pairwise cosines of the LLM's item states")


def popularity_vs_cosine(rows: np.ndarray, cosine: np.ndarray, titles: np.ndarray
                         ) -> go.Figure:
    """Each trained item: its training rows (log axis) against the cosine of its projected CF
    vector with its own LLM vector, the correlation with log(rows) in the title."""
    r = float(np.corrcoef(np.log(rows), cosine)[0, 1])
    fig = go.Figure(go.Scattergl(x=rows, y=cosine, mode="markers", text=titles,
                                 marker={"size": 4, "opacity": 0.5}, name="item"))
    return fig.update_layout(
        xaxis_type="log", xaxis_title="training rows of the item", yaxis_title="cosine with "
        "its own LLM vector", title=f"Training rows against the cosine with its own LLM vector "
        f"(correlation with log rows: {r:.2f})")


def recall_curve(curve: pd.DataFrame) -> go.Figure:
    """Recall@k against k per item group (from :func:`sellakit.align.recall_by_group`), with
    the chance line k / n."""
    fig = go.Figure()
    for name, part in curve.groupby("group", sort=False):
        fig.add_trace(go.Scatter(x=part.k, y=part.recall, mode="lines+markers",
                                 name=f"{name} ({part['items'].iloc[0]:,} items)"))
    chance = curve.drop_duplicates("k")
    fig.add_trace(go.Scatter(x=chance.k, y=chance.chance, mode="lines", name="chance (k / n)",
                             line={"dash": "dash", "color": "grey"}))
    return fig.update_layout(xaxis_type="log", yaxis_range=[0, 1.05], xaxis_title="k",
                             yaxis_title="Recall@k: own LLM vector among the k nearest",
                             title="Does each projected CF vector find its own LLM vector?")


def genre_highlight(genres: list[list[str]], genre: str) -> list[str]:
    """One label per item: ``genre`` where the item has it among its genres (MovieLens lists
    several, alphabetically, so the first is no item's main genre), else "other genres"."""
    return [genre if genre in item else "other genres" for item in genres]
