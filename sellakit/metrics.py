"""Click-through metrics: AUC, UAUC, and the warm/cold slices of the CoLLM protocol.

UAUC is the mean per-user ROC-AUC over the users that have both labels among the rows scored
(users with one row or one class are skipped, as in CoLLM's ``uAUC_me``). Every AUC of the kit
is the rank-sum (Mann-Whitney) form, ties at average ranks: :func:`rank_auc`.

Example::

    >>> import numpy as np
    >>> auc([0, 1, 1, 0], [0.1, 0.8, 0.6, 0.3])
    1.0
    >>> round(uauc([1, 1, 2, 2, 2], [1, 0, 1, 0, 1], [0.9, 0.2, 0.1, 0.5, 0.7]), 3)
    0.75
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from sellakit.errors import DataError

__all__ = ["auc", "uauc", "rank_auc", "per_user_auc", "ctr_metrics", "evaluate_slices",
           "auc_bounds", "require_both_labels"]


def rank_auc(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUC of each row of ``scores`` against the matching row of 0/1 ``labels`` (both
    ``(draws, rows)``): (rank sum of the positives - P(P+1)/2) / (P N), exact up to one final
    rounding. Rows need both labels."""
    ranks = rankdata(scores, axis=1)
    pos = labels.sum(1)
    neg = labels.shape[1] - pos
    return ((ranks * labels).sum(1) - pos * (pos + 1) / 2) / (pos * neg)


def auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """ROC-AUC over all rows (NaN when only one class is present)."""
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(rank_auc(labels[None], np.asarray(scores, dtype=np.float64)[None])[0])


def uauc(users: Sequence[int], labels: Sequence[int], scores: Sequence[float]) -> float:
    """Mean per-user ROC-AUC over users with both labels (NaN if there are none)."""
    per_user = per_user_auc(users, labels, scores)
    return float(per_user.mean()) if len(per_user) else float("nan")


def per_user_auc(users: Sequence[int], labels: Sequence[int], scores: Sequence[float]
                 ) -> pd.Series:
    """ROC-AUC per user, over users with both labels (their mean is UAUC).

    :func:`rank_auc`'s form per user (ties get average ranks), vectorised by group, without a
    Python loop over users.
    """
    frame = pd.DataFrame({"u": np.asarray(users), "y": np.asarray(labels, dtype=np.int64),
                          "s": np.asarray(scores, dtype=np.float64)})
    frame["rank"] = frame.groupby("u").s.rank(method="average")
    per_user = frame.groupby("u").agg(n=("y", "size"), pos=("y", "sum"))
    per_user["rank_pos"] = frame[frame.y == 1].groupby("u")["rank"].sum()
    per_user = per_user[(per_user.pos > 0) & (per_user.pos < per_user.n)]
    neg = per_user.n - per_user.pos
    return (per_user.rank_pos - per_user.pos * (per_user.pos + 1) / 2) / (per_user.pos * neg)


def ctr_metrics(frame: pd.DataFrame, scores: Sequence[float]) -> dict[str, float]:
    """``{"auc", "uauc", "rows"}`` for the rows of ``frame`` (columns ``uid``, ``label``)."""
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) != len(frame):
        raise DataError(f"{len(scores)} scores for {len(frame)} rows.")
    return {"auc": auc(frame.label, scores), "uauc": uauc(frame.uid, frame.label, scores),
            "rows": int(len(frame))}


def evaluate_slices(frame: pd.DataFrame, scores: Sequence[float], prefix: str = "test"
                    ) -> dict[str, dict[str, float]]:
    """Metrics on all rows, on warm rows and on cold rows (``not_cold`` column).

    Returns ``{prefix: {...}, prefix + "_warm": {...}, prefix + "_cold": {...}}``, each with
    its AUC's 95% interval (:func:`auc_bounds`).
    """
    scores = np.asarray(scores, dtype=np.float64)
    warm = frame.not_cold.to_numpy() == 1
    return {name: {**ctr_metrics(frame[rows], scores[rows]),
                   **auc_bounds(frame.label.to_numpy()[rows], scores[rows])}
            for name, rows in ((prefix, np.ones(len(frame), bool)), (f"{prefix}_warm", warm),
                               (f"{prefix}_cold", ~warm))}


def auc_bounds(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """``{"auc_lo", "auc_hi"}``: DeLong's 95% interval of the AUC (NaN with fewer than two
    rows of a label), so a bar chart of the slices can show how sure each bar is."""
    from sellakit.stats import auc_interval  # stats builds on this module

    labels = np.asarray(labels).astype(int)
    if min(labels.sum(), len(labels) - labels.sum()) < 2:
        return {"auc_lo": float("nan"), "auc_hi": float("nan")}
    found = auc_interval(labels, scores)
    return {"auc_lo": found["lo"], "auc_hi": found["hi"]}


def require_both_labels(labels, what: str) -> None:
    """Refuse selection rows that hold one label: AUC, the selection metric, is then undefined,
    so no checkpoint could be chosen. ``what`` names the rows in the message."""
    present = sorted({int(x) for x in labels})
    if len(present) < 2:
        raise DataError(f"{what} hold only label {present} ({len(labels)} rows): AUC is "
                        "undefined, so no checkpoint can be chosen. Fix: give the validation "
                        "period rows of both labels (a longer period, another split spec, or "
                        "more sampled rows).")
