"""Training of a :class:`~sellakit.rec.model.SpecialTokenRec`: BCE on the Yes/No score, the
checkpoint chosen on validation AUC.

Training (:func:`train_rec`) runs through 🤗 Accelerate, so the same code runs on a CPU, one GPU
(bf16) or several (``accelerate launch``); the checkpoint is chosen on validation AUC, evaluated
every ``eval_every`` optimiser steps and at the end of each epoch.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from sellakit.errors import ConfigError
from sellakit.metrics import auc, require_both_labels
from sellakit.rec.config import RecConfig, make_accelerator
from sellakit.rec.model import SpecialTokenRec, collate_rows, score_prompts
from sellakit.rec.prompts import EncodedPrompt
from sellakit.selection import CheckpointSelector, TrainResult

__all__ = ["train_rec"]


def train_rec(model: SpecialTokenRec, train: tuple[list[EncodedPrompt], pd.DataFrame],
              valid: tuple[list[EncodedPrompt], pd.DataFrame], config: RecConfig, *, lr: float,
              pad_id: int, accelerator=None, progress: bool = True, desc: str = "train"
              ) -> TrainResult:
    """Train the parameters of ``model`` that require grad with BCE on the Yes/No score.

    Validation AUC is measured at step 0 (the model as it starts), every ``eval_every``
    optimiser steps and at the end of each epoch; the best checkpoint is restored.
    """
    require_both_labels(valid[1].label, f"the validation rows of {desc}")
    accelerator = accelerator or make_accelerator(config)
    started = time.perf_counter()
    prompts, frame = train
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("Nothing to train: no parameter of the model requires grad.")
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    loader = torch.utils.data.DataLoader(range(len(prompts)), batch_size=config.batch_size,
                                         shuffle=True, generator=generator)
    wrapped, optimiser, loader = accelerator.prepare(model, optimiser, loader)
    inner = accelerator.unwrap_model(wrapped)

    selector = CheckpointSelector(snapshot=_trainable_state)

    def validate(step: int, loss: float) -> None:
        scores = score_prompts(inner, valid[0], valid[1], pad_id=pad_id, accelerator=accelerator,
                               batch_size=config.score_batch_size, desc=f"{desc}: valid",
                               progress=progress and accelerator.is_main_process)
        rows.append({"step": step, "train_loss": loss, "valid_auc": auc(valid[1].label, scores)})
        selector.update(step, rows[-1]["valid_auc"], inner, {"auc": rows[-1]["valid_auc"]},
                        keep=scores)

    rows, step, running = [], 0, []
    validate(0, float("nan"))
    total = config.epochs * len(loader) // config.grad_accum
    bar = tqdm(total=total, desc=desc, disable=not progress or not accelerator.is_main_process)
    wrapped.train()
    for _ in range(config.epochs):
        for micro, index in enumerate(loader):
            index = index.cpu().numpy()
            batch = collate_rows([prompts[i] for i in index], frame.iloc[index], pad_id,
                                 accelerator.device)
            running.append(_micro_step(wrapped, batch, optimiser, accelerator))
            if (micro + 1) % config.grad_accum:
                continue
            step += 1
            bar.update()
            bar.set_postfix(loss=f"{np.mean(running[-20:]):.3f}")
            if step % config.eval_every == 0:
                validate(step, float(np.mean(running[-config.eval_every * config.grad_accum:])))
        if not rows or rows[-1]["step"] != step:
            validate(step, float(np.mean(running[-len(loader):])))
    bar.close()
    selector.restore(inner)
    inner.eval()
    return TrainResult(model=inner, history=pd.DataFrame(rows), best_step=selector.best_step,
                       best_valid=selector.best_metrics, seconds=time.perf_counter() - started,
                       seed=config.seed, config=config, n_train=len(prompts),
                       valid_scores=selector.best_kept)


def _micro_step(wrapped, batch: dict, optimiser, accelerator) -> float:
    """BCE on the Yes/No score of one micro-batch; the optimiser steps when Accelerate's
    gradient accumulation says so. Returns the loss."""
    with accelerator.accumulate(wrapped):
        loss = nn.functional.binary_cross_entropy_with_logits(wrapped(batch), batch["label"])
        accelerator.backward(loss)
        optimiser.step()
        optimiser.zero_grad()
    return loss.item()


def _trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the parameters being trained (the frozen LLM is not copied)."""
    return {name: p.detach().to("cpu", copy=True) for name, p in model.named_parameters()
            if p.requires_grad}
