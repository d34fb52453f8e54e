"""The book (``make book``): built from the notebooks that tests/test_notebooks.py executed in
this session, opened in Debian's Chromium with Playwright; every page renders its figures.

The file name sorts after ``test_notebooks.py``, so pytest runs it after the notebook tests and
the series is executed once. Where no executed notebook is found it skips, saying why, except
in CI (``CI`` set, as ``.ci/run`` does), where that is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from sellakit.book import PLOTLY_MIME, build_book, raw_formulas
from sellakit.runner import NOTEBOOKS
from sellakit.viz.figures import find_chromium
from conftest import wait_for_series
from test_browser import CHROMIUM_FLAGS

pytestmark = pytest.mark.browser


def _missing(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must build the book from the notebook tests' output)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def book(series_build, tmp_path_factory, request):
    wait_for_series(series_build, request.session)  # the other test process's chain
    source = series_build / "notebooks"
    executed = sorted(source.glob("*.ipynb")) if source.exists() else []
    if not executed:
        _missing(f"no executed notebooks in {source}: run tests/test_notebooks.py in the same "
                 f"pytest session (e.g. `pytest tests/test_notebooks.py tests/{Path(__file__).name}`)")
    if os.environ.get("CI"):
        assert {p.stem for p in executed} == set(NOTEBOOKS), "CI executes every notebook"
    pytest.importorskip("myst_nb", reason="myst-nb is not installed (pip install -e '.[book]')")
    index = build_book(source, tmp_path_factory.mktemp("book") / "html")
    figures = {p.stem: sum(1 for cell in nbformat.read(p, as_version=4).cells
                           for output in cell.get("outputs", [])
                           if PLOTLY_MIME in output.get("data", {})) for p in executed}
    return index, figures


def test_book_has_a_page_per_notebook_and_the_docs(book):
    index, figures = book
    site = index.parent
    for stem in figures:
        assert (site / f"{stem}.html").exists(), stem
    assert (site / "glossary.html").exists() and (site / "syllabus.html").exists()
    assert (site / "_static" / "plotly.min.js").exists()  # offline: no CDN


def test_every_page_renders_its_figures_in_chromium(book):
    index, figures = book
    chromium = find_chromium()
    if chromium is None:
        _missing("no Chromium on this machine (apt-get install chromium); .ci/run installs it")
    pytest.importorskip("playwright", reason="playwright (pip) is not installed")
    from playwright.sync_api import sync_playwright

    pages = {**figures, "index": 0, "glossary": 0, "syllabus": 0}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            for stem, expected in pages.items():
                page = browser.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda err, errors=errors: errors.append(str(err)))
                page.goto((index.parent / f"{stem}.html").as_uri())
                assert page.locator("h1").count() >= 1, f"{stem}: no title"
                if expected:
                    # plotly draws each figure as an SVG inside its div once it has rendered
                    page.wait_for_function(
                        f"document.querySelectorAll('.js-plotly-plot .main-svg').length "
                        f">= {expected}", timeout=60_000)
                    drawn = page.locator(".js-plotly-plot").count()
                    assert drawn == expected, f"{stem}: {drawn} figures drawn, {expected} stored"
                if stem == "glossary":  # formulas typeset by the bundled MathJax, offline
                    page.wait_for_selector("mjx-container", timeout=30_000)
                left = raw_formulas(_prose_after_mathjax(page))
                assert not left, f"{stem}: formulas MathJax did not typeset: {left[:3]}"
                assert not errors, f"{stem}: JavaScript errors {errors}"
                page.close()
        finally:
            browser.close()


#: The page's prose once MathJax has typeset it: code, typeset maths and scripts left out.
_PROSE = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const body = document.body.cloneNode(true);
  body.querySelectorAll('pre, code, script, style, mjx-container, .js-plotly-plot, .output')
      .forEach(e => e.remove());
  return body.innerText;
}"""


def _prose_after_mathjax(page) -> str:
    return page.evaluate(_PROSE)
