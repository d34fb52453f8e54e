"""The settings of the LLM stages (:class:`RecConfig`) and the 🤗 Accelerate handle built from
them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, Literal

import torch

from sellakit.config import Config, bounded

__all__ = ["RecConfig", "NOTEBOOK_QUICK_ROWS", "make_accelerator"]

#: What notebooks 05 and 08 put on top of the ``quick`` preset, and the exercise answers measured
#: on their runs (:mod:`sellakit.benchmarks.exercises`): fewer rows and history titles, so that the
#: two LLM notebooks fit the quick series' time (``RecConfig.preset("quick",
#: **NOTEBOOK_QUICK_ROWS)``).
NOTEBOOK_QUICK_ROWS: Mapping[str, int] = MappingProxyType(dict(
    train_rows=128, valid_rows=64, test_rows=192, history_len=3, eval_every=16, token_epochs=2))


@dataclass(frozen=True)
class RecConfig(Config):
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
        seed: seeds initialisation and shuffling (and sampling, unless ``sample_seed``).
        sample_seed: seeds the row samples (None: ``seed``); fixed rows across seeds make
            seeds comparable row by row (paired statistics pool them).
        drop_empty_history: drop rows whose user has no earlier liked title (SeLLa-Rec's
            filtering, about 1% of ML-1M's rows).
        stratify: sample each split with the label x warm/cold shares of the whole split.
        token_epochs: passes of stage 3 (None: ``epochs``); with the cached text a stage-3 pass
            costs a tenth of a stage-1 pass.
        lr_tables: stage 3's learning rate of the CF and semantic tables (projectors use
            ``lr_tokens``); no weight decay on tables.
        warmup: share of the optimiser steps with a linear warm-up, then cosine decay to 0.
        freeze_cf: keep the CF user/item tables fixed in stage 3.
        normalize_slots: (under ``slot_scale="family"``) each SeLLa-Rec slot vector is a unit
            direction times a learnable
            scale, initialised to the median norm of the LLM's input embeddings (the projector
            then sets directions, not magnitudes).
        loss: ``"bce"`` (now): binary cross-entropy of the Yes/No score; ``"answer_lm"``:
            cross-entropy of the answer token over the whole vocabulary (the kit's former
            ``"lm"``); ``"lm"``: SeLLa-Rec's LM loss, cross-entropy over the whole vocabulary
            of every token after the first slot (the target title with ``slot_position=
            "before_title"``, the cue) and of the answer, averaged over those tokens (slot
            tokens are not targets).
        slot_position: ``"after_text"`` (now): the slots follow all the text, target title
            included; ``"before_title"``: the authors' prompt, the slots after the history and
            before the target title (the cached text is then the instruction and history,
            stored once per distinct history). Stage 1's text prompt is cut at the same place.
        projector_start: where SeLLa-Rec's ``P_C`` starts for rows whose ``projector`` is
            ``"alignment"``: ``"row"`` (now: as the row says), ``"alignment"``, ``"fresh"``, or
            ``"shrunk"`` (a learned shared direction plus ``shrink`` times the alignment
            projector's output; :class:`~sellakit.rec.model.ShrunkStart`).
        shrink: the multiple of the alignment projector's output in a ``"shrunk"`` start.
        warm_rows: the ``<Warm_ID>`` table's rows ``"centred"`` (now: the mean item state
            subtracted, as stage 2 aligns to) or ``"raw"`` (the LLM's states, as the authors).
        slot_scale: the rule that rescales slot vectors, for every token method:
            ``"family"`` (now: SeLLa-Rec's slots per ``normalize_slots``, CoLLM's unscaled),
            ``"none"`` (no method's), ``"input_norm"`` (every method's, CoLLM's included:
            :class:`~sellakit.rec.model.ScaledDirection` at the input embeddings' median norm).
        stage3_optim: stage 3's optimiser for the SeLLa-Rec family: ``"kit"`` (now:
            ``lr_tokens``, ``weight_decay``, betas (0.9, 0.999)) or ``"authors"`` (lr 2e-4,
            weight decay 0.01, betas (0.9, 0.95); batch as the preset).
        stage1_rows: stage 1 trains on a stratified, seeded subset of this many of the training
            rows (None: every one); stage 3 and the text cache still use every training row
            (issue 23: stage 3's step through the cached text is several times cheaper).
        stage1_loss: stage 1's loss: ``"same"`` (now: ``loss``), ``"bce"``, or ``"lm"`` (the
            LM loss: on stage 1's slotless prompt, the answer token's cross-entropy over the whole
            vocabulary, as TALLRec and SeLLa-Rec's stage 1 train).
        stratify_by: with ``stratify``, the groups each keep their share of the split: label x
            ``"warm"`` (now: warm or cold) or label x ``"cold_kind"`` (warm, user-cold,
            item-cold, both cold: the study preset's test rows match the full split's mix).
        cache_prefix: run each prompt's text once through the frozen LLM and reuse its
            key/value states in stage 3 and in scoring (:class:`~sellakit.rec.PrefixCache`).
        prefix_storage: the text cache ``"memory"`` (now: float32 tensors) or ``"disk_bf16"``
            (bfloat16 in the kit's cache, memory-mapped, sealed; a killed run reads it back:
            :meth:`~sellakit.rec.PrefixCache.stored`).
        item_cold_rows: also score every test row whose item is unseen in train (slice
            ``test_item_cold``: where ``<Warm_ID>`` should matter).
        cpu_bf16: on a CPU with native bfloat16 (AVX512-BF16 or AMX), run the LLM's passes
            (training, text cache, scoring) under bfloat16 autocast, weights and optimiser
            float32 (:func:`sellakit.config.cpu_bf16_autocast`); float32 elsewhere. The quick
            preset turns it on (notebook 05's quick stages: 135 s against 200 s on 2 cores);
            the benchmark presets leave it off, so their committed numbers stay reproducible.
    """

    #: Stage 3's settings under ``stage3_optim="authors"`` (SeLLa-Rec's train_sella.sh).
    AUTHORS_STAGE3: ClassVar[Mapping[str, object]] = MappingProxyType(
        {"lr": 2e-4, "weight_decay": 0.01, "betas": (0.9, 0.95)})
    #: Fields that change stage 3 only (stage 1's cache key leaves them out).
    STAGE3_FIELDS: ClassVar[tuple[str, ...]] = (
        "projector_start", "shrink", "warm_rows", "slot_scale", "stage3_optim")

    #: Stage 1's LoRA choices (``sellakit bench rec-curve --lora``): the fields each sets.
    LORA_SETS: ClassVar[Mapping[str, Mapping[str, object]]] = MappingProxyType({
        "qv_r8": MappingProxyType({"lora_r": 8, "lora_alpha": 16,
                                   "lora_targets": ("q_proj", "v_proj")}),
        "all_r64": MappingProxyType({"lora_r": 64, "lora_alpha": 16, "lora_targets": (
            "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")}),
    })

    PRESETS: ClassVar[tuple[str, ...]] = ("quick", "compare", "study", "paper")
    #: The CF and alignment preset (``CFConfig``, ``AlignConfig``) each preset's stage 2 runs:
    #: the CPU comparison keeps the quick MF and alignment, whose cost it cannot carry.
    STAGE2_PRESETS: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"quick": "quick", "compare": "quick", "study": "quick", "paper": "paper"})

    history_len: int = bounded(10, at_least=1)
    train_rows: int | None = bounded(None, at_least=1)
    valid_rows: int | None = bounded(None, at_least=1)
    test_rows: int | None = bounded(None, at_least=1)
    epochs: int = bounded(1, at_least=1)
    batch_size: int = bounded(8, at_least=1)
    grad_accum: int = bounded(1, at_least=1)
    eval_every: int = bounded(100, at_least=1)
    lr_lora: float = bounded(1e-4, above=0)
    lr_tokens: float = bounded(1e-3, above=0)
    weight_decay: float = bounded(0.0, at_least=0)
    lora_r: int = bounded(8, at_least=1)
    lora_alpha: int = bounded(16, above=0)
    lora_dropout: float = bounded(0.05, at_least=0, below=1)
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    tune_lora: bool = False
    gradient_checkpointing: bool = False
    score_batch_size: int = bounded(32, at_least=1)
    seed: int = bounded(2025, at_least=0)
    sample_seed: int | None = bounded(None, at_least=0)
    drop_empty_history: bool = False
    stratify: bool = False
    token_epochs: int | None = bounded(None, at_least=1)
    lr_tables: float = bounded(1e-4, above=0)
    warmup: float = bounded(0.1, at_least=0, below=1)
    freeze_cf: bool = False
    normalize_slots: bool = True
    loss: Literal["bce", "answer_lm", "lm"] = "bce"
    slot_position: Literal["after_text", "before_title"] = "after_text"
    projector_start: Literal["row", "alignment", "fresh", "shrunk"] = "row"
    shrink: float = bounded(0.1, at_least=0)
    warm_rows: Literal["centred", "raw"] = "centred"
    slot_scale: Literal["family", "none", "input_norm"] = "family"
    stage3_optim: Literal["kit", "authors"] = "kit"
    stage1_loss: Literal["same", "bce", "lm"] = "same"
    stage1_rows: int | None = bounded(None, at_least=1)
    stratify_by: Literal["warm", "cold_kind"] = "warm"
    cache_prefix: bool = True
    prefix_storage: Literal["memory", "disk_bf16"] = "memory"
    item_cold_rows: bool = False
    cpu_bf16: bool = False

    @classmethod
    def quick(cls, **overrides) -> RecConfig:
        """Minutes on a laptop CPU: 5 history titles, 256 training / 128 valid / 384 test rows
        (seeded samples), one epoch, validation twice per stage, bfloat16 passes on a CPU that
        has them natively (``cpu_bf16``)."""
        base = dict(history_len=5, train_rows=256, valid_rows=128, test_rows=384, epochs=1,
                    batch_size=8, eval_every=16, lr_lora=3e-4, lr_tokens=1e-3, cpu_bf16=True)
        return cls(**{**base, **overrides})

    @classmethod
    def compare(cls, **overrides) -> RecConfig:
        """A CPU comparison on 2 cores (stage 1 and the text cache about 12 minutes once, then
        about 2.5 minutes per stage-3 method and 4 for MF and stage 2, per seed):
        512 train / 256 valid / 1,024 test rows, stratified by label and warm/cold, rows with
        an empty history dropped, the same rows for every seed; 5 history titles (the text's
        key/value cache stays near 4.5 MB a row); stage 1 and stage 3 one epoch each (stage 3
        on the cached text); every test row of an item unseen in train scored as its own
        slice."""
        base = dict(history_len=5, train_rows=512, valid_rows=256, test_rows=1024, epochs=1,
                    token_epochs=1, batch_size=8, eval_every=32, lr_lora=3e-4,
                    lr_tokens=1e-3, lr_tables=1e-3, sample_seed=2025,
                    drop_empty_history=True, stratify=True, item_cold_rows=True)
        return cls(**{**base, **overrides})

    @classmethod
    def study(cls, **overrides) -> RecConfig:
        """The study on 2 cores (issue 23): the compare preset's settings on 4,096 train /
        1,024 valid / 2,048 test rows; the test rows stratified by label x warm / user-cold /
        item-cold / both-cold, so they match the full test split's mix (train and valid alike),
        seeded by ``sample_seed`` 2025 (every seed sees the same rows); the text cache in
        bfloat16 on disk, memory-mapped (about 2.3 MB a row at 5 history titles)."""
        base = dict(vars(cls.compare()), train_rows=4096, valid_rows=1024, test_rows=2048,
                    eval_every=128, stratify_by="cold_kind", prefix_storage="disk_bf16")
        return cls(**{**base, **overrides})

    def with_lora(self, name: str) -> RecConfig:
        """This config with stage 1's LoRA set ``name`` (a row of :attr:`LORA_SETS`)."""
        from dataclasses import replace

        from sellakit.errors import ConfigError

        if name not in self.LORA_SETS:
            raise ConfigError(f"LoRA set {name!r} is not a row of RecConfig.LORA_SETS; choose "
                              f"one of {', '.join(self.LORA_SETS)}.")
        return replace(self, **self.LORA_SETS[name])

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
