"""Count-rate baselines on small planted data (generated, not MovieLens)."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from sellakit.cf.rates import RATE_BASELINES, STRENGTHS, rate_scores, smoothed_rate
from sellakit.errors import DataError
from sellakit.metrics import auc


def _with_labels(split, part: str, flip: np.ndarray):
    """A copy of ``split`` whose ``part`` rows have the labels at ``flip`` inverted."""
    changed = copy.copy(split)
    frame = getattr(split, part).copy()
    frame.loc[flip, "label"] = 1 - frame.loc[flip, "label"]
    setattr(changed, part, frame)
    return changed


def _same_scores(a: dict, b: dict) -> bool:
    return all(np.array_equal(a[n].scores[s], b[n].scores[s]) for n in a for s in a[n].scores)


def test_smoothed_rate_by_hand():
    train = pd.DataFrame({"iid": [1, 1, 1, 2], "uid": [1, 2, 3, 1], "label": [1, 1, 0, 0]})
    prior = 0.5
    rates = smoothed_rate(train, "iid", np.array([1, 2, 9]), strength=2.0)
    np.testing.assert_allclose(rates, [(2 + 2 * prior) / (3 + 2), (0 + 2 * prior) / (1 + 2),
                                       prior])  # 9: unseen, the prior
    with pytest.raises(DataError, match="positive strength"):
        smoothed_rate(train, "iid", np.array([1]), strength=0.0)


def test_rates_read_train_labels_only(small_split):
    """Inverting valid or test labels changes no score (at fixed settings: valid labels choose
    them); inverting train labels changes them."""
    fixed = {"strengths": (10.0,), "user_weights": (1.0,)}
    base = rate_scores(small_split, **fixed)
    assert set(base) == set(RATE_BASELINES)
    for part in ("valid", "test"):
        flip = np.arange(0, len(getattr(small_split, part)), 3)
        assert _same_scores(base, rate_scores(_with_labels(small_split, part, flip), **fixed))
    # with the full grid, test labels still change nothing (not even the choice)
    chosen = rate_scores(small_split)
    flip = np.arange(len(small_split.test))
    assert _same_scores(chosen, rate_scores(_with_labels(small_split, "test", flip)))
    flip = np.arange(0, len(small_split.train), 3)
    assert not _same_scores(base, rate_scores(_with_labels(small_split, "train", flip), **fixed))


def test_settings_are_chosen_on_validation(small_split):
    """The chosen item strength is the one with the best validation AUC of the grid; the item +
    user blend's choice is the best of its grid on validation too; scoring other rows (a
    sample of test) does not change the choice."""
    fits = rate_scores(small_split)
    valid = small_split.valid
    by_strength = {a: auc(valid.label, smoothed_rate(small_split.train, "iid",
                                                     valid.iid.to_numpy(), a))
                   for a in STRENGTHS}
    best = max(by_strength.values())
    item = fits["item_rate"]
    assert by_strength[item.item_strength] == best and item.valid_auc == pytest.approx(best)
    assert item.user_strength is None and item.user_weight == 0.0
    blend = fits["item_user_rate"]
    assert blend.item_strength == item.item_strength and blend.user_weight > 0
    # the chosen blend is at least as good on validation as any other of its grid, e.g. w=0.1
    other = rate_scores(small_split, strengths=(item.item_strength,), user_weights=(0.1,))
    assert blend.valid_auc >= other["item_user_rate"].valid_auc
    assert blend.valid_auc == pytest.approx(auc(valid.label, blend.scores["valid"]))
    rows = {"valid": valid, "some_test": small_split.test.iloc[::2]}
    again = rate_scores(small_split, rows)
    assert again["item_user_rate"].settings() == blend.settings()
    assert len(again["item_rate"].scores["some_test"]) == len(rows["some_test"])
    with pytest.raises(DataError, match="needs 'valid'"):
        rate_scores(small_split, {"test": small_split.test})


def test_a_user_unseen_in_train_is_scored_by_the_item_rate(small_split):
    test = small_split.test
    unseen = small_split.n_users + 5  # a user id with no training row
    cold_user = np.arange(len(test)) % 4 == 0
    test = test.assign(uid=np.where(cold_user, unseen, test.uid))
    fits = rate_scores(small_split, {"valid": small_split.valid, "test": test})
    np.testing.assert_allclose(fits["item_user_rate"].scores["test"][cold_user],
                               fits["item_rate"].scores["test"][cold_user])
    assert not np.allclose(fits["item_user_rate"].scores["test"][~cold_user],
                           fits["item_rate"].scores["test"][~cold_user])
