"""One trainer for every KG-embedding model of the kit (teacher, student, baselines).

Training is a sampled softmax: each (h, r, t) — and its reciprocal (t, r^-1, h) — is scored
against its true tail and ``n_negatives`` uniformly drawn entities shared by the batch;
cross-entropy on those logits. An optional ``extra_loss`` (:class:`sellakit.selection.ExtraLoss`)
adds loss terms (the distillation terms of :mod:`sellakit.kg.distill`, the alignment loss of
the *mapping* mode); its optimisers step with the model's. Validation MRR (filtered, tails, on
the target) is checked every ``eval_every`` epochs and the best state is kept (early stopping
with ``patience``). The model's optimisers are its own (:meth:`KGEModel.configure_optimizers`).
The history keeps each epoch's training and validation seconds apart (``train_seconds``,
``valid_seconds``): the time account reads seconds per epoch from them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from sellakit.config import Config, bounded, device_field, pick_device, seed_everything
from sellakit.kg.models import Encoder, InteractionName, KGEModel
from sellakit.selection import (CheckpointSelector, ExtraLoss, TrainResult, add_parts,
                                optimiser_step)

__all__ = ["TrainConfig", "with_reciprocals", "build_model", "train_kge"]


@dataclass(frozen=True)
class TrainConfig(Config):
    """How one model is trained (preset ``quick`` for 2 CPU cores, ``paper`` for a GPU).

    ``model`` picks the interaction (:data:`sellakit.kg.models.INTERACTIONS`), ``encoder`` the
    entity encoder (``"none"``: shallow tables; ``"gnn"``: aggregate ``gnn_neighbours`` in-edges).
    """

    PRESETS: ClassVar[tuple[str, ...]] = ("quick", "paper")

    model: InteractionName = "rotate"
    encoder: Encoder = "none"
    gnn_neighbours: int = bounded(10, at_least=1)
    dim: int = bounded(64, at_least=1)
    epochs: int = bounded(30, at_least=1)
    batch_size: int = bounded(1024, at_least=1)
    lr: float = bounded(3e-3, above=0)
    n_negatives: int = bounded(256, at_least=1)
    gamma: float = bounded(6.0, above=0)
    eval_every: int = bounded(2, at_least=1)
    patience: int = bounded(3, at_least=1)
    seed: int = bounded(2025, at_least=0)
    device: str | None = device_field()

    @classmethod
    def quick(cls, **overrides) -> "TrainConfig":
        return replace(cls(), **overrides)

    @classmethod
    def paper(cls, **overrides) -> "TrainConfig":
        return replace(cls(dim=256, epochs=200, batch_size=512, lr=1e-3, n_negatives=1024,
                           eval_every=5, patience=5), **overrides)


def with_reciprocals(triples: np.ndarray, n_relations: int) -> np.ndarray:
    """``triples`` plus (t, r + n_relations, h) for each."""
    triples = np.asarray(triples, dtype=np.int64)
    return np.concatenate([triples, triples[:, [2, 1, 0]] + [0, n_relations, 0]])


def build_model(config: TrainConfig, n_entities: int, n_relations: int,
                triples: np.ndarray) -> KGEModel:
    """A fresh :class:`KGEModel` of ``config`` for a graph of training ``triples`` (the GNN
    encoder's in-edges are drawn from them and their reciprocals, seeded by ``config.seed``)."""
    graph = with_reciprocals(triples, n_relations) if config.encoder == "gnn" else None
    return KGEModel(n_entities, n_relations, config.dim, config.model, config.gamma,
                    encoder=config.encoder, graph=graph, neighbours=config.gnn_neighbours,
                    seed=config.seed)


def train_kge(triples: np.ndarray, n_entities: int, n_relations: int, config: TrainConfig, *,
              valid_mrr: Callable[[KGEModel], dict[str, float]] | None = None,
              extra_loss: ExtraLoss | None = None, model: KGEModel | None = None,
              keep_each: bool = False, progress: bool = True, desc: str = "train"
              ) -> TrainResult:
    """Train a :class:`KGEModel` on ``triples`` (reciprocals are added here).

    Args:
        valid_mrr: model -> {name: selection MRR} (:func:`sellakit.kg.evaluate.validation_mrr`);
            epochs are selected and stopped on their mean (None: keep the last epoch).
        keep_each: also keep each name's best state (``result.per_name``: the teacher's J1).
        extra_loss: an :class:`~sellakit.selection.ExtraLoss` called with the batch
            ``{"h", "r", "t", "negatives", "query", "logits"}``; its optimisers step with the
            model's (:meth:`KGEModel.configure_optimizers`).
        model: start from this model instead of a fresh one (trained in place and returned).
    """
    seed_everything(config.seed)
    device = pick_device(config.device)
    started = time.perf_counter()
    if model is None:
        model = build_model(config, n_entities, n_relations, triples)
    model = model.to(device)
    optimisers = model.configure_optimizers(config.lr)
    if extra_loss is not None:
        optimisers += extra_loss.to(device).configure_optimizers(config.lr)
    data = torch.from_numpy(with_reciprocals(triples, n_relations))
    generator = torch.Generator().manual_seed(config.seed)
    selector = CheckpointSelector(patience=config.patience if valid_mrr is not None else None)
    per_name: dict[str, CheckpointSelector] = {}
    history = []
    bar = tqdm(range(1, config.epochs + 1), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        tick = time.perf_counter()
        row = {"epoch": epoch, **_train_epoch(model, data, n_entities, config, generator,
                                              optimisers, extra_loss)}
        row["train_seconds"], tick = time.perf_counter() - tick, time.perf_counter()
        if valid_mrr is not None and (epoch % config.eval_every == 0 or epoch == config.epochs):
            row.update(_validate(model, epoch, valid_mrr, selector,
                                 per_name if keep_each else None))
            row["valid_seconds"] = time.perf_counter() - tick
            bar.set_postfix(valid_mrr=f"{row['valid_mrr']:.3f}")
        history.append(row)
        if selector.should_stop:
            break
    selector.restore(model)
    model.eval()
    return TrainResult(model, pd.DataFrame(history), selector.best_step or len(history),
                       selector.best_metrics, round(time.perf_counter() - started, 2),
                       config.seed, config, len(triples), per_name=per_name or None)


def _train_epoch(model: KGEModel, data: torch.Tensor, n_entities: int, config: TrainConfig,
                 generator: torch.Generator, optimisers: list[torch.optim.Optimizer],
                 extra_loss: ExtraLoss | None) -> dict[str, float]:
    """One pass over ``data`` (reciprocals included) in a seeded order, negatives drawn from
    the first ``n_entities``: the batch means of the loss and of ``extra_loss``'s parts."""
    model.train()
    device = model.entity.weight.device
    order = torch.randperm(len(data), generator=generator)
    total, parts_sum, steps = 0.0, {}, 0
    for start in range(0, len(data), config.batch_size):
        batch = data[order[start:start + config.batch_size]].to(device)
        loss, parts = _step_loss(model, batch, n_entities, config.n_negatives, generator,
                                 extra_loss)
        add_parts(parts_sum, parts)
        optimiser_step(optimisers, loss)
        total += float(loss.detach())
        steps += 1
    return {"loss": total / max(steps, 1),
            **{k: v / max(steps, 1) for k, v in parts_sum.items()}}


def _validate(model: KGEModel, epoch: int, valid_mrr, selector: CheckpointSelector,
              per_name: dict[str, CheckpointSelector] | None) -> dict:
    """One check: the mean selection MRR (and each KG's when several) into the history row;
    the selectors see it (``per_name``: one per KG as well)."""
    model.eval()
    each = valid_mrr(model)
    row = {"valid_mrr": float(np.mean(list(each.values())))}
    if len(each) > 1:
        row.update({f"valid_mrr_{name}": value for name, value in each.items()})
    for name, value in each.items() if per_name is not None else ():
        per_name.setdefault(name, CheckpointSelector()).update(epoch, value, model,
                                                               {"mrr": value})
    selector.update(epoch, row["valid_mrr"], model, {"mrr": row["valid_mrr"]})
    return row


def _step_loss(model: KGEModel, batch: torch.Tensor, n_entities: int, n_negatives: int,
               generator: torch.Generator, extra_loss: ExtraLoss | None
               ) -> tuple[torch.Tensor, dict]:
    """Sampled-softmax loss of one batch of (h, r, t) against ``n_negatives`` shared uniform
    negatives, plus ``extra_loss``'s terms; returns the loss and those terms."""
    h, r, t = batch[:, 0], batch[:, 1], batch[:, 2]
    neg = torch.randint(0, n_entities, (n_negatives,), generator=generator).to(batch.device)
    q = model.query(h, r)
    # positive column (row-wise) + shared negatives (one matrix product)
    logits = torch.cat([model.score_query(q, t.unsqueeze(1)), model.score_query(q, neg)], 1)
    logits = logits.masked_fill(_mask_true(t, neg), -1e9)
    loss = nn.functional.cross_entropy(logits, torch.zeros(len(t), dtype=torch.long,
                                                           device=batch.device))
    if extra_loss is None:
        return loss, {}
    added, parts = extra_loss(model, {"h": h, "r": r, "t": t, "negatives": neg, "query": q,
                                      "logits": logits})
    return loss + added, parts


def _mask_true(t: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """``(B, 1 + K)``: True where a shared negative is the row's true tail (never column 0)."""
    mask = neg.unsqueeze(0) == t.unsqueeze(1)
    return torch.cat([torch.zeros_like(mask[:, :1]), mask], 1)
