"""UMAP maps of embedding spaces, in comparable frames, with cached coordinates.

One UMAP (cosine, seeded, single-threaded for reproducibility) is fitted on the LLM semantic
space; anything that lives in that space (the projected CF vectors ``P(e_i)`` of every saved
epoch) is placed with ``transform`` into the same frame, so a point's move between epochs is
real. The raw CF space has another dimension, so it gets its own UMAP, rotated onto the LLM
frame by orthogonal Procrustes (rotation and reflection only: its shape is untouched).

Coordinates are cached under ``<cache>/derived/umap/`` keyed by a hash of the inputs and the
parameters; a repeated call costs a file read instead of a numba JIT and a fit.
"""

from __future__ import annotations

import hashlib
import json
import warnings

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from sellakit.cache import cached_arrays
from sellakit.viz.palette import colour_map

__all__ = ["UMAPSettings", "fit_frame", "compile_kernels", "procrustes_onto", "map_scatter",
           "facet_map"]


class UMAPSettings(dict):
    """UMAP parameters (a dict, so they hash and print plainly)."""

    def __init__(self, n_neighbors: int = 15, min_dist: float = 0.1, n_epochs: int | None = None,
                 seed: int = 2025):
        super().__init__(n_neighbors=n_neighbors, min_dist=min_dist, n_epochs=n_epochs,
                         seed=seed)


def _key(*arrays: np.ndarray, settings: dict) -> str:
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for array in arrays:
        digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    return digest.hexdigest()[:24]


def fit_frame(reference: np.ndarray, others: dict[str, np.ndarray] | None = None,
              settings: UMAPSettings | None = None) -> dict[str, np.ndarray]:
    """2-D coordinates of ``reference`` and of each array in ``others`` (same dimension),
    placed into the reference's frame by ``transform``. Returns ``{"reference": xy, name: xy}``.
    """
    settings = settings or UMAPSettings()
    others = others or {}
    names = sorted(others)
    key = _key(reference, *[others[n] for n in names], settings={**settings, "n": names})
    shapes = {"reference": (len(reference), 2)} | {n: (len(others[n]), 2) for n in names}
    return cached_arrays("umap", key, lambda: _fit(reference, others, names, settings),
                         shapes=shapes)


def compile_kernels() -> float:
    """Compile umap-learn's kernels into numba's cache now (a fit and a transform of a small
    random table, as :func:`fit_frame` calls them); returns the seconds it took. ``make install``
    calls it, so that the first notebook to draw a map (03) loads them instead of compiling
    (about 25 s on 2 cores, once per environment); nothing is written to the kit's cache.

    Example::

        python -c "from sellakit.viz.maps import compile_kernels; print(compile_kernels())"
    """
    import time

    started = time.perf_counter()
    table = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    _fit(table[:48], {"placed": table[48:]}, ["placed"], UMAPSettings(n_epochs=10))
    return round(time.perf_counter() - started, 1)


def _import_umap():
    """umap-learn with its numba kernels compiled ``cache=True``. umap-learn compiles them anew
    in every process (about 13 s on 2 cores, paid by each notebook that draws a map); cached
    where numba keeps its caches (beside the installed package), a later process loads them in
    about a second. The kernels and their results are unchanged."""
    import sys

    if "umap" in sys.modules:  # imported before: its kernels are what they are
        return sys.modules["umap"]
    import numba

    njit, jit = numba.njit, numba.jit
    numba.njit, numba.jit = _with_cache(njit), _with_cache(jit)
    try:
        import umap
    finally:
        numba.njit, numba.jit = njit, jit
    return umap


def _with_cache(decorator):
    """``decorator`` (``numba.njit`` or ``numba.jit``) with ``cache=True`` by default; where numba
    finds no writable folder for its cache (it raises RuntimeError), compiled as asked."""
    def compiled(function, args, kwargs):
        try:
            return decorator(*args, **{"cache": True, **kwargs})(function)
        except RuntimeError:
            return decorator(*args, **kwargs)(function)

    def decorate(*args, **kwargs):
        if args and callable(args[0]):  # numba.njit(function, ...): compile it now
            return compiled(args[0], args[1:], kwargs)
        return lambda function: compiled(function, args, kwargs)  # @numba.njit(options)
    return decorate


def _fit(reference: np.ndarray, others: dict[str, np.ndarray], names: list[str],
         settings: UMAPSettings) -> dict[str, np.ndarray]:
    umap = _import_umap()  # heavy (numba), only when a map is really computed

    reducer = umap.UMAP(n_neighbors=settings["n_neighbors"], min_dist=settings["min_dist"],
                        n_epochs=settings["n_epochs"], metric="cosine",
                        random_state=settings["seed"], n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n_jobs/random_state notice; small-data warnings
        coords = {"reference": reducer.fit_transform(reference).astype(np.float32)}
        if names:  # one transform call for all: each call pays a fixed optimisation set-up
            placed = reducer.transform(np.concatenate([others[n] for n in names]))
            bounds = np.cumsum([0] + [len(others[n]) for n in names])
            for name, lo, hi in zip(names, bounds[:-1], bounds[1:]):
                coords[name] = placed[lo:hi].astype(np.float32)
    return coords


def procrustes_onto(moving: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotate/reflect and scale centred ``moving`` (n, 2) to best match ``target`` (n, 2)."""
    a = moving - moving.mean(0)
    b = target - target.mean(0)
    u, s, vt = np.linalg.svd(a.T @ b)
    rotation = u @ vt
    scale = s.sum() / (a ** 2).sum()
    return (a @ rotation) * scale + target.mean(0)


def map_scatter(coords: np.ndarray, frame: pd.DataFrame, colour: str, title: str,
                hover: str = "title") -> go.Figure:
    """A plotly scatter of ``coords`` with one row of ``frame`` per point (hover: titles).

    A categorical ``colour`` takes :data:`sellakit.viz.palette.PALETTE` (22 colours, so 18
    genres each get their own) and a legend on the right, one compact entry per category,
    fully in view; a numeric one a continuous scale.
    """
    data = frame.assign(x=coords[:, 0], y=coords[:, 1])
    categorical = not pd.api.types.is_numeric_dtype(data[colour])
    extra = {}
    if categorical:
        colours = colour_map(data[colour])
        extra = {"color_discrete_map": colours, "category_orders": {colour: list(colours)}}
    fig = px.scatter(data, x="x", y="y", color=colour, hover_name=hover, title=title,
                     render_mode="webgl", opacity=0.75, **extra)
    fig.update_traces(marker={"size": 5})
    fig.update_yaxes(scaleanchor="x", scaleratio=1, showticklabels=False, title=None)
    fig.update_xaxes(showticklabels=False, title=None)
    return fig.update_layout(legend_title_text=colour, **_LEGEND)


#: A legend on the right that fits 22 entries in a 520-pixel figure.
_LEGEND = {"legend": {"itemsizing": "constant", "tracegroupgap": 0, "font": {"size": 10},
                      "yanchor": "top", "y": 1, "x": 1.02}, "margin": {"r": 10}}


def facet_map(coords: np.ndarray, frame: pd.DataFrame, facet: str, title: str,
              hover: str = "title", columns: int = 3) -> go.Figure:
    """One panel per value of ``facet`` on the same coordinates: that value's points in its
    colour over every other point in light grey, so overplotted groups can be told apart."""
    from plotly.subplots import make_subplots

    data = frame.assign(x=coords[:, 0], y=coords[:, 1])
    colours = colour_map(data[facet])
    rows = -(-len(colours) // columns)
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=[str(v) for v in colours],
                        shared_xaxes="all", shared_yaxes="all",
                        horizontal_spacing=0.02, vertical_spacing=0.08)
    for k, (value, colour) in enumerate(colours.items()):
        row, col = k // columns + 1, k % columns + 1
        own = data[facet] == value
        fig.add_trace(go.Scattergl(x=data.x[~own], y=data.y[~own], mode="markers",
                                   marker={"size": 3, "color": "#D3D3D3"}, hoverinfo="skip",
                                   showlegend=False), row=row, col=col)
        fig.add_trace(go.Scattergl(x=data.x[own], y=data.y[own], mode="markers", name=str(value),
                                   marker={"size": 4, "color": colour}, text=data[hover][own],
                                   hovertemplate="%{text}<extra>" + str(value) + "</extra>"),
                      row=row, col=col)
    fig.update_xaxes(showticklabels=False, title=None)
    fig.update_yaxes(showticklabels=False, title=None)
    return fig.update_layout(title=title, legend_title_text=facet, **_LEGEND)
