"""The student's three distillation terms (each switchable) and its training.

For a batch of queries (h, r, ?) with true tails t and shared negatives N, with ``M`` mapping
student entities to teacher rows (every student entity has one here):

* **feature**: ``mean (W_F s_x - t_M(x))^2`` (mean over coordinates too) over the batch's
  entities x (heads, tails, negatives); ``W_F`` is a learned projection from the student's
  width to the teacher's;
* **network**: ``mean (W_N q^S(h, r) - q^T(M(h), r))^2``, the relation-transformed head (the
  model's intermediate state) of student and teacher, through a learned ``W_N``;
* **prediction**: ``tau^2 KL(softmax(z^T / tau) || softmax(z^S / tau))`` over the shared
  candidates {t} ∪ N, the teacher's and the student's scores of the same candidates.

Loss: sampled-softmax link prediction on the linked subgraph plus
``w_feature L_F + w_network L_N + w_prediction L_P``. The teacher is frozen (no gradients).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from sellakit.config import Config
from sellakit.errors import ConfigError
from sellakit.kg.models import KGEModel

__all__ = ["KDConfig", "Distiller", "KD_TERMS"]

KD_TERMS = ("feature", "network", "prediction")


@dataclass(frozen=True)
class KDConfig(Config):
    """Which KD terms are on, their weights, the temperature (one setting, no presets)."""

    PRESETS: ClassVar[tuple[str, ...]] = ()

    feature: bool = True
    network: bool = True
    prediction: bool = True
    w_feature: float = 1.0
    w_network: float = 1.0
    w_prediction: float = 1.0
    temperature: float = 2.0

    def without(self, term: str) -> "KDConfig":
        """The same config with ``term`` switched off."""
        if term not in KD_TERMS:
            raise ConfigError(f"KD term {term!r} is not known; choose one of "
                              f"{', '.join(KD_TERMS)}.")
        return replace(self, **{term: False})

    @property
    def any(self) -> bool:
        return self.feature or self.network or self.prediction


class Distiller(nn.Module):
    """The KD loss module passed as ``extra_loss`` to :func:`sellakit.kg.train.train_kge`."""

    def __init__(self, teacher: KGEModel, teacher_ids: np.ndarray, student_width: int,
                 config: KDConfig):
        super().__init__()
        self.teacher, self.config = teacher, config
        for p in teacher.parameters():
            p.requires_grad_(False)
        self.register_buffer("teacher_ids", torch.as_tensor(teacher_ids, dtype=torch.long))
        self.project_feature = nn.Linear(student_width, teacher.width, bias=False)
        self.project_network = nn.Linear(student_width, teacher.width, bias=False)

    def parameters(self, recurse: bool = True):  # the teacher stays frozen and out of Adam
        yield from self.project_feature.parameters()
        yield from self.project_network.parameters()

    def forward(self, model: KGEModel, h, r, t, neg, q, logits):
        """``(weighted sum of the terms that are on, {"kd_<term>": detached value})``."""
        config, parts = self.config, {}
        loss = logits.new_zeros(())
        teacher_heads = self.teacher_ids[h]
        if config.feature:
            entities = torch.unique(torch.cat([h, t, neg]))
            with torch.no_grad():
                target = self.teacher.embed(self.teacher_ids[entities])
            feature = ((self.project_feature(model.embed(entities)) - target) ** 2).mean()
            loss = loss + config.w_feature * feature
            parts["kd_feature"] = feature.detach()
        if config.network or config.prediction:
            with torch.no_grad():
                teacher_query = self.teacher.query(teacher_heads, r)
        if config.network:
            network = ((self.project_network(q) - teacher_query) ** 2).mean()
            loss = loss + config.w_network * network
            parts["kd_network"] = network.detach()
        if config.prediction:
            with torch.no_grad():
                teacher_logits = torch.cat([
                    self.teacher.score_query(teacher_query, self.teacher_ids[t].unsqueeze(1)),
                    self.teacher.score_query(teacher_query, self.teacher_ids[neg])], 1)
                # the candidates masked for the student are masked for the teacher too
                teacher_logits = teacher_logits.masked_fill(logits <= -1e8, -1e9)
                p_teacher = torch.softmax(teacher_logits / config.temperature, 1)
            log_p_student = torch.log_softmax(logits / config.temperature, 1)
            prediction = (p_teacher * (torch.log(p_teacher.clamp_min(1e-12)) - log_p_student)
                          ).sum(1).mean() * config.temperature ** 2
            loss = loss + config.w_prediction * prediction
            parts["kd_prediction"] = prediction.detach()
        return loss, parts
