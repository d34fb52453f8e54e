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
* **prediction**: ``L_P = tau^2 KL(softmax(z^T / tau) || softmax(z^S / tau))`` over the teacher's
  top-``k`` target-entity candidates of each target-headed training query (h, r, ?): hard
  negatives, precomputed with the teacher's scores ``z^T`` once; candidates whose triple
  re-expresses a held-out fact are never used.

Loss: sampled-softmax link prediction on the linked subgraph plus
``w_feature L_F + w_network L_N + w_prediction L_P``. The teacher is never called during
training: each step reads the precomputed tables.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from sellakit.config import Config, bounded
from sellakit.errors import ConfigError
from sellakit.kg.data import canonical_ids, canonical_keys
from sellakit.kg.models import KGEModel
from sellakit.kg.train import with_reciprocals
from sellakit.selection import ExtraLoss

__all__ = ["KDConfig", "Distiller", "KD_TERMS", "TEMPERATURES", "warm_start",
           "strongest_coordinates"]

KD_TERMS = ("feature", "network", "prediction")
#: The temperatures the benchmark chooses from on the selection facts.
TEMPERATURES = (1.0, 2.0, 4.0)


@dataclass(frozen=True)
class KDConfig(Config):
    """Which KD terms are on, their weights, the temperature, the candidates per query."""

    PRESETS: ClassVar[tuple[str, ...]] = ()

    feature: bool = True
    network: bool = True  # acts only on an encoder (see the module docstring)
    prediction: bool = True
    w_feature: float = bounded(1.0, at_least=0)
    w_network: float = bounded(1.0, at_least=0)
    w_prediction: float = bounded(1.0, at_least=0)
    temperature: float = bounded(2.0, above=0)
    top_k: int = bounded(32, at_least=1)

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
    magnitude over the teacher's entity table, in increasing order."""
    if dim > teacher.dim:
        raise ConfigError(f"The student (dim={dim}) is wider than the teacher "
                          f"(dim={teacher.dim}); a warm start needs dim <= the teacher's.")
    # |x|^2 per coordinate: the squares of its reals, the halves [re | im] (or one [x])
    energy = sum(half ** 2 for half in teacher.entity.weight.detach().split(teacher.dim, 1))
    return torch.sort(torch.topk(energy.mean(0), dim).indices).values


def _columns(coords: torch.Tensor, dim: int, reals: int) -> torch.Tensor:
    """Real columns that hold coordinates ``coords`` in a table of ``reals`` reals per
    coordinate (:class:`~sellakit.kg.models.Interaction`'s layout: each half's when 2)."""
    return torch.cat([coords + k * dim for k in range(reals)]) if reals > 1 else coords


def _entity_columns(model_like: KGEModel, coords: torch.Tensor) -> torch.Tensor:
    return _columns(coords, model_like.dim, model_like.kind.entity_reals)


@torch.no_grad()
def warm_start(student: KGEModel, teacher: KGEModel, teacher_ids: np.ndarray) -> torch.Tensor:
    """Copy the teacher's rows (``teacher_ids[i]`` for student entity ``i``) and relations on
    its strongest ``student.dim`` coordinates into ``student``; returns those coordinates."""
    if (student.kind, student.encoder) != (teacher.kind, teacher.encoder):
        raise ConfigError("A warm start needs the student and teacher of one kind (interaction "
                          f"and encoder); got {student.interaction}/{student.encoder} and "
                          f"{teacher.interaction}/{teacher.encoder}. Fix: give the student's "
                          "TrainConfig the teacher's model and encoder.")
    coords = strongest_coordinates(teacher, student.dim)
    ids = torch.as_tensor(teacher_ids, dtype=torch.long)
    student.entity.weight.copy_(teacher.entity.weight[ids][:, _entity_columns(teacher, coords)])
    rel_cols = _columns(coords, teacher.dim, teacher.kind.relation_reals)
    student.relation.weight.copy_(teacher.relation.weight[:, rel_cols])
    return coords


class Distiller(ExtraLoss):
    """The KD terms as :func:`sellakit.kg.train.train_kge`'s ``extra_loss``: only the
    projections train (:meth:`trainable_parameters`, stepped by :meth:`configure_optimizers`).

    Args:
        teacher: the frozen teacher; teacher_ids: student entity -> teacher row.
        student_width: real numbers per student entity vector.
        config: the terms, weights, temperature and ``top_k``.
        queries: the student's training triples (their target-headed queries get candidates).
        n_target: student ids ``< n_target`` are the target's entities (the candidates).
        banned: sorted canonical keys of facts no candidate may re-express (the held-out facts,
            :meth:`sellakit.kg.protocol.DataRule.banned_keys`), with ``canon`` the target's
            canonical ids; coords: the warm start's coordinates (W_F's initial embedding).
    """

    def __init__(self, teacher: KGEModel, teacher_ids: np.ndarray, student_width: int,
                 config: KDConfig, *, queries: np.ndarray, n_target: int,
                 banned: np.ndarray, canon: np.ndarray, coords: torch.Tensor | None = None):
        super().__init__()
        self.config, self.n_relations = config, teacher.n_relations
        self.network_on = config.network and teacher.encoder != "none"
        ids = torch.as_tensor(teacher_ids, dtype=torch.long)
        teacher.eval()
        with torch.no_grad():
            self.register_buffer("feature_target", teacher.entity.weight[ids].detach().clone())
            if self.network_on:
                self.register_buffer("network_target", teacher.entity_table()[ids].clone())
        self.project_feature = nn.Linear(student_width, teacher.width, bias=False)
        self.project_network = nn.Linear(student_width, teacher.width, bias=False)
        if coords is not None:  # start from the warm start's coordinate embedding
            for layer in (self.project_feature, self.project_network):
                nn.init.zeros_(layer.weight)
                cols = _entity_columns(teacher, coords)
                layer.weight.data[cols, torch.arange(len(cols))] = 1.0
        if config.prediction:
            self._precompute_candidates(teacher, ids, queries, n_target, banned, canon)

    @torch.no_grad()
    def _precompute_candidates(self, teacher, ids, queries, n_target, banned, canon,
                               chunk: int = 2048) -> None:
        """Top-k target candidates and teacher scores of every target-headed query (h, r)."""
        n_rel = teacher.n_relations
        data = with_reciprocals(queries, n_rel)
        data = data[data[:, 0] < n_target]
        keys = np.unique(data[:, 0] * (2 * n_rel) + data[:, 1])
        heads, rels = keys // (2 * n_rel), keys % (2 * n_rel)
        k, extra = self.config.top_k, 8
        candidates = np.zeros((len(keys), k), np.int64)
        logits = np.full((len(keys), k), -1e9, np.float32)
        target_rows = ids[:n_target]
        for s in range(0, len(keys), chunk):
            h = torch.as_tensor(heads[s:s + chunk])
            r = torch.as_tensor(rels[s:s + chunk])
            scores = teacher.score_query(teacher.query(ids[h], r), target_rows)
            top = torch.topk(scores, min(k + extra, n_target), dim=1)
            cand, val = top.indices.numpy(), top.values.numpy()
            ok = ~_reexpresses(h.numpy(), r.numpy(), cand, n_rel, banned, canon)
            for row in range(len(cand)):  # the first k allowed candidates of each query
                keep = np.flatnonzero(ok[row])[:k]
                candidates[s + row, :len(keep)] = cand[row, keep]
                logits[s + row, :len(keep)] = val[row, keep]
        self.register_buffer("query_keys", torch.from_numpy(keys))
        self.register_buffer("candidates", torch.from_numpy(candidates))
        self.register_buffer("teacher_logits", torch.from_numpy(logits))

    def candidate_triples(self) -> np.ndarray:
        """Every (h, r, candidate) prediction KD uses, in the target's ids, reciprocal queries
        written back as facts (candidate, r, h): what the leakage test checks."""
        n_rel = self.n_relations
        keys = self.query_keys.numpy()
        used = self.teacher_logits.numpy() > -1e8
        rows, cols = np.nonzero(used)
        h, r = keys[rows] // (2 * n_rel), keys[rows] % (2 * n_rel)
        c = self.candidates.numpy()[rows, cols]
        forward = r < n_rel
        return np.where(forward[:, None], np.stack([h, r, c], 1),
                        np.stack([c, r - n_rel, h], 1))

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The projections that train: ``W_F``, and ``W_N`` when the network term is on."""
        layers = [self.project_feature] + ([self.project_network] if self.network_on else [])
        return [p for layer in layers for p in layer.parameters()]

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        """Adam over :meth:`trainable_parameters` (the tables' SparseAdam is the model's)."""
        return [torch.optim.Adam(self.trainable_parameters(), lr=lr)]

    def forward(self, model: KGEModel, batch: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(weighted sum of the terms that are on, {"kd_<term>": detached value})`` of
        ``train_kge``'s batch ``{"h", "r", "t", "negatives", "query", "logits"}``."""
        h, r, t, neg, q = (batch[k] for k in ("h", "r", "t", "negatives", "query"))
        config, parts = self.config, {}
        loss = batch["logits"].new_zeros(())
        if config.feature or self.network_on:
            entities = torch.unique(torch.cat([h, t, neg]))
        if config.feature:
            feature = ((self.project_feature(model.entity(entities))
                        - self.feature_target[entities]) ** 2).mean()
            loss = loss + config.w_feature * feature
            parts["kd_feature"] = feature.detach()
        if self.network_on:
            network = ((self.project_network(model.embed(entities))
                        - self.network_target[entities]) ** 2).mean()
            loss = loss + config.w_network * network
            parts["kd_network"] = network.detach()
        if config.prediction:
            key = h * (2 * model.n_relations) + r
            where = torch.searchsorted(self.query_keys, key).clamp_max(len(self.query_keys) - 1)
            found = self.query_keys[where] == key
            if found.any():
                rows = where[found]
                teacher_logits = self.teacher_logits[rows]
                student_logits = model.score_query(q[found], self.candidates[rows])
                tau = config.temperature
                student_logits = student_logits.masked_fill(teacher_logits <= -1e8, -1e9)
                p_teacher = torch.softmax(teacher_logits / tau, 1)
                log_p_student = torch.log_softmax(student_logits / tau, 1)
                prediction = (p_teacher * (torch.log(p_teacher.clamp_min(1e-12))
                                           - log_p_student)).sum(1).mean() * tau ** 2
                loss = loss + config.w_prediction * prediction
                parts["kd_prediction"] = prediction.detach()
        return loss, parts


def _reexpresses(heads: np.ndarray, rels: np.ndarray, cand: np.ndarray, n_rel: int,
                 banned: np.ndarray, canon: np.ndarray) -> np.ndarray:
    """``(Q, C)`` bool: the candidate's fact (reciprocal queries read as (t, r, h)) has a
    canonical key in ``banned``."""
    h = np.repeat(heads, cand.shape[1])
    r = np.repeat(rels, cand.shape[1])
    c = cand.ravel()
    forward = r < n_rel
    facts = np.where(forward[:, None], np.stack([h, r, c], 1),
                     np.stack([c, r - n_rel, h], 1))
    return np.isin(canonical_keys(facts, canon, n_rel), banned).reshape(cand.shape)
