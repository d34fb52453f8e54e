"""SeLLa-Rec end to end, with its baselines and ablations, on one split, one backbone, one seed.

Stages (as in the paper):

1. LoRA on text-only prompts — this *is* the TALLRec-style baseline;
2. semantic item table + MF aligned to it (:mod:`sellakit.align`; notebook 04 saves it, and
   :class:`~sellakit.align.AlignedTables` reads it back);
3. LLM and stage-1 LoRA frozen (``RecConfig.tune_lora`` unfreezes LoRA), train the CF tables,
   the semantic table, ``P_C`` (initialised from the alignment projector) and ``P_S``.

Methods (:data:`METHODS`): ``mf`` (the CF model alone), ``tallrec`` (stage 1), ``collm`` (plain
MF, frozen, through CoLLM's mapping into ``<UserID>``/``<TargetItemID>``), ``sella``; ablations
(:data:`ABLATIONS`): ``sella_no_align`` (plain MF and the LLM's raw semantic table, projector from
scratch), ``sella_random_init`` (aligned tables, projector from scratch), ``sella_no_warm``
(no ``<Warm_ID>``). Every method is selected on validation AUC and scored once on test, on the
same sampled rows.

Example::

    >>> from sellakit.rec import RecConfig, run_methods
    >>> run = run_methods(split, ["mf", "tallrec", "sella"], RecConfig.quick())  # doctest: +SKIP
    >>> run.results["sella"]["test"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from sellakit.align import AlignConfig, AlignedTables, Projector, train_aligned_mf
from sellakit.cf import CFConfig, fit_and_evaluate, predict
from sellakit.config import seed_everything
from sellakit.data.protocol import CTRSplit
from sellakit.errors import ConfigError
from sellakit.llm import Backbone, item_semantic_embeddings, load_backbone
from sellakit.metrics import ctr_metrics, evaluate_slices
from sellakit.rec.config import RecConfig, make_accelerator
from sellakit.rec.model import SpecialTokenRec, add_lora, collm_mapping, copy_table, score_prompts
from sellakit.rec.prompts import SLOT_TOKENS, TEMPLATES, PromptBuilder, add_slot_tokens, \
    answer_token_ids
from sellakit.rec.train import train_rec
from sellakit.selection import TrainResult

__all__ = ["METHODS", "ABLATIONS", "RecRun", "run_methods", "sample_rows", "prepare_stage2",
           "template_for"]

METHODS = ("mf", "tallrec", "collm", "sella")
ABLATIONS = ("sella_no_align", "sella_random_init", "sella_no_warm")
_TOKEN_METHODS = ("collm", "sella") + ABLATIONS


@dataclass
class RecRun:
    """Everything a notebook wants after :func:`run_methods`."""

    results: dict[str, dict]
    models: dict[str, SpecialTokenRec]
    training: dict[str, TrainResult]
    builders: dict[str, PromptBuilder]
    rows: dict[str, pd.DataFrame]
    backbone: Backbone
    config: RecConfig
    titles: np.ndarray
    scores: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def template_for(method: str) -> str:
    """The key in :data:`TEMPLATES` of the prompt ``method`` reads."""
    return {"tallrec": "text", "collm": "collm", "sella_no_warm": "sella_no_warm"}.get(method,
                                                                                      "sella")


def sample_rows(frame: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    """A seeded sample of ``n`` rows in their original order (all rows when ``n`` is None)."""
    if n is None or n >= len(frame):
        return frame.reset_index(drop=True)
    return frame.sample(n=n, random_state=seed).sort_index().reset_index(drop=True)


def run_methods(split: CTRSplit, methods: Sequence[str], config: RecConfig, *,
                plain_mf: nn.Module, aligned: AlignedTables | None = None,
                semantic: np.ndarray | None = None, backbone: Backbone | None = None,
                model: str = "smollm2-135m", accelerator=None, progress: bool = True) -> RecRun:
    """Train and score ``methods`` (from :data:`METHODS` and :data:`ABLATIONS`).

    Args:
        plain_mf: a trained MF (:func:`sellakit.cf.fit_and_evaluate`): the ``mf`` baseline and the
            CF model behind ``collm`` and ``sella_no_align``.
        aligned: stage 2's aligned MF (needed by the SeLLa-Rec methods): ``AlignedTables.load``
            of notebook 04's file, or :meth:`sellakit.align.AlignResult.tables`.
        semantic: the LLM's raw item table (needed by ``sella_no_align``).
        backbone: a loaded backbone (else ``model`` is loaded); slot tokens are added to it.
    """
    _check_inputs(methods, aligned, semantic)
    seed_everything(config.seed)
    accelerator = accelerator or make_accelerator(config)
    rows = {"train": sample_rows(split.train, config.train_rows, config.seed),
            "valid": sample_rows(split.valid, config.valid_rows, config.seed),
            "test": sample_rows(split.test, config.test_rows, config.seed)}
    run = RecRun(results={}, models={}, training={}, builders={}, rows=rows,
                 backbone=backbone or load_backbone(model, device=accelerator.device),
                 config=config, titles=split.item_titles)
    add_slot_tokens(run.backbone.tokenizer, run.backbone.model)
    answers = answer_token_ids(run.backbone.tokenizer)
    if "mf" in methods:
        run.scores["mf"] = {s: predict(plain_mf, rows[s]) for s in ("valid", "test")}
        run.results["mf"] = _method_results(rows, run.scores["mf"], seconds=0.0,
                                    backbone="none (MF alone)", seed=config.seed)
    llm_methods = [m for m in methods if m != "mf"]
    if not llm_methods:
        return run
    show = progress and accelerator.is_main_process

    # Stage 1: LoRA on text-only prompts (the TALLRec-style baseline).
    llm = add_lora(run.backbone.model, config)
    _fit(run, "tallrec", SpecialTokenRec(llm, answers), _prompt_sets(run, "tallrec"),
         config.lr_lora, accelerator, show)
    stage1 = {n: p.detach().clone() for n, p in llm.named_parameters() if p.requires_grad}
    if "tallrec" not in methods:
        run.results.pop("tallrec")

    d_cf, d_llm = plain_mf.item_embedding.weight.shape[1], run.backbone.hidden_size
    for name in [m for m in llm_methods if m in _TOKEN_METHODS]:
        # Every stage-3 method starts from the same stage-1 LoRA, frozen unless tune_lora.
        with torch.no_grad():
            for n, p in llm.named_parameters():
                if n in stage1:
                    p.copy_(stage1[n])
                p.requires_grad_(config.tune_lora and n in stage1)
        seed_everything(config.seed)
        model_ = _stage3_model(name, llm, answers, plain_mf, aligned, semantic, d_cf, d_llm)
        _fit(run, name, model_, _prompt_sets(run, name), config.lr_tokens, accelerator, show)
    return run


def _check_inputs(methods: Sequence[str], aligned: AlignedTables | None,
                  semantic: np.ndarray | None) -> None:
    """A :class:`ConfigError` naming the fix for unknown methods or missing stage-2 inputs."""
    unknown = sorted(set(methods) - set(METHODS) - set(ABLATIONS))
    if unknown:
        raise ConfigError(f"Unknown methods {unknown}; choose from {METHODS + ABLATIONS}.")
    needs_aligned = [m for m in methods if m.startswith("sella") and m != "sella_no_align"]
    if needs_aligned and aligned is None:
        raise ConfigError(f"{needs_aligned} need the aligned MF of stage 2. Fix: pass "
                          "aligned=AlignedTables.load('build/aligned_mf.pt') (notebook 04).")
    if "sella_no_align" in methods and semantic is None:
        raise ConfigError("sella_no_align needs the LLM's raw item table. Fix: pass semantic="
                          "item_semantic_embeddings(backbone, split.item_titles).")


def _prompt_sets(run: RecRun, method: str) -> dict:
    """``{split: (encoded prompts, rows)}`` of ``method``'s template (one builder each)."""
    template = template_for(method)
    if template not in run.builders:
        family = "collm" if method == "collm" else "sella"
        run.builders[template] = PromptBuilder(run.backbone.tokenizer, TEMPLATES[template],
                                               slot_tokens=SLOT_TOKENS[family],
                                               history_len=run.config.history_len)
    builder = run.builders[template]
    return {s: (builder.encode_rows(f, run.titles), f) for s, f in run.rows.items()}


def _fit(run: RecRun, name: str, model: SpecialTokenRec, data: dict, lr: float, accelerator,
         progress: bool) -> None:
    """Train ``model`` (selected on validation), score test once, record both in ``run``."""
    config, pad_id = run.config, run.backbone.tokenizer.pad_token_id
    model.to(accelerator.device)
    trained = train_rec(model, data["train"], data["valid"], config, lr=lr, pad_id=pad_id,
                        accelerator=accelerator, progress=progress, desc=name)
    run.training[name], run.models[name] = trained, trained.model
    # Validation scores come from the selection itself; test is scored once, here.
    scores = {"valid": trained.valid_scores,
              "test": score_prompts(trained.model, *data["test"], pad_id=pad_id,
                                    batch_size=config.score_batch_size, accelerator=accelerator,
                                    desc=f"{name}: test", progress=progress)}
    run.scores[name] = scores
    run.results[name] = _method_results(run.rows, scores, seconds=round(trained.seconds, 1),
                                backbone=run.backbone.name, seed=config.seed,
                                best_step=trained.best_step)


def _stage3_model(name: str, llm, answers, plain_mf: nn.Module,
                  aligned: AlignedTables | None, semantic: np.ndarray | None, d_cf: int,
                  d_llm: int) -> SpecialTokenRec:
    plain_user = plain_mf.user_embedding.weight.detach().cpu().numpy()
    plain_item = plain_mf.item_embedding.weight.detach().cpu().numpy()
    if name == "collm":  # CoLLM default: the CF model frozen, only the mapping trained
        return SpecialTokenRec(llm, answers, user_table=copy_table(plain_user, trainable=False),
                               item_table=copy_table(plain_item, trainable=False),
                               cf_projector=collm_mapping(d_cf, d_llm))
    if name == "sella_no_align":  # plain MF, the LLM's raw table, SeLLa-Rec's projector width
        user, item, semantic_table = plain_user, plain_item, semantic
        projector = Projector(d_cf, d_llm, hidden=1024)
    else:  # the alignment projector's shape; its weights unless sella_random_init
        user, item, semantic_table = aligned.user, aligned.item, aligned.semantic
        projector = aligned.projector(trained=name != "sella_random_init")
    warm = name != "sella_no_warm"
    return SpecialTokenRec(
        llm, answers, user_table=copy_table(user, trainable=True),
        item_table=copy_table(item, trainable=True), cf_projector=projector,
        semantic=copy_table(semantic_table, trainable=True) if warm else None,
        semantic_projector=nn.Linear(d_llm, d_llm) if warm else None)


def _method_results(rows: dict[str, pd.DataFrame], scores: dict[str, np.ndarray], **facts
                    ) -> dict:
    """Validation metrics, test metrics on all / warm / cold rows, and ``facts``."""
    return {"valid": ctr_metrics(rows["valid"], scores["valid"]),
            **evaluate_slices(rows["test"], scores["test"]), **facts}


def prepare_stage2(split: CTRSplit, backbone: Backbone, *, preset: str = "quick",
                   seed: int = 2025, aligned: str | Path | None = None, progress: bool = True
                   ) -> tuple[nn.Module, np.ndarray, AlignedTables]:
    """What stage 3 needs besides the LLM: a plain MF, the LLM's item table and the aligned MF.

    The plain MF is trained with ``CFConfig.<preset>`` (epoch chosen on validation); the aligned
    MF is read from ``aligned`` (notebook 04's ``build/aligned_mf.pt``) when given and present,
    else trained here with ``AlignConfig.<preset>``. Call before slot tokens are added (the item
    table's cache key includes the vocabulary size).
    """
    plain, _ = fit_and_evaluate(split, CFConfig.preset(preset, model="mf", seed=seed),
                                progress=progress)
    semantic = item_semantic_embeddings(backbone, split.item_titles, progress=progress)
    if aligned is not None and Path(aligned).exists():
        tables = AlignedTables.load(aligned)
    else:
        result = train_aligned_mf(split, semantic, AlignConfig.preset(preset, seed=seed),
                                  progress=progress)
        tables = result.tables()
    return plain.model, semantic, tables
