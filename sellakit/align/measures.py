"""How well two embedding spaces of the same items agree.

* :func:`linear_cka`: linear centred kernel alignment (Kornblith et al., 2019), 0..1; compares
  geometry, so the two spaces may have different dimensions.
* :func:`mutual_knn`: mean overlap of each item's k nearest neighbours (cosine) in both spaces.
* :func:`retrieval_recall`: share of items whose own vector in space B is among the k nearest
  (cosine) to its vector in space A, among all items; needs both in one space (after a
  projection).
* :func:`alignment_uniformity`: Wang & Isola (2020) on the normalised pairs: alignment = mean
  squared distance between an item's two vectors (lower is closer), uniformity = log mean
  Gaussian potential over one space (lower is more spread).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

__all__ = ["linear_cka", "mutual_knn", "retrieval_recall", "alignment_uniformity",
           "alignment_measures", "state_geometry", "own_ranks", "recall_by_group",
           "own_cosine", "pairwise_cosines"]


def _as_tensor(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.float64)


def linear_cka(x, y) -> float:
    """Linear CKA between ``x`` (n, d1) and ``y`` (n, d2)."""
    x, y = _as_tensor(x), _as_tensor(y)
    x, y = x - x.mean(0), y - y.mean(0)
    cross = (y.T @ x).norm() ** 2
    return float(cross / ((x.T @ x).norm() * (y.T @ y).norm()))


def _knn(x: torch.Tensor, k: int) -> torch.Tensor:
    x = torch.nn.functional.normalize(x, dim=1)
    sims = x @ x.T
    sims.fill_diagonal_(-float("inf"))
    return sims.topk(k, dim=1).indices


def mutual_knn(x, y, k: int = 10) -> float:
    """Mean |kNN_x(i) ∩ kNN_y(i)| / k over items (cosine; chance is about k / n)."""
    a, b = _knn(_as_tensor(x), k), _knn(_as_tensor(y), k)
    hits = (a.unsqueeze(2) == b.unsqueeze(1)).any(2).sum(1)
    return float(hits.double().mean() / k)


def own_ranks(queries, keys) -> np.ndarray:
    """For each row i, how many of ``keys`` are nearer (cosine) to ``queries[i]`` than its own
    ``keys[i]`` (0: its own is the nearest; ties count for it)."""
    q = torch.nn.functional.normalize(_as_tensor(queries), dim=1)
    keys = torch.nn.functional.normalize(_as_tensor(keys), dim=1)
    sims = q @ keys.T
    own = sims.diagonal().unsqueeze(1)
    return (sims > own).sum(1).numpy()


def retrieval_recall(queries, keys, k: int = 10) -> float:
    """Share of rows i whose ``keys[i]`` is among the k nearest keys to ``queries[i]``."""
    return float((own_ranks(queries, keys) < k).mean())


def recall_by_group(projected: np.ndarray, target: np.ndarray, groups: dict[str, np.ndarray],
                    ks: tuple[int, ...] = (1, 5, 10, 50, 100)) -> pd.DataFrame:
    """Recall@k of each group of item ids (rows of ``projected`` and ``target``), every item
    searched among the items of all groups, with chance ``k / n`` beside it.

    Use it to ask whether an alignment generalises: one group the items InfoNCE trained on, one
    it never saw. Returns one row per (group, k): ``group, items, k, recall, chance``."""
    order = np.concatenate([np.asarray(ids) for ids in groups.values()])
    ranks = own_ranks(projected[order], target[order])
    rows, start = [], 0
    for name, ids in groups.items():
        part = ranks[start:start + len(ids)]
        start += len(ids)
        rows += [{"group": name, "items": len(ids), "k": k, "recall": float((part < k).mean()),
                  "chance": min(1.0, k / len(order))} for k in ks]
    return pd.DataFrame(rows)


def own_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of ``a[i]`` and ``b[i]``."""
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.maximum(norms, 1e-12)


def pairwise_cosines(table: np.ndarray, sample: int = 500, seed: int = 0) -> np.ndarray:
    """Cosines of every pair of a seeded sample of the non-zero rows (the upper triangle)."""
    rng = np.random.default_rng(seed)
    present = np.flatnonzero(np.linalg.norm(table, axis=1) > 0)
    rows = table[rng.choice(present, size=min(sample, len(present)), replace=False)]
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return (unit @ unit.T)[np.triu_indices(len(rows), 1)]


def alignment_uniformity(x, y, t: float = 2.0) -> dict[str, float]:
    """Wang & Isola's alignment (pairs) and uniformity (of ``x``) on unit vectors."""
    x = torch.nn.functional.normalize(_as_tensor(x), dim=1)
    y = torch.nn.functional.normalize(_as_tensor(y), dim=1)
    align = (x - y).norm(dim=1).pow(2).mean()
    distances = torch.pdist(x).pow(2)
    uniform = distances.mul(-t).exp().mean().log()
    return {"alignment": float(align), "uniformity": float(uniform)}


def alignment_measures(cf, semantic, projected=None, k: int = 10) -> dict[str, float]:
    """CKA and mutual k-NN of the CF space vs the semantic space; with ``projected`` (the CF
    items mapped into the LLM space), also retrieval Recall@k, alignment and uniformity."""
    out = {"cka": linear_cka(cf, semantic), f"mutual_knn@{k}": mutual_knn(cf, semantic, k)}
    if projected is not None:
        out[f"recall@{k}"] = retrieval_recall(projected, semantic, k)
        out.update(alignment_uniformity(projected, semantic))
    return out


def state_geometry(table: np.ndarray, sample: int = 1000, seed: int = 0) -> dict:
    """Median norm and mean pairwise cosine of item states, raw and centred (a seeded sample of
    the non-zero rows): how much of the raw states is one direction shared by every item."""
    from sellakit.llm import center_items

    rng = np.random.default_rng(seed)
    present = np.flatnonzero(np.linalg.norm(table, axis=1) > 0)
    pick = rng.choice(present, size=min(sample, len(present)), replace=False)
    out = {}
    for name, states in (("raw", table), ("centred", center_items(table)[0])):
        rows = states[pick]
        unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        cosine = unit @ unit.T
        out[name] = {"median_norm": float(np.median(np.linalg.norm(rows, axis=1))),
                     "mean_pairwise_cosine": float(cosine[~np.eye(len(rows), dtype=bool)].mean())}
    return out
