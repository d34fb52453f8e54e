"""One trainer for every CF model: BCE on the labels, early stopping on validation AUC.

The test split is never looked at here: :func:`train_cf` selects the epoch on validation AUC
and returns the model restored to that epoch; the caller scores test once with :func:`predict`.

Example::

    >>> from sellakit.cf import CFConfig, train_cf, predict
    >>> result = train_cf(split, CFConfig.quick("mf"))  # doctest: +SKIP
    >>> scores = predict(result.model, split.test)       # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from sellakit.cache import cached_state
from sellakit.cf.models import CFModel, CFModelName, build_model, model_spec
from sellakit.config import Config, bounded, device_field, pick_device, seed_everything
from sellakit.data.protocol import CTRSplit
from sellakit.metrics import ctr_metrics, evaluate_slices, require_both_labels
from sellakit.selection import (CheckpointSelector, ExtraLoss, TrainResult, add_parts,
                                optimiser_step)

__all__ = ["CFConfig", "TrainResult", "train_cf", "predict", "batch_tensors", "fit_and_evaluate",
           "score_valid_and_test"]

@dataclass(frozen=True)
class CFConfig(Config):
    """Settings of one CF training run.

    Use the presets: ``CFConfig.preset("quick", model="mf")`` (CPU, minutes) or
    ``CFConfig.preset("paper", model="mf")`` (CoLLM's budgets: up to 1,000 epochs, patience
    100 for MF). ``patience`` counts evaluations (every ``eval_every`` epochs).
    """

    PRESETS: ClassVar[tuple[str, ...]] = ("quick", "paper")

    model: CFModelName = "mf"
    dim: int = bounded(256, at_least=1)
    lr: float = bounded(1e-3, above=0)
    weight_decay: float = bounded(1e-4, at_least=0)
    batch_size: int = bounded(2048, at_least=1)
    max_epochs: int = bounded(1000, at_least=1)
    patience: int = bounded(100, at_least=1)
    eval_every: int = bounded(1, at_least=1)
    n_layers: int = bounded(2, at_least=0)
    n_heads: int = bounded(1, at_least=1)
    dropout: float = bounded(0.2, at_least=0, below=1)
    history_len: int = bounded(25, at_least=1)
    seed: int = bounded(2025, at_least=0)
    device: str | None = device_field()

    @classmethod
    def paper(cls, model: str = "mf", **overrides) -> CFConfig:
        """CoLLM's per-model settings and budgets (the model's row of
        :data:`sellakit.cf.models.CF_MODELS`)."""
        spec = model_spec(model)
        return cls(model=model, **{**spec.defaults, **spec.paper, **overrides})

    @classmethod
    def quick(cls, model: str = "mf", **overrides) -> CFConfig:
        """The same settings with a smaller budget, for a laptop CPU.

        MF and LightGCN keep CoLLM's settings with fewer epochs allowed; SASRec also reads a
        shorter history (10 items instead of 25); each row's ``quick`` says what it changes.
        """
        spec = model_spec(model)
        return cls(model=model, **{**spec.defaults, "max_epochs": 400, "patience": 50,
                                   **spec.quick, **overrides})


def batch_tensors(frame: pd.DataFrame, history_len: int) -> dict[str, torch.Tensor]:
    """``uid``, ``iid``, ``label`` and ``his`` (last ``history_len`` liked items, left-padded)."""
    his = np.zeros((len(frame), history_len), dtype=np.int64)
    for row, items in enumerate(frame["his"]):
        recent = items[-history_len:]
        if len(recent):
            his[row, history_len - len(recent):] = recent
    return {
        "uid": torch.tensor(frame.uid.to_numpy(), dtype=torch.long),
        "iid": torch.tensor(frame.iid.to_numpy(), dtype=torch.long),
        "label": torch.tensor(frame.label.to_numpy(), dtype=torch.float32),
        "his": torch.from_numpy(his),
    }


@torch.no_grad()
def predict(model: CFModel, frame: pd.DataFrame, batch_size: int = 8192,
            history_len: int | None = None) -> np.ndarray:
    """Probabilities for the rows of ``frame`` (model in eval mode; restored afterwards);
    ``history_len`` defaults to the history the model reads (:attr:`CFModel.max_len`)."""
    history_len = history_len or model.max_len
    tensors = batch_tensors(frame, history_len)
    return _predict_tensors(model, tensors, batch_size)


@torch.no_grad()
def _predict_tensors(model: nn.Module, tensors: dict[str, torch.Tensor], batch_size: int
                     ) -> np.ndarray:
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(tensors["uid"]), batch_size):
        part = {k: v[start:start + batch_size].to(device) for k, v in tensors.items()}
        out.append(torch.sigmoid(model(part["uid"], part["iid"], part["his"]).float()).cpu())
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32)  # no rows: none


def train_cf(split: CTRSplit, config: CFConfig, *, model: CFModel | None = None,
             extra_loss: ExtraLoss | None = None,
             on_epoch: Callable[[CFModel, int], dict | None] | None = None,
             progress: bool = True) -> TrainResult:
    """Train ``config.model`` on ``split.train``; early-stop on ``split.valid`` AUC.

    Args:
        model: a prebuilt model (e.g. the aligned MF); default: built from ``config``. Its
            ``configure_optimizers(lr, weight_decay)`` gives the optimisers.
        extra_loss: an :class:`~sellakit.selection.ExtraLoss` added to the BCE loss of each
            batch (e.g. the alignment term), called with the batch ``{"uid", "iid", "his",
            "label"}``; the epoch means of its parts join the learning curve.
        on_epoch: called after each evaluated epoch (and once before training, with epoch 0);
            a returned dict is merged into that epoch's row of the learning curve.

    Returns the model restored to its best validation epoch (``best_step``). Test is not
    touched.
    """
    require_both_labels(split.valid.label, f"the validation rows of {split.name}")
    seed_everything(config.seed)
    device = pick_device(config.device)
    model = (_build(split, config) if model is None else model).to(device)
    optimisers = model.configure_optimizers(config.lr, config.weight_decay)
    if extra_loss is not None:
        optimisers += extra_loss.to(device).configure_optimizers(config.lr)
    train = batch_tensors(split.train, config.history_len)
    valid = batch_tensors(split.valid, config.history_len)
    generator = torch.Generator().manual_seed(config.seed)
    selector = CheckpointSelector(patience=config.patience)
    rows = [{"epoch": 0, **(on_epoch(model, 0) or {})}] if on_epoch is not None else []
    started = time.perf_counter()
    bar = tqdm(range(1, config.max_epochs + 1), desc=f"{config.model} epochs",
               disable=not progress, leave=False)
    for epoch in bar:
        order = torch.randperm(len(train["uid"]), generator=generator)
        total, parts = _train_epoch(model, train, order, config.batch_size, optimisers,
                                    extra_loss)
        if epoch % config.eval_every:
            continue
        metrics = ctr_metrics(split.valid, _predict_tensors(model, valid, 8192))
        rows.append({"epoch": epoch, "train_loss": total / len(order), **parts,
                     "valid_auc": metrics["auc"], "valid_uauc": metrics["uauc"],
                     **((on_epoch(model, epoch) or {}) if on_epoch is not None else {})})
        bar.set_postfix(loss=f"{total / len(order):.4f}", valid_auc=f"{metrics['auc']:.4f}")
        selector.update(epoch, metrics["auc"], model,
                        {"auc": metrics["auc"], "uauc": metrics["uauc"]})
        if selector.should_stop:
            break
    bar.close()
    selector.restore(model)
    model.eval()
    return TrainResult(model=model, history=pd.DataFrame(rows), best_step=selector.best_step,
                       best_valid=selector.best_metrics,
                       seconds=time.perf_counter() - started, seed=config.seed, config=config,
                       n_train=len(split.train))


def _train_epoch(model: CFModel, train: dict[str, torch.Tensor], order: torch.Tensor,
                 batch_size: int, optimisers: list[torch.optim.Optimizer],
                 extra_loss: ExtraLoss | None) -> tuple[float, dict[str, float]]:
    """One pass over ``train`` in ``order``: BCE (+ ``extra_loss``) per batch; the summed
    loss times rows, and the batch means of ``extra_loss``'s parts."""
    model.train()
    device = next(model.parameters()).device
    total, parts_sum, steps = 0.0, {}, 0
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        part = {k: v[index].to(device) for k, v in train.items()}
        loss = nn.functional.binary_cross_entropy_with_logits(
            model(part["uid"], part["iid"], part["his"]), part["label"])
        if extra_loss is not None:
            added, parts = extra_loss(model, part)
            loss = loss + added
            add_parts(parts_sum, parts)
        optimiser_step(optimisers, loss)
        total += loss.item() * len(index)
        steps += 1
    return total, {name: value / max(steps, 1) for name, value in parts_sum.items()}


def _build(split: CTRSplit, config: CFConfig) -> CFModel:
    """A fresh ``config.model`` for ``split``, given the settings its row of the table names
    (LightGCN's graph: the positive training pairs)."""
    spec = model_spec(config.model)
    edges = None
    if spec.takes_train_edges:
        positives = split.train[split.train.label == 1]
        edges = np.vstack([positives.uid.to_numpy(), positives.iid.to_numpy()])
    return build_model(config.model, split.n_users, split.n_items, train_edges=edges,
                       **{source: getattr(config, source) for source in spec.arguments.values()})


def score_valid_and_test(model: CFModel, split: CTRSplit, *, history_len: int = 25) -> dict:
    """``{"valid", "test", "test_warm", "test_cold"}`` metrics of a trained, selected model."""
    record = {"valid": ctr_metrics(split.valid, predict(model, split.valid,
                                                        history_len=history_len))}
    record.update(evaluate_slices(split.test, predict(model, split.test, history_len=history_len)))
    return record


def fit_and_evaluate(split: CTRSplit, config: CFConfig, *, progress: bool = True,
                     use_cache: bool = False) -> tuple[TrainResult, dict]:
    """Train on ``split``, select on validation, then score test once.

    Returns the training result and the record the benchmark and notebook 02 report:
    ``{"valid": {...}, "test": {...}, "test_warm": {...}, "test_cold": {...}, "seconds": s,
    "seed": n, "best_epoch": e}`` with ``auc``, ``uauc`` and ``rows`` in each slice.

    ``use_cache=True`` keeps the trained model in the kit's cache, keyed by the split's rows and
    every setting but the device, so notebooks 02, 04 and 05 train the same MF once; a model read
    back carries its recorded training time and ``record["cached"] = True``.
    """
    if not use_cache:
        return _fit_and_evaluate(split, config, progress)
    fresh: list[TrainResult] = []

    def compute() -> dict:
        result, record = _fit_and_evaluate(split, config, progress)
        fresh.append(result)
        return {"state": result.model.state_dict(), "history": result.history.to_dict("list"),
                "best_step": result.best_step, "best_valid": result.best_valid,
                "seconds": result.seconds, "record": record}

    def restore(stored: dict) -> tuple[TrainResult, dict]:
        model = _build(split, config)
        model.load_state_dict(stored["state"])  # strict: every name and shape must match
        model.to(pick_device(config.device)).eval()  # where a fresh fit would have left it
        return (TrainResult(model=model, history=pd.DataFrame(stored["history"]),
                            best_step=stored["best_step"], best_valid=stored["best_valid"],
                            seconds=stored["seconds"], seed=config.seed, config=config,
                            n_train=len(split.train)),
                # scored again (the same numbers), so a record cached before a metric was added
                # to the slices has it too
                {**stored["record"], **score_valid_and_test(model, split,
                                                            history_len=config.history_len),
                 "cached": True})

    value, _ = cached_state("cf", _fit_key(split, config), compute, restore=restore)
    return (fresh[0], {**value["record"], "cached": False}) if fresh else value


def _fit_and_evaluate(split: CTRSplit, config: CFConfig, progress: bool
                      ) -> tuple[TrainResult, dict]:
    result = train_cf(split, config, progress=progress)
    record = score_valid_and_test(result.model, split, history_len=config.history_len)
    record.update(seconds=round(result.seconds, 2), seed=config.seed,
                  best_epoch=result.best_step, dataset=split.name)
    return result, record


def _fit_key(split: CTRSplit, config: CFConfig) -> str:
    """Changes with the split's rows and every setting but the device."""
    return f"{config.model}-{config.cache_key(split.fingerprint())}"
