"""Save figures to ``figures/``: one helper, HTML always, PNG when a Chromium is at hand.

PNG export goes through plotly + kaleido, which drives a system Chromium (Debian's
``chromium``; set ``BROWSER_PATH`` to use another). Without one, HTML is written and one clear
warning says how to get PNGs too.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio

from sellakit.config import repo_root

__all__ = ["figures_dir", "save_figures", "find_chromium"]

_warned = False


def figures_dir() -> Path:
    """``$SELLAKIT_FIGURES`` or ``figures/`` at the repository root (created on demand)."""
    path = Path(os.environ.get("SELLAKIT_FIGURES") or repo_root() / "figures")
    path.mkdir(parents=True, exist_ok=True)
    return path


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable, or None."""
    for name in (os.environ.get("BROWSER_PATH"), "chromium", "chromium-browser", "google-chrome"):
        if name and (found := shutil.which(name) or (Path(name).exists() and name)):
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
        os.environ.setdefault("BROWSER_PATH", chromium)
        pio.defaults.mathjax = None
        pngs = [out / f"{name}.png" for name in figures]
        pio.write_images(list(figures.values()), pngs, width=width, height=height)
        written += pngs
    return written
