"""Browser tests: JupyterLab serves notebook 04 (or 08) on 127.0.0.1; Playwright drives Debian's
Chromium.

Each runs the whole notebook in the browser (quick mode), waits for the explorer, changes widgets
and checks that their outputs change. Skips, saying why, when no Chromium or Playwright is here
(`.ci/run` installs Chromium, so CI always runs it).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from sellakit.viz.figures import find_chromium
from conftest import wait_for_series

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "04_semantic_alignment.ipynb"
KG_NOTEBOOK = "08_kg_meets_recommender.ipynb"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def lab(tmp_path, request, series_build):
    """A JupyterLab serving a copy of ``NOTEBOOK`` (or the notebook given by indirect
    parametrisation), once its notebook test (if this session has one) has finished."""
    notebook = getattr(request, "param", NOTEBOOK)
    wait_for_series(series_build, request.session, only=Path(notebook).stem)
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium); .ci/run installs it")
    pytest.importorskip("playwright", reason="playwright (pip) is not installed")
    root = tmp_path / "lab"
    root.mkdir()
    shutil.copy(ROOT / "notebooks" / notebook, root / notebook)  # the server edits its copy
    # Render every cell (no windowing, so nothing off-screen is detached) and fetch no news.
    settings = tmp_path / "user-settings" / "@jupyterlab"
    (settings / "notebook-extension").mkdir(parents=True)
    (settings / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        '{"windowingMode": "none"}')
    (settings / "apputils-extension").mkdir()
    (settings / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}')
    port = _free_port()
    token = secrets.token_hex(24)  # a random token, XSRF checks on: the server as users run it
    log = open(tmp_path / "jupyterlab.log", "wb")  # a file, not a pipe that could fill up
    env = {**os.environ, "SELLAKIT_QUICK": "1", "SELLAKIT_FIGURES": str(tmp_path / "figures"),
           "SELLAKIT_BUILD": str(tmp_path / "build"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config")}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
         "--LabApp.expose_app_in_browser=True",
         f"--ServerApp.root_dir={root}", "--LabApp.news_url=None",
         f"--LabApp.user_settings_dir={tmp_path / 'user-settings'}",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--allow-root"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start within 90 s:\n"
                        + (tmp_path / "jupyterlab.log").read_text()[-2000:])
        yield f"http://127.0.0.1:{port}", token, chromium, tmp_path
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@contextmanager
def _notebook_page(lab, notebook: str):
    """A Chromium page on ``notebook`` with every cell started; on failure a screenshot beside
    the lab's log; afterwards, no widget error on the page."""
    from playwright.sync_api import sync_playwright

    url, token, chromium, tmp_path = lab
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("pageerror", lambda err: errors.append(str(err)))
        try:
            page.goto(f"{url}/lab/tree/{notebook}?reset&token={token}", timeout=120_000)
            page.wait_for_function("window.jupyterapp !== undefined", timeout=120_000)
            page.wait_for_selector(".jp-Notebook", timeout=120_000)
            page.wait_for_function(
                "() => { const w = window.jupyterapp.shell.currentWidget;"
                " return w && w.sessionContext && w.sessionContext.session"
                " && w.sessionContext.session.kernel"
                " && w.sessionContext.session.kernel.status === 'idle'; }", timeout=120_000)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            yield page
        except Exception:
            page.screenshot(path=str(tmp_path / "browser-failure.png"), full_page=True)
            raise
        finally:
            browser.close()
    widget_errors = [e for e in errors if "widget" in e.lower()]
    assert not widget_errors, widget_errors


def _pick_last_and_wait_for_change(page, table: str) -> None:
    """Pick the last option of the page's first dropdown; wait until ``table``'s text changes."""
    before = page.locator(table).first.inner_text()
    select = page.locator(".widget-dropdown select").first
    select.scroll_into_view_if_needed()
    options = select.locator("option").all_inner_texts()
    select.select_option(label=options[-1])
    page.wait_for_function(
        "([selector, old]) => { const t = document.querySelector(selector);"
        " return t && t.innerText !== old; }", arg=[table, before], timeout=60_000)


def test_explorer_renders_and_reacts(lab):
    with _notebook_page(lab, NOTEBOOK) as page:
        # The explorer opens on "Toy Story (1995)": its neighbour table appears when the
        # whole notebook (training included) has run.
        table = page.wait_for_selector("table.sellakit-neighbours", timeout=900_000)
        first = table.inner_text()
        assert "Toy Story 2 (1999)" in first or "Toy Story" in first
        # Type another title into the search box: the neighbour table must change.
        box = page.locator("input[placeholder=\"Search a movie title\"]").first
        box.scroll_into_view_if_needed()
        box.fill("Heat (1995)")
        box.press("Enter")
        page.wait_for_function(
            "() => [...document.querySelectorAll('table.sellakit-neighbours')]"
            ".some(t => t.closest('.jp-OutputArea-output').innerText.includes('Heat (1995)'))",
            timeout=60_000)
        # Pick another user: the history table must change.
        _pick_last_and_wait_for_change(page, "table.sellakit-user")


@pytest.mark.parametrize("lab", [KG_NOTEBOOK], indirect=True)
def test_kg_movie_explorer_renders_and_reacts(lab):
    """Notebook 08: the movie explorer shows scores with and without <KG_ID>; another movie
    redraws the scores, the toggle switches the ablation's column."""
    with _notebook_page(lab, KG_NOTEBOOK) as page:
        table = page.wait_for_selector("table.sellakit-kg-scores", timeout=900_000)
        first = table.inner_text()
        assert "with <KG_ID>" in first and "<KG_ID> zero" in first
        page.wait_for_selector("table.sellakit-kg-facts", timeout=60_000)
        _pick_last_and_wait_for_change(page, "table.sellakit-kg-scores")
        page.locator(".widget-toggle-buttons button", has_text="shuffle").first.click()
        page.wait_for_function(
            "() => { const t = document.querySelector('table.sellakit-kg-scores');"
            " return t && t.innerText.includes('<KG_ID> shuffle'); }", timeout=60_000)
