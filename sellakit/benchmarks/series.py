"""``sellakit bench series``: the quick series' time, first from an empty cache, then warm.

Issue 26's time targets (the whole quick series at most 9 minutes from an empty cache, set-up
aside, and 4 minutes warm, on 2 cores with DBP-5L at hand) are measured here, not in a timed
test. Each notebook runs as ``make run`` runs it (:func:`sellakit.runner.run_notebook`), once
in order from an empty kit cache (``--cache``; downloads included, pip's own cache bypassed)
and then once more on the cache that pass left. Every finished notebook of a pass is a part
(:class:`~sellakit.benchmarks.parts.PartStore`), so a killed run resumes; the notebook that
was interrupted then starts again on what it had cached, and its part says ``resumed``.

Run it in a clean clone: the notebooks write ``figures/`` and ``build/`` of the checkout they
run in, as ``make run`` does::

    git clone . /tmp/kit && cd /tmp/kit && make install
    SELLAKIT_DBP5L=... .venv/bin/sellakit bench series --out bench/quick_series.json
"""

from __future__ import annotations

import os
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
                     stems: Sequence[str] | None = None, command: str = "") -> dict:
    """Time each notebook of ``stems`` (the whole series by default) in quick mode, first from
    the empty kit cache ``cache`` (default: ``cache/`` in the parts folder beside ``out``),
    then warm. Returns the JSON-ready results: seconds per pass and notebook, totals against
    :data:`TARGETS_S`, the data set notebooks 06-07 ran on, and which parts resumed."""
    from sellakit.runner import NOTEBOOKS

    stems = list(stems or NOTEBOOKS)
    unknown = [s for s in stems if s not in NOTEBOOKS]
    if unknown:
        raise ConfigError(f"--notebooks names {', '.join(unknown)}; choose from "
                          f"{', '.join(NOTEBOOKS)}.")
    parts = PartStore(out, {"stems": stems, "quick": True,
                            "dbp5l": bool(os.environ.get("SELLAKIT_DBP5L"))})
    cache = Path(cache) if cache else parts.folder / "cache"
    started = any(parts.done(_name(p, s)) for p in PASSES for s in stems)
    if not started and cache.exists() and any(cache.iterdir()):
        raise ConfigError(f"--cache {cache} is not empty, and the first pass needs an empty "
                          "cache. Fix: remove it, or give another --cache.")
    cache.mkdir(parents=True, exist_ok=True)
    resumed = started  # the first part run after a kill starts on a partial cache
    for name in (_name(p, s) for p in PASSES for s in stems):
        if parts.done(name):
            continue
        record = _timed(name.split("-", 1)[1], cache)
        parts.save(name, {**record, "resumed": resumed}, pd.DataFrame())
        resumed = False
    records, _ = parts.load()
    return _summary(records, stems, cache, command)


def _name(pass_: str, stem: str) -> str:
    return f"{pass_}-{stem}"


def _timed(stem: str, cache: Path) -> dict:
    """Run ``stem`` with its kernel on ``cache`` (pip's own cache bypassed, so a download is a
    download)."""
    from sellakit.runner import run_notebook

    print(f"[sellakit] series: {stem} ...", flush=True)
    run = run_notebook(stem, quick=True, env={"SELLAKIT_CACHE": str(cache.absolute()),
                                              "PIP_NO_CACHE_DIR": "1"})
    print(f"[sellakit] series: {stem} done in {run['seconds']} s", flush=True)
    return {"seconds": run["seconds"], "dataset": run["values"].get("dataset")}


def _summary(records: dict[str, dict], stems: list[str], cache: Path, command: str) -> dict:
    from sellakit.runner import NOTEBOOKS

    seconds = {p: {s: records[_name(p, s)]["seconds"] for s in stems} for p in PASSES}
    whole = stems == list(NOTEBOOKS)  # every part is done by now
    totals = {p: round(sum(v.values()), 1) for p, v in seconds.items()}
    return {
        "_run": {"command": command, "machine": machine(), "cpus": os.cpu_count(),
                 "cache": str(cache), "notebooks": stems, "whole_series": whole},
        "seconds": seconds, "total_s": totals,
        "targets_s": dict(TARGETS_S),
        "met": {p: totals[p] <= TARGETS_S[p] for p in PASSES} if whole else None,
        "datasets": {s: records[_name("first", s)]["dataset"] for s in stems
                     if records[_name("first", s)]["dataset"]},
        "resumed": sorted(n for n, r in records.items() if r.get("resumed")),
    }


def series_markdown(results: dict, *, command: str) -> str:
    """The table: seconds per notebook, first run and warm, the totals against the targets."""
    seconds, totals, targets = results["seconds"], results["total_s"], results["targets_s"]
    rows = [[f"`{stem}`", seconds["first"][stem], seconds["warm"][stem]]
            for stem in results["_run"]["notebooks"]]
    rows.append(["**series**", f"**{totals['first']:,.1f}**", f"**{totals['warm']:,.1f}**"])
    met = results["met"]
    verdict = ("; ".join(f"{p} {totals[p]:,.0f} s against at most {targets[p]:,.0f} s: "
                         f"{'met' if met[p] else 'not met'}" for p in PASSES)
               if met is not None else "a subset of the series: no target applies")
    data = ", ".join(f"{s} on {d}" for s, d in results["datasets"].items()) or "none recorded"
    lines = [f"The quick series' time ({results['_run']['machine']}, "
             f"{results['_run']['cpus']} CPUs): each notebook as `make run` runs it, first "
             "from an empty kit cache (downloads included), then warm. Command: "
             f"`{command}`", "",
             *markdown_table(["notebook", "first run (s)", "warm (s)"], rows), "",
             f"Targets (issue 26): {verdict}. Data sets recorded: {data}."]
    if results["resumed"]:
        lines.append(f"Resumed after an interruption (their times started on a partial "
                     f"cache): {', '.join(results['resumed'])}.")
    return "\n".join(lines) + "\n"
