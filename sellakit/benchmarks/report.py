"""The one writer of benchmark results: a JSON file and, beside it, a markdown table that names
the command that made it.

``--out`` is checked before a benchmark runs (:func:`check_out`), so a bad path never throws
away minutes of measurement.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

from sellakit.cache import atomic_file
from sellakit.config import repo_root
from sellakit.errors import ConfigError

__all__ = ["check_out", "write_report", "host_note", "markdown_table", "machine", "BESIDE",
           "PENDING", "results_blocks", "refresh_results"]

#: What a benchmark writes beside its JSON: the table, per-row scores, per-query ranks.
BESIDE = (".md", ".scores.parquet", ".ranks.parquet")


def check_out(path: str | Path) -> Path:
    """``path`` as the JSON file of a benchmark, or a :class:`ConfigError` saying why not: it
    must be given, end in ``.json`` (the table goes beside it as ``.md``), not be a folder, its
    folder must be writable (created if missing), and what goes beside it (:data:`BESIDE`)
    must not be a folder."""
    if str(path) == "":
        raise ConfigError("--out is empty (an unset variable?); give a file such as "
                          "bench/results.json.")
    out = Path(path)
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give a file such as {out / 'results.json'}.")
    if out.suffix != ".json":
        raise ConfigError(f"--out {out}: give a .json file (the markdown table is written "
                          f"beside it as {out.with_suffix('.md').name}).")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"--out {out}: cannot create its folder ({err}).") from err
    if not os.access(out.parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise ConfigError(f"--out {out}: not writable here; choose another path.")
    for beside in map(out.with_suffix, BESIDE):
        if beside.is_dir() or (beside.exists() and not os.access(beside, os.W_OK)):
            raise ConfigError(f"--out {out}: {beside} is written beside it, but is "
                              f"{'a folder' if beside.is_dir() else 'not writable'}; "
                              "remove it or choose another --out.")
    return out


def write_report(path: str | Path, results: dict, markdown: str) -> Path:
    """Write ``results`` as JSON to ``path`` (first: the numbers are kept even if the table
    fails) and ``markdown`` beside it as ``.md``; both written atomically. A run with finished
    parts beside ``path`` (:class:`~sellakit.benchmarks.parts.PartStore`) also records each
    part's machine share (``_parts_host``) and a line saying which parts ran beside other
    work (:func:`host_note`). Returns the JSON path."""
    from sellakit.benchmarks.parts import PartStore

    out = check_out(path)
    hosts = PartStore.hosts(out)
    if hosts:
        results = {**results, "_parts_host": hosts}
        markdown = markdown.rstrip("\n") + "\n\n" + host_note(hosts) + "\n"
    with atomic_file(out) as tmp:
        tmp.write_text(json.dumps(results, indent=1, default=str) + "\n")
    with atomic_file(out.with_suffix(".md")) as tmp:
        tmp.write_text(markdown)
    refresh_results(out.with_suffix(".md"))
    return out


def host_note(hosts: dict[str, dict], *, low_share: float = 0.75, long_s: float = 60.0) -> str:
    """One line on the machine each finished part had (:meth:`PartStore.hosts`): the CPU
    share it got and the load average at its end. A part whose 15-minute load exceeded the
    cores by more than half a core ran beside other work, and its times are named so. The
    load is read once, at a part's end, so a long part (``long_s`` seconds or more) whose CPU
    share stayed under ``low_share`` is named too: it shared the cores earlier, or ran partly
    on one thread (the line cannot tell which)."""
    shares = [h["cpu_share"] for h in hosts.values()]
    head = (f"Machine per part ({len(hosts)} part{'s' * (len(hosts) != 1)}, each as it "
            f"finished): CPU share {min(shares):.2f}-{max(shares):.2f} (CPU seconds of the run "
            f"and its finished child processes / wall seconds x torch threads)")
    low = [f"{name} ({h['cpu_share']:.2f} over {h['wall_s']:,.0f} s)" for name, h in hosts.items()
           if h["cpu_share"] < low_share and h.get("wall_s", 0) >= long_s]
    tail = (f" Long parts with a CPU share under {low_share:.2f} (beside other work earlier in "
            f"the part, or partly on one thread): {', '.join(low)}." if low else "")
    timed = {name: h for name, h in hosts.items() if h.get("load_average")}
    if not timed:  # a system without a load average (Windows)
        return head + "; no load average on this system." + tail
    loads = [h["load_average"][2] for h in timed.values()]
    busy = [name for name, h in timed.items() if h["load_average"][2] > h["cpus"] + 0.5]
    cpus = sorted({h["cpus"] for h in timed.values()})
    return (head + f", 15-minute load average {min(loads):.1f}-{max(loads):.1f} on "
            f"{'/'.join(map(str, cpus))} cores; "
            + (f"beside other work (load above the cores at its end): {', '.join(busy)}."
               if busy else "none had a load above the cores at its end.") + tail)


#: docs/results.md holds each committed benchmark table between two markers naming its file.
#: A block whose benchmark has not run yet holds this line; the run's `write_report` fills it.
PENDING = "*Not run yet: the command above writes this block when it runs.*"
_BLOCK = re.compile(r"<!-- (bench/[^ :]+\.md): written by the command it names; do not edit -->"
                    r"\n(.*?)\n<!-- end \1 -->", re.S)


def results_blocks(text: str) -> dict[str, str]:
    """``{"bench/<name>.md": table}`` for every marked block of a results page."""
    return {name: body for name, body in _BLOCK.findall(text)}


def refresh_results(table: Path, page: Path | None = None) -> bool:
    """Copy the benchmark table ``table`` into its marked block of ``docs/results.md`` (where
    the page has one for it: a table written outside ``bench/`` of this repository, or one the
    page does not show, leaves the page alone). Returns whether the page changed."""
    root = repo_root()
    page = page or root / "docs" / "results.md"
    try:
        name = Path(table).resolve().relative_to(root).as_posix()
    except ValueError:
        return False
    if not page.exists() or name not in results_blocks(text := page.read_text()):
        return False
    body = Path(table).read_text().strip()
    fresh = _BLOCK.sub(lambda m: m.group(0) if m.group(1) != name else
                       m.group(0).replace(m.group(2), body, 1), text)
    with atomic_file(page) as tmp:
        tmp.write_text(fresh)
    return fresh != text


def markdown_table(header: Sequence[str], rows: Sequence[Sequence], *,
                   numeric_from: int = 1) -> list[str]:
    """A markdown table as lines: ``header`` then ``rows`` (cells as given, ``None`` empty);
    columns from ``numeric_from`` on are right-aligned."""
    align = ["---" if i < numeric_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join("" if c is None else str(c) for c in row) + " |"
              for row in rows]
    return lines


def machine() -> str:
    """The machine a run's times come from, for its table: the GPU's name, else the CPU
    threads torch uses (times from different machines are not comparable)."""
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()}, torch {torch.__version__}"
    return f"CPU, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
