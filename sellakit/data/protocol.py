"""The CoLLM / SeLLa-Rec click-through protocol: time split, labels, histories, warm/cold.

On MovieLens-1M, exactly as CoLLM's released ``*_ood2.pkl`` files:

* label 1 iff rating >= 4;
* month index = calendar months (UTC) since the month of the first rating;
  train = months 14-23, valid = 24-28, test = 29-33; no user or item filtering;
* each row's history = that user's earlier positive items over all three splits, in time order
  (ties keep file order: a stable sort);
* warm (``not_cold``) = the user and the item both occur in train;
* ids remapped to 1..N (users by original id, items by title), 0 is padding.

Counts (asserted in tests/test_protocol.py): train 33,891 rows, valid 10,401, test 7,331;
838 users and 3,255 items overall.

Example::

    >>> from sellakit.data import load_movielens_1m, collm_split
    >>> split = collm_split(load_movielens_1m())  # doctest: +SKIP
    >>> split.train.columns.tolist()  # doctest: +SKIP
    ['uid', 'iid', 'label', 'timestamp', 'month', 'his', 'not_cold']
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sellakit.errors import DataError

__all__ = ["SplitSpec", "CTRSplit", "collm_split", "split_by_months", "COLLM_ML1M"]


@dataclass(frozen=True)
class SplitSpec:
    """Which months go where, and what counts as a positive.

    Months are inclusive ``(first, last)`` ranges of the month index.
    """

    train_months: tuple[int, int] = (14, 23)
    valid_months: tuple[int, int] = (24, 28)
    test_months: tuple[int, int] = (29, 33)
    positive_min_rating: int = 4


COLLM_ML1M = SplitSpec()


@dataclass
class CTRSplit:
    """Train, valid and test frames of one click-through data set, with shared id maps.

    Each frame has: ``uid``, ``iid`` (1-based ints), ``label`` (0/1), ``timestamp``, ``month``,
    ``his`` (int array of the user's earlier positive iids, oldest first, no placeholder),
    ``not_cold`` (1 when both the user and the item occur in train).
    """

    name: str
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    user_ids: np.ndarray  # user_ids[uid - 1] = original user id
    item_ids: np.ndarray  # item_ids[iid - 1] = original item key (ML-1M: "Title (Year)")
    item_titles: np.ndarray  # index iid; item_titles[0] = "" (padding)
    item_genres: list[list[str]] = field(default_factory=list)  # index iid
    spec: SplitSpec = COLLM_ML1M

    @property
    def n_users(self) -> int:
        """Size of the user id space, padding included (max uid + 1)."""
        return len(self.user_ids) + 1

    @property
    def n_items(self) -> int:
        """Size of the item id space, padding included (max iid + 1)."""
        return len(self.item_ids) + 1

    def fingerprint(self) -> str:
        """A digest of everything a model or a record could read: every column of every frame
        in row order (ids, labels, timestamps, months, warm/cold flags, each history's items),
        the id maps, titles and genres, and the split's months: cache keys of models trained on
        this split change with any of it."""
        import hashlib
        import json

        digest = hashlib.sha256(f"{self.name}|{self.n_users}|{self.n_items}|{self.spec}".encode())
        for name, frame in self.frames().items():
            digest.update(f"{name}|{list(frame.columns)}|{len(frame)}".encode())
            for column in frame.columns:
                digest.update(_column_bytes(frame[column]))
        for ids in (self.user_ids, self.item_ids, self.item_titles):
            digest.update(pd.util.hash_pandas_object(pd.Series(ids), index=False).to_numpy())
        digest.update(json.dumps([list(map(str, g)) for g in self.item_genres]).encode())
        return digest.hexdigest()

    def frames(self) -> dict[str, pd.DataFrame]:
        """The three frames by name."""
        return {"train": self.train, "valid": self.valid, "test": self.test}

    def summary(self) -> pd.DataFrame:
        """One row per split: rows, positives, users, items, warm rows, UAUC users."""
        rows = []
        for name, frame in self.frames().items():
            per_user = frame.groupby("uid").label.agg(["min", "max"])
            rows.append({
                "split": name, "rows": len(frame), "positives": int(frame.label.sum()),
                "positive_rate": round(float(frame.label.mean()), 4),
                "users": frame.uid.nunique(), "items": frame.iid.nunique(),
                "warm_rows": int(frame.not_cold.sum()),
                "users_with_both_labels": int((per_user["min"] != per_user["max"]).sum()),
            })
        return pd.DataFrame(rows).set_index("split")

    def __repr__(self) -> str:
        return (f"CTRSplit({self.name!r}: train {len(self.train):,}, valid {len(self.valid):,}, "
                f"test {len(self.test):,} rows; {self.n_users - 1:,} users, "
                f"{self.n_items - 1:,} items)")


def month_index(timestamps: pd.Series) -> pd.Series:
    """Calendar months (UTC) since the month of the earliest timestamp."""
    when = pd.to_datetime(timestamps, unit="s", utc=True)
    months = when.dt.year * 12 + when.dt.month
    return (months - months.min()).astype(int)


def split_by_months(
    ratings: pd.DataFrame,
    items: pd.DataFrame,
    spec: SplitSpec = COLLM_ML1M,
    *,
    name: str = "ml-1m",
    month: pd.Series | None = None,
) -> CTRSplit:
    """Build a :class:`CTRSplit` from ratings with a month index (see the module docstring).

    Args:
        ratings: columns ``user``, ``item``, ``rating``, ``timestamp``.
        items: columns ``item``, ``title``, ``genres``.
        spec: month ranges and the positive threshold.
        name: the data set's name, carried into tables and plots.
        month: a month index per rating; default :func:`month_index` of the timestamps.
    """
    missing = {"user", "item", "rating", "timestamp"} - set(ratings.columns)
    if missing:
        raise DataError(f"ratings lacks columns {sorted(missing)}; expected user, item, rating, "
                         "timestamp.")
    frame = ratings.assign(month=month_index(ratings.timestamp) if month is None else month)
    first, last = spec.train_months[0], spec.test_months[1]
    frame = frame[(frame.month >= first) & (frame.month <= last)]
    if frame.empty:
        raise DataError(f"No rating falls in months {first}-{last}; check the split spec.")

    user_ids = np.sort(frame.user.unique())
    item_ids = np.sort(frame.item.unique())
    frame = frame.assign(
        uid=np.searchsorted(user_ids, frame.user.to_numpy()) + 1,
        iid=np.searchsorted(item_ids, frame.item.to_numpy()) + 1,
        label=(frame.rating >= spec.positive_min_rating).astype(np.int64),
    )
    frame = frame.sort_values(["uid", "timestamp"], kind="stable").reset_index(drop=True)
    frame["his"] = _histories(frame.uid.to_numpy(), frame.iid.to_numpy(), frame.label.to_numpy())

    def months(lo_hi: tuple[int, int]) -> pd.DataFrame:
        part = frame[(frame.month >= lo_hi[0]) & (frame.month <= lo_hi[1])]
        return part.sort_values("timestamp", kind="stable").reset_index(drop=True)

    train, valid, test = months(spec.train_months), months(spec.valid_months), \
        months(spec.test_months)
    warm_users, warm_items = set(train.uid), set(train.iid)
    columns = ["uid", "iid", "label", "timestamp", "month", "his", "not_cold"]
    parts = []
    for part in (train, valid, test):
        part["not_cold"] = (part.uid.isin(warm_users) & part.iid.isin(warm_items)).astype(np.int64)
        parts.append(part[columns])

    meta = items.set_index("item").reindex(item_ids)
    titles = np.array([""] + [str(t) for t in meta["title"].fillna("")], dtype=object)
    genres = [[]] + [list(g) if isinstance(g, (list, np.ndarray)) else [] for g in meta["genres"]]
    return CTRSplit(name, *parts, user_ids=user_ids, item_ids=item_ids, item_titles=titles,
                    item_genres=genres, spec=spec)


def _column_bytes(column: pd.Series) -> bytes:
    """The values of one column as bytes: a column of arrays (histories) as their lengths and
    their concatenated items, any other through pandas' row hash."""
    if column.dtype == object and len(column) and isinstance(column.iloc[0], (np.ndarray, list)):
        lengths = column.map(len).to_numpy(dtype=np.int64)
        items = np.concatenate([np.asarray(v, dtype=np.int64) for v in column]) \
            if lengths.sum() else np.zeros(0, np.int64)
        return lengths.tobytes() + items.tobytes()
    return pd.util.hash_pandas_object(column, index=False).to_numpy().tobytes()


def collm_split(data) -> CTRSplit:
    """The CoLLM protocol on a loaded MovieLens-1M (``sellakit.data.load_movielens_1m()``)."""
    items = data.items.copy()
    # Prompts quote the "Title (Year)" string, as CoLLM's files do.
    items["title"] = items["item"]
    return split_by_months(data.ratings, items, COLLM_ML1M, name=data.name)


def _histories(uid: np.ndarray, iid: np.ndarray, label: np.ndarray) -> list[np.ndarray]:
    """Per row, the earlier positive iids of the same user (rows sorted by uid, then time)."""
    out: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * len(uid)
    starts = np.flatnonzero(np.r_[True, uid[1:] != uid[:-1]])
    ends = np.r_[starts[1:], len(uid)]
    for lo, hi in zip(starts, ends):
        user_items, user_labels = iid[lo:hi], label[lo:hi]
        positives = user_items[user_labels == 1]
        n_before = np.cumsum(user_labels) - user_labels  # positives strictly before each row
        for k in range(hi - lo):
            out[lo + k] = positives[: n_before[k]]
    return out
