"""Figures that show their point: enough colours, stars like their lines, published markers
over their own slice, one panel per language."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sellakit.viz import PALETTE, colour_map, facet_map, learning_curves, map_scatter, metric_bars


def _frame(n: int = 180) -> tuple[np.ndarray, pd.DataFrame]:
    coords = np.random.default_rng(0).normal(size=(n, 2))
    return coords, pd.DataFrame({"title": [f"t{i}" for i in range(n)],
                                 "genre": [f"genre {i % 18}" for i in range(n)],
                                 "language": [("el", "ja", "es", "fr", "en")[i % 5]
                                              for i in range(n)]})


def test_palette_has_twenty_distinct_colours():
    assert len(set(PALETTE)) == len(PALETTE) >= 20
    assert len(set(colour_map(range(18)).values())) == 18


def test_genre_map_gives_each_of_18_genres_its_own_colour_and_a_legend_entry():
    fig = map_scatter(*_frame(), "genre", "map")
    colours = {trace.name: trace.marker.color for trace in fig.data}
    assert len(colours) == 18 and len(set(colours.values())) == 18
    assert all(trace.showlegend is not False for trace in fig.data)
    assert fig.layout.legend.itemsizing == "constant"


def test_best_epoch_stars_take_their_line_colour():
    histories = {m: pd.DataFrame({"epoch": [1, 2, 3], "valid_auc": [0.5, 0.6, 0.55]})
                 for m in ("mf", "lightgcn", "sasrec")}
    fig = learning_curves(histories, {m: 2 for m in histories})
    lines = {t.name: t.line.color for t in fig.data if t.mode == "lines"}
    stars = {t.legendgroup: t.marker.color for t in fig.data if t.mode == "markers"}
    assert lines == stars and len(set(lines.values())) == 3


def test_published_marker_sits_over_its_own_slice():
    results = {m: {"test": {"auc": 0.6}, "test_warm": {"auc": 0.7}, "test_cold": {"auc": 0.5}}
               for m in ("mf", "lightgcn", "sasrec")}
    fig = metric_bars(results, "auc", published={"mf": 0.65, "lightgcn": 0.6, "sasrec": 0.7})
    shapes = [s for s in fig.layout.shapes if s.xref == "x"]  # the chance line spans the paper
    assert len(shapes) == 3
    for i, shape in enumerate(shapes):  # the first bar of group i spans [i - 0.4, i - 0.133]
        assert np.isclose(shape.x0, i - 0.4) and np.isclose(shape.x1, i - 0.4 + 0.8 / 3)
    per_slice = metric_bars(results, "auc", published={"mf": {"test_cold": 0.55}})
    assert np.isclose(per_slice.layout.shapes[0].x0, -0.4 + 2 * 0.8 / 3)


def test_metric_bars_show_intervals_chance_and_start_at_zero():
    """What a comparison table says: 95% whiskers, the chance line, bars from 0, slice names a
    reader understands (not `test_warm`)."""
    from sellakit.metrics import evaluate_slices

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"uid": rng.integers(0, 20, 400), "label": rng.integers(0, 2, 400),
                          "not_cold": rng.integers(0, 2, 400)})
    results = {m: evaluate_slices(frame, frame.label + rng.normal(0, s, 400))
               for m, s in (("mf", 1.0), ("sasrec", 0.5))}
    fig = metric_bars(results, "auc")
    assert fig.layout.yaxis.range[0] == 0
    chance = [s for s in fig.layout.shapes if s.y0 == 0.5 == s.y1]
    assert len(chance) == 1
    bars = [t for t in fig.data if t.type == "bar"]
    assert {t.name for t in bars} == {"all test rows", "warm rows (user and item seen in train)",
                                      "cold rows"}
    for trace in bars:  # whiskers reach DeLong's bounds
        assert trace.error_y.array is not None and all(v > 0 for v in trace.error_y.array)
    test = results["mf"]["test"]
    first = next(t for t in bars if t.name == "all test rows")
    assert np.isclose(first.y[0] + first.error_y.array[0], test["auc_hi"])
    assert np.isclose(first.y[0] - first.error_y.arrayminus[0], test["auc_lo"])


def test_language_facets_one_panel_each():
    fig = facet_map(*_frame(), "language", "facets")
    coloured = [t for t in fig.data if t.showlegend is not False]
    assert sorted(t.name for t in coloured) == ["el", "en", "es", "fr", "ja"]
    assert len({t.xaxis for t in coloured}) == 5


def test_alignment_pictures_show_chance_and_every_genre_of_an_item():
    from sellakit.viz import cosine_histogram, genre_highlight, popularity_vs_cosine, recall_curve

    curve = pd.DataFrame({"group": ["trained"] * 2 + ["held out"] * 2, "items": [30] * 2 +
                          [10] * 2, "k": [1, 10] * 2, "recall": [0.9, 1.0, 0.0, 0.3],
                          "chance": [0.025, 0.25] * 2})
    fig = recall_curve(curve)
    assert [t.name for t in fig.data] == ["trained (30 items)", "held out (10 items)",
                                          "chance (k / n)"]
    assert list(fig.data[-1].y) == [0.025, 0.25] and fig.layout.yaxis.range[0] == 0
    # MovieLens lists genres alphabetically: a Comedy|Thriller film is a thriller too
    assert genre_highlight([["Comedy", "Thriller"], ["Action"]], "Thriller") == \
        ["Thriller", "other genres"]
    rng = np.random.default_rng(0)
    hist = cosine_histogram({"raw": rng.uniform(0.9, 1, 100), "centred": rng.normal(0, .1, 100)})
    assert [round(sum(t.y), 6) for t in hist.data] == [1.0, 1.0]  # shares of pairs
    scatter = popularity_vs_cosine(np.array([1, 10, 100]), np.array([0.9, 0.5, 0.1]),
                                   np.array(["a", "b", "c"]))
    assert "-1.00" in scatter.layout.title.text  # log(rows) falls in line with the cosine
