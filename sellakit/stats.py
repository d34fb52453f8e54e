"""How sure a comparison is: intervals for AUC and UAUC, and for the difference of two methods
scored on the same rows.

- :func:`auc_interval` — DeLong's standard error of one AUC, a normal 95% interval.
- :func:`paired_delong` — DeLong's test of two correlated AUCs (same rows, two score vectors):
  the difference, its interval and a two-sided p-value.
- :func:`paired_bootstrap` — the same question by resampling: rows (AUC) or users (UAUC) drawn
  with replacement, the difference recomputed on each draw; with several seeds per method the
  difference is the mean over seeds, so one interval pools the seeds on shared rows.
- :func:`seed_query_bootstrap` — two levels for per-query values of models trained at several
  seeds: each draw resamples each method's seeds, then the queries (shared by both sides), so
  the interval carries the spread between training runs as well as the test set's.

A difference is a claim only where its 95% interval excludes 0; otherwise it is within noise
(:func:`verdict`, the one rule every benchmark and notebook states its comparisons with).
A method compared with itself gives difference 0 and p = 1.

Example::

    >>> import numpy as np
    >>> y = np.array([0, 0, 1, 1, 0, 1]); a = np.array([.1, .4, .35, .8, .2, .9])
    >>> paired_delong(y, a, a)["p"]
    1.0
    >>> round(auc_interval(y, a)["auc"], 4)
    0.8889
    >>> verdict(-0.01, 0.02)
    'within noise'
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

from sellakit.errors import DataError
from sellakit.metrics import per_user_auc, rank_auc

__all__ = ["auc_interval", "paired_delong", "paired_bootstrap", "seed_query_bootstrap", "verdict",
           "VERDICTS"]

Z95 = 1.959963984540054
#: The words of :func:`verdict`: the method above its baseline, below it, or neither.
VERDICTS = ("better", "worse", "within noise")


def verdict(lo: float, hi: float) -> str:
    """``"better"`` where the paired interval ``[lo, hi]`` of (method - baseline) lies above 0,
    ``"worse"`` where it lies below, else ``"within noise"``: a claim only where it excludes 0.
    """
    return VERDICTS[0] if lo > 0 else VERDICTS[1] if hi < 0 else VERDICTS[2]


def _components(labels: np.ndarray, scores: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """DeLong's structural components of one AUC: per positive the share of negatives it beats
    (ties count half), per negative the share of positives that beat it."""
    labels = np.asarray(labels).astype(bool)
    pos, neg = scores[labels], scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        raise DataError(f"AUC needs both labels; got {len(pos)} positive and {len(neg)} "
                        "negative rows.")
    ranks = rankdata(np.concatenate([pos, neg]))
    v10 = (ranks[:len(pos)] - rankdata(pos)) / len(neg)
    v01 = 1.0 - (ranks[len(pos):] - rankdata(neg)) / len(pos)
    return float(v10.mean()), v10, v01


def _normal_p(diff: float, se: float) -> float:
    if se == 0:
        return 1.0 if diff == 0 else 0.0
    return float(math.erfc(abs(diff / se) / math.sqrt(2)))


def auc_interval(labels: Sequence[int], scores: Sequence[float]) -> dict[str, float]:
    """``{"auc", "se", "lo", "hi"}``: AUC with DeLong's standard error and a 95% interval."""
    value, v10, v01 = _components(np.asarray(labels), np.asarray(scores, dtype=np.float64))
    se = math.sqrt(v10.var(ddof=1) / len(v10) + v01.var(ddof=1) / len(v01))
    return {"auc": value, "se": se, "lo": max(0.0, value - Z95 * se),
            "hi": min(1.0, value + Z95 * se)}


def paired_delong(labels: Sequence[int], a: Sequence[float], b: Sequence[float]
                  ) -> dict[str, float]:
    """DeLong's paired test of ``AUC(a) - AUC(b)`` on the same rows.

    Returns ``{"diff", "se", "lo", "hi", "p"}`` (95% normal interval, two-sided p)."""
    labels = np.asarray(labels)
    auc_a, a10, a01 = _components(labels, np.asarray(a, dtype=np.float64))
    auc_b, b10, b01 = _components(labels, np.asarray(b, dtype=np.float64))
    d10, d01 = a10 - b10, a01 - b01
    se = math.sqrt(d10.var(ddof=1) / len(d10) + d01.var(ddof=1) / len(d01))
    diff = auc_a - auc_b
    return {"diff": diff, "se": se, "lo": diff - Z95 * se, "hi": diff + Z95 * se,
            "p": _normal_p(diff, se)}


def paired_bootstrap(labels: Sequence[int] | None, a: np.ndarray, b: np.ndarray | None, *,
                     users: Sequence[int] | None = None, metric: str = "auc",
                     draws: int = 2000, seed: int = 0) -> dict[str, float]:
    """Bootstrap interval of ``metric(a) - metric(b)`` on the same rows.

    Args:
        labels: one label per row (None for ``metric="mean"``).
        a, b: scores, ``(rows,)`` or ``(seeds, rows)``; with seeds the difference is the mean
            over seeds (seed k of ``a`` against seed k of ``b``). ``b=None``: the interval of
            ``metric(a)`` itself (its seed mean).
        users: the rows' users (needed for ``metric="uauc"``; users are resampled).
        metric: ``"auc"`` (rows resampled), ``"uauc"`` (users resampled) or ``"mean"``: the
            mean of per-row values such as reciprocal ranks (MRR; rows, i.e. queries,
            resampled); there ``a`` and ``b`` may have different numbers of seeds, each row's
            value being its seed mean.

    Returns ``{"diff", "lo", "hi", "p"}``: the observed difference, the 2.5 and 97.5
    percentiles of the resampled differences, and a two-sided bootstrap p-value; with
    ``b=None``, ``{"value", "lo", "hi"}``.
    """
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    if metric == "mean":
        return _mean_bootstrap(a, b, draws, seed)
    labels = np.asarray(labels, dtype=np.int64)
    # Against nothing: a constant score, whose AUC (and every user's) is 0.5, shifted back.
    b, shift = (np.zeros_like(a), 0.5) if b is None else (
        np.atleast_2d(np.asarray(b, dtype=np.float64)), 0.0)
    if a.shape != b.shape or a.shape[1] != len(labels):
        raise DataError(f"scores of shapes {a.shape} and {b.shape} for {len(labels)} rows.")
    rng = np.random.default_rng(seed)
    if metric == "uauc":
        if users is None:
            raise DataError("metric='uauc' needs the rows' users.")
        per = np.stack([per_user_auc(users, labels, x).to_numpy()
                        - per_user_auc(users, labels, y).to_numpy() for x, y in zip(a, b)])
        per = per.mean(0)  # per user, the seed-mean difference of its AUC
        observed = float(per.mean())
        picks = rng.integers(0, len(per), size=(draws, len(per)))
        samples = per[picks].mean(1)
    elif metric == "auc":
        observed = float(np.mean([rank_auc(labels[None], x[None])[0]
                                  - rank_auc(labels[None], y[None])[0] for x, y in zip(a, b)]))
        samples = np.zeros(draws)
        for start in range(0, draws, 250):
            picks = rng.integers(0, len(labels), size=(min(250, draws - start), len(labels)))
            drawn = labels[picks]
            # A draw with one class has no AUC; redraws are rare at the sizes used here.
            ok = (drawn.sum(1) > 0) & (drawn.sum(1) < len(labels))
            diff = np.mean([rank_auc(drawn, x[picks]) - rank_auc(drawn, y[picks])
                            for x, y in zip(a, b)], axis=0)
            samples[start:start + len(picks)] = np.where(ok, diff, np.nan)
        samples = samples[~np.isnan(samples)]
    else:
        raise DataError(f"metric={metric!r}; choose 'auc' or 'uauc'.")
    lo, hi = np.percentile(samples, [2.5, 97.5])
    p = min(1.0, 2 * min(np.mean(samples <= 0), np.mean(samples >= 0)))
    if shift:
        return {"value": observed + shift, "lo": float(lo) + shift, "hi": float(hi) + shift}
    return {"diff": observed, "lo": float(lo), "hi": float(hi), "p": float(p)}


def _mean_bootstrap(a: np.ndarray, b: np.ndarray | None, draws: int, seed: int
                    ) -> dict[str, float]:
    """:func:`paired_bootstrap` for ``metric="mean"`` (rows resampled, seed means per row)."""
    per = a.mean(0)
    if b is not None:
        b = np.atleast_2d(np.asarray(b, dtype=np.float64))
        if b.shape[1] != a.shape[1]:
            raise DataError(f"{a.shape[1]} and {b.shape[1]} rows: a paired interval needs the "
                            "same rows (queries) for both methods.")
        per = per - b.mean(0)
    rng = np.random.default_rng(seed)
    samples = np.concatenate([per[rng.integers(0, len(per), size=(min(250, draws - s),
                                                                   len(per)))].mean(1)
                              for s in range(0, draws, 250)])
    lo, hi = np.percentile(samples, [2.5, 97.5])
    if b is None:
        return {"value": float(per.mean()), "lo": float(lo), "hi": float(hi)}
    p = min(1.0, 2 * min(np.mean(samples <= 0), np.mean(samples >= 0)))
    return {"diff": float(per.mean()), "lo": float(lo), "hi": float(hi), "p": float(p)}


def seed_query_bootstrap(a: np.ndarray, b: np.ndarray, *, draws: int = 2000, seed: int = 0,
                         chunk: int = 100) -> dict[str, float]:
    """Two-level bootstrap of ``mean(a) - mean(b)`` for per-query values (reciprocal ranks) of
    models trained at several seeds: ``a`` is ``(seeds_a, queries)``, ``b`` ``(seeds_b,
    queries)`` on the same queries. Each draw resamples each side's seeds with replacement
    (the seed level: training noise), then the queries once for both sides (the query level,
    paired). With one seed per side the seed level is constant and this is the query bootstrap.

    Returns ``{"diff", "lo", "hi", "p", "seeds_a", "seeds_b"}``: the observed difference of
    the seed-mean values, the 2.5 and 97.5 percentiles of the drawn differences, a two-sided
    bootstrap p-value and the seed counts."""
    a, b = (np.atleast_2d(np.asarray(x, dtype=np.float64)) for x in (a, b))
    if a.shape[1] != b.shape[1]:
        raise DataError(f"{a.shape[1]} and {b.shape[1]} queries: a paired interval needs the "
                        "same queries for both methods.")
    rng = np.random.default_rng(seed)
    n, samples = a.shape[1], []
    for start in range(0, draws, chunk):
        size = min(chunk, draws - start)
        # seed level as weights: a draw's per-query value is the mean of its drawn seeds
        weights = [rng.multinomial(len(x), np.full(len(x), 1 / len(x)), size) / len(x)
                   for x in (a, b)]
        per = weights[0] @ a - weights[1] @ b  # (size, queries)
        picks = rng.integers(0, n, size=(size, n))
        samples.append(np.take_along_axis(per, picks, 1).mean(1))
    samples = np.concatenate(samples)
    lo, hi = np.percentile(samples, [2.5, 97.5])
    p = min(1.0, 2 * min(np.mean(samples <= 0), np.mean(samples >= 0)))
    return {"diff": float(a.mean() - b.mean()), "lo": float(lo), "hi": float(hi),
            "p": float(p), "seeds_a": len(a), "seeds_b": len(b)}
