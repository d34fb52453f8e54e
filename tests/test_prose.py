"""Prose a student can follow: no markdown cell over about 250 words, and the terms the review
found undefined are defined where first used (in bold) or linked to the glossary."""

from __future__ import annotations

import re

import jupytext
import pytest

from sellakit.config import repo_root
from sellakit.runner import NOTEBOOKS

ROOT = repo_root()
MAX_WORDS = 250
#: Terms a notebook must define where first used. Pattern -> what the bold definition or the
#: glossary anchor is called.
TERMS = {r"\bLoRA\b": "LoRA", r"\bbridges?\b": "bridge", r"\"mapping\"|\bmapping mode": "mapping",
         r"\bstandard errors?\b": "standard error", r"\bbfloat16\b": "bfloat16"}


def _markdown(stem: str) -> list[str]:
    notebook = jupytext.read(ROOT / "notebooks" / f"{stem}.py")
    return [c.source if c.cell_type == "markdown" else "" for c in notebook.cells]


def words(text: str) -> int:
    """Words a reader reads: formulas count as one word, HTML tags as none."""
    text = re.sub(r"\$\$.*?\$\$|\$[^$]+\$", " formula ", text, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", text)
    return sum(1 for w in text.split() if re.search(r"[A-Za-z0-9]", w))


@pytest.mark.parametrize("stem", list(NOTEBOOKS))
def test_no_markdown_cell_is_a_wall_of_text(stem):
    for index, source in enumerate(_markdown(stem)):
        assert words(source) <= MAX_WORDS, (
            f"{stem} cell {index}: {words(source)} words (at most {MAX_WORDS}); split it at a "
            f"heading or a concept box: {source[:80]!r}")


def _first_use(stem: str, pattern: str) -> str | None:
    return next((s for s in _markdown(stem) if re.search(pattern, s)), None)


def _defined(cell: str, name: str) -> bool:
    glossary = re.search(r"glossary\.md", cell)
    bold = re.search(rf"\*\*[^*]*{re.escape(name)}[^*]*\*\*", cell, flags=re.I)
    return bool(glossary or bold)


@pytest.mark.parametrize("stem", list(NOTEBOOKS))
def test_terms_are_defined_where_first_used(stem):
    for pattern, name in TERMS.items():
        cell = _first_use(stem, pattern)
        if cell is None:
            continue
        assert _defined(cell, name), (
            f"{stem}: '{name}' is first used without a definition: write it in bold with one "
            f"sentence, or link docs/glossary.md, in that cell: {cell[:80]!r}")


def test_glossary_defines_the_terms():
    glossary = (ROOT / "docs" / "glossary.md").read_text()
    for name in TERMS.values():
        assert re.search(rf"^\*\*[^*\n]*{re.escape(name)}", glossary, flags=re.I | re.M), \
            f"docs/glossary.md has no entry for {name}"


def test_word_count_counts_prose_not_markup():
    assert words("A $x^2 + y$ is <b>bold</b> text.") == 5  # A, formula, is, bold, text
    assert words("$$s = \\sigma(z)$$\n> > --- |") == 1
