"""Training of a :class:`~sellakit.rec.model.SpecialTokenRec`: BCE on the Yes/No score, the
checkpoint chosen on validation AUC.

Training (:func:`train_rec`) runs through 🤗 Accelerate, so the same code runs on a CPU, one GPU
(bf16) or several (``accelerate launch``); the checkpoint is chosen on validation AUC, evaluated
every ``eval_every`` optimiser steps and at the end of each epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from sellakit.errors import ConfigError
from sellakit.metrics import auc, require_both_labels
from sellakit.rec.config import RecConfig, make_accelerator
from sellakit.rec.model import SpecialTokenRec, collate_rows, score_prompts
from sellakit.rec.prefix import PrefixCache
from sellakit.rec.prompts import EncodedPrompt
from sellakit.selection import CheckpointSelector, TrainResult

__all__ = ["train_rec", "slot_norms"]




def train_rec(model: SpecialTokenRec, train: tuple[list[EncodedPrompt], pd.DataFrame],
              valid: tuple[list[EncodedPrompt], pd.DataFrame], config: RecConfig, *, lr: float,
              pad_id: int, accelerator=None, progress: bool = True, desc: str = "train",
              epochs: int | None = None, prefixes: Mapping[str, PrefixCache] | None = None,
              authors_optim: bool = False) -> TrainResult:
    """Train the parameters of ``model`` that require grad with BCE on the Yes/No score (or the
    answer token's cross-entropy, ``config.loss="answer_lm"``, or SeLLa-Rec's LM loss on the
    tokens after the slots, ``"lm"``: :meth:`SpecialTokenRec.lm_loss`).

    Projectors (and LoRA) at ``lr`` with decoupled ``weight_decay``, tables at ``lr_tables``
    without; linear warm-up over ``config.warmup`` of the steps, then cosine decay. Validation
    AUC (and the slots' mean norms) at step 0, every ``eval_every`` optimiser steps and at each
    epoch's end; the best checkpoint is restored.

    Args:
        epochs: passes over ``train`` (default ``config.epochs``).
        prefixes: cached text of the ``"train"`` and ``"valid"`` rows (frozen LLM only).
        authors_optim: every trained parameter at SeLLa-Rec's stage-3 settings
            (:attr:`RecConfig.AUTHORS_STAGE3`) instead of ``lr`` / ``lr_tables``.
    """
    require_both_labels(valid[1].label, f"the validation rows of {desc}")
    accelerator = accelerator or make_accelerator(config)
    started = time.perf_counter()
    prompts, frame = train
    prefixes = prefixes or {}
    epochs = epochs or config.epochs
    total, (wrapped, optimiser, loader, schedule) = _prepared(model, len(prompts), epochs,
                                                              config, lr, accelerator,
                                                              authors_optim)
    inner = accelerator.unwrap_model(wrapped)
    show = progress and accelerator.is_main_process
    validate = _Validation(inner, valid, config, pad_id, accelerator, desc, show,
                           prefixes.get("valid"))
    step, running = 0, []
    validate(0, float("nan"))
    bar = tqdm(total=total, desc=desc, disable=not show)
    wrapped.train()
    if "train" in prefixes:  # the LLM reads cached states of its eval mode: keep it there
        inner.llm.eval()
    for _ in range(epochs):
        for micro, index in enumerate(loader):
            index = index.cpu().numpy()
            batch = collate_rows([prompts[i] for i in index], frame.iloc[index], pad_id,
                                 accelerator.device, prefix=prefixes.get("train"), index=index)
            running.append(_micro_step(wrapped, batch, optimiser, schedule, accelerator,
                                       inner.answer_ids, config.loss))
            if (micro + 1) % config.grad_accum:
                continue
            step += 1
            bar.update()
            bar.set_postfix(loss=f"{np.mean(running[-20:]):.3f}")
            if step % config.eval_every == 0:
                validate(step, float(np.mean(running[-config.eval_every * config.grad_accum:])))
        if validate.rows[-1]["step"] != step:
            validate(step, float(np.mean(running[-len(loader):])))
    bar.close()
    return _selected(inner, validate, started, config, len(prompts))


def _prepared(model: SpecialTokenRec, rows: int, epochs: int, config: RecConfig, lr: float,
              accelerator, authors_optim: bool = False) -> tuple[int, tuple]:
    """The optimiser steps of the run, and ``(model, optimiser, loader, schedule)`` through
    Accelerate: seeded shuffled batches of row indices, AdamW from the model's ``configure_optimizers``, the
    warm-up + cosine factor of :func:`_warmup_cosine`."""
    loader = torch.utils.data.DataLoader(
        range(rows), batch_size=config.batch_size, shuffle=True,
        generator=torch.Generator().manual_seed(config.seed))
    total = max(1, epochs * len(loader) // config.grad_accum)
    optimiser = model.configure_optimizers(config, lr, authors=authors_optim)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, _warmup_cosine(total, config.warmup))
    return total, accelerator.prepare(model, optimiser, loader, schedule)


class _Validation:
    """Scores the validation rows at a step, records the curve (``rows``) and keeps the best
    checkpoint on validation AUC (``selector``)."""

    def __init__(self, model: SpecialTokenRec, valid: tuple[list[EncodedPrompt], pd.DataFrame],
                 config: RecConfig, pad_id: int, accelerator, desc: str, progress: bool,
                 prefix: PrefixCache | None):
        self.model, self.valid, self.config, self.pad_id = model, valid, config, pad_id
        self.accelerator, self.desc, self.progress, self.prefix = (accelerator, desc, progress,
                                                                   prefix)
        self.rows: list[dict] = []
        self.selector = CheckpointSelector(snapshot=_trainable_state)

    def __call__(self, step: int, loss: float) -> None:
        prompts, frame = self.valid
        scores = score_prompts(self.model, prompts, frame, pad_id=self.pad_id,
                               accelerator=self.accelerator,
                               batch_size=self.config.score_batch_size,
                               desc=f"{self.desc}: valid", progress=self.progress,
                               prefix=self.prefix)
        self.rows.append({"step": step, "train_loss": loss, "valid_auc": auc(frame.label, scores),
                          **slot_norms(self.model, frame)})
        value = self.rows[-1]["valid_auc"]
        self.selector.update(step, value, self.model, {"auc": value}, keep=scores)


def _selected(inner: SpecialTokenRec, validation: _Validation, started: float,
              config: RecConfig, n_train: int) -> TrainResult:
    """The best checkpoint restored, in eval mode, with its learning curve."""
    selector = validation.selector
    selector.restore(inner)
    inner.eval()
    return TrainResult(model=inner, history=pd.DataFrame(validation.rows),
                       best_step=selector.best_step, best_valid=selector.best_metrics,
                       seconds=time.perf_counter() - started, seed=config.seed, config=config,
                       n_train=n_train, valid_scores=selector.best_kept)


def _warmup_cosine(total: int, warmup: float):
    """The learning-rate factor at each step: linear warm-up, then cosine decay to 0."""
    warm = max(1, round(warmup * total)) if warmup > 0 else 0

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


@torch.no_grad()
def slot_norms(model: SpecialTokenRec, frame: pd.DataFrame, rows: int = 64) -> dict[str, float]:
    """Mean norm of each slot's vector over the first ``rows`` rows of ``frame``
    (``norm_user``, ``norm_item``, ``norm_warm``; empty for text-only prompts)."""
    part = frame.iloc[:rows]
    device = next(model.parameters()).device
    batch = {"uid": torch.tensor(part.uid.to_numpy(), device=device),
             "iid": torch.tensor(part.iid.to_numpy(), device=device)}
    present = {"user": model.user_table, "item": model.item_table, "warm": model.semantic}
    batch.update({f"slot_{k}": None for k, table in present.items() if table is not None})
    return {f"norm_{k}": float(v.float().norm(dim=-1).mean())
            for k, v in model.slot_vectors(batch).items()}


def _micro_step(wrapped, batch: dict, optimiser, schedule, accelerator,
                answer_ids: tuple[int, int], loss_name: str) -> float:
    """The loss of one micro-batch; the optimiser and the schedule step when Accelerate's
    gradient accumulation says so. Returns the loss."""
    with accelerator.accumulate(wrapped):
        if loss_name == "lm":  # every token after the first slot, and the answer
            loss = wrapped({**batch, "lm_loss": True})
        elif loss_name == "answer_lm":  # the answer token among the whole vocabulary
            logits = wrapped({**batch, "full_vocabulary": True})
            target = torch.where(batch["label"] > 0.5, answer_ids[0], answer_ids[1])
            loss = nn.functional.cross_entropy(logits, target)
        else:
            loss = nn.functional.binary_cross_entropy_with_logits(wrapped(batch),
                                                                  batch["label"])
        accelerator.backward(loss)
        optimiser.step()
        schedule.step()
        optimiser.zero_grad()
    return loss.item()


def _trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the parameters being trained (the frozen LLM is not copied)."""
    return {name: p.detach().to("cpu", copy=True) for name, p in model.named_parameters()
            if p.requires_grad}
