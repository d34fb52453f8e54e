"""One source for times and facts: README's table, notebook 00's map and each notebook's header
line all come from ``sellakit.runner.NOTEBOOKS``; the README says nothing outside the repo."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jupytext
import pytest

from sellakit.cli import build_parser
from sellakit.runner import (NOTEBOOKS, SERIES_WALL_SECONDS, check_should_see, notebooks_table,
                             series_seconds, should_see)

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
TABLE_START = "<!-- notebooks table: made from sellakit.runner.NOTEBOOKS -->"
TABLE_END = "<!-- end of notebooks table -->"


def test_readme_table_is_made_from_notebooks():
    block = README.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip()
    assert block == notebooks_table(), \
        f"paste sellakit.runner.notebooks_table() into README.md:\n{notebooks_table()}"


def test_readme_series_time_is_make_runs_wall_clock():
    said = (f"about {series_seconds() / 60:.1f} minutes with a warm cache",
            f"about {series_seconds(first_run=True) / 60:.0f} minutes from an empty cache")
    for phrase in said:
        assert phrase in README, f"README should say `{phrase}` (runner.SERIES_WALL_SECONDS)"


def test_series_wall_clock_is_the_side_by_side_benchmark():
    """`make run`'s time (runner.SERIES_WALL_SECONDS) is bench/quick_series_side_by_side.json's
    wall clock of each pass, measured whole (no pass resumed)."""
    bench = json.loads((ROOT / "bench" / "quick_series_side_by_side.json").read_text())
    assert bench["_run"]["whole_series"] and bench["resumed"] == []
    assert "side by side" in bench["_run"]["chains"]
    assert SERIES_WALL_SECONDS == bench["wall_s"]


@pytest.mark.parametrize("stem", list(NOTEBOOKS))
def test_notebook_header_line_is_made_from_notebooks(stem):
    first = jupytext.read(ROOT / "notebooks" / f"{stem}.py").cells[0].source
    header = NOTEBOOKS[stem].header()
    assert header in first.replace("\n", " "), \
        f"{stem}: put this line under the goals of the first cell:\n{header}"


def test_dependencies_are_earlier_notebooks():
    order = list(NOTEBOOKS)
    for stem, notebook in NOTEBOOKS.items():
        assert all(order.index(dep) < order.index(stem) for dep in notebook.depends_on)


def test_overview_map_reads_notebooks():
    source = (ROOT / "notebooks" / "00_overview.py").read_text()
    assert "for stem, nb in NOTEBOOKS.items()" in source
    assert "sellakit run 00_overview 01_data" in source


def test_first_five_minutes_path():
    assert "sellakit run 00_overview 01_data" in README
    args = build_parser().parse_args(["run", "00_overview", "01_data"])
    assert args.notebooks == ["00_overview", "01_data"]
    assert sum(NOTEBOOKS[s].first_run_seconds for s in args.notebooks) < 5 * 60


def test_readme_stays_inside_the_repository():
    assert "../" not in README, "README refers to a path outside the repository"
    for path in re.findall(r"\]\(((?!https?://|#)[^)\s]+)\)", README):
        assert (ROOT / path.split("#")[0]).exists(), f"README links to a missing file: {path}"


def test_readme_lists_every_package_folder():
    layout = README.split("## Layout", 1)[1]
    for folder in sorted(p.name for p in (ROOT / "sellakit").iterdir()
                         if p.is_dir() and (p / "__init__.py").exists()):
        assert f"{folder}/" in layout, f"README's layout omits sellakit/{folder}/"


def test_license_covers_code_and_text():
    text = (ROOT / "LICENSE").read_text()
    assert "MIT License" in text and "CC BY 4.0" in text
    assert "LICENSE" in README


def test_figures_gallery_shows_every_committed_figure():
    gallery = (ROOT / "figures" / "README.md").read_text()
    for png in sorted((ROOT / "figures").glob("*.png")):
        assert f"]({png.name})" in gallery, f"figures/README.md misses {png.name}"


@pytest.mark.parametrize("stem", sorted(NOTEBOOKS))
def test_what_you_should_see_box_promises_recorded_values(stem):
    """The box exists and names values; tests/test_notebooks.py checks them after each run."""
    notebook = jupytext.read(ROOT / "notebooks" / f"{stem}.py")
    promises = should_see(notebook)
    assert promises, f"{stem}: no `path` ≈ value ± tol in a 'What you should see' box"
    # a promise broken over two lines would go unchecked: every ≈ of a box must parse
    written = sum(c.source.count("≈") for c in notebook.cells
                  if c.cell_type == "markdown" and "What you should see" in c.source)
    assert written == len(promises), f"{stem}: a promise does not parse (one line each)"


def test_should_see_check_catches_a_wrong_box():
    notebook = jupytext.reads("# %% [markdown]\n# > **What you should see.**\n"
                              "# > * `mf.test.auc` ≈ 0.644 ± 0.02\n", fmt="py:percent")
    assert check_should_see(notebook, {"mf": {"test": {"auc": 0.65}}}) == []
    assert check_should_see(notebook, {"mf": {"test": {"auc": 0.70}}})
    assert check_should_see(notebook, {})  # a value the notebook does not record


def test_should_see_checks_only_the_box_of_the_data_that_ran():
    notebook = jupytext.reads(
        "# %% [markdown]\n# > **What you should see** (when `dataset` = `dbp5l`)\n"
        "# > * `kd.mrr` ≈ 0.55 ± 0.01\n#\n"
        "# > **What you should see** (when `dataset` = `umls-derived-3`)\n"
        "# > * `kd.mrr` ≈ 0.80 ± 0.01\n", fmt="py:percent")
    assert len(notebook.cells) == 1 and len(should_see(notebook)) == 2  # two boxes, one cell
    assert check_should_see(notebook, {"dataset": "dbp5l", "kd": {"mrr": 0.55}}) == []
    assert check_should_see(notebook, {"dataset": "umls-derived-3", "kd": {"mrr": 0.80}}) == []
    assert check_should_see(notebook, {"dataset": "dbp5l", "kd": {"mrr": 0.80}})
    assert check_should_see(notebook, {"dataset": "umls-derived-3", "kd": {"mrr": 0.55}})


RESULTS = (ROOT / "docs" / "results.md").read_text()


def test_results_page_blocks_are_the_benchmark_tables():
    """docs/results.md shows each committed table as its benchmark wrote it."""
    from sellakit.benchmarks.report import PENDING, results_blocks

    blocks = results_blocks(RESULTS)
    assert {"bench/cf_ml1m.md", "bench/align_ml1m_quick.md", "bench/rec_ml1m_compare.md"} <= \
        set(blocks)
    for name, body in blocks.items():
        if body == PENDING:  # a study not run yet; its command writes the file and the block
            assert not (ROOT / name).exists(), f"{name} exists: rerun its command's report"
            continue
        assert body == (ROOT / name).read_text().strip(), \
            f"docs/results.md's block of {name} differs from the file: rerun its command"


def test_writing_a_benchmark_refreshes_its_block(tmp_path, monkeypatch):
    from sellakit.benchmarks import report

    root = tmp_path / "repo"
    (root / "bench").mkdir(parents=True)
    (root / "docs").mkdir()
    marker = "written by the command it names; do not edit"
    page = root / "docs" / "results.md"
    page.write_text(f"# R\n<!-- bench/a.md: {marker} -->\nold\n<!-- end bench/a.md -->\n"
                    f"<!-- bench/b.md: {marker} -->\nkept\n<!-- end bench/b.md -->\n")
    monkeypatch.setattr(report, "repo_root", lambda: root)
    report.write_report(root / "bench" / "a.json", {"x": 1}, "| new |\n")
    assert report.results_blocks(page.read_text()) == {"bench/a.md": "| new |",
                                                       "bench/b.md": "kept"}
    report.write_report(tmp_path / "elsewhere.json", {"x": 1}, "| other |\n")  # not the repo's
    assert "other" not in page.read_text()


def test_results_page_stays_inside_the_repository():
    for path in re.findall(r"\]\(((?!https?://|#)[^)\s]+)\)", RESULTS):
        assert (ROOT / "docs" / path.split("#")[0]).exists(), f"docs/results.md: {path}"


def _slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_front_page_fits_one_screen_and_links_its_findings():
    front = README.split("\n## ", 1)[0]
    assert len(front.splitlines()) <= 45, "README's front page should fit one screen"
    for words in ("**For:**", "**Prerequisites:**", "**Study time:** four 90-minute classes",
                  "**You learn:**", "**What the kit found**"):
        assert words in front, f"README's front page lacks {words}"
    findings = re.findall(r"^\d\. .*?(?=^\d\. |\Z)", front.split("**What the kit found**")[1],
                          flags=re.M | re.S)
    assert len(findings) == 5, "five lines of what the kit found"
    anchors = {_slug(h) for h in re.findall(r"^## (.+)$", RESULTS, flags=re.M)}
    for finding in findings:
        links = re.findall(r"\(docs/results\.md#([\w-]+)\)", finding)
        assert links and set(links) <= anchors, f"link each finding to its table: {finding}"
    hero = re.search(r"!\[[^\]]*\]\((figures/[^)]+\.png)\)", front, flags=re.S)
    assert hero and (ROOT / hero.group(1)).exists(), "a current hero figure"
    assert (ROOT / hero.group(1)).with_suffix(".json").exists(), "the hero figure is stamped"


def test_readme_says_a_gpu_not_a_lent_one():
    """A reader's GPU is their own; where a number came from, the machine is named."""
    from sellakit.benchmarks import cuda

    for text in (README, RESULTS, (ROOT / "bench" / "README.md").read_text(), cuda.__doc__,
                 build_parser().format_help()):
        assert not re.search(r"\blent\b", text), "say 'a GPU', and name the machine"


def test_chance_recall_is_one_number():
    """Recall@10 over the 3,087 train items: chance is 10 / 3,087 = 0.3 %, wherever quoted."""
    assert round(100 * 10 / 3087, 1) == 0.3
    glossary = (ROOT / "docs" / "glossary.md").read_text()
    assert "0.3 % for $k = 10$ over 3,087" in glossary
    assert "chance (0.5 %)" not in RESULTS + README


def test_notebook_times_are_the_series_benchmark():
    """NOTEBOOKS' times are bench/quick_series.json's (`sellakit bench series --serial`), not copied
    by hand from runs of different days."""
    bench = json.loads((ROOT / "bench" / "quick_series.json").read_text())
    assert bench["_run"]["whole_series"] and bench["resumed"] == []
    assert bench["_run"]["chains"] == "one notebook at a time"  # each notebook's time alone
    for stem, notebook in NOTEBOOKS.items():
        assert (notebook.quick_seconds, notebook.first_run_seconds) == (
            bench["seconds"]["warm"][stem], bench["seconds"]["first"][stem]), stem
