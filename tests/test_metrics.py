"""AUC and UAUC against their definition (every positive-negative pair), and the slices."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sellakit.metrics import auc, ctr_metrics, evaluate_slices, uauc


def _pairwise_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """The definition, independent of any ranking: the share of (positive, negative) pairs the
    positive wins, ties counting half."""
    pos, neg = scores[labels == 1][:, None], scores[labels == 0][None, :]
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


def test_auc_and_uauc_match_the_pairwise_definition():
    rng = np.random.default_rng(1)
    users = rng.integers(0, 40, 3000)
    labels = rng.integers(0, 2, 3000)
    scores = np.round(rng.random(3000) + 0.2 * labels, 2)  # ties on purpose
    expected = np.mean([_pairwise_auc(labels[users == u], scores[users == u])
                        for u in np.unique(users) if len(set(labels[users == u])) == 2])
    assert math.isclose(uauc(users, labels, scores), expected, rel_tol=1e-12)
    # both count the same pairs exactly, then divide once: equal to the last bit
    assert auc(labels, scores) == _pairwise_auc(labels, scores)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(20, 400))
        labels = rng.integers(0, 2, n)
        scores = (rng.random(n) + 0.3 * labels).astype(np.float32)
        assert auc(labels, scores) == _pairwise_auc(labels, scores.astype(np.float64)), seed


def test_users_with_one_class_are_skipped():
    assert math.isnan(uauc([1, 1, 2], [1, 1, 0], [0.3, 0.4, 0.5]))  # nobody has both labels
    assert uauc([1, 1, 2, 2], [1, 0, 1, 1], [0.9, 0.1, 0.0, 0.0]) == 1.0
    assert math.isnan(auc([1, 1], [0.2, 0.3]))


def test_slices():
    frame = pd.DataFrame({"uid": [1, 1, 2, 2], "label": [1, 0, 1, 0], "not_cold": [1, 1, 0, 0]})
    out = evaluate_slices(frame, [0.9, 0.1, 0.2, 0.8])
    assert out["test_warm"]["auc"] == 1.0 and out["test_cold"]["auc"] == 0.0
    assert out["test"]["rows"] == 4 and out["test_cold"]["rows"] == 2


def test_length_mismatch_is_an_error():
    import pytest

    with pytest.raises(ValueError, match="3 scores for 2 rows"):
        ctr_metrics(pd.DataFrame({"uid": [1, 2], "label": [0, 1]}), [0.1, 0.2, 0.3])
