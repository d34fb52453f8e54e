"""Execute the notebook series and collect what each notebook recorded.

A notebook's last cell calls :func:`record` with its key results; the value is stored in the
cell's output under a custom MIME type, so tests and the runner read numbers, not printed text.
:func:`run_series` executes the notebooks (from their jupytext ``.py`` sources, so the code run
is the code reviewed), keeps the executed copies in ``build/notebooks/`` (out of git) and writes
``build/summary.md`` and ``build/summary.json``. In quick mode it runs the series' two chains
(:data:`SERIES_CHAINS`) side by side, one kernel each, as ``make test``'s processes do.

Example::

    >>> from sellakit.runner import run_series
    >>> summary = run_series(["01_data"], quick=True)  # doctest: +SKIP
    >>> summary["01_data"]["values"]["train_rows"]     # doctest: +SKIP
    33891
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sellakit.cache import atomic_file
from sellakit.config import repo_root

if TYPE_CHECKING:  # the notebook extras, imported where a notebook runs
    import nbclient
    import nbformat

__all__ = ["NOTEBOOKS", "Notebook", "Promise", "notebooks_table", "series_seconds",
           "SERIES_WALL_SECONDS", "should_see",
           "check_should_see", "record", "recorded_values", "notebook_client", "run_notebook",
           "run_series", "run_chains", "SERIES_CHAINS", "series_chains", "side_by_side_env",
           "notebooks_dir", "build_dir", "stable_values", "values_digest"]

MIME = "application/vnd.sellakit.results+json"
#: Set for a notebook's kernel: which notebook and which run draws the figures it saves.
NOTEBOOK_VARIABLE, RUN_VARIABLE = "SELLAKIT_NOTEBOOK", "SELLAKIT_RUN"

@dataclass(frozen=True)
class Notebook:
    """One notebook of the series: the one source of its goal, times and dependencies.

    README's notebook table, notebook 00's map and each notebook's header line are made from
    these fields (``tests/test_facts.py`` keeps them equal). Times are quick mode, measured on 2
    CPU cores (idle unless ``time_note`` says otherwise): ``quick_seconds`` with a warm cache,
    ``first_run_seconds`` from an empty one (downloads, model conversion, item vectors, KG
    teacher).
    """

    goal: str
    quick_seconds: float
    first_run_seconds: float
    paper: str
    needs_gpu: str = "no"
    depends_on: tuple[str, ...] = ()
    depends_note: str = ""
    time_note: str = ""

    @staticmethod
    def _duration(seconds: float) -> str:
        seconds = round(seconds)
        return f"{seconds} s" if seconds < 100 else f"{seconds // 60} min {seconds % 60:02d} s"

    @property
    def quick(self) -> str:
        """Quick-mode time, warm cache, then the first run's (and any note)."""
        text = f"{self._duration(self.quick_seconds)} (first run {self._duration(self.first_run_seconds)})"
        return f"{text} {self.time_note}" if self.time_note else text

    @property
    def depends(self) -> str:
        if not self.depends_on:
            return "none"
        names = ", ".join(f"`{stem}`" for stem in self.depends_on)
        return f"{names} ({self.depends_note})" if self.depends_note else names

    def header(self) -> str:
        """The line each notebook carries under its goals (checked by a test)."""
        return (f"**Run time** (quick mode, 2 CPU cores, idle unless noted): {self.quick}. "
                f"**Paper mode:** {self.paper}. **Needs a GPU:** {self.needs_gpu}. "
                f"**Depends on:** {self.depends}.")


#: The series, in order: file stem -> :class:`Notebook`. The only source of these facts.
#: Times: ``sellakit bench series --serial`` (bench/quick_series.json: one notebook at a time, so
#: each is its time alone) of 2026-12-07 in a clean clone of da48fd5, 2 idle cores, DBP-5L at
#: hand, first from an empty cache (downloads included), then warm. The stand-in times of
#: notebooks 06-07 are from a clean-clone ``make test`` (no DBP-5L) on the machine of 2026-12-05.
NOTEBOOKS: dict[str, Notebook] = {
    "00_overview": Notebook(
        "What the series covers, how to run it, the map", 5.0, 3.5, "same as quick"),
    "01_data": Notebook(
        "MovieLens-1M on the CoLLM protocol, explored with plotly", 8.3, 11.3, "same as quick"),
    "02_collaborative_filtering": Notebook(
        "MF, LightGCN, SASRec: early stopping on validation, AUC/UAUC, warm vs cold",
        9.5, 83.1, "17 min on 2 CPU cores shared with three other jobs (bench/cf_ml1m.json; "
        "docs/results.md, CF baselines)",
        time_note="(a warm cache holds the trained models)"),
    "03_llm_semantic_embeddings": Notebook(
        "What a real LLM (SmolLM2-135M) knows about items from their titles: neighbours, "
        "genre structure, UMAP", 14.0, 80.1,
        "not measured (a UMAP of 3,000 items instead of 600)"),
    "04_semantic_alignment": Notebook(
        "MF + InfoNCE alignment with the LLM space: CKA, mutual k-NN, Recall@10 before/after, "
        "UMAP, widget explorer", 17.1, 159.1,
        "not measured (bench/align_ml1m_quick.json is the quick preset)",
        time_note="(a warm cache holds both trained models)",
        depends_on=("03_llm_semantic_embeddings",),
        depends_note="its cached model and item vectors; computed here when absent"),
    "05_special_tokens_prompting": Notebook(
        "SeLLa-Rec's `<User_ID>`/`<Item_ID>`/`<Warm_ID>` prompts against TALLRec- and "
        "CoLLM-style prompts on one LLM: LoRA stages, the cached text, AUC/UAUC with paired "
        "intervals, slot norms, a slot ablation, a forest plot against the strongest count "
        "baseline, a scoring widget",
        17.1, 151.1, "not measured; every ML-1M row, on the same SmolLM2 unless the "
        "notebook's `MODEL` names another", needs_gpu="advised for paper mode",
        time_note="(a warm cache holds stages 1 and 3 and every score)",
        depends_on=("04_semantic_alignment",),
        depends_note="quick mode reads `build/aligned_mf.pt`; without it 05 aligns after "
        "stage 1 itself, slower"),
    "06_kg_multisource_pretraining": Notebook(
        "DBP-5L's five KGs and links (or the derived stand-in), one data rule (training, "
        "selection, test facts), leakage removal, the joint RotatE teacher trained to "
        "convergence, copies no link joins (UMAP, alignment Hits@k)", 12.1, 122.1,
        "not measured", needs_gpu="advised for paper mode",
        time_note="on DBP-5L (the first run trains the teacher); first run 24 s on the derived "
        "stand-in"),
    "07_kg_distillation": Notebook(
        "Two settings (a teacher that saw the target; a new KG arriving after pre-training), "
        "linked subgraph, warm-started student with KD vs scratch, J1 and the warm start alone "
        "with paired intervals (J2 and the new-KG setting in paper mode), time by phase vs "
        "MRR, the sweeps from bench/, a widget",
        18.7, 52.1, "not measured",
        needs_gpu="advised for paper mode", depends_on=("06_kg_multisource_pretraining",),
        depends_note="its cached teacher; trained here when absent",
        time_note="on DBP-5L (a warm cache holds the trained rows; the first run reads "
        "notebook 06's teacher); first run 17 s on the derived stand-in"),
    "08_kg_meets_recommender": Notebook(
        "MovieLens-100k's Freebase film KG as a fourth token: the KG and its links, the KG "
        "vectors' link prediction, KG / CF / LLM item maps, `<KG_ID>` with and without, "
        "item-cold and user-cold slices with paired intervals, a slot ablation, a movie widget",
        16.0, 70.1, "`sellakit bench rec-kg` (3 seeds; the notebook reads "
        "`bench/rec_ml100k_kg.json`)", needs_gpu="advised for paper mode",
        time_note="(a warm cache holds the KG vectors and the maps)"),
}


def notebooks_table() -> str:
    """README's notebook table (markdown), made from :data:`NOTEBOOKS`."""
    lines = ["| notebook | goal | quick mode, warm cache (first run) | paper mode | needs a GPU "
             "| depends on |", "|---|---|---|---|---|---|"]
    lines += [f"| `{stem}` | {nb.goal} | {nb.quick} | {nb.paper} | {nb.needs_gpu} | "
              f"{nb.depends} |" for stem, nb in NOTEBOOKS.items()]
    return "\n".join(lines)


#: ``make run``'s wall clock for the whole quick series, seconds, its two chains side by side
#: (:data:`SERIES_CHAINS`): ``sellakit bench series`` (bench/quick_series_side_by_side.json) of
#: 2026-12-07 in a clean clone of da48fd5, 2 idle cores, DBP-5L at hand; one notebook at a time
#: (:data:`NOTEBOOKS`' times), the next run in the same clone took 118.0 s warm and 734.3 s
#: first.
SERIES_WALL_SECONDS = {"warm": 79.2, "first": 499.4}


def series_seconds(*, first_run: bool = False) -> float:
    """``make run``'s time for the whole quick series on 2 idle cores, its chains side by side
    (warm cache, or the first run): :data:`SERIES_WALL_SECONDS`."""
    return SERIES_WALL_SECONDS["first" if first_run else "warm"]


#: In a "What you should see" box: `path.to.value` ≈ number ± tolerance (a recorded value).
_EXPECTED = re.compile(r"`([A-Za-z0-9_@.]+)` ≈ (-?[0-9][0-9,]*(?:\.[0-9]+)?) ± ([0-9.]+)")
#: A box that holds for one data source only: "(when `dataset` = `dbp5l`)".
_WHEN = re.compile(r"\(when `([A-Za-z0-9_@.]+)` = `([^`]+)`\)")


@dataclass(frozen=True)
class Promise:
    """One number of a "What you should see" box: the recorded value at ``path`` is within
    ``tol`` of ``value`` (only where the recorded ``when`` path holds the named value)."""

    path: str
    value: float
    tol: float
    when: tuple[str, str] | None = None


def should_see(notebook) -> list[Promise]:
    """The values a notebook's "What you should see" boxes promise.

    A box is a markdown cell whose text holds "What you should see"; each promise is written
    `` `mf.test.auc` ≈ 0.644 ± 0.02 `` on one line, the path naming a value the notebook records.
    A box whose numbers depend on the data says so once: ``(when `dataset` = `dbp5l`)``.
    """
    found = []
    for cell in notebook.cells:
        if cell.cell_type != "markdown":
            continue
        for box in re.split(r"(?=What you should see)", cell.source)[1:]:  # one cell, two boxes
            when = _WHEN.search(box)
            for path, value, tol in _EXPECTED.findall(box):
                found.append(Promise(path, float(value.replace(",", "")), float(tol),
                                     when.groups() if when else None))
    return found


def _lookup(values: dict, path: str):
    for key in path.split("."):
        values = values.get(key) if isinstance(values, dict) else None
    return values


def check_should_see(notebook, values: dict) -> list[str]:
    """The promises of :func:`should_see` that the recorded ``values`` break (empty: all kept;
    a box for another data source is not checked)."""
    broken = []
    for promise in should_see(notebook):
        if promise.when and str(_lookup(values, promise.when[0])) != promise.when[1]:
            continue
        value = _lookup(values, promise.path)
        if value is None or abs(value - promise.value) > promise.tol + 1e-12:
            broken.append(f"{promise.path}: box says {promise.value} ± {promise.tol}, the run "
                          f"recorded {value}")
    return broken


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


def _is_timing(key: str) -> bool:
    return key == "seconds" or key.endswith("_seconds")


def stable_values(values):
    """``values`` without wall times (keys ``seconds``, ``*_seconds``), which differ from run
    to run while the results do not."""
    if isinstance(values, dict):
        return {k: stable_values(v) for k, v in values.items() if not _is_timing(str(k))}
    if isinstance(values, list):
        return [stable_values(v) for v in values]
    return values


#: Significant digits a digest keeps: a last-digit wobble of a float (thread count, BLAS)
#: leaves the digest of the same results unchanged.
DIGEST_DIGITS = 3


def _rounded(values):
    if isinstance(values, dict):
        return {k: _rounded(v) for k, v in values.items()}
    if isinstance(values, list):
        return [_rounded(v) for v in values]
    if isinstance(values, float) and math.isfinite(values):
        return float(f"{values:.{DIGEST_DIGITS}g}")
    return values


def values_digest(values: dict) -> str:
    """sha256 of recorded values: timings out (:func:`stable_values`), floats to
    :data:`DIGEST_DIGITS` significant digits, keys sorted. A figure carries the digest of the
    values its notebook recorded in the run that drew it (:mod:`sellakit.viz.figures`)."""
    text = json.dumps(_rounded(stable_values(values)), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


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


#: Variables holding paths: a kernel runs in ``notebooks/``, so a relative one is made absolute
#: against the directory the run started from.
PATH_VARIABLES = ("SELLAKIT_CACHE", "SELLAKIT_BUILD", "SELLAKIT_DBP5L")


def kernel_env() -> dict[str, str]:
    """This process's environment for a notebook kernel, :data:`PATH_VARIABLES` absolute."""
    env = dict(os.environ)
    for name in PATH_VARIABLES:
        if env.get(name):
            env[name] = str(Path(env[name]).expanduser().absolute())
    return env


def notebook_client(notebook: nbformat.NotebookNode, **options: Any) -> nbclient.NotebookClient:
    """An ``nbclient.NotebookClient`` (``options`` are its own) that does not stall on a cell
    that displays into an ``ipywidgets.Output`` (notebook 04's explorer).

    nbclient stands in for a front end's Output widget and, after every display into one, sends
    the widget's whole output list back to the kernel on the shell socket, while it awaits the
    cell's reply on that same socket. With pyzmq's asyncio poll (27.3) the reply's wake-up is then
    sometimes lost: kernel and client sit idle until the cell timeout (30 minutes here) ends the
    poll, which finds the reply and goes on. The kernel needs none of that state, so it is not
    sent; and replies and outputs are awaited in one-second polls, each of which looks at the
    socket afresh, so a lost wake-up of any other cause costs a second (on the output socket it
    would otherwise cost the cell's outputs: nbclient waits 4 s for them after the reply).
    """
    from queue import Empty

    from nbclient import NotebookClient
    from nbclient.output_widget import OutputWidget

    class OutputKeptHere(OutputWidget):
        def sync_state(self) -> None:  # recorded in the notebook's widget state, not sent back
            pass

    def in_slices(get_msg, step: float = 1.0):
        async def get(timeout: float | None = None):
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                left = step if deadline is None else \
                    max(0.0, min(step, deadline - time.monotonic()))
                try:
                    return await get_msg(timeout=left)
                except Empty:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise
        return get

    class SteadyClient(NotebookClient):
        def __init__(self, nb, **kw):
            super().__init__(nb, **kw)
            self.widget_registry = {"@jupyter-widgets/output": {"OutputModel": OutputKeptHere}}

        async def async_start_new_kernel(self, **kwargs):
            self.kernel_kwargs = kwargs  # kept for a second start
            await super().async_start_new_kernel(**kwargs)

        async def async_start_new_kernel_client(self):
            try:
                kc = await super().async_start_new_kernel_client()
            except RuntimeError as error:
                await _start_another_kernel(self, error)
                kc = await super().async_start_new_kernel_client()
            for channel in (kc.shell_channel, kc.iopub_channel):
                channel.get_msg = in_slices(channel.get_msg)
            return kc

    return SteadyClient(notebook, **options)


async def _start_another_kernel(client, error: RuntimeError) -> None:
    """After a kernel that did not answer within the client's ``startup_timeout`` (nbclient has
    shut it down; no cell has run), start a fresh one, once; any other error is raised. Seen
    once with two test processes starting kernels at the same moment on 2 busy cores."""
    if "didn't respond" not in str(error) or getattr(client, "restarted", False):
        raise error
    client.restarted = True
    print(f"[sellakit] the kernel did not answer ({error}); starting another", flush=True)
    client.km = client.create_kernel_manager()
    await client.async_start_new_kernel(**client.kernel_kwargs)


#: Held while a notebook's readable copy is written (chains side by side run in threads).
_PUBLISHING = threading.Lock()


def run_notebook(stem: str, *, quick: bool = True, timeout: int = 1800, save: bool = True,
                 publish: bool = False, env: Mapping[str, str] | None = None) -> dict:
    """Execute one notebook top to bottom; return ``{"seconds", "values", "path"}``.

    ``env``: variables set for the notebook's kernel alone, over this process's (e.g. another
    ``SELLAKIT_CACHE``).

    ``publish``: also write the executed copy a code host can show over the committed
    ``notebooks/<stem>.ipynb`` (:func:`sellakit.viz.figures.readable_notebook`).

    Raises ``nbclient.exceptions.CellExecutionError`` (with the failing cell) on error; the
    partly executed copy is still saved for inspection.
    """
    import nbformat

    notebook = _load_source(stem)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    started = time.perf_counter()

    def progress(cell, cell_index, execute_reply) -> None:
        if cell.cell_type == "code":
            print(f"[sellakit]   {stem} cell {cell_index} done at "
                  f"{time.perf_counter() - started:.0f} s", flush=True)

    client = notebook_client(notebook, timeout=timeout, kernel_name="python3",
                             resources={"metadata": {"path": str(notebooks_dir())}},
                             on_cell_executed=progress)
    out = build_dir() / "notebooks" / f"{stem}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    run = f"{stem}-{time.time_ns()}"  # names the figures this run draws (their sidecars)
    try:
        # The kernel inherits this environment, with the mode and the run set for it alone.
        client.execute(env={**kernel_env(), **(env or {}),
                            "SELLAKIT_QUICK": "1" if quick else "0",
                            NOTEBOOK_VARIABLE: stem, RUN_VARIABLE: run})
    finally:
        if save:  # whole or not at all: a kill mid-write leaves the previous copy
            with atomic_file(out) as tmp:
                nbformat.write(notebook, str(tmp))
    values = recorded_values(notebook)
    from sellakit.viz.figures import readable_notebook, stamp_figures  # viz's one importer

    stamp_figures(stem, run, stable_values(values))
    if publish:  # one at a time: each draws its PNGs through a Chromium of its own
        with _PUBLISHING, atomic_file(notebooks_dir() / f"{stem}.ipynb") as tmp:
            nbformat.write(readable_notebook(notebook), str(tmp))
    return {"seconds": round(time.perf_counter() - started, 1), "values": values,
            "path": str(out)}


#: The series as chains that may run side by side (``make run`` in quick mode, and ``make
#: test``'s processes): a notebook follows, in its chain, the notebooks whose files it reads. The
#: LLM chain (04 reads 03's cached model and vectors, 05 reads 04's aligned MF) is the longer, so
#: it holds those three alone; the other runs 00-02, then the KG films (07 reads 06's teacher).
#: What two chains both compute goes through the kit's cache under its lock, once: MovieLens
#: (01 or 03, whichever comes first), 02's plain MF (05's `mf` and CoLLM table; 05 trains it,
#: the same model, when it comes first).
SERIES_CHAINS: tuple[tuple[str, ...], ...] = (
    ("03_llm_semantic_embeddings", "04_semantic_alignment", "05_special_tokens_prompting"),
    ("00_overview", "01_data", "02_collaborative_filtering", "06_kg_multisource_pretraining",
     "07_kg_distillation", "08_kg_meets_recommender"))


def side_by_side_env() -> dict[str, str]:
    """What a kernel of a chain run beside another gets: idle OpenMP threads sleep instead of
    spinning (as under ``make test``, tests/conftest.py), so the two kernels' torch threads do
    not burn each other's cores waiting; it changes no number. A value the caller set wins."""
    return {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}


def series_chains(stems: Sequence[str]) -> list[list[str]]:
    """``stems`` grouped by :data:`SERIES_CHAINS` (each group in series order, empty ones left
    out); a stem of no chain is a group of its own."""
    chains = [[stem for stem in chain if stem in stems] for chain in SERIES_CHAINS]
    loose = [[stem] for stem in stems if not any(stem in chain for chain in SERIES_CHAINS)]
    return [chain for chain in chains if chain] + loose


def run_chains(chains: Sequence[Sequence[str]], run_one: Callable[[str, Mapping[str, str]], Any],
               env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Call ``run_one(stem, env)`` for each chain's stems in order, the chains at once on a
    thread each (with several, ``env`` gains :func:`side_by_side_env`); a failure stops its own
    chain, the others finish, then the first error is raised. Returns ``{stem: what run_one
    returned}``."""
    env = {**(side_by_side_env() if len(chains) > 1 else {}), **(env or {})}

    def run_chain(chain: Sequence[str]) -> dict[str, Any]:
        return {stem: run_one(stem, env) for stem in chain}

    with ThreadPoolExecutor(max_workers=max(len(chains), 1)) as pool:
        futures = [pool.submit(run_chain, chain) for chain in chains]
    errors = [future.exception() for future in futures if future.exception()]
    if errors:
        raise errors[0]
    return {stem: run for future in futures for stem, run in future.result().items()}


def run_series(stems: Sequence[str] | None = None, *, quick: bool = True,
               publish: bool = False, side_by_side: bool = False,
               env: Mapping[str, str] | None = None) -> dict:
    """Run notebooks (all by default) and write ``build/summary.{md,json}``; return the
    summary, ``{stem: run_notebook's result}`` in the order of ``stems``.

    ``side_by_side``: run the chains of :func:`series_chains` at once (:func:`run_chains`);
    otherwise one notebook at a time, in the order given. ``publish`` and ``env``: as
    :func:`run_notebook`'s.
    """
    stems = list(stems or NOTEBOOKS)

    def run_one(stem: str, env: Mapping[str, str]) -> dict:
        print(f"[sellakit] running {stem} ({'quick' if quick else 'paper'} mode) ...",
              flush=True)
        run = run_notebook(stem, quick=quick, publish=publish, env=env)
        print(f"[sellakit]   {stem} done in {run['seconds']} s", flush=True)
        return run

    done = run_chains(series_chains(stems) if side_by_side else [stems], run_one, env)
    summary = {stem: done[stem] for stem in stems}
    for name, text in (("summary.json", json.dumps(summary, indent=1)),
                       ("summary.md", summary_markdown(summary, quick=quick))):
        with atomic_file(build_dir() / name) as tmp:
            tmp.write_text(text)
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
