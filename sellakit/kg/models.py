"""KG-embedding scorers: RotatE (default), TransE, ComplEx, with reciprocal relations.

Every model scores a query (h, r, ?) against many candidate tails at once, through a
*query representation* ``q = f(e_h, w_r)`` (the relation-transformed head: ``e_h + w_r`` for
TransE, ``e_h * w_r`` in complex numbers for RotatE and ComplEx). That intermediate state is
what network distillation compares between teacher and student. Head queries use the
reciprocal relation ``r + n_relations``.

* TransE:  score = gamma - ||e_h + w_r - e_t||
* RotatE:  score = gamma - ||e_h o w_r - e_t||, w_r unit-modulus (a phase per dimension)
* ComplEx: score = Re <e_h o w_r, conj(e_t)>

Distances use ``|q|^2 + |e|^2 - 2 q.e`` so a batch against every candidate is one matrix
product.

A path encoder (RSN / Transformer over random walks, the paper's family) is **not**
implemented; see the README's notes.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["KGEModel", "MODELS"]

MODELS = ("rotate", "transe", "complex")


class KGEModel(nn.Module):
    """Entity and relation tables plus one interaction (see the module docstring).

    Args:
        n_entities: rows of the entity table.
        n_relations: base relations; the table holds ``2 * n_relations`` (reciprocals).
        dim: embedding size (complex models store ``2 * dim`` reals per entity).
        model: one of :data:`MODELS`.
        gamma: margin of the distance models.
    """

    def __init__(self, n_entities: int, n_relations: int, dim: int, model: str = "rotate",
                 gamma: float = 6.0):
        super().__init__()
        if model not in MODELS:
            raise ValueError(f"model {model!r}: choose one of {', '.join(MODELS)}.")
        self.model, self.dim, self.gamma = model, dim, gamma
        self.n_entities, self.n_relations = n_entities, n_relations
        width = dim if model == "transe" else 2 * dim
        self.entity = nn.Embedding(n_entities, width)
        bound = 1.0 / math.sqrt(dim)
        nn.init.uniform_(self.entity.weight, -bound, bound)
        if model == "rotate":
            self.relation = nn.Embedding(2 * n_relations, dim)
            nn.init.uniform_(self.relation.weight, -math.pi, math.pi)
        else:
            self.relation = nn.Embedding(2 * n_relations, width)
            nn.init.uniform_(self.relation.weight, -bound, bound)

    @property
    def width(self) -> int:
        """Real numbers per entity vector (and per query representation)."""
        return self.entity.weight.shape[1]

    def query(self, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        """The relation-transformed head ``(B, width)``."""
        e = self.entity(heads)
        w = self.relation(relations)
        if self.model == "transe":
            return e + w
        re, im = e.chunk(2, dim=-1)
        if self.model == "rotate":
            wr, wi = torch.cos(w), torch.sin(w)
        else:
            wr, wi = w.chunk(2, dim=-1)
        return torch.cat([re * wr - im * wi, re * wi + im * wr], dim=-1)

    def score_query(self, q: torch.Tensor, candidates: torch.Tensor | None = None
                    ) -> torch.Tensor:
        """Scores ``(B, C)`` of queries against candidate entities (all when None), or
        ``(B, K)`` when ``candidates`` is ``(B, K)`` (per-row candidates)."""
        table = self.entity.weight if candidates is None else self.entity(candidates)
        if table.dim() == 3:
            dot = torch.einsum("bd,bkd->bk", q, table)
            e2 = (table * table).sum(-1)
        else:
            dot = q @ table.T
            e2 = (table * table).sum(-1).unsqueeze(0)
        if self.model == "complex":
            return dot
        q2 = (q * q).sum(-1, keepdim=True)
        return self.gamma - torch.sqrt((q2 + e2 - 2 * dot).clamp_min(1e-9))

    def score_tails(self, heads: torch.Tensor, relations: torch.Tensor,
                    n_candidates: int | None = None) -> torch.Tensor:
        """Scores of every entity (or the first ``n_candidates``) as the tail."""
        candidates = None if n_candidates is None else \
            torch.arange(n_candidates, device=heads.device)
        return self.score_query(self.query(heads, relations), candidates)
