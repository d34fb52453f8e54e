"""Filtered link-prediction ranks, batched on the device, with realistic tie handling.

For a query (h, r, ?) every candidate tail is scored; the other known true tails of (h, r)
(from the filter triples: train, valid and test of the target KG, the standard filtered
setting) are removed; the rank of the true tail is the *realistic* rank, the mean of the
optimistic rank ``1 + #{score > true}`` and the pessimistic rank ``#{score >= true}`` (PyKEEN's
default). Heads are ranked through reciprocal relations (``r + n_relations``) when
``both=True``; the benchmark protocol of DBP-5L ranks tails only.

:func:`ranks_from_scores` is the core (a score matrix in, ranks out); :func:`evaluate` drives it
over a model in batches. ``tests/test_kg.py`` checks it against PyKEEN's RankBasedEvaluator.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

__all__ = ["FilterIndex", "ranks_from_scores", "metrics_from_ranks", "evaluate",
           "rotate_tail_scorer"]


class FilterIndex:
    """Known tails per (head, relation), as sorted keys for vectorised look-up."""

    def __init__(self, triples: np.ndarray, n_relations: int, n_entities: int):
        self.n_relations, self.n_entities = n_relations, n_entities
        triples = np.asarray(triples, dtype=np.int64)
        keys = triples[:, 0] * n_relations + triples[:, 1]
        order = np.argsort(keys, kind="stable")
        self.keys = torch.from_numpy(keys[order])
        self.tails = torch.from_numpy(triples[order, 2])

    def mask(self, heads: torch.Tensor, relations: torch.Tensor, n_candidates: int
             ) -> torch.Tensor:
        """Boolean ``(B, n_candidates)``: True where (h, r, candidate) is a known triple."""
        q = (heads.cpu() * self.n_relations + relations.cpu())
        lo = torch.searchsorted(self.keys, q, right=False)
        hi = torch.searchsorted(self.keys, q, right=True)
        counts = hi - lo
        rows = torch.repeat_interleave(torch.arange(len(q)), counts)
        starts = torch.repeat_interleave(lo, counts)
        within = torch.arange(int(counts.sum())) - torch.repeat_interleave(
            torch.cumsum(counts, 0) - counts, counts)
        cols = self.tails[starts + within]
        keep = cols < n_candidates
        out = torch.zeros(len(q), n_candidates, dtype=torch.bool)
        out[rows[keep], cols[keep]] = True
        return out


def ranks_from_scores(scores: torch.Tensor, true_idx: torch.Tensor,
                      known: torch.Tensor | None = None) -> torch.Tensor:
    """Realistic filtered ranks (float64) of ``true_idx`` in each row of ``scores``.

    ``known`` (same shape, bool) marks candidates to filter out; the true one is never removed.
    Scores are compared in their own dtype: a comparison of two floats of one dtype is exact,
    so a float64 copy would give the same ranks at twice the memory traffic.
    """
    rows = torch.arange(len(scores), device=scores.device)
    true = scores[rows, true_idx].unsqueeze(1)
    above, tied = scores > true, scores == true
    if known is not None:  # masks, not a filled copy of the scores
        keep = ~known.to(scores.device)
        keep[rows, true_idx] = True
        above &= keep
        tied &= keep
    # int32 sums: a bool .sum() would first copy the matrix into int64
    greater = above.sum(1, dtype=torch.int32).to(torch.int64)
    equal = tied.sum(1, dtype=torch.int32).to(torch.int64)  # includes the true candidate
    optimistic = greater + 1
    pessimistic = greater + equal
    return (optimistic + pessimistic).to(torch.float64) / 2


def metrics_from_ranks(ranks: torch.Tensor | np.ndarray, ks=(1, 3, 10)) -> dict[str, float]:
    """MRR, Hits@k and MR of realistic ranks."""
    ranks = torch.as_tensor(ranks, dtype=torch.float64)
    out = {"mrr": float((1.0 / ranks).mean()), "mr": float(ranks.mean()), "n": int(len(ranks))}
    for k in ks:
        out[f"hits@{k}"] = float((ranks <= k).to(torch.float64).mean())
    return out


@torch.no_grad()
def evaluate(score_tails: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
             triples: np.ndarray, filter_triples: np.ndarray, *, n_candidates: int,
             n_relations: int, both: bool = False, batch_size: int = 512,
             device: torch.device | str = "cpu", return_ranks: bool = False) -> dict:
    """Filtered MRR / Hits@1,3,10 of ``triples`` (tails; heads too when ``both``).

    Args:
        score_tails: ``(heads, relations) -> (B, n_candidates)`` scores; relations
            ``>= n_relations`` are the reciprocal ones (used for head queries).
        triples: ``(n, 3)`` test (or valid) triples, entity ids in ``0..n_candidates-1``.
        filter_triples: every known true triple of the KG (train + valid + test).
        n_candidates: entities ranked (the target KG's entities).
    """
    device = torch.device(device)
    triples = np.asarray(triples, dtype=np.int64)
    filt = np.asarray(filter_triples, dtype=np.int64)
    queries = [triples]
    if both:
        filt = np.concatenate([filt, filt[:, [2, 1, 0]] + [0, n_relations, 0]])
        queries.append(triples[:, [2, 1, 0]] + [0, n_relations, 0])
    index = FilterIndex(filt, 2 * n_relations, n_candidates)
    query = torch.from_numpy(np.concatenate(queries))
    ranks = []
    for start in range(0, len(query), batch_size):
        batch = query[start:start + batch_size]
        h, r, t = batch[:, 0].to(device), batch[:, 1].to(device), batch[:, 2].to(device)
        scores = score_tails(h, r)  # a model's scorer may answer on its own device
        known = index.mask(batch[:, 0], batch[:, 1], n_candidates).to(scores.device)
        ranks.append(ranks_from_scores(scores, t.to(scores.device), known).cpu())
    all_ranks = torch.cat(ranks) if ranks else torch.zeros(0, dtype=torch.float64)
    out = metrics_from_ranks(all_ranks)
    if return_ranks:
        out["ranks"] = all_ranks.numpy()
    return out


def validation_mrr(ms, scorers: dict[str, Callable], selection: dict[str, np.ndarray]
                   ) -> Callable[[torch.nn.Module], dict[str, float]]:
    """The selection metric of every KG trainer: ``model -> {KG: filtered MRR}`` (tails) on
    each KG's fixed selection facts (:attr:`sellakit.kg.protocol.DataRule.selection`), so every
    check of every model sees the same triples. A trainer selects on the mean over the KGs.

    Args:
        ms: the :class:`~sellakit.kg.data.MultiSourceKG` (filter: each KG's train+valid+test).
        scorers: KG name -> ``model -> score_tails`` (the model's scorer over that KG's
            entities, e.g. :func:`sellakit.kg.pretrain.kg_scorer` for a joint space).
        selection: KG name -> the triples to rank.
    """
    def valid_mrr(model: torch.nn.Module) -> dict[str, float]:
        return {name: evaluate(scorers[name](model), selection[name], ms.kgs[name].all_triples(),
                               n_candidates=ms.kgs[name].n_entities,
                               n_relations=ms.n_relations)["mrr"]
                for name in scorers if len(selection[name])}
    return valid_mrr


def rotate_tail_scorer(entities: torch.Tensor, relations: torch.Tensor
                       ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """RotatE tail scores ``-||e_h * r - e_t||`` against every entity, as one matrix product.

    ``||a - t||^2 = ||a||^2 + ||t||^2 - 2 Re<a, t>``: the (batch x entities x dim) difference
    that a broadcast scorer builds is never formed, which is where the time goes. Computed in
    float64 so the ranks match a float32 broadcast scorer's (PyKEEN's) up to its rounding.

    Args:
        entities: complex ``(n_entities, dim)``; relations: complex ``(n_relations, dim)``.
    """
    ent = entities.detach().to(torch.complex128)
    rel = relations.detach().to(torch.complex128)
    # Real form: [Re, Im] so that Re<a, t> is a plain real matrix product.
    ent_real = torch.cat([ent.real, ent.imag], 1)
    ent_sq = (ent_real ** 2).sum(1)

    def score(heads: torch.Tensor, rels: torch.Tensor) -> torch.Tensor:
        a = ent[heads] * rel[rels]
        a_real = torch.cat([a.real, a.imag], 1)
        d2 = (a_real ** 2).sum(1, keepdim=True) + ent_sq[None] - 2 * a_real @ ent_real.T
        return -d2.clamp(min=0).sqrt()

    return score
