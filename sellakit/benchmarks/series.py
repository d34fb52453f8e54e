"""``sellakit bench series``: the quick series' time, first from an empty cache, then warm.

Issue 26's time targets (the whole quick series at most 9 minutes from an empty cache, set-up
aside, and 4 minutes warm, on 2 cores with DBP-5L at hand) are measured here, not in a timed
test. Each notebook runs as ``make run`` runs it (:func:`sellakit.runner.run_notebook`; the
series' two chains side by side, :data:`sellakit.runner.SERIES_CHAINS`, or one notebook at a
time with ``serial``), once from an empty kit cache (``--cache``; downloads included, pip's
own cache bypassed) and then once more on the cache that pass left. A pass's time is its wall
clock, first start to last finish. Every finished notebook of a pass is a part
(:class:`~sellakit.benchmarks.parts.PartStore`), so a killed run resumes; the notebook that
was interrupted (one per chain) then starts again on what it had cached, and its part says
``resumed`` (that pass's wall clock is then not measured).

Run it in a clean clone: the notebooks write ``figures/`` and ``build/`` of the checkout they
run in, as ``make run`` does::

    git clone . /tmp/kit && cd /tmp/kit && make install
    SELLAKIT_DBP5L=... .venv/bin/sellakit bench series --out bench/quick_series_side_by_side.json
    SELLAKIT_DBP5L=... .venv/bin/sellakit bench series --serial --out bench/quick_series.json
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from sellakit.benchmarks.parts import PartStore
from sellakit.benchmarks.report import machine, markdown_table
from sellakit.errors import ConfigError

__all__ = ["PASSES", "TARGETS_S", "series_benchmark", "series_markdown"]

#: The two passes, in order: from an empty cache, then on the cache the first pass left.
PASSES = ("first", "warm")
#: Issue 26's targets for the whole series, seconds (the first pass: set-up aside).
TARGETS_S = {"first": 540.0, "warm": 240.0}


def series_benchmark(out: str | Path, *, cache: str | Path | None = None,
                     stems: Sequence[str] | None = None, command: str = "",
                     serial: bool = False) -> dict:
    """Time each notebook of ``stems`` (the whole series by default) in quick mode, first from
    the empty kit cache ``cache`` (default: ``cache/`` in the parts folder beside ``out``),
    then warm; the chains side by side unless ``serial``. Returns the JSON-ready results:
    seconds per pass and notebook, each pass's wall clock against :data:`TARGETS_S`, the data
    set notebooks 06-07 ran on, and which parts resumed."""
    from sellakit.runner import NOTEBOOKS, run_chains, series_chains

    stems = list(stems or NOTEBOOKS)
    unknown = [s for s in stems if s not in NOTEBOOKS]
    if unknown:
        raise ConfigError(f"--notebooks names {', '.join(unknown)}; choose from "
                          f"{', '.join(NOTEBOOKS)}.")
    parts = PartStore(out, {"stems": stems, "quick": True, "serial": serial,
                            "dbp5l": bool(os.environ.get("SELLAKIT_DBP5L"))})
    cache = Path(cache) if cache else parts.folder / "cache"
    started = any(parts.done(_name(p, s)) for p in PASSES for s in stems)
    if not started and cache.exists() and any(cache.iterdir()):
        raise ConfigError(f"--cache {cache} is not empty, and the first pass needs an empty "
                          "cache. Fix: remove it, or give another --cache.")
    cache.mkdir(parents=True, exist_ok=True)
    for pass_ in PASSES:
        left = [s for s in stems if not parts.done(_name(pass_, s))]
        if not left:
            continue
        chains = [left] if serial else series_chains(left)
        # the first part each chain runs after a kill starts on a partial cache
        heads = {chain[0] for chain in chains} if started else set()
        run_chains(chains, lambda stem, env, pass_=pass_, heads=heads: parts.save(
            _name(pass_, stem), {**_timed(stem, cache, env), "resumed": stem in heads},
            pd.DataFrame()))
        started = False
    records, _ = parts.load()
    return _summary(records, stems, cache, command, serial)


def _name(pass_: str, stem: str) -> str:
    return f"{pass_}-{stem}"


def _timed(stem: str, cache: Path, env: dict[str, str]) -> dict:
    """Run ``stem`` with its kernel on ``cache`` (pip's own cache bypassed, so a download is a
    download); its seconds, data set and clock times."""
    from sellakit.runner import run_notebook

    print(f"[sellakit] series: {stem} ...", flush=True)
    began = time.time()
    run = run_notebook(stem, quick=True, env={**env, "SELLAKIT_CACHE": str(cache.absolute()),
                                              "PIP_NO_CACHE_DIR": "1"})
    print(f"[sellakit] series: {stem} done in {run['seconds']} s", flush=True)
    return {"seconds": run["seconds"], "dataset": run["values"].get("dataset"),
            "started": began, "finished": time.time()}


def _wall_seconds(records: list[dict]) -> float | None:
    """A pass's wall clock, first start to last finish; None when a part resumed (the pass ran
    in pieces) or was written before parts kept their clock times."""
    if any(r.get("resumed") or "started" not in r for r in records):
        return None
    return round(max(r["finished"] for r in records) - min(r["started"] for r in records), 1)


def _summary(records: dict[str, dict], stems: list[str], cache: Path, command: str,
             serial: bool) -> dict:
    from sellakit.runner import NOTEBOOKS

    seconds = {p: {s: records[_name(p, s)]["seconds"] for s in stems} for p in PASSES}
    whole = stems == list(NOTEBOOKS)  # every part is done by now
    wall = {p: _wall_seconds([records[_name(p, s)] for s in stems]) for p in PASSES}
    return {
        "_run": {"command": command, "machine": machine(), "cpus": os.cpu_count(),
                 "cache": str(cache), "notebooks": stems, "whole_series": whole,
                 "chains": "one notebook at a time" if serial else
                 "the chains side by side: a notebook's seconds include the other chain's "
                 "share of the cores"},
        "seconds": seconds, "total_s": {p: round(sum(v.values()), 1) for p, v in seconds.items()},
        "wall_s": wall, "targets_s": dict(TARGETS_S),
        "met": {p: wall[p] is not None and wall[p] <= TARGETS_S[p] for p in PASSES}
        if whole else None,
        "datasets": {s: records[_name("first", s)]["dataset"] for s in stems
                     if records[_name("first", s)]["dataset"]},
        "resumed": sorted(n for n, r in records.items() if r.get("resumed")),
    }


def series_markdown(results: dict, *, command: str) -> str:
    """The table: seconds per notebook, first run and warm, their sum and each pass's wall
    clock, the wall clock against the targets."""
    seconds, totals, targets = results["seconds"], results["total_s"], results["targets_s"]
    wall = results.get("wall_s") or {p: None for p in PASSES}  # files made before wall clocks
    rows = [[f"`{stem}`", seconds["first"][stem], seconds["warm"][stem]]
            for stem in results["_run"]["notebooks"]]
    rows.append(["sum of the notebooks", f"{totals['first']:,.1f}", f"{totals['warm']:,.1f}"])
    rows.append(["**series, wall clock**"] + [f"**{wall[p]:,.1f}**" if wall[p] is not None
                                              else "not measured (resumed)" for p in PASSES])
    met = results["met"]
    verdict = ("; ".join(f"{p} {wall[p]:,.0f} s against at most {targets[p]:,.0f} s: "
                         f"{'met' if met[p] else 'not met'}" if wall[p] is not None else
                         f"{p}: not measured in one piece" for p in PASSES)
               if met is not None else "a subset of the series: no target applies")
    data = ", ".join(f"{s} on {d}" for s, d in results["datasets"].items()) or "none recorded"
    chains = results["_run"].get("chains", "one notebook at a time")
    lines = [f"The quick series' time ({results['_run']['machine']}, "
             f"{results['_run']['cpus']} CPUs): each notebook as `make run` runs it ({chains}), "
             "first from an empty kit cache (downloads included), then warm. Command: "
             f"`{command}`", "",
             *markdown_table(["notebook", "first run (s)", "warm (s)"], rows), "",
             f"Targets (issue 26), on the wall clock: {verdict}. Data sets recorded: {data}."]
    if chains != "one notebook at a time":
        lines.append("")
        lines.append("The machine lines below span both chains: a part's CPU share counts the "
                     "other chain's kernel when that one ended within the part, and a load "
                     "above the cores at a part's end is the other chain.")
    if results["resumed"]:
        lines.append(f"Resumed after an interruption (their times started on a partial "
                     f"cache): {', '.join(results['resumed'])}.")
    return "\n".join(lines) + "\n"
