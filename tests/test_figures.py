"""Committed figures cannot go stale: each PNG carries (in its sidecar ``<name>.json``) the
values its notebook recorded in the run that drew it, and those values must be the ones the
notebook's "What you should see" boxes promise now. tests/test_notebooks.py checks, after each
run, that the committed stamps hold the digest of the values the notebook records today."""

from __future__ import annotations

import json
import os
import re

import jupytext
import pytest

from sellakit.config import repo_root
from sellakit.runner import NOTEBOOKS, check_should_see, stable_values, values_digest
from sellakit.viz.figures import file_sha256, read_stamp, stamp_figures

ROOT = repo_root()
FIGURES = ROOT / "figures"
PNGS = sorted(FIGURES.glob("*.png"))
#: Committed figures drawn before stamps existed. TODO(issue 26): the lead clears this list
#: after `make run` has redrawn them (02 belongs to recbase, 06 to kgnew).
UNSTAMPED: set[str] = set()
#: Notebooks that save figures but commit no PNG yet. TODO(issue 26): 05 (recstudy), 07
#: (kgnew) and 08 when it lands commit their key figures; the lead then empties this set.
NO_PNG_YET: set[str] = set()


@pytest.mark.parametrize("png", [p for p in PNGS if p.name not in UNSTAMPED],
                         ids=lambda p: p.name)
def test_committed_figure_is_stamped_with_current_values(png):
    stamp = read_stamp(png)
    assert stamp is not None, f"{png.name} has no sidecar: run `sellakit run <its notebook>`"
    assert stamp["notebook"] in NOTEBOOKS and png.name.startswith(stamp["notebook"][:3])
    assert stamp["png_sha256"] == file_sha256(png), f"{png.name} changed after its stamp"
    assert stamp["values_sha256"] == values_digest(stamp["values"])
    source = jupytext.read(ROOT / "notebooks" / f"{stamp['notebook']}.py")
    broken = check_should_see(source, stamp["values"])
    assert not broken, (f"{png.name} was drawn from values the notebook no longer promises "
                        f"({broken}): run `sellakit run {stamp['notebook']}` and commit "
                        "figures/")


def test_every_figure_saving_notebook_commits_a_png():
    for stem in NOTEBOOKS:
        saves = "save_figures(" in (ROOT / "notebooks" / f"{stem}.py").read_text()
        if saves and stem not in NO_PNG_YET:
            assert list(FIGURES.glob(f"{stem[:3]}*.png")), f"{stem} commits no figure"


def test_allow_lists_name_only_what_exists():
    assert UNSTAMPED <= {p.name for p in PNGS}
    assert all(read_stamp(FIGURES / name) is None for name in UNSTAMPED), \
        "a figure of UNSTAMPED now has its stamp: take it off the list"


def test_digest_ignores_times_and_last_digits_but_not_results():
    values = {"mf": {"test": {"auc": 0.651234}, "seconds": 12.0}, "teacher_seconds": 3.0}
    same = {"mf": {"test": {"auc": 0.651201}, "seconds": 99.0}, "teacher_seconds": 7.0}
    moved = {"mf": {"test": {"auc": 0.644}, "seconds": 12.0}, "teacher_seconds": 3.0}
    assert values_digest(values) == values_digest(same)
    assert values_digest(values) != values_digest(moved)
    assert stable_values(values) == {"mf": {"test": {"auc": 0.651234}}}


def test_stamp_goes_to_this_notebooks_run_only(tmp_path):
    for name, notebook, run in (("04_a", "04_semantic_alignment", "r1"),
                                ("04_b", "04_semantic_alignment", "r0"),
                                ("03_c", "03_llm_semantic_embeddings", "r1")):
        (tmp_path / f"{name}.png").write_bytes(b"png")
        (tmp_path / f"{name}.json").write_text(json.dumps(
            {"notebook": notebook, "run": run, "png_sha256": "x"}))
    stamped = stamp_figures("04_semantic_alignment", "r1", {"after": {"recall@10": 1.0}},
                            tmp_path)
    assert [p.name for p in stamped] == ["04_a.png"]
    stamp = read_stamp(tmp_path / "04_a.png")
    assert stamp["values_sha256"] == values_digest({"after": {"recall@10": 1.0}})
    assert "values" not in read_stamp(tmp_path / "04_b.png")
    assert "run" not in stamp  # a rerun with the same values leaves the file as it was


def test_gallery_gives_each_figure_a_takeaway():
    """Under each image of figures/README.md, one line says what to see in it."""
    gallery = (FIGURES / "README.md").read_text()
    for png in PNGS:
        match = re.search(rf"!\[[^\]]*\]\({re.escape(png.name)}\)\n\n([^\n#!]+)", gallery)
        assert match and len(match.group(1).split()) >= 5, \
            f"figures/README.md: give {png.name} a one-line takeaway under its image"


def test_a_png_the_batch_export_dropped_is_drawn_again_or_named(tmp_path, monkeypatch):
    """kaleido returns a failed render (its timeout on busy cores) instead of raising: the
    batch call then leaves a PNG unwritten, or last run's PNG in place. save_figures draws it
    again alone, and raises naming it when that fails too; no stale picture survives."""
    import plotly.graph_objects as go
    import plotly.io as pio

    from sellakit.errors import SellakitError
    from sellakit.viz import figures as module

    monkeypatch.setenv("SELLAKIT_FIGURES", str(tmp_path))
    # save_figures sets BROWSER_PATH for kaleido when unset: set here through monkeypatch, so
    # it is undone after the test (the notebooks' kernels inherit this process's environment;
    # a fake browser left in it failed every PNG export after this test)
    monkeypatch.setenv("BROWSER_PATH", "/nonexistent/chromium")
    monkeypatch.setattr(module, "find_chromium", lambda: "/nonexistent/chromium")
    stale = tmp_path / "b.png"
    stale.write_bytes(b"last run's picture")
    drawn = []

    def batch(figs, paths, **_):  # the batch renders the first figure only
        paths[0].write_bytes(b"png a")

    def alone(fig, path, **_):
        drawn.append(path.name)
        path.write_bytes(b"png b")

    monkeypatch.setattr(pio, "write_images", batch)
    monkeypatch.setattr(pio, "write_image", alone)
    figs = {"a": go.Figure(), "b": go.Figure()}
    with pytest.warns(UserWarning, match="PNG export of b failed"):
        module.save_figures(figs)
    assert drawn == ["b.png"] and stale.read_bytes() == b"png b"
    assert read_stamp(stale)["png_sha256"] == file_sha256(stale)

    monkeypatch.setattr(pio, "write_image", lambda *a, **k: None)  # fails again, silently
    with pytest.warns(UserWarning), pytest.raises(SellakitError, match=r"did not write b\.png"):
        module.save_figures(figs)
    assert not stale.exists() and not stale.with_suffix(".json").exists()
    monkeypatch.undo()
    assert os.environ.get("BROWSER_PATH") != "/nonexistent/chromium"


def test_a_browser_path_naming_no_browser_is_a_clear_error(monkeypatch, tmp_path):
    """kaleido reads BROWSER_PATH itself, so a wrong one must fail here, naming the variable,
    not fall back to another browser and fail every PNG export later."""
    from sellakit.errors import ConfigError
    from sellakit.viz import figures as module

    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chromium"))
    with pytest.raises(ConfigError, match=r"BROWSER_PATH=.*no-such-chromium.*Fix"):
        module.find_chromium()
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path))  # a folder is not a browser either
    with pytest.raises(ConfigError, match="names no browser"):
        module.find_chromium()
    browser = tmp_path / "my-chromium"
    browser.write_text("#!/bin/sh\n")
    browser.chmod(0o755)
    monkeypatch.setenv("BROWSER_PATH", str(browser))
    assert module.find_chromium() == str(browser)
