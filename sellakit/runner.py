"""Execute the notebook series and collect what each notebook recorded.

A notebook's last cell calls :func:`record` with its key results; the value is stored in the
cell's output under a custom MIME type, so tests and the runner read numbers, not printed text.
:func:`run_series` executes the notebooks (from their jupytext ``.py`` sources, so the code run
is the code reviewed), keeps the executed copies in ``build/notebooks/`` (out of git) and writes
``build/summary.md`` and ``build/summary.json``.

Example::

    >>> from sellakit.runner import run_series
    >>> summary = run_series(["01_data"], quick=True)  # doctest: +SKIP
    >>> summary["01_data"]["values"]["train_rows"]     # doctest: +SKIP
    33891
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from sellakit.config import repo_root

__all__ = ["NOTEBOOKS", "record", "recorded_values", "run_notebook", "run_series",
           "notebooks_dir", "build_dir"]

MIME = "application/vnd.sellakit.results+json"

#: The series: file stem -> (goal, quick-mode run time on a 2-core CPU, paper-mode time).
NOTEBOOKS: dict[str, tuple[str, str, str]] = {
    "00_overview": ("What the series covers, how to run it, the map", "~ 5 s", "~ 5 s"),
    "01_data": ("MovieLens-1M on the CoLLM protocol, explored", "~ 11 s", "~ 11 s"),
    "02_collaborative_filtering": ("Train MF, LightGCN, SASRec; AUC/UAUC, warm vs cold",
                                   "~ 2 min", "~ 10 min CPU / ~ 2 min GPU"),
    "03_llm_semantic_embeddings": ("What an LLM knows about items: title semantics, neighbours, "
                                   "genre structure", "~ 45 s (3 min first run)", "same"),
    "04_semantic_alignment": ("Contrastive CF-LLM alignment: measures, UMAP before/after, the "
                              "explorer widget", "~ 5 min", "~ 15 min CPU"),
    "05_special_tokens_prompting": ("SeLLa-Rec's three special tokens vs TALLRec- and "
                                    "CoLLM-style prompts: LoRA stages, AUC/UAUC, a scoring "
                                    "widget", "~ 11 min (15 min without notebook 04's file)", "GPU: hours (7B)"),
    "06_kg_multisource_pretraining": ("DBP-5L's five KGs (or the derived stand-in) and links, "
                                      "leakage removal, the joint "
                                      "RotatE teacher, UMAP of aligned entities",
                                      "~ 20 s (+ ~ 4 min to train the teacher on the first "
                                      "run)", "not measured (GPU advised)"),
    "07_kg_distillation": ("Linked subgraph, student with feature/network/prediction KD vs "
                           "scratch and joint retrain, ablations, time vs MRR, a widget",
                           "~ 5 min (4 min 34 s in make test)",
                           "not measured (GPU advised)"),
}


def notebooks_dir() -> Path:
    """The folder of the series (``notebooks/`` at the repository root)."""
    return repo_root() / "notebooks"


def build_dir() -> Path:
    """Where executed notebooks and the summary go (``$SELLAKIT_BUILD`` or ``build/``)."""
    path = Path(os.environ.get("SELLAKIT_BUILD") or repo_root() / "build")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _clean(value):
    """JSON-safe copy: NaN becomes None, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def record(**values) -> dict:
    """Record a notebook's key results (call it in the last cell).

    In a kernel the values are displayed under a custom MIME type that :func:`recorded_values`
    reads back from the executed notebook; elsewhere they are printed.
    """
    values = _clean(values)
    json.dumps(values)  # fail here, in the notebook, if something is not serialisable
    try:
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is not None:
            display({MIME: values, "text/plain": json.dumps(values, indent=1)}, raw=True)
            return values
    except ImportError:
        pass
    print(json.dumps(values, indent=1))
    return values


def recorded_values(notebook) -> dict:
    """Merge every :func:`record` call's values found in an executed notebook."""
    found: dict = {}
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if MIME in data:
                found.update(data[MIME])
    return found


def _load_source(stem: str):
    import jupytext

    source = notebooks_dir() / f"{stem}.py"
    if not source.exists():
        known = ", ".join(NOTEBOOKS)
        raise FileNotFoundError(f"No notebook {source}. Known notebooks: {known}.")
    return jupytext.read(source)


def run_notebook(stem: str, *, quick: bool = True, timeout: int = 1800, save: bool = True
                 ) -> dict:
    """Execute one notebook top to bottom; return ``{"seconds", "values", "path"}``.

    Raises ``nbclient.exceptions.CellExecutionError`` (with the failing cell) on error; the
    partly executed copy is still saved for inspection.
    """
    import nbformat
    from nbclient import NotebookClient

    notebook = _load_source(stem)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    started = time.perf_counter()

    def progress(cell, cell_index, execute_reply) -> None:
        if cell.cell_type == "code":
            print(f"[sellakit]   {stem} cell {cell_index} done at "
                  f"{time.perf_counter() - started:.0f} s", flush=True)

    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(notebooks_dir())}},
                            on_cell_executed=progress)
    out = build_dir() / "notebooks" / f"{stem}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        # The kernel inherits this environment, with the mode set for it alone.
        client.execute(env={**os.environ, "SELLAKIT_QUICK": "1" if quick else "0"})
    finally:
        if save:
            nbformat.write(notebook, out)
    return {"seconds": round(time.perf_counter() - started, 1),
            "values": recorded_values(notebook), "path": str(out)}


def run_series(stems: Sequence[str] | None = None, *, quick: bool = True) -> dict:
    """Run notebooks in order (all by default) and write ``build/summary.{md,json}``."""
    stems = list(stems or NOTEBOOKS)
    summary = {}
    for stem in stems:
        print(f"[sellakit] running {stem} ({'quick' if quick else 'paper'} mode) ...",
              flush=True)
        summary[stem] = run_notebook(stem, quick=quick)
        print(f"[sellakit]   done in {summary[stem]['seconds']} s", flush=True)
    (build_dir() / "summary.json").write_text(json.dumps(summary, indent=1))
    (build_dir() / "summary.md").write_text(summary_markdown(summary, quick=quick))
    return summary


def summary_markdown(summary: dict, *, quick: bool) -> str:
    """The results summary: one section per notebook with its time and recorded values."""
    lines = [f"# sellakit results summary ({'quick' if quick else 'paper'} mode)", "",
             f"Python {sys.version.split()[0]}; {time.strftime('%Y-%m-%d %H:%M')}", "",
             "| notebook | seconds |", "|---|---:|"]
    lines += [f"| {stem} | {entry['seconds']} |" for stem, entry in summary.items()]
    for stem, entry in summary.items():
        lines += ["", f"## {stem}", "", "| value | |", "|---|---|"]
        for key, value in entry["values"].items():
            shown = json.dumps(value) if isinstance(value, (dict, list)) else value
            lines.append(f"| {key} | {shown} |")
    return "\n".join(lines) + "\n"
