"""Save figures to ``figures/``: one helper, HTML always, PNG when a Chromium is at hand.

PNG export goes through plotly + kaleido, which drives a system Chromium (Debian's
``chromium``; set ``BROWSER_PATH`` to use another). Without one, HTML is written and one clear
warning says how to get PNGs too.

Each figure gets a sidecar ``<name>.json``: the notebook and run that drew it and the PNG's
sha256; after the notebook finished, the runner stamps into it the notebook's recorded values
and their digest (:func:`stamp_figures`). A committed figure is then current when its stamp's
values are the ones the notebook records now (``tests/test_figures.py``,
``tests/test_notebooks.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio

from sellakit.book import PLOTLY_MIME
from sellakit.cache import atomic_file
from sellakit.config import repo_root
from sellakit.errors import ConfigError, SellakitError
from sellakit.runner import NOTEBOOK_VARIABLE, RUN_VARIABLE, values_digest

__all__ = ["figures_dir", "save_figures", "find_chromium", "stamp_figures", "read_stamp",
           "file_sha256", "readable_notebook", "LIVE_MIMES"]

_warned = False


def figures_dir() -> Path:
    """``$SELLAKIT_FIGURES`` or ``figures/`` at the repository root (created on demand)."""
    path = Path(os.environ.get("SELLAKIT_FIGURES") or repo_root() / "figures")
    path.mkdir(parents=True, exist_ok=True)
    return path


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable (``$BROWSER_PATH`` when set), or None.

    A ``BROWSER_PATH`` naming no browser is an error: kaleido reads the variable itself, so
    falling back to another browser here would still fail every PNG export, less clearly."""
    chosen = os.environ.get("BROWSER_PATH")
    if chosen:
        if not (found := shutil.which(chosen) or (Path(chosen).is_file() and chosen)):
            raise ConfigError(f"BROWSER_PATH={chosen!r} names no browser on this machine. Fix: "
                              "point it at a Chromium executable (e.g. /usr/bin/chromium), or "
                              "unset it to use the chromium on PATH.")
        return str(found)
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return str(found)
    return None


def save_figures(figures: dict[str, go.Figure], *, png: bool = True, width: int = 900,
                 height: int = 520) -> list[Path]:
    """Write each figure as ``<name>.html`` (and ``<name>.png`` when possible); return the paths.

    All PNGs go through one kaleido call, since each call starts a browser.
    """
    global _warned
    out = figures_dir()
    written = []
    for name, fig in figures.items():
        html = out / f"{name}.html"
        fig.write_html(html, include_plotlyjs="directory", full_html=True)
        written.append(html)
    chromium = find_chromium() if png else None
    if png and chromium is None:
        if not _warned:
            warnings.warn("No Chromium found: figures saved as HTML only. Fix: install Debian's "
                          "`chromium` (apt-get install chromium) or set BROWSER_PATH.",
                          stacklevel=2)
            _warned = True
        return written
    if png:
        pngs = [out / f"{name}.png" for name in figures]
        for path in pngs:  # a render that fails must not leave the last run's picture behind
            path.unlink(missing_ok=True)
            path.with_suffix(".json").unlink(missing_ok=True)
        _write_pngs(figures, pngs, width, height, chromium)
        written += pngs
        for png in pngs:
            _write_sidecar(png, {"notebook": os.environ.get(NOTEBOOK_VARIABLE),
                                 "run": os.environ.get(RUN_VARIABLE),
                                 "png_sha256": file_sha256(png)})
    return written


def _write_pngs(figures: dict[str, go.Figure], pngs: list[Path], width: int,
                height: int, chromium: str) -> None:
    """Every figure to its PNG in one kaleido call through ``chromium``, then again one at a
    time each PNG the batch left unwritten: kaleido returns a failed render (such as its 90 s
    timeout on busy cores) instead of raising it. Raises :class:`~sellakit.errors.SellakitError`
    naming the figures still missing."""
    os.environ.setdefault("BROWSER_PATH", chromium)  # kaleido finds its browser here
    pio.defaults.mathjax = None
    pio.write_images(list(figures.values()), pngs, width=width, height=height)
    for (name, fig), path in zip(figures.items(), pngs):
        if not path.exists():
            warnings.warn(f"PNG export of {name} failed in the batch; drawing it alone.",
                          stacklevel=3)
            pio.write_image(fig, path, width=width, height=height)
    missing = [path.name for path in pngs if not path.exists()]
    if missing:
        raise SellakitError(f"Chromium (through kaleido) did not write {', '.join(missing)} "
                           f"in {pngs[0].parent}. Fix: run the notebook again when the "
                           "machine is less busy, or check that `chromium --headless` starts.")


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _write_sidecar(png: Path, stamp: dict) -> None:
    with atomic_file(png.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(stamp, indent=1, sort_keys=True) + "\n")


def read_stamp(png: str | Path) -> dict | None:
    """The sidecar of ``png`` (``<name>.json``) as a dict, or None when it has none."""
    sidecar = Path(png).with_suffix(".json")
    return json.loads(sidecar.read_text()) if sidecar.exists() else None


def stamp_figures(stem: str, run: str, values: dict, folder: Path | None = None) -> list[Path]:
    """Stamp the PNGs notebook ``stem`` drew in run ``run`` with the values it recorded (their
    digest, :func:`sellakit.runner.values_digest`, and the values themselves); return them."""
    stamped = []
    for png in sorted((folder or figures_dir()).glob("*.png")):
        stamp = read_stamp(png)
        if stamp and stamp.get("notebook") == stem and stamp.get("run") == run:
            kept = {k: v for k, v in stamp.items() if k != "run"}  # a rerun's stamp is equal
            _write_sidecar(png, {**kept, "values_sha256": values_digest(values),
                                 "values": values})
            stamped.append(png)
    return stamped


WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
#: What a code host cannot show: a plotly figure's JSON (drawn by a script it will not run) and
#: a widget's view (which needs a live kernel). Neither is in a readable notebook.
LIVE_MIMES = (PLOTLY_MIME, WIDGET_MIME)
WIDGET_NOTE = "(an interactive widget: open the notebook with `make lab` and run it to use it)"


def readable_notebook(notebook, *, width: int = 720, height: int = 420):
    """A copy of an executed notebook that a code host shows as the run left it: each plotly
    figure as a static PNG (one kaleido call; a line of text where no Chromium is found), the
    widget a cell returns as one line saying how to use it, progress bars and stderr dropped,
    the widgets' state and the cells' execution times out (they change with every run); the
    cells' ids are made from their place and source."""
    import base64
    import copy
    import tempfile

    readable = copy.deepcopy(notebook)
    readable.metadata.pop("widgets", None)
    readable.metadata.get("jupytext", {}).pop("text_representation", None)  # the .py's own
    plotly_outputs = []
    for index, cell in enumerate(readable.cells):
        cell.metadata.pop("execution", None)
        # the same cell keeps its id from run to run (jupytext draws new ones)
        cell.id = hashlib.sha256(f"{index}:{cell.source}".encode()).hexdigest()[:8]
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.outputs:
            data = output.get("data", {})
            if output.output_type == "stream" and output.name == "stderr":
                continue  # warnings and progress, not results
            if WIDGET_MIME in data:
                if output.output_type != "execute_result":
                    continue  # a progress bar shown along the way
                output.data = {"text/plain": WIDGET_NOTE}
            elif PLOTLY_MIME in data:
                plotly_outputs.append(output)
            kept.append(output)
        cell.outputs = kept
    figures = [go.Figure(output.data[PLOTLY_MIME]) for output in plotly_outputs]
    chromium = find_chromium() if figures else None
    with tempfile.TemporaryDirectory() as tmp:
        pngs = [Path(tmp) / f"{k}.png" for k in range(len(figures))]
        if chromium:
            _write_pngs({f"figure {k}": fig for k, fig in enumerate(figures)}, pngs, width,
                        height, chromium)
        for output, fig, png in zip(plotly_outputs, figures, pngs):
            title = fig.layout.title.text or "a plotly figure"
            output.data = {"text/plain": f"[figure: {title}]"}
            if chromium:
                output.data["image/png"] = base64.b64encode(png.read_bytes()).decode()
    return readable
