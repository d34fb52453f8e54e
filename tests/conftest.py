"""Shared fixtures: the real ML-1M split (fetched once into the kit's cache) and small data."""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning (set before torch starts its pool). It changes
# no number, only waiting: on 2 shared cores a spinning thread burnt up to 6x the CPU of the
# work (test_cf's three planted-signal fits: 59 s CPU spinning, 11 s passive, under load).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pandas as pd
import pytest

from sellakit.data.protocol import SplitSpec, split_by_months


@pytest.fixture(scope="session")
def ml1m():
    from sellakit.data import load_movielens_1m

    return load_movielens_1m()


@pytest.fixture(scope="session")
def ml1m_split(ml1m):
    from sellakit.data import collm_split

    return collm_split(ml1m)


@pytest.fixture(scope="session")
def series_build(tmp_path_factory):
    """Where the notebook tests write executed notebooks (``notebooks/`` inside), shared with
    the book test so that the series is executed once per session."""
    return tmp_path_factory.mktemp("build")


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


def pytest_terminal_summary(terminalreporter):
    """Per-notebook run times (quick mode), when the notebook tests ran."""
    from test_notebooks import NOTEBOOK_SECONDS

    if NOTEBOOK_SECONDS:
        terminalreporter.section("notebook run times (quick mode)")
        for stem, seconds in NOTEBOOK_SECONDS.items():
            terminalreporter.write_line(f"{stem}: {seconds} s")


def pytest_collection_modifyitems(session, config, items):
    """Browser tests last: they execute notebooks in a live JupyterLab, and after the notebook
    tests the kit's cache holds what those notebooks train (notebook 08's small study takes
    minutes from an empty cache, past a browser wait)."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
