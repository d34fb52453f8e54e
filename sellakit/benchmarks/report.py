"""The one writer of benchmark results: a JSON file and, beside it, a markdown table that names
the command that made it.

``--out`` is checked before a benchmark runs (:func:`check_out`), so a bad path never throws
away minutes of measurement.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from sellakit.cache import atomic_file
from sellakit.errors import ConfigError

__all__ = ["check_out", "write_report", "markdown_table", "BESIDE"]

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
    fails) and ``markdown`` beside it as ``.md``; both written atomically. Returns the JSON
    path."""
    out = check_out(path)
    with atomic_file(out) as tmp:
        tmp.write_text(json.dumps(results, indent=1, default=str) + "\n")
    with atomic_file(out.with_suffix(".md")) as tmp:
        tmp.write_text(markdown)
    return out


def markdown_table(header: Sequence[str], rows: Sequence[Sequence], *,
                   numeric_from: int = 1) -> list[str]:
    """A markdown table as lines: ``header`` then ``rows`` (cells as given, ``None`` empty);
    columns from ``numeric_from`` on are right-aligned."""
    align = ["---" if i < numeric_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join("" if c is None else str(c) for c in row) + " |"
              for row in rows]
    return lines
