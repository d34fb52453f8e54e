"""The project's own files agree: pyproject vs environment.yml, notebooks vs their .py pairs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import nbformat
import jupytext
import pytest
import yaml

from sellakit.runner import NOTEBOOKS

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"torch": "pytorch"}  # pip name -> conda-forge name where they differ


def _requirement(spec: str) -> tuple[str, str]:
    name, bound = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", spec).groups()
    return name.lower(), bound.replace(" ", "")


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = dict(_requirement(d.replace("=", "==", 1) if re.match(r"^python=", d) else d)
                 for d in env["dependencies"] if isinstance(d, str) and d != "pip")
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip == ["-e .[all]"]
    for spec in project["dependencies"]:
        name, bound = _requirement(spec)
        conda_name = CONDA_NAMES.get(name, name)
        if name == "kaleido":  # not on conda-forge at 1.x; comes with -e .[all]
            continue
        assert conda.get(conda_name) == bound, f"{name}: pyproject {bound}, environment.yml " \
            f"{conda.get(conda_name)}"
    assert conda["python"] == "==3.11"


def _extra(extras: dict, name: str) -> set[str]:
    """The requirements an extra installs, its ``sellakit[...]`` references expanded."""
    out = set()
    for spec in extras[name]:
        nested = re.match(r"^sellakit\[(.*)\]$", spec)
        out |= set().union(*(_extra(extras, n) for n in nested.group(1).split(","))) \
            if nested else {spec}
    return out


def test_every_pinned_version_installs_on_the_makefiles_oldest_python():
    """``make install`` admits the Python the Makefile checks for (3.11: Debian 12's 3.11.2
    included), so no pin of constraints.txt may need a newer one: soupsieve 4.1.4 (Python >=
    3.11.5) left pip backtracking into "resolution-too-deep" on 3.11.2. Read from the installed
    distributions' own metadata, offline."""
    from importlib import metadata

    from packaging.specifiers import SpecifierSet

    floor = re.search(r"sys\.version_info >= \((\d+), (\d+)\)", (ROOT / "Makefile").read_text())
    oldest = f"{floor[1]}.{floor[2]}.0"
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)$", (ROOT / "constraints.txt").read_text(),
                      flags=re.M)
    assert len(pins) > 100
    too_new, checked = [], 0
    for name, version in pins:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if dist.version.split("+")[0] != version:
            continue  # another build (a CUDA torch); its own file is not the pin
        checked += 1
        needs = dist.metadata.get("Requires-Python") or ""
        if not SpecifierSet(needs).contains(oldest):
            too_new.append(f"{name}=={version} needs Python {needs}")
    assert checked > 100
    assert not too_new, (f"constraints.txt pins releases that need a newer Python than the "
                         f"Makefile's {oldest}: {too_new}. Pin an older release of each.")


def test_extras_split_course_from_dev():
    """``course``: what a student needs to run the notebooks; ``dev``: tests, browser tests and
    the book; ``all``: both, and every extra is in one of the two."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert extras["course"] == ["sellakit[notebooks,llm,align,kg]"]
    assert extras["dev"] == ["sellakit[test,browser,book]"]
    assert extras["all"] == ["sellakit[course,dev]"]
    leaves = set(extras) - {"course", "dev", "all"}
    assert _extra(extras, "all") == set().union(*(_extra(extras, n) for n in leaves))
    course = {_requirement(s)[0] for s in _extra(extras, "course")}
    assert not course & {"playwright", "sphinx", "pytest"}, course


def test_every_imported_package_is_declared():
    """Each third-party top-level import of the package, its tests and notebooks is a
    requirement of pyproject.toml (core or an extra), and scikit-learn is not needed."""
    import ast
    import sys

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_requirement(s)[0] for s in project["dependencies"]} | {
        _requirement(s)[0] for e in project["optional-dependencies"].values() for s in e}
    import_names = {"yaml": "pyyaml", "umap": "umap-learn", "IPython": "ipython",
                    "sklearn": "scikit-learn", "markdown_it": "markdown-it-py",
                    "myst_parser": "myst-parser", "xdist": "pytest-xdist"}  # import -> distribution
    local = {"sellakit", "conftest", "test_browser", "test_notebooks"}
    imported = set()
    for folder in ("sellakit", "tests", "notebooks"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 \
                    and node.module else []
                imported |= {n.split(".")[0] for n in names}
    imported -= set(sys.stdlib_module_names) | local | {"__future__"}
    needed = {import_names.get(name, name).lower() for name in imported}
    assert needed <= declared, sorted(needed - declared)
    assert "scikit-learn" not in needed | declared


@pytest.mark.parametrize("stem", list(NOTEBOOKS))
def test_notebook_pair_in_sync(stem):
    source = jupytext.read(ROOT / "notebooks" / f"{stem}.py")
    paired = nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)
    assert [(c.cell_type, c.source) for c in source.cells] == \
        [(c.cell_type, c.source) for c in paired.cells], f"run `make sync` ({stem})"
    # its outputs are `sellakit run`'s readable copy (tests/test_readable.py)


@pytest.mark.parametrize("stem", list(NOTEBOOKS))
def test_notebook_conventions(stem):
    notebook = jupytext.read(ROOT / "notebooks" / f"{stem}.py")
    parameters = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    # quick mode comes from the one parser of SELLAKIT_QUICK, never parsed by hand
    assert len(parameters) == 1 and "QUICK = quick_mode()" in parameters[0].source
    assert "SELLAKIT_QUICK" not in parameters[0].source
    # notebooks import from package faces only, never a stage's module
    assert not re.search(r"from sellakit\.[a-z]+\.[a-z_]+ import", (ROOT / "notebooks" / f"{stem}.py").read_text())
    assert notebook.cells[0].source.startswith("# ")
    assert "record(" in notebook.cells[-1].source
    assert any("exercises" in c.source.lower() for c in notebook.cells if c.cell_type == "markdown")


def test_readme_shows_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    for stem in NOTEBOOKS:
        assert stem in readme


def test_viz_face_lists_every_public_name_of_its_modules():
    """``sellakit.viz`` loads its names lazily from a table; the table matches the modules."""
    import importlib
    import pkgutil

    import sellakit.viz as viz

    faces = {}
    for module in (m.name for m in pkgutil.iter_modules(viz.__path__)):
        loaded = importlib.import_module(f"sellakit.viz.{module}")
        faces.update({name: getattr(loaded, name) for name in loaded.__all__})
    assert set(viz.__all__) == set(faces)
    assert all(getattr(viz, name) is value for name, value in faces.items())


@pytest.mark.parametrize("stem", list(NOTEBOOKS))
def test_markdown_has_no_stray_html_tags(stem):
    """A `<title>` written as prose is an HTML element to a browser: in the rendered book it
    swallowed the rest of the page. Tags other than the few used on purpose go in backticks."""
    allowed = {"details", "summary", "sub", "sup", "br", "b", "i", "em", "strong", "code"}
    for cell in jupytext.read(ROOT / "notebooks" / f"{stem}.py").cells:
        if cell.cell_type != "markdown":
            continue
        prose = re.sub(r"`[^`]*`", "", cell.source)  # code spans are escaped when rendered
        stray = {t for t in re.findall(r"</?([A-Za-z][\w-]*)[^>]*>", prose)} - allowed
        assert not stray, f"{stem}: raw HTML tags {sorted(stray)} in a markdown cell"
