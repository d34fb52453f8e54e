"""Count-rate baselines: how often an item (and a user) was liked in the training rows.

No training, no model: the score of a row is the item's smoothed positive rate in ``train``,

    r_i = (positives_i + a * p) / (rows_i + a),

with ``p`` the training rows' positive rate and ``a`` the smoothing strength (an item unseen in
train gets ``p``). The item + user baseline adds the user's smoothed rate as a second logit,

    score = sigmoid(logit r_i + w * (logit r_u - logit p)),

so a user unseen in train is scored by the item rate alone. ``a``, the user's strength and
``w`` are chosen on the validation rows' AUC only; nothing but the training rows' labels enters
a score. The variants are the rows of :data:`RATE_BASELINES`.

These are the baselines a reader must see beaten: on ML-1M's CoLLM split the item rate alone
is as good as CoLLM's published LLM rows (see bench/cf_ml1m.md).

Example::

    >>> from sellakit.cf.rates import rate_scores
    >>> fits = rate_scores(split)  # doctest: +SKIP
    >>> fits["item_rate"].scores["test"], fits["item_rate"].item_strength  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import pandas as pd

from sellakit.data.protocol import CTRSplit
from sellakit.errors import DataError
from sellakit.metrics import auc, ctr_metrics, evaluate_slices, require_both_labels

__all__ = ["RateBaseline", "RATE_BASELINES", "RateFit", "rate_scores", "evaluate_rates",
           "rate_record", "smoothed_rate", "STRENGTHS", "USER_WEIGHTS"]

#: Smoothing strengths tried (pseudo-rows at the training positive rate).
STRENGTHS: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
#: Weights of the user's logit tried by the item + user baseline.
USER_WEIGHTS: tuple[float, ...] = tuple(round(0.1 * k, 1) for k in range(1, 16))


@dataclass(frozen=True)
class RateBaseline:
    """One count-rate baseline.

    Attributes:
        name: its name in tables and per-row scores.
        help: one line for tables and notebooks.
        uses_user: the user's rate enters as a second logit (else the item rate alone).
    """

    name: str
    help: str
    uses_user: bool


#: The count-rate baselines, name -> row (read-only).
RATE_BASELINES: Mapping[str, RateBaseline] = MappingProxyType({row.name: row for row in (
    RateBaseline("item_rate", "the item's smoothed positive rate in train", False),
    RateBaseline("item_user_rate", "item rate plus the user's rate as a second logit", True),
)})


@dataclass(frozen=True)
class RateFit:
    """A count-rate baseline with its settings chosen on validation, and its scores.

    Attributes:
        name: the row of :data:`RATE_BASELINES`.
        item_strength, user_strength: the chosen smoothing strengths (``user_strength`` None
            without the user's rate).
        user_weight: the chosen weight of the user's logit (0 without it).
        valid_auc: the validation AUC the choice was made on.
        scores: per-row scores (probabilities), one array per scored frame, in its row order.
    """

    name: str
    item_strength: float
    user_strength: float | None
    user_weight: float
    valid_auc: float
    scores: Mapping[str, np.ndarray]

    def settings(self) -> dict:
        """The chosen settings, JSON-ready."""
        return {"item_strength": self.item_strength, "user_strength": self.user_strength,
                "user_weight": self.user_weight, "valid_auc": self.valid_auc}


def smoothed_rate(train: pd.DataFrame, key: str, values: np.ndarray, strength: float
                  ) -> np.ndarray:
    """``(positives + strength * p) / (rows + strength)`` of each id in ``values`` (column
    ``key`` of ``train``: ``"iid"`` or ``"uid"``), ``p`` the positive rate of ``train``."""
    if strength <= 0:
        raise DataError(f"smoothed_rate(strength={strength}): give a positive strength (an "
                        "unseen id would otherwise have no rate).")
    prior = float(train.label.mean())
    counts = train.groupby(key).label.agg(["sum", "size"])
    index = pd.Index(counts.index).get_indexer(np.asarray(values))
    seen = index >= 0
    positives = np.where(seen, counts["sum"].to_numpy()[index], 0.0)
    rows = np.where(seen, counts["size"].to_numpy()[index], 0.0)
    return (positives + strength * prior) / (rows + strength)


def _logit(p: np.ndarray | float) -> np.ndarray:
    return np.log(p) - np.log1p(-np.asarray(p))


def _item_logits(train: pd.DataFrame, frames: Mapping[str, pd.DataFrame],
                 strength: float) -> dict[str, np.ndarray]:
    return {s: _logit(smoothed_rate(train, "iid", f.iid.to_numpy(), strength))
            for s, f in frames.items()}


def _user_logits(train: pd.DataFrame, frames: Mapping[str, pd.DataFrame],
                 strength: float) -> dict[str, np.ndarray]:
    prior = _logit(float(train.label.mean()))
    return {s: _logit(smoothed_rate(train, "uid", f.uid.to_numpy(), strength)) - prior
            for s, f in frames.items()}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def rate_scores(split: CTRSplit, rows: Mapping[str, pd.DataFrame] | None = None, *,
                strengths: Sequence[float] = STRENGTHS,
                user_weights: Sequence[float] = USER_WEIGHTS) -> dict[str, RateFit]:
    """Every row of :data:`RATE_BASELINES` on ``split``, its settings chosen on validation.

    Args:
        split: the rates count ``split.train`` only.
        rows: the frames to score, name -> frame (columns ``uid``, ``iid``, ``label``); it must
            hold ``"valid"``, whose AUC chooses the settings. Default: ``split.valid`` and
            ``split.test``. Labels of these rows are read for the choice on ``"valid"`` only.
        strengths: the smoothing strengths tried (item's first, then the user's).
        user_weights: the weights of the user's logit tried.

    Returns name -> :class:`RateFit`. Ties in the grid go to the earlier (smaller) setting.
    """
    rows = {"valid": split.valid, "test": split.test} if rows is None else dict(rows)
    if "valid" not in rows:
        raise DataError(f"rate_scores: rows= has {', '.join(rows) or 'nothing'}; it needs "
                        "'valid' (the rows whose AUC chooses the smoothing).")
    valid = rows["valid"].label.to_numpy()
    require_both_labels(valid, f"the validation rows of {split.name}")
    train = split.train
    item = {a: _item_logits(train, rows, a) for a in strengths}
    best_a = max(strengths, key=lambda a: (auc(valid, item[a]["valid"]), -a))
    fits = {}
    for row in RATE_BASELINES.values():
        logits, chosen = item[best_a], (None, 0.0)
        if row.uses_user:
            users = {b: _user_logits(train, rows, b) for b in strengths}
            chosen = max(((b, w) for b in strengths for w in user_weights),
                         key=lambda bw: (auc(valid, item[best_a]["valid"]
                                             + bw[1] * users[bw[0]]["valid"]), -bw[0], -bw[1]))
            logits = {s: item[best_a][s] + chosen[1] * users[chosen[0]][s] for s in rows}
        fits[row.name] = RateFit(row.name, best_a, chosen[0], chosen[1],
                                 auc(valid, logits["valid"]),
                                 MappingProxyType({s: _sigmoid(v) for s, v in logits.items()}))
    return fits


def evaluate_rates(split: CTRSplit) -> dict[str, dict]:
    """Each count-rate baseline on ``split``'s validation and test rows, in the record
    :func:`sellakit.cf.fit_and_evaluate` returns for a trained model (see :func:`rate_record`;
    ``seconds`` is all baselines together)."""
    started = time.perf_counter()
    fits = rate_scores(split)
    seconds = round(time.perf_counter() - started, 2)
    return {name: rate_record(split, fit, seconds) for name, fit in fits.items()}


def rate_record(split: CTRSplit, fit: RateFit, seconds: float) -> dict:
    """``fit`` (of ``split``'s default rows) as a trained model's record: ``{"valid", "test",
    "test_warm", "test_cold"}`` (``auc``, ``uauc``, ``rows``), ``seconds``, ``seed`` (None:
    nothing is random), ``settings`` (chosen on validation) and ``dataset``."""
    return {"valid": ctr_metrics(split.valid, fit.scores["valid"]),
            **evaluate_slices(split.test, fit.scores["test"]), "seconds": seconds,
            "seed": None, "settings": fit.settings(), "dataset": split.name}
