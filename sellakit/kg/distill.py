"""The student's start and its distillation terms, with every teacher output computed once.

**Warm start.** The student (width ``d_S`` complex coordinates) starts from the teacher's rows
(``d_T`` coordinates) restricted to the ``d_S`` coordinates that carry the most energy over the
teacher's entity table: RotatE, TransE and ComplEx score coordinate by coordinate, so a subset
of coordinates, with the relations' parameters on the same coordinates, is itself a model of
the same kind (the *projection* when the widths differ; the identity when they match).

**Terms.** With ``M`` mapping each student entity to its teacher row:

* **feature**: ``L_F = mean_x ||W_F s_x - t_M(x)||^2 / d`` over the batch's entities x (heads,
  tails, negatives), where ``t`` is the teacher's table row (precomputed) and ``W_F`` a learned
  map, initialised to the warm start's coordinate embedding;
* **network**: the same on the *encoded* representation (the GNN encoder's output), which only
  differs from the table row when the model has an encoder. A shallow model has no network
  between its table and its relation transform, so there the term would repeat feature KD
  (the query ``e_h ∘ w_r`` is a fixed rotation of the row): it is folded into feature KD and
  switched off;
* **prediction**: ``L_P = tau^2 KL(softmax(z^T / tau) || softmax(z^S / tau))`` over the same
  candidates the link-prediction loss scores: each query's true tail and the batch's shared
  uniform negatives (J2's batch and negatives). ``z^T`` is one matrix product of the frozen
  teacher per batch (its rows in student ids, :func:`teacher_rows`); a candidate whose triple
  re-expresses a held-out fact is left out of the KL (masked), as is the true tail among the
  negatives and any entity the teacher has no row for.

Loss: sampled-softmax link prediction on the linked subgraph plus
``w_feature L_F + w_network L_N + w_prediction L_P``.

**A target the teacher never saw** (the new-KG setting): its linked entities take their
partner's teacher row; an unlinked entity the mean of the rows of its neighbours that have one
(:func:`teacher_rows`); one with neither keeps its random start and gets no KD.

**Temperature.** Fixed at ``tau = 2`` (:class:`KDConfig`): on DBP-5L the three temperatures
1 / 2 / 4 gave selection MRRs within 0.4 points of each other (issue 24), below the 1.3-point
standard error of a 1,000-fact selection set, so a search cannot tell them apart and would
triple the student's time; 2 is Hinton et al.'s usual softening.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from sellakit.config import Config, bounded
from sellakit.errors import ConfigError
from sellakit.kg.models import KGEModel
from sellakit.selection import ExtraLoss

__all__ = ["KDConfig", "Distiller", "KD_TERMS", "TEMPERATURES", "warm_start",
           "strongest_coordinates", "teacher_rows"]

KD_TERMS = ("feature", "network", "prediction")
#: The temperatures a search would choose from (off by default: see the module docstring).
TEMPERATURES = (1.0, 2.0, 4.0)


@dataclass(frozen=True)
class KDConfig(Config):
    """Which KD terms are on, their weights and the temperature."""

    PRESETS: ClassVar[tuple[str, ...]] = ()

    feature: bool = True
    network: bool = True  # acts only on an encoder (see the module docstring)
    prediction: bool = True
    w_feature: float = bounded(1.0, at_least=0)
    w_network: float = bounded(1.0, at_least=0)
    w_prediction: float = bounded(1.0, at_least=0)
    temperature: float = bounded(2.0, above=0)  # fixed: see the module docstring

    def without(self, term: str) -> "KDConfig":
        """The same config with ``term`` switched off."""
        if term not in KD_TERMS:
            raise ConfigError(f"KD term {term!r} is not known; choose one of "
                              f"{', '.join(KD_TERMS)}.")
        return replace(self, **{term: False})

    @property
    def any(self) -> bool:
        return self.feature or self.network or self.prediction


def strongest_coordinates(teacher: KGEModel, dim: int) -> torch.Tensor:
    """The ``dim`` coordinates (complex ones for RotatE/ComplEx) with the largest mean squared
    magnitude over the teacher's entity table, in increasing order (on the CPU, where the
    student is built, whatever the teacher's device)."""
    if dim > teacher.dim:
        raise ConfigError(f"The student (dim={dim}) is wider than the teacher "
                          f"(dim={teacher.dim}); a warm start needs dim <= the teacher's.")
    # |x|^2 per coordinate: the squares of its reals, the halves [re | im] (or one [x])
    energy = sum(half ** 2 for half in teacher.entity.weight.detach().split(teacher.dim, 1))
    return torch.sort(torch.topk(energy.mean(0), dim).indices).values.cpu()


def _columns(coords: torch.Tensor, dim: int, reals: int) -> torch.Tensor:
    """Real columns that hold coordinates ``coords`` in a table of ``reals`` reals per
    coordinate (:class:`~sellakit.kg.models.Interaction`'s layout: each half's when 2)."""
    return torch.cat([coords + k * dim for k in range(reals)]) if reals > 1 else coords


def _entity_columns(model_like: KGEModel, coords: torch.Tensor) -> torch.Tensor:
    return _columns(coords, model_like.dim, model_like.kind.entity_reals)


@torch.no_grad()
def teacher_rows(table: torch.Tensor, teacher_ids: np.ndarray, graph: np.ndarray | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each student entity's teacher row from ``table`` (a teacher table, ``(rows, width)``):
    row ``teacher_ids[i]`` where it is >= 0; else (a target entity the teacher never saw) the
    mean of the rows of its neighbours in ``graph`` (student triples) that have one; else
    zeros. Returns the rows and a bool mask of the entities that got one, on the CPU (the
    student is built there; the trainer moves them with it)."""
    ids = torch.as_tensor(np.asarray(teacher_ids), dtype=torch.long)
    known = ids >= 0
    rows = torch.zeros(len(ids), table.shape[1], dtype=table.dtype)
    rows[known] = table[ids[known].to(table.device)].detach().cpu()
    if bool(known.all()) or graph is None or len(graph) == 0:
        return rows, known
    edges = torch.as_tensor(np.concatenate([graph[:, [0, 2]], graph[:, [2, 0]]]))
    edges = edges[~known[edges[:, 0]] & known[edges[:, 1]]]  # unknown <- known neighbour
    sums = torch.zeros_like(rows).index_add_(0, edges[:, 0], rows[edges[:, 1]])
    counts = torch.zeros(len(ids)).index_add_(0, edges[:, 0], torch.ones(len(edges)))
    filled = counts > 0
    rows[filled] = sums[filled] / counts[filled, None]
    return rows, known | filled


@torch.no_grad()
def warm_start(student: KGEModel, teacher: KGEModel, teacher_ids: np.ndarray,
               graph: np.ndarray | None = None) -> torch.Tensor:
    """Copy the teacher's rows (``teacher_ids[i]`` for student entity ``i``; -1: filled by
    :func:`teacher_rows` from ``graph``, else left as initialised) and relations on its
    strongest ``student.dim`` coordinates into ``student``; returns those coordinates."""
    if (student.kind, student.encoder) != (teacher.kind, teacher.encoder):
        raise ConfigError("A warm start needs the student and teacher of one kind (interaction "
                          f"and encoder); got {student.interaction}/{student.encoder} and "
                          f"{teacher.interaction}/{teacher.encoder}. Fix: give the student's "
                          "TrainConfig the teacher's model and encoder.")
    coords = strongest_coordinates(teacher, student.dim)
    rows, known = teacher_rows(teacher.entity.weight, teacher_ids, graph)
    cols = _entity_columns(teacher, coords)
    here = student.entity.weight.device  # the teacher may live on another device
    known = known.to(here)
    student.entity.weight[known] = rows.to(here)[known][:, cols.to(here)].to(
        student.entity.weight)
    rel_cols = _columns(coords, teacher.dim, teacher.kind.relation_reals)
    student.relation.weight.copy_(teacher.relation.weight[:, rel_cols])
    return coords


def _frozen_view(teacher: KGEModel, rows: torch.Tensor) -> KGEModel:
    """A shallow copy of ``teacher`` whose entity table is ``rows`` (its representations in
    student ids): scores exactly as the teacher does on those entities, never trained."""
    view = KGEModel(len(rows), teacher.n_relations, teacher.dim, teacher.kind, teacher.gamma)
    with torch.no_grad():
        view.entity.weight.copy_(rows)
        view.relation.weight.copy_(teacher.relation.weight.detach().cpu())
    view.requires_grad_(False)
    return view.eval()


class Distiller(ExtraLoss):
    """The KD terms as :func:`sellakit.kg.train.train_kge`'s ``extra_loss``: only the
    projections train (:meth:`trainable_parameters`, stepped by :meth:`configure_optimizers`).

    Args:
        teacher: the frozen teacher; teacher_ids: student entity -> teacher row (-1: none,
            filled from ``graph`` by :func:`teacher_rows`).
        student_width: real numbers per student entity vector.
        config: the terms, weights and temperature.
        graph: the student's training triples (the fill's neighbours).
        banned: sorted canonical keys of facts no KD candidate may re-express (the held-out
            facts, :meth:`sellakit.kg.protocol.DataRule.banned_keys`), with ``canon`` each
            student entity's canonical id; coords: the warm start's coordinates (W_F's start).
    """

    def __init__(self, teacher: KGEModel, teacher_ids: np.ndarray, student_width: int,
                 config: KDConfig, *, graph: np.ndarray | None = None,
                 banned: np.ndarray, canon: np.ndarray, coords: torch.Tensor | None = None):
        super().__init__()
        self.config, self.n_relations = config, teacher.n_relations
        self.network_on = config.network and teacher.encoder != "none"
        teacher.eval()
        rows, known = teacher_rows(teacher.entity.weight, teacher_ids, graph)
        self.register_buffer("feature_target", rows)
        self.register_buffer("known", known)
        with torch.no_grad():
            encoded, _ = teacher_rows(teacher.entity_table(), teacher_ids, graph)
        if self.network_on:
            self.register_buffer("network_target", encoded)
        self.teacher_view = _frozen_view(teacher, encoded) if config.prediction else None
        self.project_feature = nn.Linear(student_width, teacher.width, bias=False)
        self.project_network = nn.Linear(student_width, teacher.width, bias=False)
        if coords is not None:  # start from the warm start's coordinate embedding
            for layer in (self.project_feature, self.project_network):
                nn.init.zeros_(layer.weight)
                cols = _entity_columns(teacher, coords)
                layer.weight.data[cols, torch.arange(len(cols))] = 1.0
        self.register_buffer("canon", torch.as_tensor(np.asarray(canon), dtype=torch.long))
        # sorted and unique: membership is a binary search (_member), not a sort per batch
        banned_t = torch.unique(torch.as_tensor(np.asarray(banned), dtype=torch.long))
        self.register_buffer("banned", banned_t)
        # the query parts of the banned facts: (class(h), r) forward, (r, class(t)) reciprocal
        self.register_buffer("banned_forward", torch.unique(banned_t >> 31))
        self.register_buffer("banned_backward", torch.unique(
            ((banned_t >> 31) % self.n_relations << 31) + (banned_t & ((1 << 31) - 1))))
        # the classes a banned fact can be answered by: its tail (forward), its head (reciprocal)
        self.register_buffer("banned_tails", torch.unique(banned_t & ((1 << 31) - 1)))
        self.register_buffer("banned_heads", torch.unique((banned_t >> 31) // self.n_relations))

    def banned_columns(self, h: torch.Tensor, r: torch.Tensor, columns: torch.Tensor
                       ) -> torch.Tensor:
        """``(B, C)`` bool: candidate ``columns[b, c]`` (or ``columns[c]``, shared) as the
        answer to query (h_b, r_b) (reciprocal relations read back as (c, r, h)) re-expresses
        a held-out fact."""
        out = torch.zeros((len(h), columns.shape[-1]), dtype=torch.bool, device=columns.device)
        self._mark_banned(h, r, columns, out)
        return out

    def _mark_banned(self, h: torch.Tensor, r: torch.Tensor, columns: torch.Tensor,
                     out: torch.Tensor) -> None:
        """Set :meth:`banned_columns`'s True entries in ``out`` (a ``(B, C)`` bool tensor or
        view). Only the queries whose part matches a banned fact are expanded, and against
        shared columns only the candidates that answer some banned fact: a batch's 4,096 x 256
        shared negatives become a few hundred rows of a few dozen keys."""
        n_rel, c = self.n_relations, self.canon
        forward = r < n_rel
        part = torch.where(forward, c[h] * n_rel + r, ((r - n_rel) << 31) + c[h])
        suspect = torch.where(forward, _member(part, self.banned_forward),
                              _member(part, self.banned_backward))
        for fw, answers in ((True, self.banned_tails), (False, self.banned_heads)):
            rows = (suspect & (forward if fw else ~forward)).nonzero().squeeze(1)
            if len(rows) == 0:
                continue
            if columns.dim() == 1:  # shared: keep the columns that can answer a banned fact
                cols = _member(c[columns], answers).nonzero().squeeze(1)
                cand, at = c[columns[cols]].expand(len(rows), -1), (rows[:, None], cols)
            else:
                cand, at = c[columns[rows]], rows
            hr = c[h[rows]][:, None]
            keys = ((hr * n_rel + r[rows, None]) << 31) + cand if fw \
                else ((cand * n_rel + (r[rows, None] - n_rel)) << 31) + hr
            out[at] |= _member(keys, self.banned)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The projections that train: ``W_F``, and ``W_N`` when the network term is on."""
        layers = [self.project_feature] + ([self.project_network] if self.network_on else [])
        return [p for layer in layers for p in layer.parameters()]

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        """Adam over :meth:`trainable_parameters` (the tables' RowAdam is the model's)."""
        return [torch.optim.Adam(self.trainable_parameters(), lr=lr)]

    def forward(self, model: KGEModel, batch: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(weighted sum of the terms that are on, {"kd_<term>": detached value})`` of
        ``train_kge``'s batch ``{"h", "r", "t", "negatives", "query", "logits"}``."""
        h, r, t, neg = (batch[k] for k in ("h", "r", "t", "negatives"))
        config, parts = self.config, {}
        loss = batch["logits"].new_zeros(())
        if config.feature or self.network_on:
            entities = torch.unique(torch.cat([h, t, neg]))
            entities = entities[self.known[entities]]  # those with a teacher row
            if len(entities) == 0:
                entities = None
        if config.feature and entities is not None:
            feature = ((self.project_feature(model.entity(entities))
                        - self.feature_target[entities]) ** 2).mean()
            loss = loss + config.w_feature * feature
            parts["kd_feature"] = feature.detach()
        if self.network_on and entities is not None:
            network = ((self.project_network(model.embed(entities))
                        - self.network_target[entities]) ** 2).mean()
            loss = loss + config.w_network * network
            parts["kd_network"] = network.detach()
        if config.prediction:
            prediction = self._prediction(h, r, t, neg, batch["logits"])
            loss = loss + config.w_prediction * prediction
            parts["kd_prediction"] = prediction.detach()
        return loss, parts

    def _prediction(self, h, r, t, neg, student_logits) -> torch.Tensor:
        """The KL term on the batch's candidates [true tail | shared negatives]: the teacher's
        logits are one matrix product of its frozen view per batch. The masks are built per
        column and broadcast (a batch is 4,096 x 257 candidates); a row with no teacher
        answer weighs 0 in the mean instead of being cut out. KL(p_t || p_s) is summed as
        ``p_t (log p_t - log p_s)`` from two log-softmaxes."""
        with torch.no_grad():
            q = self.teacher_view.query(h, r)
            teacher_logits = torch.cat([self.teacher_view.score_query(q, t.unsqueeze(1)),
                                        self.teacher_view.score_query(q, neg)], 1)
            drop = student_logits.detach() <= -1e8  # the true tail among the negatives
            drop[:, 0] |= ~self.known[t]
            drop[:, 1:] |= ~self.known[neg]
            self._mark_banned(h, r, t.unsqueeze(1), drop[:, :1])
            self._mark_banned(h, r, neg, drop[:, 1:])
            rows = self.known[h] & (~drop).any(1)
            if not bool(rows.any()):
                return student_logits.new_zeros(())
            # the mean over the rows that count, as weights: no (B, C) row copies to select them
            weights = rows.to(student_logits.dtype) / rows.sum()
            tau = self.config.temperature
            log_p_teacher = torch.log_softmax(teacher_logits.masked_fill_(drop, -1e9).div_(tau), 1)
            p_teacher = log_p_teacher.exp()  # exactly 0 on dropped candidates
        log_p_student = torch.log_softmax(student_logits.masked_fill(drop, -1e9) / tau, 1)
        kl = (p_teacher * (log_p_teacher - log_p_student)).sum(1)
        return (kl * weights).sum() * tau ** 2


def _member(values: torch.Tensor, sorted_set: torch.Tensor) -> torch.Tensor:
    """``values`` found in ``sorted_set`` (sorted, unique), by binary search: ``torch.isin``
    sorts both inputs on every call, the largest cost of a KD batch before."""
    if len(sorted_set) == 0:
        return torch.zeros(values.shape, dtype=torch.bool, device=values.device)
    at = torch.searchsorted(sorted_set, values).clamp_max_(len(sorted_set) - 1)
    return sorted_set[at] == values
