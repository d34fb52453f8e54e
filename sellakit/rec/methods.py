"""SeLLa-Rec end to end, with its baselines and ablations, on one split, one backbone, one seed.

Stages (as in the paper):

1. LoRA on text-only prompts — this *is* the TALLRec-style baseline;
2. the item states read from the stage-1 model (centred), MF aligned to them
   (:mod:`sellakit.align`), run here after stage 1 when ``align_config`` is given; or a saved
   aligned MF (notebook 04's file, from the base model's states) passed as ``aligned``;
3. LLM and stage-1 LoRA frozen (``RecConfig.tune_lora`` unfreezes LoRA), train the CF tables,
   the semantic table, ``P_C`` (initialised from the alignment projector) and ``P_S``; the
   text's key/value states are cached once (:class:`~sellakit.rec.PrefixCache`).

Methods are the rows of :data:`METHOD_TABLE` (:class:`RecMethod`: template, slot family,
tables, projector start, warm slot, CF trainable; the inputs each needs follow from these), so
adding a method is one row. Methods (:data:`METHODS`): ``mf`` (the CF model alone), ``tallrec``
(stage 1), ``collm`` (plain MF, frozen, through CoLLM's mapping into
``<UserID>``/``<TargetItemID>``), ``sella``; ablations (:data:`ABLATIONS`): ``sella_no_align``
(plain MF and the LLM's raw semantic table, projector from scratch), ``sella_random_init``
(aligned tables, projector from scratch), ``sella_no_warm`` (no ``<Warm_ID>``),
``sella_frozen_cf`` (CF tables fixed in stage 3), ``collm_aligned`` (CoLLM's mapping on the
aligned MF, frozen). Every method is selected on validation AUC and
scored once on test, on the same sampled rows.

Example::

    >>> from sellakit.rec import RecConfig, run_methods
    >>> run = run_methods(split, ["mf", "tallrec", "sella"], RecConfig.quick())  # doctest: +SKIP
    >>> run.results["sella"]["test"]  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

import numpy as np
import pandas as pd
import torch
from torch import nn

from sellakit.align import AlignConfig, AlignedTables, Projector, train_aligned_mf
from sellakit.cache import cached_arrays, cached_state
from sellakit.cf import CFConfig, fit_and_evaluate, predict
from sellakit.config import cpu_bf16_active, cpu_bf16_autocast, seed_everything
from sellakit.data.catalog import ItemWords, item_words
from sellakit.data.protocol import CTRSplit
from sellakit.errors import CacheError, ConfigError
from sellakit.llm import Backbone, item_semantic_embeddings, load_backbone
from sellakit.llm.backbone import tokenizer_digest, weights_digest
from sellakit.metrics import ctr_metrics, evaluate_slices
from sellakit.rec.config import RecConfig, make_accelerator
from sellakit.llm import center_items
from sellakit.rec.model import (ScaledDirection, ShrunkStart, SpecialTokenRec, add_lora,
                                collm_mapping, copy_table, input_embedding_norm, score_prompts)
from sellakit.rec.prefix import PrefixCache
from sellakit.rec.probe import slot_ablation
from sellakit.rec.prompts import (KG_TOKEN, LAYOUTS, SLOT_TOKENS, TEMPLATES, PromptBuilder,
                                  add_kg_token, add_slot_tokens, answer_token_ids, slot_names)
from sellakit.rec.train import train_rec
from sellakit.selection import TrainResult

__all__ = ["METHODS", "ABLATIONS", "KG_METHODS", "score_kg_ablation",
           "METHOD_NAMES", "METHOD_TABLE", "RecMethod", "method_table",
           "method_help", "RecRun", "run_methods", "sample_rows", "sample_splits",
           "prepare_stage2", "template_for", "fresh_stage3_model", "method_results",
           "score_rows"]


@dataclass(frozen=True)
class RecMethod:
    """One method :func:`run_methods` trains and scores: what it reads and what it trains.

    Attributes:
        name: as ``run_methods`` and ``--methods`` spell it.
        help: one line for the command line.
        stage: ``"cf"`` (the plain MF alone, no LLM), ``"text"`` (stage 1: LoRA on text-only
            prompts; the one stage-1 method, whose LoRA every ``"tokens"`` method starts from)
            or ``"tokens"`` (stage 3: slot vectors into the frozen stage-1 model).
        template: its key in :data:`~sellakit.rec.prompts.TEMPLATES` (None: no prompt).
        slots: the slot family: ``"collm"`` (CoLLM's mapping into ``<UserID>`` /
            ``<TargetItemID>``), ``"sella"`` (SeLLa-Rec's projector into ``<User_ID>`` /
            ``<Item_ID>``, and ``<Warm_ID>`` when ``warm``; users rescaled to the items' norm,
            ``RecConfig.normalize_slots`` applies) or ``"kg"`` (``<KG_ID>`` alone on the text
            prompt: no CF tables, no CF projector).
        tables: the CF tables read: ``"plain"`` (the plain MF; with ``warm``, the LLM's raw
            item table) or ``"aligned"`` (stage 2's aligned MF and its semantic table).
        projector: where the CF projector starts: ``"alignment"`` (the alignment projector's
            weights), ``"fresh"`` (random; the alignment projector's shape on aligned tables,
            SeLLa-Rec's width otherwise; CoLLM's mapping is always fresh) or ``"shrunk"`` (a
            learned shared direction plus ``RecConfig.shrink`` times the alignment projector's
            output, :class:`~sellakit.rec.model.ShrunkStart`). ``RecConfig.projector_start``
            overrides the start of the rows that say ``"alignment"``.
        warm: a ``<Warm_ID>`` slot carries the item's semantic vector.
        cf_trainable: the CF tables train in stage 3 (``RecConfig.freeze_cf`` fixes them for
            every method).
        ablation: listed in :data:`ABLATIONS` rather than :data:`METHODS`.
        kg: a ``<KG_ID>`` slot carries the target item's KG vector (``run_methods(kg_vectors=)``)
            through its own projector (the family's mapping shape, fresh); listed in
            :data:`KG_METHODS` rather than :data:`METHODS`.
    """

    name: str
    help: str
    stage: Literal["cf", "text", "tokens"]
    template: str | None = None
    slots: Literal["collm", "sella", "kg"] | None = None
    tables: Literal["plain", "aligned"] | None = None
    projector: Literal["alignment", "fresh", "shrunk"] | None = None
    warm: bool = False
    cf_trainable: bool = False
    ablation: bool = False
    kg: bool = False

    @property
    def inputs(self) -> tuple[str, ...]:
        """What :func:`run_methods` needs for it: ``plain_mf`` (every method but stage 1),
        ``aligned`` (``aligned=`` or ``align_config=``), ``semantic`` (``semantic=`` or
        ``align_config=``), ``kg`` (``kg_vectors=``)."""
        if self.stage == "text":
            return ()
        if self.stage == "cf":
            return ("plain_mf",)
        kg = ("kg",) if self.kg else ()
        if self.slots == "kg":
            return ("plain_mf", *kg)  # the CF width sizes nothing here, but every run has one
        extra = {"aligned": ("aligned",), "plain": ("semantic",) if self.warm else ()}
        return ("plain_mf", *extra[self.tables], *kg)


#: Where a row's CF projector can start (:attr:`RecMethod.projector`).
_PROJECTOR_STARTS = ("alignment", "fresh", "shrunk")

_METHOD_ROWS = (
    RecMethod("mf", "the plain MF alone", "cf"),
    RecMethod("tallrec", "stage 1: LoRA on text-only prompts (TALLRec-style)", "text",
              template="text"),
    RecMethod("collm", "CoLLM: the plain MF, frozen, through CoLLM's mapping", "tokens",
              template="collm", slots="collm", tables="plain", projector="fresh"),
    RecMethod("sella", "SeLLa-Rec: aligned MF and semantic table, alignment projector, "
              "<Warm_ID>", "tokens", template="sella", slots="sella", tables="aligned",
              projector="alignment", warm=True, cf_trainable=True),
    RecMethod("sella_no_align", "SeLLa-Rec on the plain MF and the LLM's raw item table, "
              "projector from scratch", "tokens", template="sella", slots="sella",
              tables="plain", projector="fresh", warm=True, cf_trainable=True, ablation=True),
    RecMethod("sella_random_init", "SeLLa-Rec with the projector from scratch", "tokens",
              template="sella", slots="sella", tables="aligned", projector="fresh", warm=True,
              cf_trainable=True, ablation=True),
    RecMethod("sella_no_warm", "SeLLa-Rec without <Warm_ID>", "tokens",
              template="sella_no_warm", slots="sella", tables="aligned",
              projector="alignment", cf_trainable=True, ablation=True),
    RecMethod("sella_frozen_cf", "SeLLa-Rec with the CF tables fixed in stage 3", "tokens",
              template="sella", slots="sella", tables="aligned", projector="alignment",
              warm=True, ablation=True),
    RecMethod("collm_aligned", "CoLLM's mapping on the aligned MF, frozen", "tokens",
              template="collm", slots="collm", tables="aligned", projector="fresh",
              ablation=True),
    # The KG slot (issue 25): each row is its partner without <KG_ID> plus that slot.
    RecMethod("collm_kg", "CoLLM with the item's KG vector in <KG_ID>", "tokens",
              template="collm_kg", slots="collm", tables="plain", projector="fresh", kg=True),
    RecMethod("sella_kg", "SeLLa-Rec with the item's KG vector in <KG_ID>", "tokens",
              template="sella_kg", slots="sella", tables="aligned", projector="alignment",
              warm=True, cf_trainable=True, kg=True),
    RecMethod("text_kg", "the text prompt with <KG_ID> alone (no CF slots)", "tokens",
              template="text_kg", slots="kg", kg=True),
)


def method_table(rows: Sequence[RecMethod]) -> Mapping[str, RecMethod]:
    """``rows`` by name, each checked (:class:`ConfigError` naming the row and the fix): a new
    method is one more row here (see tests/test_rec.py)."""
    table = {}
    for row in rows:
        if row.name in table:
            raise ConfigError(f"Method {row.name!r} has two rows; give each row its own name.")
        _check_row(row)
        table[row.name] = row
    for template in {row.template for row in rows if row.template}:
        families = {row.slots for row in rows if row.template == template}
        if len(families) > 1:  # run.builders holds one builder per template key
            raise ConfigError(f"Template {template!r} is read with slot families "
                              f"{sorted(map(str, families))}; give each family its own key "
                              "in TEMPLATES (as sella_no_warm has).")
    if [row.stage for row in rows].count("text") != 1:
        raise ConfigError("The method table needs exactly one stage-1 ('text') row: every "
                          "'tokens' method starts from its LoRA.")
    return MappingProxyType(table)


def _check_row(row: RecMethod) -> None:
    """A :class:`ConfigError` when ``row``'s fields contradict each other or its template."""
    fix = f"Fix the row of {row.name!r} in sellakit/rec/methods.py"
    if row.stage == "cf":
        if row.template or row.slots or row.tables:
            raise ConfigError(f"{fix}: a 'cf' method reads no prompt, slots or tables.")
        return
    if row.template not in TEMPLATES:
        raise ConfigError(f"{fix}: template {row.template!r} is not a key of TEMPLATES "
                          f"({', '.join(TEMPLATES)}).")
    slots = slot_names(TEMPLATES[row.template])
    if row.stage == "text":
        if slots or row.slots or row.tables:
            raise ConfigError(f"{fix}: stage 1 reads text only (no slots, no tables).")
        return
    if row.kg != ("kg" in slots):
        raise ConfigError(f"{fix}: kg={row.kg} needs {'a' if row.kg else 'no'} {{kg}} slot in "
                          f"template {row.template!r} (its slots: {slots}).")
    if row.slots == "kg":
        if slots != ["kg"] or row.tables or row.projector or row.warm:
            raise ConfigError(f"{fix}: the 'kg' family fills {{kg}} alone (no CF tables, "
                              "projector or <Warm_ID>).")
        return
    slots = [name for name in slots if name != "kg"]
    if row.slots not in SLOT_TOKENS or row.tables not in ("plain", "aligned") \
            or row.projector not in _PROJECTOR_STARTS:
        raise ConfigError(f"{fix}: a 'tokens' method names its slots ({', '.join(SLOT_TOKENS)}), "
                          f"tables ('plain', 'aligned') and projector {_PROJECTOR_STARTS}.")
    if not set(slots) <= set(SLOT_TOKENS[row.slots]) or row.warm != ("warm" in slots):
        raise ConfigError(f"{fix}: template {row.template!r} has the slots {slots}; the "
                          f"{row.slots} family fills {sorted(SLOT_TOKENS[row.slots])}, and "
                          f"warm={row.warm} needs {'a' if row.warm else 'no'} {{warm}} slot.")
    if row.projector != "fresh" and (row.tables != "aligned" or row.slots != "sella"):
        raise ConfigError(f"{fix}: only SeLLa-Rec's projector on aligned tables can start from "
                          "the alignment projector; use projector='fresh'.")


#: Every method by name: the table :func:`run_methods`, its checks and ``--methods`` read.
METHOD_TABLE: Mapping[str, RecMethod] = method_table(_METHOD_ROWS)
#: Every method's name, in table order (``run_methods`` and ``--methods`` accept these).
METHOD_NAMES: tuple[str, ...] = tuple(METHOD_TABLE)
METHODS = tuple(m.name for m in METHOD_TABLE.values() if not m.ablation and not m.kg)
ABLATIONS = tuple(m.name for m in METHOD_TABLE.values() if m.ablation)
#: The methods with a ``<KG_ID>`` slot (they need ``run_methods(kg_vectors=)``).
KG_METHODS = tuple(m.name for m in METHOD_TABLE.values() if m.kg)


def method_help() -> str:
    """One line per method (``name: help``), for ``--methods``."""
    return "; ".join(f"{m.name}: {m.help}" for m in METHOD_TABLE.values())


def _method(name: str) -> RecMethod:
    """The row of ``name``, or a :class:`ConfigError` with the choices."""
    if name not in METHOD_TABLE:
        raise ConfigError(f"Unknown method {name!r}; choose from {tuple(METHOD_TABLE)}.")
    return METHOD_TABLE[name]


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
    words: ItemWords
    scores: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    prefixes: Mapping[str, PrefixCache] = field(default_factory=dict)
    aligned: AlignedTables | None = None
    semantic: np.ndarray | None = None
    #: the mean item state taken off ``semantic`` (``RecConfig.warm_rows="raw"`` adds it back).
    semantic_mean: np.ndarray | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    #: the items' KG vectors (``run_methods(kg_vectors=)``), what ``<KG_ID>`` reads.
    kg_vectors: np.ndarray | None = None
    #: called as ``on_method(run, name)`` once each method's scores are in (a study writes
    #: them as they finish, so a killed run resumes after the last finished method).
    on_method: Callable[[RecRun, str], None] | None = None
    #: every method's scores (and :func:`score_rows`') kept in and read back from the kit's
    #: cache (``run_methods(cache_scores=True)``, one process).
    cache_scores: bool = False

    @property
    def bf16(self) -> bool:
        """Whether the LLM's passes run under bfloat16 autocast here (``RecConfig.cpu_bf16`` on
        a CPU that has it natively); cache keys carry it."""
        return cpu_bf16_active(self.backbone.device, self.backbone.dtype, self.config.cpu_bf16)

    def precision(self) -> contextlib.AbstractContextManager:
        """The context every pass of the LLM runs in (training, text cache, scoring)."""
        return cpu_bf16_autocast(self.backbone.device, self.backbone.dtype, self.config.cpu_bf16)


def template_for(method: str) -> str:
    """The key in :data:`TEMPLATES` of the prompt ``method`` reads (its row's ``template``)."""
    row = _method(method)
    if row.template is None:
        raise ConfigError(f"Method {method!r} reads no prompt ({row.help}); template_for "
                          "takes a method with an LLM.")
    return row.template


def sample_rows(frame: pd.DataFrame, n: int | None, seed: int, *, stratify: bool = False,
                by: Sequence[str] = ("label", "not_cold")) -> pd.DataFrame:
    """A seeded sample of ``n`` rows in their original order (all rows when ``n`` is None);
    with ``stratify``, each group of the columns ``by`` (label x warm/cold) keeps its share of
    ``frame``."""
    if n is None or n >= len(frame):
        return frame.reset_index(drop=True)
    if not stratify:
        return frame.sample(n=n, random_state=seed).sort_index().reset_index(drop=True)
    groups = frame.groupby(list(by))
    share = groups.size() / len(frame) * n
    quota = np.floor(share).astype(int)
    # Largest remainders get the rows rounding left over, so the sample has exactly n rows.
    quota[(share - quota).sort_values(ascending=False).index[:n - quota.sum()]] += 1
    picked = pd.concat([group.sample(n=min(len(group), int(quota[key])), random_state=seed)
                        for key, group in groups])
    return picked.sort_index().reset_index(drop=True)


def sample_splits(split: CTRSplit, config: RecConfig) -> dict[str, pd.DataFrame]:
    """The rows every method sees: ``train``, ``valid``, ``test`` samples (seeded by
    ``sample_seed``, so seeds share rows), plus ``item_cold`` (every test row whose item is
    unseen in train) when ``config.item_cold_rows``."""
    seed = config.seed if config.sample_seed is None else config.sample_seed
    frames = {"train": split.train, "valid": split.valid, "test": split.test}
    if config.drop_empty_history:
        frames = {s: f[f.his.map(len) > 0] for s, f in frames.items()}
    sizes = {"train": config.train_rows, "valid": config.valid_rows, "test": config.test_rows}
    by = ("label", "not_cold")
    if config.stratify_by == "cold_kind":  # 0 warm, 1 item-cold, 2 user-cold, 3 both
        by = ("label", "cold_kind")
        frames = {s: f.assign(cold_kind=2 * ~f.uid.isin(split.train.uid)
                              + 1 * ~f.iid.isin(split.train.iid)) for s, f in frames.items()}
    rows = {s: sample_rows(f, sizes[s], seed, stratify=config.stratify, by=by)
            .drop(columns="cold_kind", errors="ignore") for s, f in frames.items()}
    if config.item_cold_rows:
        test = frames["test"]
        rows["item_cold"] = test[~test.iid.isin(split.train.iid)].reset_index(drop=True)
    return rows


def run_methods(split: CTRSplit, methods: Sequence[str], config: RecConfig, *,
                plain_mf: nn.Module, aligned: AlignedTables | None = None,
                align_config: AlignConfig | None = None, semantic: np.ndarray | None = None,
                backbone: Backbone | None = None, model: str = "smollm2-135m",
                accelerator=None, progress: bool = True, kg_vectors: np.ndarray | None = None,
                stage1_from: RecRun | None = None, use_cache: bool = False,
                cache_scores: bool = False, on_method: Callable | None = None) -> RecRun:
    """Train and score ``methods`` (from :data:`METHODS` and :data:`ABLATIONS`).

    Args:
        plain_mf: a trained MF (:func:`sellakit.cf.fit_and_evaluate`): the ``mf`` baseline and the
            CF model behind ``collm`` and ``sella_no_align``.
        aligned: a saved aligned MF (``AlignedTables.load`` of notebook 04's file) ...
        align_config: ... or the settings to align here, after stage 1, to the stage-1 model's
            item states (SeLLa-Rec's order); SeLLa-Rec's methods and ``collm_aligned`` need one.
        semantic: the LLM's raw item table (``sella_no_align`` with ``aligned``; with
            ``align_config`` the stage-1 states are used).
        backbone: a loaded backbone (else ``model`` is loaded); slot tokens are added to it.
        stage1_from: an earlier run on the same rows and backbone whose stage 1 (LoRA, text
            cache, results) this run reuses: a benchmark's seeds vary stages 2-3.
        use_cache: stages 1 and 3 (LoRA, stage-3 weights, validation records) kept in and read
            back from the kit's cache on one process, keyed by all they start from and read.
        cache_scores: every method's scores (and later :func:`score_rows` calls) kept in the
            kit's cache too, on one process, keyed by all they read (:func:`_scores_key`): a
            rerun builds no text cache. Off by default: a benchmark times its scoring.
        kg_vectors: each item's KG vector, row = iid (:data:`KG_METHODS`; sellakit.kg.items).
        on_method: ``on_method(run, name)`` once a method's scores are recorded.
    """
    _check_inputs(methods, aligned, align_config, semantic, plain_mf, kg_vectors, split)
    seed_everything(config.seed)
    accelerator = accelerator or make_accelerator(config)
    rows = sample_splits(split, config)
    run = RecRun(results={}, models={}, training={}, builders={}, rows=rows,
                 backbone=backbone or load_backbone(model, device=accelerator.device),
                 config=config, titles=split.item_titles, words=item_words(split.name),
                 aligned=aligned, kg_vectors=kg_vectors, on_method=on_method,
                 cache_scores=cache_scores and accelerator.num_processes == 1)
    if semantic is not None:
        run.semantic, run.semantic_mean = center_items(semantic)
    _add_tokens(run.backbone, methods)
    answers = answer_token_ids(run.backbone.tokenizer)
    stages = {m: METHOD_TABLE[m].stage for m in methods}
    for name in [m for m in methods if stages[m] == "cf"]:
        _score_cf(run, name, plain_mf)
    if all(stage == "cf" for stage in stages.values()):
        return run
    show = progress and accelerator.is_main_process
    with run.precision():
        llm = _stage1(run, methods, answers, accelerator, show, stage1_from, use_cache)
    token_methods = [m for m in methods if stages[m] == "tokens"]
    if token_methods:
        # Stage 2 only for a method that reads its tables: CoLLM's rows and <KG_ID> alone
        # read the plain MF, and aligning for them was about a sixth of notebook 08's quick study.
        reads_stage2 = any({"aligned", "semantic"} & set(METHOD_TABLE[m].inputs)
                           for m in token_methods)
        if aligned is None and align_config is not None and reads_stage2:
            _stage2_after_stage1(run, split, align_config, show)
        with run.precision():
            _stage3(run, token_methods, llm, answers, plain_mf, accelerator, show, use_cache)
    return run


def _stage1(run: RecRun, methods: Sequence[str], answers, accelerator, show: bool,
            earlier: RecRun | None, use_cache: bool):
    """Stage 1, LoRA on text-only prompts (the TALLRec-style baseline), or ``earlier``'s run's;
    returns its LLM (LoRA in place). Its results stay only when ``methods`` name it."""
    stage1 = _stage1_method()
    if earlier is None:
        llm = add_lora(run.backbone.model, run.config)
        _fit(run, stage1, SpecialTokenRec(llm, answers), run.config.lr_lora, accelerator, show,
             use_cache=use_cache)
    else:
        llm = _reuse_stage1(run, earlier)
    if stage1 not in methods:
        run.results.pop(stage1, None)
    return llm


def _add_tokens(backbone: Backbone, methods: Sequence[str]) -> None:
    """Every slot token, and ``<KG_ID>`` only when a KG method runs (see :func:`add_kg_token`)."""
    add_slot_tokens(backbone.tokenizer, backbone.model)
    if any(METHOD_TABLE[m].kg for m in methods):
        add_kg_token(backbone.tokenizer, backbone.model)


def _stage3(run: RecRun, methods: list[str], llm, answers, plain_mf: nn.Module, accelerator,
            show: bool, use_cache: bool = False) -> None:
    """Each stage-3 method from the same stage-1 LoRA, frozen unless ``tune_lora``."""
    config = run.config
    stage1 = {n: p.detach().clone() for n, p in llm.named_parameters() if "lora_" in n}
    d_cf, d_llm = plain_mf.item_embedding.weight.shape[1], run.backbone.hidden_size
    for name in methods:
        with torch.no_grad():
            for n, p in llm.named_parameters():
                if n in stage1:
                    p.copy_(stage1[n])
                p.requires_grad_(config.tune_lora and n in stage1)
        seed_everything(config.seed)
        model_ = _stage3_model(name, llm, answers, plain_mf, run, d_cf, d_llm)
        _fit(run, name, model_, config.lr_tokens, accelerator, show, use_cache=use_cache)


def _stage1_method() -> str:
    """The name of the table's one stage-1 (``"text"``) method, ``tallrec``."""
    return next(m.name for m in METHOD_TABLE.values() if m.stage == "text")


def _score_cf(run: RecRun, name: str, plain_mf: nn.Module) -> None:
    """The plain-MF baseline ``name`` on every scored split of the run."""
    run.scores[name] = {s: predict(plain_mf, f) for s, f in run.rows.items() if s != "train"}
    run.results[name] = method_results(run.rows, run.scores[name], seconds=0.0,
                                        backbone="none (MF alone)", seed=run.config.seed)
    if run.on_method:
        run.on_method(run, name)


def _reuse_stage1(run: RecRun, earlier: RecRun):
    """Copy stage 1 (LoRA model, TALLRec-style results, text cache) from ``earlier``."""
    same = all(earlier.rows[s][["uid", "iid", "timestamp"]].equals(f[["uid", "iid", "timestamp"]])
               for s, f in run.rows.items())
    same_layout = earlier.config.slot_position == run.config.slot_position
    if not same or not same_layout or earlier.backbone is not run.backbone:
        raise ConfigError("stage1_from must be a run on the same rows (a fixed sample_seed), "
                          "the same backbone object and the same RecConfig.slot_position.")
    stage1 = _stage1_method()
    for part in ("training", "models", "scores", "results"):
        if stage1 in getattr(earlier, part):
            getattr(run, part)[stage1] = getattr(earlier, part)[stage1]
    run.prefixes, run.builders = earlier.prefixes, earlier.builders
    run.seconds["prefix_cache"] = earlier.seconds.get("prefix_cache")
    return earlier.models[stage1].llm


def _stage2_after_stage1(run: RecRun, split: CTRSplit, align_config: AlignConfig,
                         progress: bool) -> None:
    """Item states from the stage-1 model (LoRA active), then MF aligned to them."""
    started = time.perf_counter()
    raw = item_semantic_embeddings(run.backbone, split.item_titles,
                                   template=run.words.item_template, progress=progress,
                                   cpu_bf16=run.config.cpu_bf16)
    result = train_aligned_mf(split, raw, align_config, progress=progress)
    run.aligned = result.tables()
    run.semantic, run.semantic_mean = center_items(raw)
    run.seconds["stage2"] = round(time.perf_counter() - started, 1)


def _check_inputs(methods: Sequence[str], aligned: AlignedTables | None,
                  align_config: AlignConfig | None, semantic: np.ndarray | None,
                  plain_mf: nn.Module | None, kg_vectors: np.ndarray | None = None,
                  split: CTRSplit | None = None) -> None:
    """A :class:`ConfigError` naming the fix for unknown methods or missing inputs (each
    method's row says what it needs: :attr:`RecMethod.inputs`)."""
    unknown = sorted(set(methods) - set(METHOD_TABLE))
    if unknown:
        raise ConfigError(f"Unknown methods {unknown}; choose from {tuple(METHOD_TABLE)}.")

    def needing(what: str) -> list[str]:
        return [m for m in methods if what in METHOD_TABLE[m].inputs]

    if needing("aligned") and aligned is None and align_config is None:
        raise ConfigError(f"{needing('aligned')} need the aligned MF of stage 2. Fix: pass "
                          "align_config=AlignConfig.quick() (aligned here, after stage 1) or "
                          "aligned=AlignedTables.load('build/aligned_mf.pt') (notebook 04).")
    if needing("semantic") and semantic is None and align_config is None:
        names = needing("semantic")
        raise ConfigError(f"{' and '.join(names)} need{'s' if len(names) == 1 else ''} the "
                          "LLM's raw item table. Fix: pass semantic=item_semantic_embeddings("
                          "backbone, split.item_titles).")
    if needing("plain_mf") and plain_mf is None:
        raise ConfigError(f"{needing('plain_mf')} need the plain MF. Fix: pass plain_mf= the "
                          "model of sellakit.cf.fit_and_evaluate (or prepare_stage2).")
    if split is not None:
        _check_kg_vectors(methods, kg_vectors, split)


def _check_kg_vectors(methods: Sequence[str], kg_vectors: np.ndarray | None,
                      split: CTRSplit) -> None:
    """A :class:`ConfigError` when a KG method has no item KG vectors of the split's shape."""
    needing = [m for m in methods if m in METHOD_TABLE and "kg" in METHOD_TABLE[m].inputs]
    if not needing:
        return
    if kg_vectors is None or np.ndim(kg_vectors) != 2 or len(kg_vectors) != split.n_items \
            or not np.isfinite(kg_vectors).all():
        raise ConfigError(f"{needing} need kg_vectors=, one finite row per item of "
                          f"{split.name} ({split.n_items} rows, row 0 padding). Fix: pass "
                          "sellakit.kg.items.item_kg_vectors(...).vectors.")


def _slot_tokens(row: RecMethod) -> dict[str, str] | None:
    """The special token of each slot of ``row``'s template (None: text only)."""
    kg = {"kg": KG_TOKEN} if row.kg else {}
    return {**SLOT_TOKENS.get(row.slots, {}), **kg} if row.slots else None


def _builder(run: RecRun, method: str) -> PromptBuilder:
    """The prompt builder of ``method``'s template (one per template key, filled with its slot
    family's tokens and the data set's item words), made on first use."""
    row = METHOD_TABLE[method]
    if row.template not in run.builders:
        run.builders[row.template] = PromptBuilder(
            run.backbone.tokenizer, LAYOUTS[run.config.slot_position][row.template],
            slot_tokens=_slot_tokens(row),
            history_len=run.config.history_len, words=run.words)
    return run.builders[row.template]


def _prompt_sets(run: RecRun, method: str) -> dict:
    """``{split: (encoded prompts, rows)}`` of ``method``'s template."""
    builder = _builder(run, method)
    return {s: (builder.encode_rows(f, run.titles), f) for s, f in run.rows.items()}


def _fit(run: RecRun, name: str, model: SpecialTokenRec, lr: float, accelerator,
         progress: bool, use_cache: bool = False) -> None:
    """Train ``model`` (selected on validation), score test once, record both in ``run``.

    Stage 1 trains on whole prompts (its LoRA moves); once it is done, the text of every row is
    run through the frozen stage-1 model once (:class:`PrefixCache`), and stage 3 and every
    later scoring pass reuse it."""
    config, pad_id = run.config, run.backbone.tokenizer.pad_token_id
    data = _prompt_sets(run, name)
    model.to(accelerator.device)
    stage3 = METHOD_TABLE[name].stage == "tokens"
    fit = data if stage3 else {**data, "train": _stage1_subset(data["train"], config)}
    authors_optim = (stage3 and METHOD_TABLE[name].slots == "sella"
                     and config.stage3_optim == "authors")

    def train() -> TrainResult:
        return train_rec(model, fit["train"], fit["valid"],
                         config if stage3 else _stage1_config(config), lr=lr, pad_id=pad_id,
                         accelerator=accelerator, progress=progress, desc=name,
                         epochs=(config.token_epochs or config.epochs) if stage3
                         else config.epochs, prefixes=run.prefixes if stage3 else None,
                         authors_optim=authors_optim)

    if use_cache and accelerator.num_processes == 1:
        trained = (_cached_stage3(run, name, model, data, lr, train) if stage3
                   else _cached_stage1(run, model, fit, lr, train))
    else:
        trained = train()
    run.training[name], run.models[name] = trained, trained.model
    if not stage3 and config.cache_prefix and not config.tune_lora:
        run.prefixes = _TextCaches(lambda s: _prefix_cache(run, model.llm, data[s][0],
                                                          f"text of {s} rows", progress),
                                  list(data), run.seconds)
    # Validation scores come from the selection itself; test is scored once, here.
    scores = {"valid": trained.valid_scores}
    for part in [s for s in data if s not in ("train", "valid")]:
        scores[part] = _scored(run, name, *data[part], part=part, accelerator=accelerator,
                               progress=progress)
    run.scores[name] = scores
    run.results[name] = method_results(run.rows, scores, seconds=round(trained.seconds, 1),
                                        backbone=run.backbone.name, seed=config.seed,
                                        best_step=trained.best_step)
    run.results[name]["from_cache"] = bool(trained.history.attrs.get("from_cache"))
    if run.on_method:
        run.on_method(run, name)


class _TextCaches(Mapping):
    """Each split's text cache (:class:`PrefixCache`) under the stage-1 model, built when first
    read: a stage 3 read back from the kit's cache never reads the training and validation
    rows' text, so it is never computed. The seconds spent building go to
    ``seconds["prefix_cache"]``."""

    def __init__(self, build: Callable[[str], PrefixCache], parts: Sequence[str],
                 seconds: dict):
        self._build, self._parts, self._seconds = build, tuple(parts), seconds
        self._built: dict[str, PrefixCache] = {}
        self._spent = 0.0

    def __getitem__(self, part: str) -> PrefixCache:
        if part not in self._parts:
            raise ConfigError(f"No text cache for split {part!r}: this run caches "
                              f"{', '.join(self._parts)}. Fix: ask for one of those.")
        if part not in self._built:
            started = time.perf_counter()
            self._built[part] = self._build(part)
            self._spent += time.perf_counter() - started
            self._seconds["prefix_cache"] = round(self._spent, 1)
        return self._built[part]

    def __contains__(self, part: object) -> bool:  # without building it
        return part in self._parts

    def get(self, part: str, default=None):  # a split without a text cache: ``default``
        return self[part] if part in self._parts else default

    def __iter__(self):
        return iter(self._parts)

    def __len__(self) -> int:
        return len(self._parts)

    @property
    def built(self) -> tuple[str, ...]:
        """The splits whose text has been run through the LLM so far."""
        return tuple(self._built)


def _stage1_subset(train: tuple[list, pd.DataFrame], config: RecConfig
                   ) -> tuple[list, pd.DataFrame]:
    """Stage 1's training prompts: ``config.stage1_rows`` of ``train`` (seeded by the rows'
    seed, stratified by label x warm / cold when the rows were; every method sees the same
    subset), else all."""
    prompts, frame = train
    if config.stage1_rows is None or config.stage1_rows >= len(frame):
        return train
    seed = config.seed if config.sample_seed is None else config.sample_seed
    picked = sample_rows(frame.assign(_row=np.arange(len(frame))), config.stage1_rows, seed,
                         stratify=config.stratify)["_row"].to_numpy()
    return [prompts[i] for i in picked], frame.iloc[picked].reset_index(drop=True)


def _stage1_config(config: RecConfig) -> RecConfig:
    """``config`` with stage 1's loss (``RecConfig.stage1_loss``) as its ``loss``."""
    from dataclasses import replace

    return config if config.stage1_loss == "same" else replace(config, loss=config.stage1_loss)


def _prefix_cache(run: RecRun, llm, prompts: list, desc: str, progress: bool) -> PrefixCache:
    """The text cache of ``prompts`` under the stage-1 model ``llm``: in memory, or
    (``RecConfig.prefix_storage="disk_bf16"``) stored in the kit's cache, keyed by the
    backbone's weights, the LoRA's and the rows' text ids."""
    config = run.config
    share = config.slot_position == "before_title"  # the text is the history alone
    if config.prefix_storage == "memory":
        return PrefixCache.build(llm, prompts, batch_size=config.score_batch_size,
                                 progress=progress, desc=desc, share=share)
    digest = hashlib.sha256(repr((run.backbone.name, weights_digest(run.backbone), share)
                                 + (("cpu_bf16",) if run.bf16 else ())).encode())
    for name, p in sorted(llm.named_parameters()):
        if "lora_" in name:
            digest.update(name.encode() + p.detach().float().cpu().numpy().tobytes())
    for prompt in prompts:
        digest.update(np.asarray(prompt.ids[:prompt.prefix_len], dtype=np.int64).tobytes()
                      + b"|")
    return PrefixCache.stored(llm, prompts, digest.hexdigest()[:24],
                              batch_size=config.score_batch_size, progress=progress, desc=desc,
                              share=share)


def _cached_stage1(run: RecRun, model: SpecialTokenRec, data: dict, lr: float,
                   train) -> TrainResult:
    """Stage 1 from the kit's cache when trained before on these prompts and settings (its
    LoRA weights restored into ``model``), else ``train()`` and keep it."""
    lora = {n: p for n, p in model.llm.named_parameters() if "lora_" in n}
    return _cached_training(run, "stage1", _stage1_key(run, model, data, lr), ("lora", "LoRA"),
                            lora, model, data, train)


def _cached_stage3(run: RecRun, name: str, model: SpecialTokenRec, data: dict, lr: float,
                   train) -> TrainResult:
    """Stage 3 of ``name`` from the kit's cache when trained before from the same start (every
    weight of ``model`` outside the base LLM, the stage-1 LoRA included), on the same rows and
    settings (its selected weights restored into ``model``), else ``train()`` and keep it."""
    trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
    key = _stage3_key(run, name, model, data, lr)  # before training moves the weights
    return _cached_training(run, "stage3", key, ("trained", "trained"), trained, model, data,
                            train)


def _cached_training(run: RecRun, kind: str, key: str, field: tuple[str, str],
                     params: dict[str, nn.Parameter], model: SpecialTokenRec, data: dict,
                     train) -> TrainResult:
    """``train()``'s result kept as ``<cache>/derived/<kind>/<key>.pt`` (the selected
    ``params`` under ``field``'s first name, the second naming them in a warning; the
    learning curve, the selection and its validation scores), or read back into ``model``
    when that entry exists."""
    fresh: list[TrainResult] = []
    field_name, what = field

    def compute() -> dict:
        fresh.append(train())
        kept = fresh[0]
        return {field_name: {n: p.detach().cpu().clone() for n, p in params.items()},
                "history": kept.history.to_dict("list"), "best_step": kept.best_step,
                "best_valid": kept.best_valid, "seconds": kept.seconds, "n_train": kept.n_train,
                "valid_scores": torch.as_tensor(kept.valid_scores)}

    def restore(stored: dict) -> TrainResult:
        shapes = {n: tuple(v.shape) for n, v in stored[field_name].items()}
        if shapes != {n: tuple(p.shape) for n, p in params.items()}:  # never broadcast
            raise CacheError(f"its {what} tensors do not match the model's (names or shapes)")
        if len(stored["valid_scores"]) != len(data["valid"][1]):
            raise CacheError("its validation scores do not match the validation rows")
        with torch.no_grad():
            for name, value in stored[field_name].items():
                params[name].copy_(value)
        model.eval()
        history = pd.DataFrame(stored["history"])
        history.attrs["from_cache"] = True
        return TrainResult(model=model, history=history, best_step=stored["best_step"],
                           best_valid=stored["best_valid"], seconds=stored["seconds"],
                           seed=run.config.seed, config=run.config, n_train=stored["n_train"],
                           valid_scores=stored["valid_scores"].numpy())

    restored, _ = cached_state(kind, key, compute, restore=restore)
    return fresh[0] if fresh else restored


def _stage1_key(run: RecRun, model: SpecialTokenRec, data: dict, lr: float) -> str:
    """Changes with the backbone (name, every weight's bytes but the LoRA adapter and the slot
    tokens' rows, never read; the tokenizer), every setting stage 1 reads (not stage 3's, nor
    ``slot_position``, which the prompts' ids carry), and the token ids and labels of the
    training and validation prompts."""
    digest = hashlib.sha256(repr((run.backbone.name, weights_digest(run.backbone),
                                  tokenizer_digest(run.backbone.tokenizer), lr,
                                  _key_settings(run, _stage1_settings(run.config)))).encode())
    for part in ("train", "valid"):
        prompts, frame = data[part]
        for prompt in prompts:
            digest.update(np.asarray(prompt.ids, dtype=np.int64).tobytes() + b"|")
        digest.update(frame.label.to_numpy(dtype=np.int8).tobytes())
    return digest.hexdigest()[:24]


def _stage1_settings(config: RecConfig) -> dict:
    """The settings in stage 1's cache key: all but stage 3's and the slot position (the
    prompts' token ids, also in the key, carry it), so a stage 1 cached before these switches
    existed is still found. ``loss`` is the loss stage 1 trains with (under a ``stage1_loss``
    of its own, stage 3's loss is not stage 1's: the grid's LM-loss cells reuse its BCE cells'
    stage 1)."""
    omit = {*RecConfig.STAGE3_FIELDS, "slot_position", "prefix_storage"}
    # Switches added later stay out at their defaults, so earlier stage 1s are still found
    # (stage1_rows also changes the training prompts the key hashes).
    later = {"stage1_loss": "same", "stratify_by": "warm", "stage1_rows": None}
    return {k: v for k, v in vars(_stage1_config(config)).items()
            if k not in omit and later.get(k, object()) != v}


def _key_settings(run: RecRun, settings: dict) -> list[tuple]:
    """``settings`` for a cache key, ``cpu_bf16`` as it acts on this machine (:attr:`RecRun.bf16`)
    and left out when off, so the keys of runs made before the switch existed still match."""
    settings = {k: v for k, v in settings.items() if k != "cpu_bf16"}
    return sorted((settings | {"cpu_bf16": True} if run.bf16 else settings).items())


def _stage3_key(run: RecRun, name: str, model: SpecialTokenRec, data: dict, lr: float) -> str:
    """Changes with the backbone (as stage 1's key), the method, every setting, the device,
    the start of every weight of ``model`` but the base LLM's (CF and semantic tables,
    projectors, scales, the stage-1 LoRA the text cache is read with), and the token ids,
    users, items and labels of the training and validation rows."""
    digest = hashlib.sha256(repr((run.backbone.name, weights_digest(run.backbone),
                                  tokenizer_digest(run.backbone.tokenizer), name, lr,
                                  _key_settings(run, vars(run.config)),
                                  str(next(model.parameters()).device))).encode())
    _update_with_weights(digest, model)
    for part in ("train", "valid"):
        prompts, frame = data[part]
        for prompt in prompts:
            digest.update(np.asarray(prompt.ids, dtype=np.int64).tobytes() + b"|")
        digest.update(frame[["uid", "iid", "label"]].to_numpy(dtype=np.int64).tobytes())
    return digest.hexdigest()[:24]


def _update_with_weights(digest, model: SpecialTokenRec) -> None:
    """Feed ``digest`` every weight of ``model`` but the base LLM's (CF and semantic tables,
    projectors, scales, the stage-1 LoRA), by name."""
    for param_name, p in sorted(model.named_parameters()):
        if "lora_" in param_name or not param_name.startswith("llm."):
            digest.update(param_name.encode() + p.detach().float().cpu().numpy().tobytes())


def _stage3_model(name: str, llm, answers, plain_mf: nn.Module, run: RecRun, d_cf: int,
                  d_llm: int) -> SpecialTokenRec:
    """The stage-3 model of ``name``, as its row says: which tables, which projectors, what
    trains."""
    row = METHOD_TABLE[name]
    if row.slots == "kg":  # <KG_ID> alone: no CF tables
        return _with_kg_slot(row, SpecialTokenRec(llm, answers), run, d_llm)
    if row.tables == "plain":  # the plain MF (and with <Warm_ID>, the LLM's raw item table)
        tables = (plain_mf.user_embedding.weight.detach().cpu().numpy(),
                  plain_mf.item_embedding.weight.detach().cpu().numpy(), run.semantic)
    else:
        tables = (run.aligned.user, run.aligned.item, run.aligned.semantic)
    if row.warm and run.config.warm_rows == "raw":
        tables = (*tables[:2], _raw_rows(tables[2], run.semantic_mean))
    cf_trainable = row.cf_trainable and not run.config.freeze_cf
    build = {"collm": _collm_model, "sella": _sella_model}[row.slots]
    model = build(row, llm, answers, tables, cf_trainable, run, d_cf, d_llm)
    return _with_kg_slot(row, model, run, d_llm) if row.kg else model


def _with_kg_slot(row: RecMethod, model: SpecialTokenRec, run: RecRun, d_llm: int
                  ) -> SpecialTokenRec:
    """``model`` with ``<KG_ID>``: the frozen KG vectors and a fresh projector of CoLLM's
    mapping shape, built after the family's parts (so those start as in the row without the
    slot), rescaled as the family's slots are."""
    d_kg = run.kg_vectors.shape[1]
    projector = collm_mapping(d_kg, d_llm)
    scale = _slot_scale(run, row.slots, model.llm) if row.slots != "kg" else None
    model.kg_table = copy_table(run.kg_vectors, trainable=False)
    model.kg_projector = projector if scale is None else ScaledDirection(projector, scale)
    return model


def _raw_rows(table: np.ndarray, mean: np.ndarray | None) -> np.ndarray:
    """``table``'s item rows with the mean item state added back (``warm_rows="raw"``); the
    padding row stays 0."""
    if mean is None:
        raise ConfigError("RecConfig.warm_rows='raw' needs the mean item state, known when the "
                          "LLM's item table is at hand. Fix: pass semantic= or align_config= to "
                          "run_methods (not a saved aligned= alone), or keep warm_rows='centred'.")
    present = np.linalg.norm(table, axis=1, keepdims=True) > 0
    return np.where(present, table + mean, 0.0).astype(np.float32)


def _slot_scale(run: RecRun, family: str, llm) -> float | None:
    """The norm slot vectors of ``family`` are rescaled to under ``RecConfig.slot_scale``
    (None: not rescaled). ``"family"`` is the kit's rule: SeLLa-Rec's per ``normalize_slots``,
    CoLLM's never."""
    rule = run.config.slot_scale
    scaled = (family == "sella" and run.config.normalize_slots) if rule == "family" \
        else rule == "input_norm"
    return input_embedding_norm(llm) if scaled else None


def _collm_model(row: RecMethod, llm, answers, tables: tuple, cf_trainable: bool, run: RecRun,
                 d_cf: int, d_llm: int) -> SpecialTokenRec:
    """CoLLM: the CF tables into ``<UserID>``/``<TargetItemID>`` through its mapping (fresh)."""
    user, item, _ = tables
    mapping = collm_mapping(d_cf, d_llm)
    scale = _slot_scale(run, row.slots, llm)
    return SpecialTokenRec(llm, answers, user_table=copy_table(user, trainable=cf_trainable),
                           item_table=copy_table(item, trainable=cf_trainable),
                           cf_projector=mapping if scale is None
                           else ScaledDirection(mapping, scale))


def _projector_start(row: RecMethod, config: RecConfig) -> str:
    """Where ``row``'s P_C starts: ``RecConfig.projector_start`` overrides ``"alignment"``."""
    if row.projector == "alignment" and config.projector_start != "row":
        return config.projector_start
    return row.projector


def _sella_projector(row: RecMethod, run: RecRun, item: np.ndarray, d_cf: int,
                     d_llm: int) -> nn.Module:
    """SeLLa-Rec's P_C as it starts: the alignment projector (its weights unless fresh;
    ``"shrunk"``: :class:`ShrunkStart` whose shared direction starts at the mean output over
    the items), or SeLLa-Rec's width from scratch on plain tables."""
    if row.tables != "aligned":  # no alignment to copy: SeLLa-Rec's projector width
        return Projector(d_cf, d_llm, hidden=1024)
    start = _projector_start(row, run.config)
    projector = run.aligned.projector(trained=start != "fresh")
    if start != "shrunk":
        return projector
    with torch.no_grad():
        shared = projector(torch.as_tensor(item[1:], dtype=torch.float32)).mean(0)
    return ShrunkStart(projector, shared, run.config.shrink)


def _sella_model(row: RecMethod, llm, answers, tables: tuple, cf_trainable: bool, run: RecRun,
                 d_cf: int, d_llm: int) -> SpecialTokenRec:
    """SeLLa-Rec: one projector for users and items, the semantic table into ``<Warm_ID>``
    when the row has it."""
    user, item, semantic_table = tables
    projector = _sella_projector(row, run, item, d_cf, d_llm)
    # The shared projector was fitted to item vectors: users enter at the items' scale.
    user = user * (np.median(np.linalg.norm(item[1:], axis=1))
                   / max(np.median(np.linalg.norm(user[1:], axis=1)), 1e-12))
    warm = row.warm
    semantic_projector = nn.Linear(d_llm, d_llm) if warm else None
    scale = _slot_scale(run, row.slots, llm)
    if scale is not None:
        projector = ScaledDirection(projector, scale)
        semantic_projector = ScaledDirection(semantic_projector, scale) if warm else None
    return SpecialTokenRec(
        llm, answers, user_table=copy_table(user, trainable=cf_trainable),
        item_table=copy_table(item, trainable=cf_trainable), cf_projector=projector,
        semantic=copy_table(semantic_table, trainable=True) if warm else None,
        semantic_projector=semantic_projector)


def fresh_stage3_model(run: RecRun, name: str, plain_mf: nn.Module) -> SpecialTokenRec:
    """``name``'s stage-3 model as it starts, before training (for before/after pictures);
    its randomly initialised parts come from torch's global random state."""
    stage1 = run.models[_stage1_method()]
    return _stage3_model(name, stage1.llm, stage1.answer_ids, plain_mf, run,
                         plain_mf.item_embedding.weight.shape[1], run.backbone.hidden_size)


def method_results(rows: dict[str, pd.DataFrame], scores: dict[str, np.ndarray], **facts
                    ) -> dict:
    """Validation metrics, test metrics on all / warm / cold rows (and on the item-cold rows
    when scored), and ``facts``."""
    record = {"valid": ctr_metrics(rows["valid"], scores["valid"]),
              **evaluate_slices(rows["test"], scores["test"]), **facts}
    if "item_cold" in scores:
        record["test_item_cold"] = ctr_metrics(rows["item_cold"], scores["item_cold"])
    return record


def prepare_stage2(split: CTRSplit, *, preset: str = "quick", seed: int = 2025,
                   progress: bool = True, use_cache: bool = False
                   ) -> tuple[nn.Module, AlignConfig]:
    """What stage 3 needs besides the LLM: a plain MF (``CFConfig``, epoch chosen on
    validation) and the settings of stage 2 (``AlignConfig``), which :func:`run_methods` runs
    after stage 1 on the stage-1 model's item states; both in the preset that the rec preset
    ``preset`` names in :attr:`RecConfig.STAGE2_PRESETS` (``compare`` runs the quick ones).
    ``use_cache``: the MF of notebook 02 (same settings) from the kit's cache, trained once."""
    if preset not in RecConfig.STAGE2_PRESETS:
        raise ConfigError(f"prepare_stage2(preset={preset!r}): not a rec preset; choose one of "
                          f"{', '.join(RecConfig.STAGE2_PRESETS)}.")
    base = RecConfig.STAGE2_PRESETS[preset]
    plain, _ = fit_and_evaluate(split, CFConfig.preset(base, model="mf", seed=seed),
                                progress=progress, use_cache=use_cache)
    return plain.model, AlignConfig.preset(base, seed=seed)


def score_kg_ablation(run: RecRun, method: str, mode: str, *, part: str = "test",
                      seed: int = 0) -> np.ndarray:
    """The trained ``method``'s scores of ``part`` with ``<KG_ID>`` reading ``mode``
    (:attr:`SpecialTokenRec.KG_ABLATIONS`: ``"zero"`` or ``"shuffle"`` with ``seed``); the model
    reads its own vectors again afterwards. Nothing is trained."""
    model = run.models[method]
    prompts, frame = _prompt_sets(run, method)[part]
    model.set_kg_ablation(mode, seed)
    try:
        with run.precision():
            return score_prompts(model, prompts, frame,
                                 pad_id=run.backbone.tokenizer.pad_token_id,
                                 batch_size=run.config.score_batch_size,
                                 prefix=run.prefixes.get(part))
    finally:
        model.set_kg_ablation("none")


def score_rows(run: RecRun, method: str, rows: str | pd.DataFrame, *, slot: str | None = None,
               mode: str = "zero", seed: int = 0, donors: pd.DataFrame | None = None
               ) -> np.ndarray:
    """The trained ``method``'s scores of ``rows``: a split of ``run.rows`` (its text cache
    read, built when first read) or any rows (whole prompts); with ``slot``, that slot switched
    off by ``mode`` (:func:`~sellakit.rec.probe.slot_ablation`, with ``seed`` or ``donors``).
    Under ``run_methods(cache_scores=True)`` kept in and read back from the kit's cache, so a
    rerun builds no text cache. Nothing is trained."""
    if method not in run.models:
        raise ConfigError(f"score_rows: {method!r} is not a trained method of this run "
                          f"({', '.join(run.models)}). Fix: name one of those.")
    part = rows if isinstance(rows, str) else None
    if part is not None and part not in run.rows:
        raise ConfigError(f"score_rows: this run has no split {part!r} (it has "
                          f"{', '.join(run.rows)}). Fix: name one, or pass the rows themselves.")
    frame = run.rows[part] if part is not None else rows
    prompts = _builder(run, method).encode_rows(frame, run.titles)
    return _scored(run, method, prompts, frame, part=part, slot=slot, mode=mode, seed=seed,
                   donors=donors)


def _scored(run: RecRun, name: str, prompts: Sequence, frame: pd.DataFrame, *,
            part: str | None = None, slot: str | None = None, mode: str = "zero",
            seed: int = 0, donors: pd.DataFrame | None = None, accelerator=None,
            progress: bool = False) -> np.ndarray:
    """``run.models[name]``'s scores of ``prompts`` (rows ``frame``; ``part``: the split they
    are, whose text cache is read), a slot switched off when ``slot`` is given; with
    ``run.cache_scores`` from ``<cache>/derived/scores/<key>.npz`` when there, else computed
    and kept. The text cache is read only when the scores are computed."""
    model, pad = run.models[name], run.backbone.tokenizer.pad_token_id
    size = run.config.score_batch_size

    def compute() -> np.ndarray:
        prefix = run.prefixes.get(part) if part is not None else None
        with run.precision():
            if slot is None:
                return score_prompts(model, prompts, frame, pad_id=pad, batch_size=size,
                                     accelerator=accelerator,
                                     desc=f"{name}: {part or 'rows'}", progress=progress,
                                     prefix=prefix)
            return slot_ablation(model, prompts, frame, slot, mode=mode, pad_id=pad,
                                 prefix=prefix, batch_size=size, seed=seed, donors=donors)

    if not run.cache_scores:
        return compute()
    text = "text cache" if part is not None and part in run.prefixes else "whole prompts"
    what = (text, slot, mode, seed if donors is None else None) if slot else (text,)
    key = _scores_key(run, name, what, prompts, frame, donors)
    return cached_arrays("scores", key, lambda: {"scores": np.asarray(compute())},
                         shapes={"scores": (len(prompts),)})["scores"]


#: Part of every scores key: bump it when scoring changes what it returns for the same inputs.
_SCORES_VERSION = 1


def _scores_key(run: RecRun, name: str, what: tuple, prompts: Sequence, frame: pd.DataFrame,
                donors: pd.DataFrame | None) -> str:
    """Changes with the backbone (name, weights as in stage 1's key), the method, ``what`` is
    scored (text cache or whole prompts, the slot switched off and how), every setting, the
    device, every weight of the model but the base LLM's (the stage-1 LoRA, the selected
    stage-3 weights), the prompts' token ids, the padding and answer ids (all the tokenizer
    gives a score; its digest would cost a second per call) and the users and items of the
    rows (and of the donors)."""
    model = run.models[name]
    digest = hashlib.sha256(repr((_SCORES_VERSION, run.backbone.name,
                                  weights_digest(run.backbone), model.answer_ids,
                                  run.backbone.tokenizer.pad_token_id, name, what,
                                  model.kg_ablation, _key_settings(run, vars(run.config)),
                                  str(next(model.parameters()).device))).encode())
    _update_with_weights(digest, model)
    for prompt in prompts:
        digest.update(np.asarray(prompt.ids, dtype=np.int64).tobytes() + b"|")
    for rows in (frame, donors):
        if rows is not None:
            digest.update(rows[["uid", "iid"]].to_numpy(dtype=np.int64).tobytes() + b"/")
    return digest.hexdigest()[:24]
