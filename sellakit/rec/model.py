"""SeLLa-Rec's recommendation layer, and the TALLRec- and CoLLM-style baselines, in one model.

:class:`SpecialTokenRec` reads a prompt (:mod:`sellakit.rec.prompts`) and replaces the input
embeddings at its slot tokens, per sample, with projected vectors:

- ``<User_ID>`` / ``<Item_ID>``: ``P_C(e_u)``, ``P_C(e_i)`` — MF user/item vectors through the
  collaborative projector (SeLLa-Rec: MLP ``d_cf -> 1024 -> GELU -> d_llm``, initialised from the
  alignment projector; CoLLM: ``d_cf -> 10 d_cf -> ReLU -> d_llm``);
- ``<Warm_ID>``: ``P_S(t_i)`` — the item's row of the aligned semantic table through a
  ``d_llm -> d_llm`` linear map.

The score is ``P(Yes) / (P(Yes) + P(No))`` from the next-token distribution at the last
position, i.e. ``sigmoid(logit_Yes - logit_No)``; training minimises the binary cross-entropy of
that same score (CoLLM trains on the answer too; SeLLa-Rec's code uses the LM loss over the whole
prompt, which spends most of its signal on reproducing the prompt).

Training (:func:`train_rec`) runs through 🤗 Accelerate, so the same code runs on a CPU, one GPU
(bf16) or several (``accelerate launch``); the checkpoint is chosen on validation AUC, evaluated
every ``eval_every`` optimiser steps and at the end of each epoch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from sellakit.rec.prompts import EncodedPrompt, collate
from sellakit.metrics import auc

__all__ = ["RecConfig", "SpecialTokenRec", "collm_mapping", "add_lora", "train_rec",
           "collate_rows", "score_prompts", "RecTrainResult", "copy_table", "make_accelerator"]


@dataclass
class RecConfig:
    """Settings of the LLM stages (one config for every method, so comparisons are fair).

    Attributes:
        history_len: liked titles shown in the prompt (the most recent ones).
        train_rows / valid_rows / test_rows: seeded samples of each split (None: every row).
        epochs: passes over the training rows per stage.
        batch_size: prompts per optimiser step per process (times ``grad_accum``).
        eval_every: validate (and maybe keep the checkpoint) every this many optimiser steps,
            and at the end of each epoch.
        lr_lora: learning rate of stage 1 (LoRA on text-only prompts).
        lr_tokens: learning rate of stage 3 (tables and projectors; LoRA too if ``tune_lora``).
        lora_r / lora_alpha / lora_dropout / lora_targets: the LoRA adapter of stage 1.
        tune_lora: stage 3 also tunes the stage-1 LoRA (SeLLa-Rec's code keeps it frozen).
            The LoRA is shared, so after the run it holds the last method's weights: results are
            recorded per method as it finishes, but re-score earlier methods only without it.
        gradient_checkpointing: recompute activations in the backward pass (a 7B model's
            activations for a batch of prompts do not fit a GPU otherwise; slower by ~30 %).
        score_batch_size: prompts per forward pass when scoring (length-sorted batches).
        seed: seeds sampling, initialisation and shuffling.
    """

    history_len: int = 10
    train_rows: int | None = None
    valid_rows: int | None = None
    test_rows: int | None = None
    epochs: int = 1
    batch_size: int = 8
    grad_accum: int = 1
    eval_every: int = 100
    lr_lora: float = 1e-4
    lr_tokens: float = 1e-3
    weight_decay: float = 0.0
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    tune_lora: bool = False
    gradient_checkpointing: bool = False
    score_batch_size: int = 32
    seed: int = 2025

    @classmethod
    def quick(cls, **overrides) -> RecConfig:
        """Minutes on a laptop CPU: 5 history titles, 256 training / 128 valid / 384 test rows
        (seeded samples), one epoch, validation twice per stage."""
        base = dict(history_len=5, train_rows=256, valid_rows=128, test_rows=384, epochs=1,
                    batch_size=8, eval_every=16, lr_lora=3e-4, lr_tokens=1e-3)
        return cls(**{**base, **overrides})

    @classmethod
    def paper(cls, **overrides) -> RecConfig:
        """The full ML-1M protocol (every row, 10 titles), SeLLa-Rec's LoRA (r 64, alpha 16,
        attention and MLP projections), effective batch 128, gradient checkpointing; meant for
        a GPU."""
        base = dict(history_len=10, epochs=1, batch_size=16, grad_accum=8, eval_every=50,
                    lr_lora=1e-4, lr_tokens=1e-3, lora_r=64, lora_alpha=16,
                    lora_targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                  "up_proj", "down_proj"), gradient_checkpointing=True,
                    score_batch_size=64)
        return cls(**{**base, **overrides})


def make_accelerator(config: RecConfig):
    """The 🤗 Accelerate handle of a run: CPU, one GPU, or the processes of ``accelerate
    launch``; gradient accumulation as configured."""
    from accelerate import Accelerator

    return Accelerator(cpu=not torch.cuda.is_available(),
                       gradient_accumulation_steps=config.grad_accum)


def collm_mapping(d_cf: int, d_llm: int) -> nn.Module:
    """CoLLM's CIE mapping: ``Linear(d, 10 d) -> ReLU -> Linear(10 d, d_llm)``."""
    return nn.Sequential(nn.Linear(d_cf, 10 * d_cf), nn.ReLU(), nn.Linear(10 * d_cf, d_llm))


def add_lora(model, config: RecConfig):
    """Wrap ``model`` with a fresh LoRA adapter (PEFT); only the adapter is trainable."""
    from peft import LoraConfig, get_peft_model

    targets = [t for t in config.lora_targets
               if any(name.endswith(t) for name, _ in model.named_modules())]
    if not targets:
        raise ValueError(f"None of lora_targets={config.lora_targets} names a module of "
                         f"{type(model).__name__}. Fix: set RecConfig.lora_targets to its "
                         "projection names (e.g. ('q_proj', 'v_proj') for Llama/Qwen).")
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,
                      lora_dropout=config.lora_dropout, target_modules=targets, bias="none",
                      task_type="CAUSAL_LM")
    if config.gradient_checkpointing:
        # Non-reentrant: gradients reach the (replaced) input embeddings and the LoRA weights
        # without the inputs having to require grad.
        # Newer transformers call it activation checkpointing (the old name warns); older
        # releases have only the old name.
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable({"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False})
    return get_peft_model(model, lora)


class SpecialTokenRec(nn.Module):
    """An LLM scoring Yes/No prompts, with slot inputs replaced by projected vectors.

    Args:
        llm: the causal LM (with or without LoRA); shared between methods, never copied.
        answer_ids: token ids of "Yes" and "No".
        user_table / item_table: CF embedding tables (``nn.Embedding``) for ``<User_ID>`` and
            ``<Item_ID>``; None for text-only prompts.
        cf_projector: maps CF vectors to the LLM's input space (shared by users and items).
        semantic: the ``(n_items, d_llm)`` semantic table for ``<Warm_ID>`` (``nn.Embedding``).
        semantic_projector: ``d_llm -> d_llm`` map for ``<Warm_ID>``.
    """

    def __init__(self, llm, answer_ids: tuple[int, int], *, user_table: nn.Embedding | None = None,
                 item_table: nn.Embedding | None = None, cf_projector: nn.Module | None = None,
                 semantic: nn.Embedding | None = None,
                 semantic_projector: nn.Module | None = None):
        super().__init__()
        self.llm = llm
        self.answer_ids = tuple(answer_ids)
        self.user_table, self.item_table, self.cf_projector = user_table, item_table, cf_projector
        self.semantic, self.semantic_projector = semantic, semantic_projector

    def slot_vectors(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The vector that goes into each slot of the batch (rows x d_llm)."""
        vectors = {}
        if "slot_user" in batch:
            vectors["user"] = self.cf_projector(self.user_table(batch["uid"]))
        if "slot_item" in batch:
            vectors["item"] = self.cf_projector(self.item_table(batch["iid"]))
        if "slot_warm" in batch:
            vectors["warm"] = self.semantic_projector(self.semantic(batch["iid"]))
        return vectors

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``logit(Yes) - logit(No)`` at the answer position, one per row (float32)."""
        ids, mask = batch["input_ids"], batch["attention_mask"]
        embeds = self.llm.get_input_embeddings()(ids)
        rows = torch.arange(len(ids), device=ids.device)
        for name, vector in self.slot_vectors(batch).items():
            # Out of place: with gradient checkpointing the embedding output is a leaf.
            embeds = embeds.index_put((rows, batch[f"slot_{name}"]), vector.to(embeds.dtype))
        # Right padding: real tokens sit at 0..last, so the default positions are right. The
        # decoder's final hidden state at each row's last real token meets only the two answer
        # rows of the output layer (the full-vocabulary logits are never formed).
        hidden = self.llm.get_decoder()(inputs_embeds=embeds, attention_mask=mask
                                        ).last_hidden_state[rows, batch["last"]]
        head = self.llm.get_output_embeddings()
        yes, no = self.answer_ids
        logits = hidden.float() @ head.weight[[yes, no]].float().T
        if getattr(head, "bias", None) is not None:
            logits = logits + head.bias[[yes, no]].float()
        cap = getattr(self.llm.config, "final_logit_softcapping", None)  # Gemma 2
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits[:, 0] - logits[:, 1]


def collate_rows(prompts: Sequence[EncodedPrompt], frame: pd.DataFrame, pad_id: int,
                 device) -> dict[str, torch.Tensor]:
    """One batch on ``device``: the prompts right-padded (:func:`~sellakit.rec.prompts.collate`)
    plus their rows' ``uid``, ``iid`` (what the slot vectors are looked up by) and ``label``.

    Args:
        prompts: encoded prompts, one per row of ``frame`` and in its order.
        frame: the rows of a split frame the prompts were built from (``uid``, ``iid``,
            ``label``).
        pad_id: the tokenizer's pad token id.
        device: where the tensors go.
    """
    batch = collate(prompts, pad_id)
    batch["uid"] = torch.tensor(frame.uid.to_numpy(), dtype=torch.long)
    batch["iid"] = torch.tensor(frame.iid.to_numpy(), dtype=torch.long)
    batch["label"] = torch.tensor(frame.label.to_numpy(), dtype=torch.float32)
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def score_prompts(model: SpecialTokenRec, prompts: Sequence[EncodedPrompt], frame: pd.DataFrame,
                  *, pad_id: int, batch_size: int = 32, accelerator=None,
                  progress: bool = False, desc: str = "scoring") -> np.ndarray:
    """``P(Yes) / (P(Yes) + P(No))`` for every prompt, in the order given.

    Prompts are sorted by length so each batch pads little; with several processes each scores
    a share and the scores are gathered.
    """
    from accelerate.utils import gather_object

    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator \
        else (0, 1)
    device = next(p.device for p in model.parameters())
    was_training = model.training
    model.eval()
    order = np.argsort([len(p.ids) for p in prompts], kind="stable")
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)][rank::world]
    pairs = []
    for index in tqdm(batches, desc=desc, disable=not progress, leave=False):
        logits = model(collate_rows([prompts[i] for i in index], frame.iloc[index], pad_id,
                                     device))
        pairs.extend(zip(index.tolist(), torch.sigmoid(logits).cpu().tolist()))
    model.train(was_training)
    if world > 1:
        pairs = gather_object(pairs)
    scores = np.full(len(prompts), np.nan)
    for i, s in pairs:
        scores[i] = s
    return scores


@dataclass
class RecTrainResult:
    """The trained model (best validation checkpoint restored), its learning curve, and its
    validation scores (those of the restored checkpoint)."""

    model: SpecialTokenRec
    history: pd.DataFrame
    best_step: int
    best_valid_auc: float
    valid_scores: np.ndarray
    seconds: float
    config: dict = field(default_factory=dict)


def train_rec(model: SpecialTokenRec, train: tuple[list[EncodedPrompt], pd.DataFrame],
              valid: tuple[list[EncodedPrompt], pd.DataFrame], config: RecConfig, *, lr: float,
              pad_id: int, accelerator=None, progress: bool = True, desc: str = "train"
              ) -> RecTrainResult:
    """Train the parameters of ``model`` that require grad with BCE on the Yes/No score.

    Validation AUC is measured at step 0 (the model as it starts), every ``eval_every``
    optimiser steps and at the end of each epoch; the best checkpoint is restored.
    """
    accelerator = accelerator or make_accelerator(config)
    started = time.perf_counter()
    prompts, frame = train
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("Nothing to train: no parameter of the model requires grad.")
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    loader = torch.utils.data.DataLoader(range(len(prompts)), batch_size=config.batch_size,
                                         shuffle=True, generator=generator)
    wrapped, optimiser, loader = accelerator.prepare(model, optimiser, loader)
    inner = accelerator.unwrap_model(wrapped)
    loss_fn = nn.BCEWithLogitsLoss()

    def validate(step: int, loss: float) -> None:
        scores = score_prompts(inner, valid[0], valid[1], pad_id=pad_id, accelerator=accelerator,
                               batch_size=config.score_batch_size, desc=f"{desc}: valid",
                               progress=progress and accelerator.is_main_process)
        rows.append({"step": step, "train_loss": loss, "valid_auc": auc(valid[1].label, scores)})
        nonlocal best
        if best is None or rows[-1]["valid_auc"] > best[1]:
            best = (step, rows[-1]["valid_auc"], _trainable_state(inner), scores)

    rows: list[dict] = []
    best = None
    step, running = 0, []
    validate(0, float("nan"))
    total = config.epochs * len(loader) // config.grad_accum
    bar = tqdm(total=total, desc=desc, disable=not progress or not accelerator.is_main_process)
    wrapped.train()
    for _ in range(config.epochs):
        for micro, index in enumerate(loader):
            index = index.cpu().numpy()
            batch = collate_rows([prompts[i] for i in index], frame.iloc[index], pad_id,
                                 accelerator.device)
            with accelerator.accumulate(wrapped):
                loss = loss_fn(wrapped(batch), batch["label"])
                accelerator.backward(loss)
                optimiser.step()
                optimiser.zero_grad()
            running.append(loss.item())
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
    best_step, best_auc, state, valid_scores = best
    inner.load_state_dict(state, strict=False)
    inner.eval()
    return RecTrainResult(model=inner, history=pd.DataFrame(rows), best_step=best_step,
                          best_valid_auc=float(best_auc), valid_scores=valid_scores,
                          seconds=time.perf_counter() - started, config=asdict(config))


def _trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the parameters being trained (the frozen LLM is not copied)."""
    return {name: p.detach().to("cpu", copy=True) for name, p in model.named_parameters()
            if p.requires_grad}


def copy_table(weights: torch.Tensor | np.ndarray, *, trainable: bool) -> nn.Embedding:
    """An ``nn.Embedding`` initialised from ``weights`` (copied, so the source stays intact)."""
    table = nn.Embedding.from_pretrained(torch.as_tensor(np.asarray(weights), dtype=torch.float32)
                                         .clone(), freeze=not trainable)
    return table
