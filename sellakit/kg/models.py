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

**The interaction table.** As PyKEEN's interaction classes, each interaction is a class whose
facts are ``ClassVar``s (reals per entity and per relation coordinate, the relation table's
initial range, distance or product score) with its relation transform as a method;
:data:`INTERACTIONS` is the resolver, name -> class, that the model, the warm start, the
configs and the command line read. A new interaction is its class plus one row there.

**Encoders.** With ``encoder="none"`` (default) an entity is its row of the table (a
*shallow* model). With ``encoder="gnn"`` it is its row plus a learned map of the mean message
of up to ``neighbours`` in-edges, the message of (u, r, v) being the model's own query
representation ``q(u, r)`` (a CompGCN-style layer whose composition is the decoder's relation
transform; under RotatE or TransE a consistent neighbour's message is close to ``e_v``)::

    x_v = e_v + W · mean_{(u, r) -> v} q(e_u, w_r)

``W`` starts at zero, so a GNN model starts as the shallow one and learns how much of its
neighbourhood to use. The in-edges (reciprocals included) are drawn once, seeded, when the
model is built from its training graph, and kept as buffers (saved with the weights). A path
encoder over random walks (RSN, the paper's family) is not implemented; the GNN is the kit's
structural encoder.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar, Literal, get_args

import numpy as np
import torch
from torch import nn

from sellakit.errors import ConfigError
from sellakit.kg.optim import RowAdam

__all__ = ["KGEModel", "Interaction", "RotatE", "TransE", "ComplEx", "INTERACTIONS",
           "InteractionName", "resolve_interaction", "MODELS", "ENCODERS", "neighbour_table"]


class Interaction:
    """How a (head, relation, tail) is scored: the facts of one interaction (PyKEEN's style).

    An entity has ``entity_reals * dim`` real numbers (2: a complex coordinate is a real and an
    imaginary half, ``[re | im]``), a relation ``relation_reals * dim``.
    """

    #: the name in :data:`INTERACTIONS` (``TrainConfig.model``, ``--model``)
    name: ClassVar[str]
    #: real numbers per entity coordinate (2: complex, stored as halves ``[re | im]``)
    entity_reals: ClassVar[int] = 2
    #: real numbers per relation coordinate (RotatE: 1, a phase)
    relation_reals: ClassVar[int] = 2
    #: the relation table starts uniform in ``[-b, b]``; None: ``b = 1 / sqrt(dim)``, as the
    #: entity table
    relation_bound: ClassVar[float | None] = None
    #: score ``gamma - ||q - e_t||`` (a distance model); False: ``<q, e_t>``, the real part of
    #: the complex product
    distance: ClassVar[bool] = True

    @staticmethod
    def transform(e: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Entity vectors ``e`` transformed by relation parameters ``w``: the query ``q``."""
        raise NotImplementedError


def _complex_product(e: torch.Tensor, wr: torch.Tensor, wi: torch.Tensor) -> torch.Tensor:
    re, im = e.chunk(2, dim=-1)
    return torch.cat([re * wr - im * wi, re * wi + im * wr], dim=-1)


class RotatE(Interaction):
    """``gamma - ||e_h o w_r - e_t||``, ``w_r`` unit-modulus: a phase per coordinate."""

    name = "rotate"
    relation_reals = 1
    relation_bound = math.pi

    @staticmethod
    def transform(e: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return _complex_product(e, torch.cos(w), torch.sin(w))


class TransE(Interaction):
    """``gamma - ||e_h + w_r - e_t||`` in real coordinates."""

    name = "transe"
    entity_reals = relation_reals = 1

    @staticmethod
    def transform(e: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return e + w


class ComplEx(Interaction):
    """``Re <e_h o w_r, conj(e_t)>`` in complex coordinates."""

    name = "complex"
    distance = False

    @staticmethod
    def transform(e: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return _complex_product(e, *w.chunk(2, dim=-1))


#: The interaction table (PyKEEN's resolver): name -> class, read-only.
INTERACTIONS: Mapping[str, type[Interaction]] = MappingProxyType(
    {cls.name: cls for cls in (RotatE, TransE, ComplEx)})
#: The names of :data:`INTERACTIONS` as a type, read from the table (``TrainConfig.model``,
#: checked when a config is made).
InteractionName = Literal[tuple(INTERACTIONS)]  # type: ignore[valid-type]
Encoder = Literal["none", "gnn"]
MODELS = tuple(INTERACTIONS)
ENCODERS = get_args(Encoder)


def resolve_interaction(name: str, table: Mapping[str, type[Interaction]] | None = None
                        ) -> type[Interaction]:
    """The interaction class of ``name`` in ``table`` (default :data:`INTERACTIONS`)."""
    table = INTERACTIONS if table is None else table
    if name not in table:
        raise ConfigError(f"interaction={name!r} is not allowed; choose one of "
                          f"{', '.join(table)} (the rows of sellakit.kg.models.INTERACTIONS).")
    return table[name]


def neighbour_table(graph: np.ndarray, n_entities: int, k: int, seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Up to ``k`` in-edges per entity, drawn uniformly (seeded) from ``graph``'s (h, r, t).

    Returns ``(heads, relations, mask)``, each ``(n_entities, k)``: row ``v`` lists the (u, r)
    of triples (u, r, v); ``mask`` marks the filled slots.
    """
    graph = np.asarray(graph, dtype=np.int64).reshape(-1, 3)
    rng = np.random.default_rng(seed)
    shuffled = graph[rng.permutation(len(graph))]
    shuffled = shuffled[np.argsort(shuffled[:, 2], kind="stable")]
    tails = shuffled[:, 2]
    rank = np.arange(len(shuffled)) - np.searchsorted(tails, tails)  # position within its tail
    keep = rank < k
    heads = np.zeros((n_entities, k), np.int64)
    relations = np.zeros((n_entities, k), np.int64)
    mask = np.zeros((n_entities, k), bool)
    rows, cols = tails[keep], rank[keep]
    heads[rows, cols], relations[rows, cols], mask[rows, cols] = \
        shuffled[keep, 0], shuffled[keep, 1], True
    return heads, relations, mask


class KGEModel(nn.Module):
    """Entity and relation tables plus one interaction (see the module docstring).

    Args:
        n_entities: rows of the entity table.
        n_relations: base relations; the table holds ``2 * n_relations`` (reciprocals).
        dim: embedding size (complex models store ``2 * dim`` reals per entity).
        interaction: how a (head, relation, tail) is scored: a name in :data:`INTERACTIONS`
            or an :class:`Interaction` class.
        gamma: margin of the distance models.

    The entity and relation tables give sparse gradients from the start: an Adam step of
    :meth:`configure_optimizers` then touches only the batch's rows.
    """

    def __init__(self, n_entities: int, n_relations: int, dim: int,
                 interaction: str | type[Interaction] = "rotate", gamma: float = 6.0, *,
                 encoder: str = "none", graph: np.ndarray | None = None, neighbours: int = 10,
                 seed: int = 0):
        super().__init__()
        kind = interaction if isinstance(interaction, type) else \
            resolve_interaction(interaction)
        if encoder not in ENCODERS:
            raise ConfigError(f"encoder={encoder!r} is not allowed; choose one of "
                              f"{', '.join(ENCODERS)}.")
        if encoder == "gnn" and graph is None:
            raise ConfigError("encoder='gnn' needs graph=, the training triples (reciprocals "
                             "included) whose in-edges it aggregates.")
        self.encoder = encoder
        self.kind: type[Interaction] = kind  # the interaction's class; its name below
        self.interaction, self.dim, self.gamma = kind.name, dim, gamma
        self.n_entities, self.n_relations = n_entities, n_relations
        width = kind.entity_reals * dim
        self.entity = nn.Embedding(n_entities, width, sparse=True)
        bound = 1.0 / math.sqrt(dim)
        nn.init.uniform_(self.entity.weight, -bound, bound)
        self.relation = nn.Embedding(2 * n_relations, kind.relation_reals * dim, sparse=True)
        relation_bound = bound if kind.relation_bound is None else kind.relation_bound
        nn.init.uniform_(self.relation.weight, -relation_bound, relation_bound)
        self._table: torch.Tensor | None = None  # the encoded entity table, eval mode only
        if encoder == "gnn":
            heads, relations, mask = neighbour_table(graph, n_entities, neighbours, seed)
            self.register_buffer("neighbour_heads", torch.from_numpy(heads))
            self.register_buffer("neighbour_relations", torch.from_numpy(relations))
            self.register_buffer("neighbour_mask", torch.from_numpy(mask))
            self.combine = nn.Linear(width, width, bias=False)
            nn.init.zeros_(self.combine.weight)  # starts as the shallow model

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        """Lazy Adam for the tables (:class:`~sellakit.kg.optim.RowAdam`, SparseAdam's update
        row by row), Adam for the rest (the GNN map), when there is any.

        Sparse gradients for the tables: an Adam step then touches only the rows of the batch
        (several times faster on CPU than a dense step over every entity).
        """
        tables = [self.entity.weight, self.relation.weight]
        optimisers: list[torch.optim.Optimizer] = [RowAdam(tables, lr=lr)]
        dense = [p for p in self.parameters() if all(p is not t for t in tables)]
        if dense:
            optimisers.append(torch.optim.Adam(dense, lr=lr))
        return optimisers

    @property
    def width(self) -> int:
        """Real numbers per entity vector (and per query representation)."""
        return self.entity.weight.shape[1]

    def embed(self, entities: torch.Tensor) -> torch.Tensor:
        """Entity representations ``(*entities.shape, width)``: table rows, or GNN-encoded
        (read from the cached table in eval mode without grad, see :meth:`entity_table`)."""
        if self.encoder == "none":
            return self.entity(entities)
        if not self.training and not torch.is_grad_enabled():
            return self.entity_table()[entities]
        return self._encode(entities)

    def _encode(self, entities: torch.Tensor) -> torch.Tensor:
        e = self.entity(entities)
        mask = self.neighbour_mask[entities].unsqueeze(-1).to(e.dtype)
        messages = self._transform(self.entity(self.neighbour_heads[entities]),
                                   self.relation(self.neighbour_relations[entities]))
        mean = (messages * mask).sum(-2) / mask.sum(-2).clamp_min(1.0)
        return e + self.combine(mean)

    def entity_table(self, chunk: int = 8192) -> torch.Tensor:
        """Every entity's representation ``(n_entities, width)``. In eval mode without grad
        (evaluation, a frozen teacher) the encoded table is computed once and reused until
        the model trains again or moves."""
        if self.encoder == "none":
            return self.entity.weight
        if self._table is not None:
            return self._table
        ids = torch.arange(self.n_entities, device=self.entity.weight.device)
        table = torch.cat([self._encode(ids[s:s + chunk]) for s in range(0, len(ids), chunk)])
        if not self.training and not torch.is_grad_enabled():
            self._table = table
        return table

    def train(self, mode: bool = True):
        self._table = None
        return super().train(mode)

    def _apply(self, fn, *args, **kwargs):
        self._table = None
        return super()._apply(fn, *args, **kwargs)

    def query(self, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        """The relation-transformed head ``(B, width)`` (ids are moved to the model's device)."""
        device = self.entity.weight.device
        return self._transform(self.embed(heads.to(device)), self.relation(relations.to(device)))

    def _transform(self, e: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Entity vectors ``e`` transformed by relation parameters ``w`` (same leading dims)."""
        return self.kind.transform(e, w)

    def score_query(self, q: torch.Tensor, candidates: torch.Tensor | None = None
                    ) -> torch.Tensor:
        """Scores ``(B, C)`` of queries against candidate entities (all when None), or
        ``(B, K)`` when ``candidates`` is ``(B, K)`` (per-row candidates)."""
        table = self.entity_table() if candidates is None else self.embed(candidates)
        if table.dim() == 3:
            dot = torch.einsum("bd,bkd->bk", q, table)
            e2 = (table * table).sum(-1)
        else:
            dot = q @ table.T
            e2 = (table * table).sum(-1).unsqueeze(0)
        if not self.kind.distance:
            return dot
        q2 = (q * q).sum(-1, keepdim=True)
        if torch.is_grad_enabled():
            return self.gamma - torch.sqrt((q2 + e2 - 2 * dot).clamp_min(1e-9))
        # no graph to keep (evaluation, a frozen teacher): the same operations in the same
        # order, in place, so the same values without four (B, C) temporaries
        return (q2 + e2).sub_(dot.mul_(2)).clamp_min_(1e-9).sqrt_().neg_().add_(self.gamma)

    def score_tails(self, heads: torch.Tensor, relations: torch.Tensor,
                    n_candidates: int | None = None) -> torch.Tensor:
        """Scores of every entity (or the first ``n_candidates``) as the tail."""
        candidates = None if n_candidates is None else \
            torch.arange(n_candidates, device=self.entity.weight.device)
        return self.score_query(self.query(heads, relations), candidates)
