"""Model selection on validation, one way for every trainer (CF, KG, the LLM recommenders).

A trainer evaluates every so often and hands the validation metric to a
:class:`CheckpointSelector`, which keeps a snapshot of the best state, counts evaluations
without improvement (``patience`` is counted in evaluations, whatever a step is) and restores
the best state at the end. Every trainer returns the same :class:`TrainResult`. Test data never
passes through here.

The loops share their hooks too: the model's ``configure_optimizers(...)`` returns its optimisers
(as nanoGPT's GPT does), an optional :class:`ExtraLoss` adds a term to each batch's loss (and
its own optimisers), and :func:`optimiser_step` takes the step.

Example::

    >>> selector = CheckpointSelector(patience=3)
    >>> for epoch in range(1, 100):                               # doctest: +SKIP
    ...     train_one_epoch(model)
    ...     selector.update(epoch, valid_auc(model), model)
    ...     if selector.should_stop:
    ...         break
    >>> selector.restore(model)                                   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

__all__ = ["CheckpointSelector", "TrainResult", "ExtraLoss", "optimiser_step", "add_parts"]


class CheckpointSelector:
    """The best-on-validation state of one model, and when to stop looking.

    Args:
        patience: evaluations without a strictly better metric before :attr:`should_stop`
            turns true; ``None`` never stops early.
        snapshot: ``model -> state`` kept for the best evaluation; default a copy of the whole
            ``state_dict``. A trainer of a few parameters on a frozen LLM passes one that copies
            only those (restored with ``strict=False``).
    """

    def __init__(self, patience: int | None = None,
                 snapshot: Callable[[nn.Module], dict] | None = None):
        self.patience = patience
        self.snapshot = snapshot
        self.best_metric = -math.inf
        self.best_step = 0
        self.best_metrics: dict[str, float] = {}
        self.best_state: dict | None = None
        self.best_kept = None
        self.stale = 0

    def update(self, step: int, metric: float, model: nn.Module,
               metrics: dict[str, float] | None = None, keep=None) -> bool:
        """Record one evaluation (higher is better; the first one is always kept); snapshot
        ``model`` when it is the best so far. ``metrics`` (default ``{"metric": metric}``) is
        what :attr:`best_metrics` holds, ``keep`` anything else to hold with it (e.g. the
        validation scores). Returns True when this evaluation is the new best."""
        if self.best_state is None or metric > self.best_metric:
            self.best_metric, self.best_step, self.stale = metric, step, 0
            self.best_metrics = dict(metrics) if metrics is not None else {"metric": metric}
            self.best_state = (self.snapshot(model) if self.snapshot is not None
                               else copy.deepcopy(model.state_dict()))
            self.best_kept = keep
            return True
        self.stale += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.stale >= self.patience

    def restore(self, model: nn.Module) -> None:
        """Load the best snapshot into ``model`` (nothing when nothing was evaluated)."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state, strict=self.snapshot is None)


@dataclass
class TrainResult:
    """What every trainer of the kit returns.

    Attributes:
        model: restored to its best validation evaluation, in eval mode.
        history: one row per epoch or evaluation (the trainer's own columns).
        best_step: the epoch (CF, KG) or optimiser step (LLM recommenders) that was kept;
            the last one when nothing was validated.
        best_valid: the validation metrics at ``best_step`` (empty without validation).
        seconds: wall time of training and validation.
        seed: the seed the run started from.
        config: the trainer's config.
        n_train: training rows (CTR rows, triples before reciprocals, prompts).
        valid_scores: per-row validation scores of the kept state, where the trainer keeps
            them (the LLM recommenders).
        per_name: name -> its own :class:`CheckpointSelector`, where a trainer also keeps the
            best state for each of several validation sets (the KG teacher: one per KG).
    """

    model: nn.Module
    history: pd.DataFrame
    best_step: int
    best_valid: dict[str, float]
    seconds: float
    seed: int
    config: Any = None
    n_train: int = 0
    valid_scores: np.ndarray | None = None
    per_name: dict[str, CheckpointSelector] | None = None


class ExtraLoss(nn.Module):
    """The one ``extra_loss`` contract of the kit's training loops (:func:`sellakit.cf.train_cf`,
    :func:`sellakit.kg.train.train_kge`).

    Called once per batch as ``extra_loss(model, batch)``, ``batch`` the loop's tensors by name
    (each loop documents its names), it returns ``(loss, parts)``: the weighted term added to
    the loop's own loss, and its parts by name (detached), whose epoch means the loop writes
    into its learning curve. A term with parameters of its own (the KD projections) returns
    their optimisers from :meth:`configure_optimizers`; they step with the model's.
    """

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        """Optimisers of this term's own trainable parameters (none by default)."""
        return []


def optimiser_step(optimisers: list[torch.optim.Optimizer], loss: torch.Tensor) -> None:
    """Clear the gradients, back-propagate ``loss``, step every optimiser."""
    for optimiser in optimisers:
        optimiser.zero_grad(set_to_none=True)
    loss.backward()
    for optimiser in optimisers:
        optimiser.step()


def add_parts(sums: dict[str, float], parts: dict[str, torch.Tensor]) -> None:
    """Add an :class:`ExtraLoss`'s ``parts`` of one batch into the epoch's running ``sums``."""
    for name, value in parts.items():
        sums[name] = sums.get(name, 0.0) + float(value)
