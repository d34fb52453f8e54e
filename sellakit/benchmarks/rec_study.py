"""The LLM-recommender study (issue 23): ``sellakit bench rec-curve`` (does stage 1 learn, and
from how many rows), ``rec-grid`` (SeLLa-Rec's switches on one stage 1, chosen on validation)
and ``rec-study`` (the chosen configuration, its ablations, CoLLM- and TALLRec-style and the
count baselines, three seeds of stages 2-3 on one stage 1, in the ``study`` preset).

Each command is resumable (:class:`~sellakit.benchmarks.parts.PartStore`, exported here too):
every finished part (one stage 1 of the curve, one grid cell, one
method and seed of the study) is written to ``<out>.parts/`` as it finishes, with its per-row
scores, and the JSON, markdown and ``.scores.parquet`` beside ``--out`` are rewritten from the
parts so far; a killed run started again with the same command skips the parts it finished
(stage 1 and the study's text cache come back from the kit's cache). Times are reported by
phase.

Baselines: the simple baselines of ``bench rec`` (count rates and MF with biases,
:func:`sellakit.benchmarks.rec.baseline_scores`) stand in every table; the strongest on
validation is the one every method is compared with, paired.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from sellakit.benchmarks.parts import PartStore
from sellakit.benchmarks.report import machine, markdown_table
from sellakit.data.protocol import CTRSplit
from sellakit.errors import ConfigError

__all__ = ["CURVE_VARIANTS", "GRID_AXES", "STUDY_METHODS", "PartStore",
           "rec_curve", "curve_markdown", "rec_grid", "grid_markdown", "rec_study",
           "study_markdown", "versus_full", "versus_strongest"]


def _long(rows: Mapping[str, pd.DataFrame], scores: Mapping[str, np.ndarray], **label
          ) -> pd.DataFrame:
    """Per-row scores in long form (split, row, uid, iid, label, not_cold, score, ``label``)."""
    parts = [pd.DataFrame({"split": part, "row": np.arange(len(rows[part])),
                           "uid": rows[part].uid.to_numpy(), "iid": rows[part].iid.to_numpy(),
                           "label": rows[part].label.to_numpy(),
                           "not_cold": rows[part].not_cold.to_numpy(),
                           "score": np.asarray(values, dtype=np.float64), **label})
             for part, values in scores.items()]
    return pd.concat(parts, ignore_index=True)


def _write(out: str | Path, results: dict, scores: pd.DataFrame, markdown: str) -> None:
    """The JSON, markdown and per-row scores of the parts so far."""
    from sellakit.benchmarks import write_report
    from sellakit.cache import atomic_file

    with atomic_file(Path(out).with_suffix(".scores.parquet")) as tmp:
        scores.to_parquet(tmp, index=False)
    write_report(out, results, markdown)


def _metrics(rows: Mapping[str, pd.DataFrame], scores: Mapping[str, np.ndarray]) -> dict:
    """AUC / UAUC of every scored split."""
    from sellakit.metrics import ctr_metrics

    return {s: ctr_metrics(rows[s], v) for s, v in scores.items()}


# --- the stage-1 learning curve ----------------------------------------------------------

@dataclass(frozen=True)
class CurveVariant:
    """One stage 1 of the learning curve: its LoRA (:attr:`RecConfig.LORA_SETS`) and loss."""

    lora: str
    loss: str
    help: str


#: The stage-1 variants ``rec-curve --variants`` offers.
CURVE_VARIANTS: Mapping[str, CurveVariant] = MappingProxyType({
    "qv_r8_bce": CurveVariant("qv_r8", "bce", "LoRA r8 on q, v; BCE (the kit's stage 1)"),
    "all_r64_bce": CurveVariant("all_r64", "bce", "LoRA r64 on every linear projection "
                                "(the authors'); BCE"),
    "qv_r8_lm": CurveVariant("qv_r8", "lm", "LoRA r8 on q, v; the LM loss on the answer "
                             "(the authors')"),
    "all_r64_lm": CurveVariant("all_r64", "lm", "the authors' LoRA and loss"),
})


def rec_curve(split: CTRSplit, *, sizes: Sequence[int], variants: Sequence[str], out: str,
              preset: str = "compare", seed: int = 2025, model: str = "smollm2-135m",
              load: Callable | None = None, overrides: Mapping | None = None,
              progress: bool = True, command: str = "") -> tuple[dict, pd.DataFrame]:
    """TALLRec-style stage 1 of each variant at each training size (the same validation and
    test rows), against the item rate; each (variant, size) written as it finishes. ``load``
    makes a fresh backbone (default: ``load_backbone(model)``); ``overrides`` go to the
    preset (tests)."""
    from tqdm.auto import tqdm

    from sellakit.llm import load_backbone
    from sellakit.rec import RecConfig, run_methods, sample_splits

    unknown = sorted(set(variants) - set(CURVE_VARIANTS))
    if unknown:
        raise ConfigError(f"--variants {unknown}: choose from {', '.join(CURVE_VARIANTS)}.")
    load = load or (lambda: load_backbone(model))
    settings = {"kind": "curve", "dataset": split.name, "preset": preset, "seed": seed,
                "model": model, "overrides": dict(overrides or {}), "machine": machine()}
    store = PartStore(out, settings)
    todo = [(v, n) for v, n in product(variants, sizes) if not store.done(f"{v}@{n}")]
    for variant, size in tqdm(todo, desc="stage-1 curve", disable=not progress):
        row = CURVE_VARIANTS[variant]
        config = RecConfig.preset(preset, seed=seed, train_rows=size, cache_prefix=False,
                                  item_cold_rows=False, stage1_loss=row.loss,
                                  **(overrides or {})).with_lora(row.lora)
        started = time.perf_counter()
        backbone = load()
        loaded = time.perf_counter() - started
        run = run_methods(split, ["tallrec"], config, plain_mf=None, backbone=backbone,
                          progress=progress, use_cache=True)
        rows, scores = run.rows, run.scores["tallrec"]
        trained = run.training["tallrec"]
        record = {"variant": variant, "size": size, "train_rows": len(rows["train"]),
                  **_metrics(rows, scores), "best_step": trained.best_step,
                  "from_cache": run.results["tallrec"]["from_cache"],
                  "seconds": {"load": round(loaded, 1), "stage1": round(trained.seconds, 1),
                              "scoring": round(time.perf_counter() - started - loaded
                                               - trained.seconds, 1)}}
        store.save(f"{variant}@{size}", record,
                   _long(rows, scores, method="tallrec", variant=variant, size=size))
        _write(out, *_curve_results(split, store, {**settings, "command": command},
                                    sample_splits(split, config)))
    return _curve_results(split, store, {**settings, "command": command}, None)[:2]


def _curve_results(split: CTRSplit, store: PartStore, settings: dict, rows
                   ) -> tuple[dict, pd.DataFrame, str]:
    """The curve so far: every part, and the item rate from every training row on the same
    validation / test rows."""
    records, scores = store.load()
    results = {"_run": settings, "runs": records}
    if rows is not None:
        from sellakit.cf.rates import rate_scores

        fit = rate_scores(split, {s: rows[s] for s in ("valid", "test")})["item_rate"]
        results["item_rate"] = {**_metrics(rows, fit.scores), **fit.settings()}
        (store.folder / "item_rate.txt").write_text(json.dumps(results["item_rate"]))
    elif (store.folder / "item_rate.txt").exists():
        results["item_rate"] = json.loads((store.folder / "item_rate.txt").read_text())
    return results, scores, curve_markdown(results)


def curve_markdown(results: dict) -> str:
    """Validation (and test) AUC of each stage 1 by training rows, the item rate beside."""
    meta = results["_run"]
    command = meta.get("command")
    rate = results.get("item_rate", {})
    lines = [f"TALLRec-style stage 1 on {meta['dataset']} ({meta['model']}, "
             f"{meta.get('machine')}, preset "
             f"{meta['preset']}, seed {meta['seed']}): validation AUC by training rows. The "
             f"item rate (every training row, smoothing {rate.get('item_strength')}) gives valid "
             f"AUC {rate.get('valid', {}).get('auc', float('nan')):.4f}, test "
             f"{rate.get('test', {}).get('auc', float('nan')):.4f}."
             + (f" Command: `{command}`" if command else ""), ""]
    table = [[r["variant"], r["train_rows"], f"{r['valid']['auc']:.4f}",
              f"{r['test']['auc']:.4f}", r["best_step"], r["seconds"]["stage1"],
              r["seconds"]["scoring"]]
             for r in sorted(results["runs"].values(), key=lambda r: (r["variant"], r["size"]))]
    lines += markdown_table(["stage 1", "train rows", "valid AUC", "test AUC", "best step",
                             "s training", "s scoring"], table)
    return "\n".join(lines) + "\n"


# --- SeLLa-Rec's grid --------------------------------------------------------------------

#: The switches the grid crosses (``RecConfig`` fields -> the values tried), one seed each.
GRID_AXES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "slot_position": ("after_text", "before_title"), "loss": ("bce", "lm"),
    "projector_start": ("alignment", "fresh", "shrunk")})


def _stage2_default(split: CTRSplit, preset: str, progress: bool) -> Callable:
    """``seed -> (plain MF, AlignConfig)`` of the preset (the MF from the kit's cache)."""
    from sellakit.rec import prepare_stage2

    return lambda seed: prepare_stage2(split, preset=preset, seed=seed, progress=progress,
                                       use_cache=True)


def _cell_name(cell: Mapping[str, str]) -> str:
    return "+".join(cell[axis] for axis in GRID_AXES)


def rec_grid(split: CTRSplit, *, out: str, preset: str = "compare", seed: int = 2025,
             model: str = "smollm2-135m", load: Callable | None = None,
             stage2: Callable | None = None, overrides: Mapping | None = None,
             progress: bool = True, command: str = "") -> tuple[dict, pd.DataFrame]:
    """SeLLa-Rec (``sella``) in every cell of :data:`GRID_AXES` on one stage 1 (BCE; under the
    second slot position read back from the kit's cache when its prompts' token ids are the
    first's, else trained once more) and one stage 2, one seed; the cell
    with the best validation AUC is ``chosen`` (test is reported, never used to choose). Each
    cell is written as it finishes."""
    from sellakit.llm import load_backbone
    from sellakit.rec import RecConfig, run_methods

    load = load or (lambda: load_backbone(model))
    stage2 = stage2 or _stage2_default(split, preset, progress)
    settings = {"kind": "grid", "dataset": split.name, "preset": preset, "seed": seed,
                "model": model, "overrides": dict(overrides or {}), "machine": machine()}
    store = PartStore(out, settings)
    plain, align_config = stage2(seed)
    tables = None  # stage 2's aligned MF and the raw item states, after the first cell
    run = None
    for position in GRID_AXES["slot_position"]:
        # Let go of the last layout's runs (their text caches: about 8.5 GB in float32 at the
        # compare preset) before the next layout builds its own: both at once ran the 24 GiB
        # machine out of memory.
        first = backbone = run = None
        gc.collect()
        for loss, start in product(GRID_AXES["loss"], GRID_AXES["projector_start"]):
            cell = {"slot_position": position, "loss": loss, "projector_start": start}
            if store.done(_cell_name(cell)):
                continue
            config = RecConfig.preset(preset, seed=seed, stage1_loss="bce", **cell,
                                      **(overrides or {}))
            backbone = backbone or load()
            run = run_methods(split, ["sella"], config, plain_mf=plain,
                              aligned=tables[0] if tables else None,
                              align_config=None if tables else align_config,
                              semantic=tables[1] if tables else None, backbone=backbone,
                              stage1_from=first, use_cache=True, progress=progress)
            first = first or run
            tables = tables or (run.aligned, run.semantic + run.semantic_mean)
            record = {"cell": cell, **_metrics(run.rows, run.scores["sella"]),
                      "seconds": {"stage3": run.results["sella"]["seconds"],
                                  **{k: v for k, v in run.seconds.items() if v is not None}},
                      "best_step": run.results["sella"]["best_step"]}
            store.save(_cell_name(cell), record, _long(run.rows, run.scores["sella"],
                                                       method="sella", **cell))
            _write(out, *_grid_results(store, {**settings, "command": command}))
    return _grid_results(store, {**settings, "command": command})[:2]


def _grid_results(store: PartStore, settings: dict) -> tuple[dict, pd.DataFrame, str]:
    """The cells so far and the one chosen on validation AUC."""
    records, scores = store.load()
    chosen = max(records, key=lambda n: records[n]["valid"]["auc"]) if records else None
    results = {"_run": settings, "cells": records, "chosen": chosen,
               "chosen_cell": records[chosen]["cell"] if chosen else None}
    return results, scores, grid_markdown(results)


def grid_markdown(results: dict) -> str:
    """Every cell's validation and test AUC, the chosen one marked."""
    meta = results["_run"]
    cells = results["cells"]
    lines = [f"SeLLa-Rec's grid on {meta['dataset']} ({meta['model']}, "
             f"{meta.get('machine')}, preset "
             f"{meta['preset']}, seed {meta['seed']}, one stage 1 and one stage 2): chosen on "
             f"validation AUC: **{results['chosen']}**. Command: `{meta.get('command')}`", ""]
    table = [[*(r["cell"][axis] for axis in GRID_AXES), f"{r['valid']['auc']:.4f}",
              f"{r['test']['auc']:.4f}", f"{r['seconds']['stage3']:.0f}",
              "chosen" if name == results["chosen"] else ""]
             for name, r in sorted(cells.items(), key=lambda kv: -kv[1]["valid"]["auc"])]
    lines += markdown_table([*GRID_AXES, "valid AUC", "test AUC", "s stage 3", ""], table)
    return "\n".join(lines) + "\n"


# --- the study ---------------------------------------------------------------------------

#: The study's methods: MF, TALLRec-style, CoLLM-style on plain and aligned MF, SeLLa-Rec in
#: the grid's chosen configuration and its ablations (``sella_random_init`` is the authors'
#: released script: P_C from scratch).
STUDY_METHODS = ("mf", "tallrec", "collm", "collm_aligned", "sella", "sella_no_align",
                 "sella_random_init", "sella_no_warm", "sella_frozen_cf")
#: Labels the study's table gives some methods.
STUDY_LABELS = MappingProxyType({"sella_random_init": "sella_random_init (the authors' "
                                                      "released script: P_C from scratch)"})


def study_choice(grid_file: str | Path) -> dict[str, str]:
    """The configuration the grid chose on validation (``rec-grid``'s JSON)."""
    path = Path(grid_file)
    try:
        grid = json.loads(path.read_text())
        chosen, cells = grid["chosen_cell"], grid["cells"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{path}: no grid result to read the chosen configuration from "
                          f"({err}). Fix: run `sellakit bench rec-grid --out {path}` first, "
                          "or pass --grid the file it wrote.") from err
    # A grid still running (or killed) writes its file after each cell: its choice is not
    # the grid's yet.
    every = [_cell_name(dict(zip(GRID_AXES, values))) for values in product(*GRID_AXES.values())]
    missing = [name for name in every if name not in cells]
    if missing:
        raise ConfigError(f"{path}: the grid has {len(every) - len(missing)} of {len(every)} "
                          f"cells (missing: {', '.join(missing)}), so nothing is chosen yet. "
                          f"Fix: run `sellakit bench rec-grid --out {path}` again (it resumes "
                          "from the finished cells), then this command.")
    if not chosen or set(chosen) != set(GRID_AXES):
        raise ConfigError(f"{path}: its chosen cell {chosen!r} does not name {list(GRID_AXES)}. "
                          "Fix: rerun rec-grid with this kit.")
    return dict(chosen)


def rec_study(split: CTRSplit, *, out: str, choice: Mapping[str, str], preset: str = "study",
              seed: int = 2025, seeds: int = 3, ablation_seeds: int | None = None,
              methods: Sequence[str] = STUDY_METHODS, model: str = "smollm2-135m",
              load: Callable | None = None, stage2: Callable | None = None,
              overrides: Mapping | None = None, progress: bool = True, command: str = ""
              ) -> tuple[dict, pd.DataFrame]:
    """``methods`` in the grid's ``choice`` (slot position, loss, P_C start) for ``seeds``
    seeds of stages 2-3 on one stage 1 (the ablations for ``ablation_seeds`` of them), plus
    the baselines; each method and seed written as it finishes."""
    from sellakit.llm import load_backbone
    from sellakit.rec import ABLATIONS, RecConfig, run_methods, sample_splits

    unknown = sorted(set(methods) - set(STUDY_METHODS))
    if unknown:
        raise ConfigError(f"--methods {', '.join(unknown)}: the study runs only "
                          f"{', '.join(STUDY_METHODS)}.")
    load = load or (lambda: load_backbone(model))
    stage2 = stage2 or _stage2_default(split, preset, progress)
    ablation_seeds = seeds if ablation_seeds is None else ablation_seeds
    settings = {"kind": "study", "dataset": split.name, "preset": preset, "seed": seed,
                "model": model, "choice": dict(choice), "overrides": dict(overrides or {}),
                "machine": machine()}
    store = PartStore(out, settings)
    rows = sample_splits(split, RecConfig.preset(preset, seed=seed, **choice,
                                                 **{"sample_seed": seed, **(overrides or {})}))
    _baseline_parts(split, rows, store, preset, seed, progress)
    first = None
    for k in range(seeds):
        config = RecConfig.preset(preset, seed=seed + k, stage1_loss="bce", **choice,
                                  **{"sample_seed": seed, **(overrides or {})})
        todo = [m for m in methods if not store.done(f"{m}@{config.seed}")
                and (k == 0 or m != "tallrec") and (k < ablation_seeds or m not in ABLATIONS)]
        if not todo:
            continue
        started = time.perf_counter()
        plain, align_config = stage2(config.seed)
        seconds = {"mf_and_stage2_settings": round(time.perf_counter() - started, 1)}

        def keep(run, name: str, seconds=seconds, todo=tuple(todo)) -> None:
            if name not in todo:  # stage 1 read back for the others: recorded already
                return
            record = {"method": name, "seed": run.config.seed, "result": run.results[name],
                      "seconds": {**seconds, **run.seconds}}
            store.save(f"{name}@{run.config.seed}", record,
                       _long(run.rows, run.scores[name], method=name, seed=run.config.seed))

        run = run_methods(split, todo, config, plain_mf=plain, align_config=align_config,
                          backbone=first.backbone if first else load(), stage1_from=first,
                          use_cache=True, progress=progress, on_method=keep)
        first = first or run
        _write(out, *_study_results(store, {**settings, "command": command}, rows))
    return _study_results(store, {**settings, "command": command}, rows)[:2]


def _baseline_parts(split: CTRSplit, rows: Mapping[str, pd.DataFrame], store: PartStore,
                    preset: str, seed: int, progress: bool) -> None:
    """The simple baselines on the study's rows, each a part (once; they have no seeds)."""
    from sellakit.benchmarks.rec import ADDED_BASELINES, baseline_scores

    if all(store.done(f"{name}@{seed}") for name in ADDED_BASELINES):
        return
    for name, (values, record) in baseline_scores(split, dict(rows), preset=preset, seed=seed,
                                                  progress=progress).items():
        if not store.done(f"{name}@{seed}"):
            store.save(f"{name}@{seed}", {"method": name, "seed": seed, "result": record,
                                          "seconds": {}},
                       _long(rows, values, method=name, seed=seed))


def _study_results(store: PartStore, settings: dict, rows: Mapping[str, pd.DataFrame]
                   ) -> tuple[dict, pd.DataFrame, str]:
    """Seed means, intervals and paired comparisons of the parts so far; a method run for
    fewer seeds than the others (a baseline: one) has its first seed repeated (marked)."""
    from sellakit.benchmarks.rec import ADDED_BASELINES, summarise

    records, scores = store.load()
    # on the runs as they are, before a method run for fewer seeds is repeated below
    same, ablations = _same_scores(records, scores), versus_full(scores)
    per_seed: dict[int, dict] = {}
    for record in records.values():
        per_seed.setdefault(record["seed"], {})[record["method"]] = record["result"]
    seeds = sorted(per_seed)
    names = [*ADDED_BASELINES, *STUDY_METHODS]
    methods = [m for m in names if any(m in per_seed[s] for s in seeds)]
    frames, repeated = [scores], {}
    for name in methods:
        own = [s for s in seeds if name in per_seed[s]]
        for s in sorted(set(seeds) - set(own)):
            per_seed[s][name] = per_seed[own[0]][name]
            frames.append(scores[(scores.method == name) & (scores.seed == own[0])]
                          .assign(seed=s))
            if name not in ADDED_BASELINES:
                repeated.setdefault(name, own)
    scores = pd.concat(frames, ignore_index=True)
    results = summarise(scores, per_seed, methods) if seeds else {}
    results["_versus_strongest"] = versus_strongest(scores, methods) if seeds else {}
    results["_ablations"] = ablations
    results["_run"] = {**settings, "seeds": seeds, "repeated": repeated,
                       "rows": {s: len(f) for s, f in rows.items()},
                       "same_scores": same,
                       "seconds": _phases(records)}
    return results, scores, study_markdown(results)


def _same_scores(records: Mapping[str, dict], scores: pd.DataFrame) -> dict[str, dict]:
    """Methods that scored every row exactly as an earlier method did at the same seed
    (``{method: {"as": other, "seed": seed}}``): under some grid choices an ablation is the
    chosen configuration itself (P_C fresh makes ``sella_random_init`` ``sella``), and the
    table must say so rather than count it as a second finding."""
    by_part = {(m, s): part.sort_values(["split", "row"]).score.to_numpy()
               for (m, s), part in scores.groupby(["method", "seed"])}
    same = {}
    for record in records.values():
        method, seed = record["method"], record["seed"]
        for other in STUDY_METHODS[:STUDY_METHODS.index(method)] if method in STUDY_METHODS \
                else ():
            mine, theirs = by_part.get((method, seed)), by_part.get((other, seed))
            if theirs is not None and len(mine) == len(theirs) and (mine == theirs).all():
                same[method] = {"as": other, "seed": seed}
                break
    return same


def versus_full(scores: pd.DataFrame) -> dict:
    """Each ablation of the method table against its full method (the table's one
    non-ablation row of its slot family: ``sella`` or ``collm``) on the test rows of the
    seeds both ran, from the runs as they are (never a repeated seed), so an ablation run for
    one seed is not judged by the full method's other seeds: ``{ablation: {"versus", "seeds",
    "auc": {diff, lo, hi, p}, "verdict"}}``."""
    from sellakit.benchmarks.rec import _matrix
    from sellakit.rec import METHOD_TABLE
    from sellakit.stats import paired_bootstrap, verdict

    family = {m.slots: m.name for m in METHOD_TABLE.values()
              if m.stage == "tokens" and not m.ablation and not m.kg}
    out = {}
    for name, full in ((m.name, family[m.slots]) for m in METHOD_TABLE.values() if m.ablation):
        seeds = sorted(set(scores.seed[scores.method == name])
                       & set(scores.seed[scores.method == full]))
        if not seeds:
            continue
        shared = scores[scores.seed.isin(seeds)]
        labels, _, base = _matrix(shared, "test", full)
        _, _, own = _matrix(shared, "test", name)
        auc = paired_bootstrap(labels, own, base)
        out[name] = {"versus": full, "seeds": [int(s) for s in seeds], "auc": auc,
                     "verdict": verdict(auc["lo"], auc["hi"])}
    return out


def versus_strongest(scores: pd.DataFrame, methods: Sequence[str]) -> dict:
    """The simple baseline with the best validation AUC
    (:func:`~sellakit.benchmarks.rec.strongest_baseline`), and every other method against it
    on the same test rows: ``{"baseline", "rows": {method: {"auc": {diff, lo, hi, p}, "uauc",
    "verdict"}}}`` (pooled over seeds; rows resampled for AUC, users for UAUC)."""
    from sellakit.benchmarks.rec import SIMPLE_BASELINES, _matrix, strongest_baseline
    from sellakit.stats import paired_bootstrap, verdict

    strongest = strongest_baseline(scores, list(methods))
    if strongest is None:
        return {}
    labels, users, base = _matrix(scores, "test", strongest)
    out = {}
    for name in [m for m in methods if m not in SIMPLE_BASELINES]:
        _, _, own = _matrix(scores, "test", name)
        auc = paired_bootstrap(labels, own, base)
        out[name] = {"auc": auc, "uauc": paired_bootstrap(labels, own, base, users=users,
                                                          metric="uauc"),
                     "verdict": verdict(auc["lo"], auc["hi"])}
    return {"baseline": strongest, "rows": out}


def _phases(records: Mapping[str, dict]) -> dict:
    """Seconds by phase: the text cache (built once for every seed, so named once: the most
    any part recorded, as the count grows while later splits' rows are cached), stage 2 per
    seed, and each method per seed (its training, stage 1 for ``tallrec``)."""
    phases: dict[str, float] = {}
    cache = [r["seconds"]["prefix_cache"] for r in records.values()
             if r["seconds"].get("prefix_cache") is not None]
    if cache:
        phases["text cache (every split, once)"] = round(max(cache), 1)
    for record in sorted(records.values(), key=lambda r: r["seed"]):
        for phase in ("mf_and_stage2_settings", "stage2"):
            if record["seconds"].get(phase) is not None:
                phases[f"{phase}@{record['seed']}"] = round(record["seconds"][phase], 1)
    for name, record in records.items():
        phases[f"{name} (training)"] = round(record["result"]["seconds"], 1)
    return phases


def study_markdown(results: dict) -> str:
    """Every method and baseline (seed means, intervals, slices), each against the strongest
    baseline, the pairwise comparisons, and the time by phase."""
    meta = results["_run"]
    rows = meta["rows"]
    stage1_rows = (meta.get("overrides") or {}).get("stage1_rows")
    slot_scale = (meta.get("overrides") or {}).get("slot_scale")
    names = [n for n in results if not n.startswith("_")]
    lines = [f"The LLM-recommender study on {meta['dataset']} ({meta['model']}; "
             f"{meta.get('machine')}), preset "
             f"{meta['preset']}: {rows.get('train', 0):,} train / {rows.get('valid', 0):,} "
             f"valid / {rows.get('test', 0):,} test rows"
             + (f" (stage 1 on {stage1_rows:,} of the training rows)" if stage1_rows else "")
             + (f"; every token method's slots scaled by the rule `{slot_scale}`"
                if slot_scale else "")
             + "; SeLLa-Rec as the grid chose on "
             f"validation ({', '.join(f'{k}={v}' for k, v in meta['choice'].items())}); seeds "
             f"{', '.join(map(str, meta['seeds']))} of stages 2-3 on one stage 1"
             + (f" (one seed, repeated: {', '.join(meta['repeated'])})" if meta["repeated"]
                else "") + f". Command: `{meta.get('command')}`", ""]
    table = [[STUDY_LABELS.get(n, n), f"{results[n]['valid']['auc']:.4f}",
              f"{results[n]['test']['auc']:.4f}",
              f"[{results[n]['interval']['auc']['lo']:.4f}, "
              f"{results[n]['interval']['auc']['hi']:.4f}]",
              f"{results[n]['test']['uauc']:.4f}", f"{results[n]['test_warm']['auc']:.4f}",
              f"{results[n]['test_cold']['auc']:.4f}", f"{results[n]['seconds']:.0f}"]
             for n in names]
    lines += markdown_table(["method", "valid AUC", "test AUC", "95% interval", "test UAUC",
                             "warm AUC", "cold AUC", "seconds"], table)
    versus = results.get("_versus_strongest") or {}
    if versus:
        lines += ["", f"Against the strongest baseline on validation, `{versus['baseline']}` "
                  "(paired, same test rows, pooled over seeds):", ""]
        lines += markdown_table(["method", "ΔAUC", "95% interval", "ΔUAUC", "95% interval",
                                 "verdict"], [
            [n, f"{c['auc']['diff']:+.4f}", f"[{c['auc']['lo']:+.4f}, {c['auc']['hi']:+.4f}]",
             f"{c['uauc']['diff']:+.4f}", f"[{c['uauc']['lo']:+.4f}, {c['uauc']['hi']:+.4f}]",
             c["verdict"]] for n, c in versus["rows"].items()])
    ablations = results.get("_ablations") or {}
    if ablations:
        lines += ["", "Each ablation against its full method on the seeds both ran (paired, "
                  "same test rows):", ""]
        lines += markdown_table(["ablation", "against", "seeds", "ΔAUC", "95% interval",
                                 "verdict"], [
            [n, c["versus"], ", ".join(map(str, c["seeds"])), f"{c['auc']['diff']:+.4f}",
             f"[{c['auc']['lo']:+.4f}, {c['auc']['hi']:+.4f}]", c["verdict"]]
            for n, c in ablations.items()])
    same = meta.get("same_scores") or {}
    if same:
        lines += ["", "Scored every row exactly as an earlier method did (the same model under "
                  "the grid's choice, not a second finding): " + "; ".join(
                      f"`{n}` as `{s['as']}` (seed {s['seed']})" for n, s in same.items()) + "."]
    lines += ["", "Seconds by phase (a method's training includes building the text cache "
              "of the rows it was the first to need): " + ", ".join(
                  f"{k} {v:,.1f}" for k, v in meta["seconds"].items()) + "."]
    return "\n".join(lines) + "\n"
