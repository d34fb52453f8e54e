"""AUC and UAUC against scikit-learn, and the warm/cold slices."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from sellakit.metrics import auc, ctr_metrics, evaluate_slices, uauc


def test_uauc_matches_per_user_sklearn():
    rng = np.random.default_rng(1)
    users = rng.integers(0, 40, 3000)
    labels = rng.integers(0, 2, 3000)
    scores = np.round(rng.random(3000) + 0.2 * labels, 2)  # ties on purpose
    expected = np.mean([roc_auc_score(labels[users == u], scores[users == u])
                        for u in np.unique(users) if len(set(labels[users == u])) == 2])
    assert math.isclose(uauc(users, labels, scores), expected, rel_tol=1e-12)
    assert math.isclose(auc(labels, scores), roc_auc_score(labels, scores))


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
