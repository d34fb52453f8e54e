"""``make book``: a static site of the executed notebooks, built offline with Sphinx + myst-nb.

The notebooks are never executed here (``nb_execution_mode = "off"``): the pages show the
outputs that :func:`sellakit.runner.run_series` (``make run``) or the notebook tests left in
``build/notebooks/``. Plotly figures are stored in a notebook as
``application/vnd.plotly.v1+json``, which Sphinx cannot show; each one gets an HTML rendering
beside it (``plotly.io.to_html`` without the library), and ``plotly.min.js`` is copied once from
the installed plotly into the site, so the figures stay interactive without a network (MathJax
comes from the ``sphinx-mathjax-offline`` wheel the same way). The glossary, the syllabus
and the results (``docs/``) become pages too.

Example::

    >>> from sellakit.book import build_book
    >>> index = build_book()  # doctest: +SKIP   (build/book/index.html)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from sellakit.cache import sweep_stale
from sellakit.config import repo_root
from sellakit.errors import DataError
from sellakit.output import check_output_dir, replace_dir

__all__ = ["build_book", "book_notebooks", "prepare_notebook", "PLOTLY_MIME", "MATH_EXTENSIONS",
           "unparsed_maths", "raw_formulas"]

PLOTLY_MIME = "application/vnd.plotly.v1+json"
DOCS = ("glossary", "syllabus", "results")  # results: the benchmarks' tables and studies
#: The myst extensions that turn `$...$` and `$$...$$` into maths (the book's configuration).
MATH_EXTENSIONS = ("dollarmath", "amsmath")

CONF = '''# Written by sellakit.book; edit there.
project = "sellakit"
author = "sellakit contributors"
copyright = "sellakit contributors; code MIT, text CC BY 4.0"
extensions = ["myst_nb", "sphinx-mathjax-offline"]  # MathJax from the wheel, no CDN
nb_execution_mode = "off"
myst_enable_extensions = {extensions!r}
html_static_path = ["_static"]
html_js_files = ["plotly.min.js"]
html_title = "sellakit: the notebook series"
exclude_patterns = ["_build"]
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header", "myst.xref_missing"]
'''


def unparsed_maths(markdown: str) -> list[str]:
    """Text a markdown cell leaves with a `$` once the book's parser (myst with
    :data:`MATH_EXTENSIONS`) has taken out its formulas: maths MathJax will never see, shown as
    raw text with stray `$` signs (e.g. `$$...$$` continuing a line of a quoted box; give it a
    paragraph of its own, with `>` lines above and below). Code spans are not text."""
    from markdown_it.renderer import RendererHTML
    from myst_parser.config.main import MdParserConfig
    from myst_parser.parsers.mdit import create_md_parser

    parser = create_md_parser(MdParserConfig(enable_extensions=set(MATH_EXTENSIONS)),
                              RendererHTML)
    found, tokens = [], list(parser.parse(markdown))
    while tokens:
        token = tokens.pop()
        tokens += token.children or []
        if token.type == "text" and "$" in token.content:
            found.append(token.content)
    return found


def raw_formulas(text: str) -> list[str]:
    """Formulas still `$`-delimited in a page's rendered text (after MathJax ran): a `$` pair
    around TeX (a backslash, `^`, `_` or braces) on one line, or any `$$`."""
    return re.findall(r"\$\$[^$]*\$\$|\$\$|\$[^$\n]*[\\^_{}][^$\n]*\$", text)


def prepare_notebook(notebook) -> int:
    """Give every plotly output an HTML rendering (in place); return how many figures."""
    import plotly.io as pio

    figures = 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if PLOTLY_MIME in data:
                figures += 1
                if "text/html" not in data:
                    data["text/html"] = pio.to_html(data[PLOTLY_MIME], include_plotlyjs=False,
                                                    full_html=False)
    return figures


def _index(stems: list[str]) -> str:
    from sellakit.runner import NOTEBOOKS

    rows = "\n".join(f"| [{stem}]({stem}.ipynb) | {NOTEBOOKS[stem].goal} |" for stem in stems
                     if stem in NOTEBOOKS)
    return f"""# sellakit: the notebook series

The notebooks as the last run executed them, with their outputs and interactive figures.
Nothing here is executed again: run `make run`, then `make book`, to refresh it.

| notebook | goal |
|---|---|
{rows}

```{{toctree}}
:maxdepth: 1
:caption: Notebooks

{chr(10).join(stems)}
```

```{{toctree}}
:maxdepth: 1
:caption: For readers and teachers

{chr(10).join(DOCS)}
```
"""


def build_book(source: Path | str | None = None, out: Path | str | None = None, *,
               quiet: bool = True) -> Path:
    """Build the site from the executed notebooks in ``source`` (default ``build/notebooks``,
    where a notebook of the series that is missing comes from its committed copy:
    :func:`book_notebooks`) into ``out`` (default ``build/book``); return the path of its
    ``index.html``.

    The site is built beside ``out`` and then replaces it whole; ``out`` must be new, empty,
    or a site the kit built (:func:`sellakit.output.check_output_dir`: a folder of anyone's
    files, a link, the working directory or a repository folder is refused, never emptied).

    Raises :class:`~sellakit.errors.DataError` when ``source`` holds no executed notebook or
    one that cannot be read, :class:`~sellakit.errors.ConfigError` for such an ``out``.
    """
    import nbformat
    import plotly

    from sellakit.runner import build_dir

    source_given, source = source, Path(source) if source else build_dir() / "notebooks"
    site = check_output_dir(out if out is not None else build_dir() / "book", option="--site",
                            replace=True)
    notebooks = book_notebooks(source, committed=source_given is None)
    if not notebooks:
        raise DataError(f"No executed notebooks in {source}: run `make run` (or "
                        f"`sellakit run 00_overview 01_data`) first, then `make book`.")
    read = [_read_notebook(path) for path in notebooks]  # every file checked before writing
    site.parent.mkdir(parents=True, exist_ok=True)
    # What a killed build left (after an hour); only the kit's own names, never a user's dotfile.
    sweep_stale(site.parent, f".{site.name}.src-*.sellakit-tmp")
    with tempfile.TemporaryDirectory(prefix=f".{site.name}.src-", suffix=".sellakit-tmp",
                                     dir=site.parent) as tmp:
        stage = Path(tmp)
        (stage / "_static").mkdir()
        for path, notebook in zip(notebooks, read):
            prepare_notebook(notebook)
            nbformat.write(notebook, stage / path.name)
        for name in DOCS:
            text = (repo_root() / "docs" / f"{name}.md").read_text()
            # links between the docs pages work as they are; links into the repository do not
            (stage / f"{name}.md").write_text(text)
        shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js",
                    stage / "_static" / "plotly.min.js")
        (stage / "conf.py").write_text(CONF.format(extensions=list(MATH_EXTENSIONS)))
        (stage / "index.md").write_text(_index([p.stem for p in notebooks]))
        # built inside the temporary folder: myst-nb also writes beside its output folder
        html = _sphinx(stage, stage / "_build" / "html", source, quiet=quiet)
        with replace_dir(site) as staging:
            for entry in html.iterdir():
                os.replace(entry, staging / entry.name)
    return site / "index.html"


def book_notebooks(source: Path, *, committed: bool = True) -> list[Path]:
    """The book's notebooks: the series in :data:`sellakit.runner.NOTEBOOKS` order, each from
    its executed copy in ``source``, else (``committed``) from the committed
    ``notebooks/<stem>.ipynb`` when that holds a run's outputs (``sellakit run`` writes it); then
    any other executed notebook in ``source``, by name."""
    import nbformat

    from sellakit.runner import NOTEBOOKS, notebooks_dir

    executed = {path.stem: path for path in sorted(Path(source).glob("*.ipynb"))}
    found = []
    for stem in NOTEBOOKS:
        fallback = notebooks_dir() / f"{stem}.ipynb"
        if stem in executed:
            found.append(executed.pop(stem))
        elif committed and fallback.exists() and any(
                cell.get("outputs") for cell in nbformat.read(fallback, as_version=4).cells):
            found.append(fallback)
    return found + list(executed.values())


def _read_notebook(path: Path):
    """The notebook at ``path``, or a :class:`DataError` naming it (truncated, not JSON)."""
    import nbformat

    try:
        return nbformat.read(path, as_version=4)
    except Exception as err:  # noqa: BLE001 - nbformat raises JSON, validation and key errors
        raise DataError(f"{path} is not a readable notebook ({type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else 'no detail'}). Fix: run "
                        "it again (`sellakit run` or `make run`), or remove it from the "
                        "source folder.") from err


def _sphinx(stage: Path, html: Path, source: Path, *, quiet: bool) -> Path:
    """Sphinx's HTML build of ``stage`` into ``html`` (returned), or a :class:`DataError` with
    its log."""
    command = [sys.executable, "-m", "sphinx", "-b", "html", *(["-q"] if quiet else []),
               str(stage), str(html)]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise DataError(f"Sphinx could not build the book from {source} (exit "
                        f"{proc.returncode}):\n{(proc.stderr or proc.stdout)[-3000:]}")
    return html
