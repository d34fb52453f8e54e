"""Shared fixtures: the real ML-1M split (fetched once into the kit's cache) and small data."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning (set before torch starts its pool). It changes
# no number, only waiting: on 2 shared cores a spinning thread burnt up to 6x the CPU of the
# work (test_cf's three planted-signal fits: 59 s CPU spinning, 11 s passive, under load).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pandas as pd
import pytest

from sellakit.data.protocol import SplitSpec, split_by_months
from sellakit.runner import SERIES_CHAINS


@pytest.fixture(scope="session")
def ml1m():
    from sellakit.data import load_movielens_1m

    return load_movielens_1m()


@pytest.fixture(scope="session")
def ml1m_split(ml1m):
    from sellakit.data import collm_split

    return collm_split(ml1m)


#: The notebook tests in the series' chains (runner.SERIES_CHAINS: the LLM chain 03-05; 00-02
#: and the KG films 06-08), each kept on one test process when `make test` runs several
#: (pytest-xdist; :func:`pytest_xdist_make_scheduler`). A browser test goes to whichever process
#: is free after the unit tests and waits for its notebook's test; the book, which needs every
#: chain, runs last.
SERIES_GROUPS = {f"series_{chain[0][:2]}": tuple(stem[:2] for stem in chain)
                 for chain in SERIES_CHAINS}


def _series_root(tmp_path_factory) -> Path:
    """The session's folder, shared by its test processes (a worker's own folder is a
    subfolder of the controller's)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def series_build(tmp_path_factory):
    """Where the notebook tests write executed notebooks (``notebooks/`` inside), shared with
    the book test so that the series is executed once per session (by whichever process runs
    its chain; ``done/<stem>.json`` marks a notebook finished, passed or not)."""
    build = _series_root(tmp_path_factory) / "series_build"
    (build / "done").mkdir(parents=True, exist_ok=True)
    return build


def series_stems(session) -> set[str]:
    """The notebooks whose test this session runs (``test_04_semantic_alignment`` ->
    ``04_semantic_alignment``), on every process alike (each collects the whole session)."""
    return {item.name.removeprefix("test_") for item in session.items
            if item.nodeid.startswith("tests/test_notebooks.py::test_0")}


def wait_for_series(build: Path, session, only: str | None = None,
                    timeout_s: float = 3600) -> None:
    """Block until every notebook this session tests (or ``only`` that one) has finished, on
    any test process: the book needs the whole series executed, a browser test its notebook's
    results in the kit's cache."""
    waiting = {s for s in series_stems(session) if only in (None, s)}
    deadline = time.monotonic() + timeout_s
    while waiting := {s for s in waiting if not (build / "done" / f"{s}.json").exists()}:
        if time.monotonic() > deadline:
            pytest.fail(f"notebook tests still unfinished after {timeout_s:.0f} s: "
                        f"{', '.join(sorted(waiting))}")
        time.sleep(2)


@pytest.fixture()
def tmp_cache(tmp_path, monkeypatch):
    """An empty cache folder for tests that write into the cache."""
    root = tmp_path / "cache"
    monkeypatch.setenv("SELLAKIT_CACHE", str(root))
    return root


def planted_ratings(n_users: int = 120, n_items: int = 80, per_user: int = 30, seed: int = 0
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Small ratings with a planted low-rank signal, over months 0..5 (unit-test data)."""
    rng = np.random.default_rng(seed)
    users, items = rng.normal(size=(n_users, 4)), rng.normal(size=(n_items, 4))
    rows = []
    for u in range(n_users):
        for i in rng.choice(n_items, per_user, replace=False):
            rating = 5 if users[u] @ items[i] + 0.3 * rng.normal() > 0 else 2
            rows.append((u, f"item{i:03d}", rating, int(rng.integers(0, 6 * 30 * 86400))))
    ratings = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    meta = pd.DataFrame({"item": [f"item{i:03d}" for i in range(n_items)],
                         "title": [f"Item {i}" for i in range(n_items)],
                         "genres": [["g"]] * n_items})
    return ratings, meta


@pytest.fixture(scope="session")
def small_split():
    """A planted-signal split: train months 0-3, valid 4, test 5 (generated unit-test data)."""
    ratings, meta = planted_ratings()
    month = (ratings.timestamp // (30 * 86400)).clip(upper=5)
    spec = SplitSpec(train_months=(0, 3), valid_months=(4, 4), test_months=(5, 5))
    return split_by_months(ratings, meta, spec, name="planted_unit_test", month=month)


def generated_rec_scores(noise: dict[str, float], n: int = 600, seeds=(1, 2), seed: int = 3):
    """GENERATED per-row scores in the rec benchmark's long form (score = label + noise of the
    method's sd) and the per-seed records :func:`sellakit.benchmarks.rec.summarise` reads."""
    from sellakit.metrics import auc, uauc

    rng = np.random.default_rng(seed)
    labels, users = rng.integers(0, 2, n), rng.integers(0, 60, n)
    not_cold = (rng.random(n) < 0.6).astype(int)
    frames, per_seed = [], {}
    for run_seed in seeds:
        per_seed[run_seed] = {}
        for method, sd in noise.items():
            score = labels + rng.normal(0, sd, n)
            frames.append(pd.DataFrame({"split": "test", "row": np.arange(n), "uid": users,
                                        "iid": np.arange(n), "label": labels,
                                        "not_cold": not_cold, "method": method,
                                        "seed": run_seed, "score": score}))
            record = {"auc": auc(labels, score), "uauc": uauc(users, labels, score), "rows": n}
            per_seed[run_seed][method] = {"valid": record, "test": record, "seconds": 1.0,
                                          "backbone": "generated", "best_step": 0}
    return pd.concat(frames, ignore_index=True), per_seed


def pytest_terminal_summary(terminalreporter, config):
    """Per-notebook run times (quick mode), when the notebook tests ran (read from the done
    marks, which every test process writes)."""
    done = _series_root(config._tmp_path_factory) / "series_build" / "done"
    seconds = {p.stem: json.loads(p.read_text()).get("seconds")
               for p in sorted(done.glob("*.json"))} if done.exists() else {}
    if seconds:
        terminalreporter.section("notebook run times (quick mode)")
        for stem, value in seconds.items():
            terminalreporter.write_line(f"{stem}: {value} s")


def _series_group(nodeid: str) -> str | None:
    """The notebook chain (:data:`SERIES_GROUPS`) a test belongs to, ``series_book`` for the
    book's tests, or None. A browser test belongs to none: kept in its notebook's chain it ran
    after the chain's last notebook on the longer chain's process (04's after 05), while the
    other process, done with its own work, had a core to give."""
    path, _, name = nodeid.partition("::")
    if path == "tests/test_notebooks_book.py":
        return "series_book"
    if path != "tests/test_notebooks.py" or not name.startswith("test_0"):
        return None
    return next(g for g, prefixes in SERIES_GROUPS.items() if name[5:7] in prefixes)


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # before xdist's own, which reads --dist
def pytest_xdist_make_scheduler(config, log):
    """Under several test processes (``-n``): each notebook chain, and the book, is one unit of
    work sent whole to one process; every other test is a unit of its own. Units go out in
    collection order (:func:`pytest_collection_modifyitems`: the chains first, the book last,
    so that no process waits for the book while tests remain, and one process never waits
    for a chain queued behind it). xdist's ``xdist_group`` marks do not group under pytest 9,
    which no longer reads a renamed node id."""
    from xdist.scheduler import LoadScopeScheduling

    class SeriesScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _series_group(nodeid) or nodeid

    config.option.loadscopereorder = False  # keep the collection order (not largest first)
    return SeriesScheduling(config, log)


def pytest_collection_modifyitems(session, config, items):
    """The notebook chains first, the other tests, then the browser tests and the book last.
    The browser tests execute notebooks in a live JupyterLab, and after the notebook tests the
    kit's cache holds what those notebooks train (notebook 08's KG vectors take minutes from
    an empty cache, past a browser wait). The chains first, so that under several test
    processes each starts at once and the other tests fill in around them."""
    def order(item) -> int:
        group = _series_group(item.nodeid)
        if group == "series_book":
            return 3
        if item.get_closest_marker("browser") is not None:
            return 2
        return 0 if group else 1

    items.sort(key=order)
