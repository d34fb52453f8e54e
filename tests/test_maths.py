"""Every formula renders: no markdown cell leaves a `$` to the book's parser (the browser test
of the book checks the rendered pages too, tests/test_notebooks_book.py)."""

from __future__ import annotations

import jupytext
import pytest

from sellakit.book import raw_formulas, unparsed_maths
from sellakit.config import repo_root
from sellakit.runner import NOTEBOOKS

ROOT = repo_root()


@pytest.mark.parametrize("stem", list(NOTEBOOKS))
def test_every_formula_of_a_notebook_is_parsed_as_maths(stem):
    notebook = jupytext.read(ROOT / "notebooks" / f"{stem}.py")
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown":
            left = unparsed_maths(cell.source)
            assert not left, f"{stem} cell {index}: maths the book shows raw: {left}"


@pytest.mark.parametrize("page", ["glossary", "syllabus", "results"])
def test_every_formula_of_the_docs_is_parsed_as_maths(page):
    assert not unparsed_maths((ROOT / "docs" / f"{page}.md").read_text())


def test_the_checks_catch_the_known_form():
    box = ("> **Score.** From the logits $z$,\n> $$s = \\sigma(z_1 - z_0).$$\n"
           "> *Only two tokens matter.*\n")
    assert unparsed_maths(box)
    fixed = box.replace("\n> $$", "\n>\n> $$").replace("$$\n>", "$$\n>\n>")
    assert unparsed_maths(fixed) == []
    assert unparsed_maths("Costs `$HOME` and $x^2$.") == []
    assert raw_formulas("the score $s = \\sigma(z)$ here") and raw_formulas("$$")
    assert raw_formulas("costs $5 and $10, set $HOME") == []
