"""The CoLLM / SeLLa-Rec protocol on the real ML-1M: every published count."""

from __future__ import annotations

import numpy as np

from sellakit.data.protocol import split_by_months


def test_collm_counts(ml1m_split):
    s = ml1m_split.summary()
    assert s.loc["train", "rows"] == 33_891 and s.loc["train", "positives"] == 18_191
    assert s.loc["train", "users"] == 740 and s.loc["train", "items"] == 3_087
    assert s.loc["valid", "rows"] == 10_401 and s.loc["valid", "positives"] == 5_495
    assert s.loc["valid", "warm_rows"] == 6_609
    assert s.loc["test", "rows"] == 7_331 and s.loc["test", "positives"] == 3_998
    assert s.loc["test", "warm_rows"] == 4_153 and s.loc["test", "users"] == 320
    assert s.loc["test", "users_with_both_labels"] == 224
    assert ml1m_split.n_users - 1 == 838 and ml1m_split.n_items - 1 == 3_255


def test_ids_are_dense_and_one_based(ml1m_split):
    every = np.concatenate([f.uid for f in ml1m_split.frames().values()])
    assert every.min() == 1 and every.max() == 838 and len(np.unique(every)) == 838
    items = np.concatenate([f.iid for f in ml1m_split.frames().values()])
    assert items.min() == 1 and items.max() == 3_255
    assert ml1m_split.item_titles[0] == "" and len(ml1m_split.item_titles) == 3_256


def test_histories_are_earlier_positives(ml1m_split, ml1m):
    """Recompute a few histories by hand from the raw ratings."""
    train = ml1m_split.train
    positives = {}
    for frame in ml1m_split.frames().values():
        for row in frame.itertuples():
            positives.setdefault(row.uid, []).append((row.timestamp, row.iid, row.label))
    rng = np.random.default_rng(0)
    for index in rng.choice(len(train), 50, replace=False):
        row = train.iloc[index]
        his = row.his
        # every history item is a positive of this user no later than this row
        earlier = {i for t, i, y in positives[row.uid] if y == 1 and t <= row.timestamp}
        assert set(his.tolist()) <= earlier
        strictly = [i for t, i, y in positives[row.uid] if y == 1 and t < row.timestamp]
        assert len(his) >= len(strictly)


def test_warm_means_user_and_item_in_train(ml1m_split):
    users, items = set(ml1m_split.train.uid), set(ml1m_split.train.iid)
    test = ml1m_split.test
    expected = test.uid.isin(users) & test.iid.isin(items)
    assert (test.not_cold.astype(bool) == expected).all()
    assert ml1m_split.train.not_cold.all()


def test_sella_filtered_variant(ml1m_split):
    """SeLLa-Rec drops rows with an empty history. Its repository reports 32,616 / 10,298 /
    7,269; tie-breaking among equal timestamps moves one to three rows (see the README)."""
    kept = {n: int((f.his.map(len) > 0).sum()) for n, f in ml1m_split.frames().items()}
    assert kept == {"train": 32_615, "valid": 10_301, "test": 7_270}


def test_split_rejects_bad_columns():
    import pandas as pd
    import pytest

    with pytest.raises(ValueError, match="lacks columns"):
        split_by_months(pd.DataFrame({"user": [1]}), pd.DataFrame())
