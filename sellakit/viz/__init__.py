"""Pictures and widgets of the notebooks: plots, figure files, UMAP maps, the alignment explorer,
SeLLa-Rec's prompt pictures, the knowledge-graph tables, drawing and query explorer.

Every public name of the submodules is importable from here (``from sellakit.viz import
save_figures, ScoreExplorer``). A name is loaded on first use, so importing one picture does not
pull in the others' dependencies (``rec`` brings the LLM stack, ``widgets`` ipywidgets).
"""

from __future__ import annotations

import importlib

#: Public name -> the submodule that defines it.
_HOMES = {name: module for module, names in {
    "figures": ["figures_dir", "save_figures", "find_chromium", "stamp_figures", "read_stamp",
                "file_sha256", "readable_notebook", "LIVE_MIMES"],
    "kg": ["captioned", "linked_subgraph_figure", "QueryExplorer", "sweep_gaps"],
    "kgrec": ["space_maps", "KGMovieExplorer"],
    "maps": ["UMAPSettings", "fit_frame", "compile_kernels", "procrustes_onto", "map_scatter",
             "facet_map"],
    "palette": ["PALETTE", "colour_map"],
    "plots": ["monthly_activity", "popularity_long_tail", "label_balance", "warm_cold",
              "history_lengths", "learning_curves", "metric_bars", "measure_curves",
              "cosine_histogram", "popularity_vs_cosine", "recall_curve", "genre_highlight"],
    "rec": ["prompt_html", "nearest_vocabulary", "valid_curves", "ScoreExplorer",
            "paired_forest", "stage1_curve"],
    "widgets": ["ExplorerData", "AlignmentExplorer", "nearest_items"],
}.items() for name in names}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
