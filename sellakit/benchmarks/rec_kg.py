"""``sellakit bench rec-kg``: the ``<KG_ID>`` study of issue 25 on MovieLens-100k.

Per seed (``seed``, ``seed + 1``, ...; the rows are one seeded sample, shared by every seed): the
plain MF and :class:`~sellakit.cf.models.KGMF` (``mf_kg``, CKE-style), then
:func:`~sellakit.rec.run_methods` with the items' KG vectors (:mod:`sellakit.kg.items`, trained
once and cached), in the configuration ``rec-grid`` chose when one is given (``--grid``, as
``rec-study`` takes it), then the slot ablation at scoring time (each KG method with
``<KG_ID>`` zeroed, ``|zero``, and shuffled across items, ``|shuffle``), then the simple
baselines of ``bench rec`` (:func:`sellakit.benchmarks.rec.baseline_scores`: item rate, item +
user rate, MF with biases). Each finished seed is written as it
goes to the parts folder beside ``out`` (:class:`~sellakit.benchmarks.parts.PartStore`:
``seed-<s>.parquet``, its per-row scores, and ``.json``, its seconds by phase; a folder of
another run's settings is refused); a rerun reads the finished seeds back and runs only the
rest (stage 1 then comes from the kit's cache).

Comparisons are paired, on the same test rows: seed-mean AUC differences with 95% row-bootstrap
intervals (:func:`sellakit.stats.paired_bootstrap`), on all test rows and on the item-cold and
user-cold rows (item / user not in train), each KG method against the same method without the
slot, against its ablations and against the strongest CF baseline (:data:`CF_BASELINES`: the
simple baselines, plain MF and ``mf_kg``; the one with the best seed-mean validation AUC), and
``mf_kg`` against plain MF.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from sellakit.benchmarks.parts import PartStore
from sellakit.benchmarks.rec import SIMPLE_BASELINES
from sellakit.benchmarks.report import machine, markdown_table
from sellakit.data.protocol import CTRSplit
from sellakit.errors import ConfigError

__all__ = ["PARTNERS", "KG_ABLATION_MODES", "rec_kg_benchmark", "rec_kg_summary",
           "rec_kg_markdown", "run_overrides", "slice_masks"]

#: Each KG method and the same method without ``<KG_ID>``.
PARTNERS = {"collm_kg": "collm", "sella_kg": "sella", "text_kg": "tallrec"}
#: What ``<KG_ID>`` reads in the scoring-time ablation (:meth:`SpecialTokenRec.set_kg_ablation`).
KG_ABLATION_MODES = ("zero", "shuffle")
#: The CF baselines every KG method faces: ``bench rec``'s simple ones (count rates, MF with
#: biases, plain MF) and the KG-aware MF; the strongest on validation is chosen (ties: earlier).
CF_BASELINES = (*SIMPLE_BASELINES, "mf_kg")
SLICES = ("all", "item_cold", "user_cold")
#: The splits whose items the film KG's links name (ML-100k's movie ids).
FILM_KG_SPLITS = ("ml-100k", "ml-100k-cold-items")


def slice_masks(rows: pd.DataFrame, split: CTRSplit) -> dict[str, np.ndarray]:
    """Boolean masks over ``rows``: every row, item-cold (item not in train), user-cold."""
    return {"all": np.ones(len(rows), bool),
            "item_cold": ~rows.iid.isin(split.train.iid).to_numpy(),
            "user_cold": ~rows.uid.isin(split.train.uid).to_numpy()}


def rec_kg_benchmark(split: CTRSplit, methods: list[str], *, out: str | Path,
                     source: str = "film+likes", preset: str = "quick", seed: int = 2025,
                     seeds: int = 3, model: str = "smollm2-135m", backbone=None,
                     kg=None, heldout: tuple[int, int] = (1000, 2000), kg_config=None,
                     choice: dict[str, str] | None = None, rec_overrides: dict | None = None,
                     progress: bool = True) -> tuple[dict, pd.DataFrame]:
    """The study (module docstring). ``kg``: the split's film KG (default ML-100k's, read from
    the recbole wheel); ``heldout``: film facts held out for selection and test of the KG
    vectors; ``kg_config``: their settings (default :func:`~sellakit.kg.items.item_kg_config`);
    ``backbone``: a loaded one (default ``model``); ``choice``: the configuration ``rec-grid``
    chose (:func:`~sellakit.benchmarks.rec_study.study_choice`; every method runs in it, stage 1
    on BCE, as in ``rec-study``); ``rec_overrides``: :class:`~sellakit.rec.RecConfig` fields on
    top of the preset (row counts for a small run).
    Returns ``(results, scores)``: :func:`rec_kg_summary` and the per-row scores."""
    from sellakit.data.ml100k import film_multisource
    from sellakit.kg.items import item_kg_vectors, with_heldout_film

    if kg is None and split.name not in FILM_KG_SPLITS:
        raise ConfigError(f"bench rec-kg: the film KG links MovieLens-100k's movies, not "
                          f"{split.name!r}'s. Fix: --dataset {' or '.join(FILM_KG_SPLITS)} "
                          "(or pass kg= a FilmKG of this split's items).")
    store = PartStore(out, {"dataset": split.name, "source": source, "preset": preset,
                            "seed": seed, "seeds": seeds, "methods": list(methods),
                            "model": model, "heldout": list(heldout), "choice": choice or {},
                            "baselines": list(CF_BASELINES), "rec_overrides": rec_overrides or {}})
    started = time.perf_counter()
    graph = with_heldout_film(film_multisource(split, kg), n_valid=heldout[0],
                              n_test=heldout[1])
    vectors = item_kg_vectors(graph, split.n_items, source, config=kg_config,
                              progress=progress)
    kg_seconds = round(time.perf_counter() - started, 1)
    first = None
    overrides = run_overrides(seed, choice, rec_overrides)
    for s in range(seed, seed + seeds):
        if not store.done(f"seed-{s}"):
            backbone = backbone or _load_backbone(model)
            frame, record, run = _one_seed(split, methods, vectors.vectors, s, preset,
                                           backbone, overrides, progress, first)
            first = first or run  # later seeds share its stage 1 and text cache
            store.save(f"seed-{s}", record, frame)  # the seed counts once written
    records, scores = store.load()
    by_seed = {int(name.removeprefix("seed-")): record for name, record in records.items()}
    strongest = strongest_on_validation({s: r["valid_auc"] for s, r in by_seed.items()})
    results = rec_kg_summary(scores, strongest=strongest)
    results["_run"] = {"dataset": split.name, "source": source, "preset": preset,
                       "choice": choice or {}, "strongest_baseline": strongest,
                       "valid_auc": {s: r["valid_auc"] for s, r in by_seed.items()},
                       "seeds": list(range(seed, seed + seeds)), "methods": list(methods),
                       "kg": {"link_prediction": vectors.link_prediction,
                              "known_items": int(vectors.known.sum()),
                              "items": int(split.n_items - 1), "width": vectors.width,
                              "best_epoch": vectors.best_epoch, "seconds": vectors.seconds,
                              "cached": vectors.cached, "seconds_here": kg_seconds},
                       "seconds": {s: r["seconds"] for s, r in by_seed.items()},
                       "machine": machine(), "rec_overrides": rec_overrides or {}}
    return results, scores


def run_overrides(seed: int, choice: dict[str, str] | None = None,
                  rec_overrides: dict | None = None) -> dict:
    """The :class:`~sellakit.rec.RecConfig` fields every seed of the study runs with, on top of
    its preset: one row sample for every seed (paired by row, drawn with the first ``seed``),
    the chosen configuration (stage 1 on BCE, as in ``rec-study``), then ``rec_overrides``."""
    # No separate item-cold split: the slices are of the test sample (slice_masks), and on the
    # cold-item protocol every item-cold test row is 11,537 rows, whose text cache (about 4.5 MB
    # a row at the compare preset) would never be read and would not fit in 24 GiB.
    return {"sample_seed": seed, "item_cold_rows": False,
            **({"stage1_loss": "bce", **choice} if choice else {}), **(rec_overrides or {})}


def strongest_on_validation(valid_auc: dict[int, dict[str, float]]) -> str | None:
    """The CF baseline (:data:`CF_BASELINES`) with the best seed-mean validation AUC (ties: the
    earlier in the table), from each seed's ``{baseline: valid AUC}``; None when none ran."""
    present = [b for b in CF_BASELINES if valid_auc and all(b in v for v in valid_auc.values())]
    if not present:
        return None
    return max(present, key=lambda b: (np.mean([v[b] for v in valid_auc.values()]),
                                       -present.index(b)))


def _load_backbone(model: str):
    from sellakit.llm import load_backbone

    return load_backbone(model)


def _one_seed(split: CTRSplit, methods: list[str], vectors: np.ndarray, seed: int, preset: str,
              backbone, overrides: dict, progress: bool, first=None
              ) -> tuple[pd.DataFrame, dict, object]:
    """One seed's per-row scores (test rows; methods, ``mf_kg``, the ablations and the simple
    baselines), its record (seconds by phase; ``valid_auc``: each CF baseline's validation
    AUC, which chooses the strongest) and its run (stage 1 from ``first``'s when given, else
    the cache)."""
    from sellakit.cf import CFConfig, build_model, predict, train_cf
    from sellakit.rec import KG_METHODS, RecConfig, prepare_stage2, run_methods
    from sellakit.rec.methods import score_kg_ablation

    clock, seconds = time.perf_counter(), {}
    config = RecConfig.preset(preset, seed=seed, **overrides)
    plain, align_config = prepare_stage2(split, preset=preset, seed=seed, progress=progress,
                                         use_cache=True)  # the same MF as a fresh train
    cf_config = CFConfig.preset(RecConfig.STAGE2_PRESETS[preset], model="mf_kg", seed=seed)
    kg_mf = train_cf(split, cf_config, progress=progress, model=build_model(
        "mf_kg", split.n_users, split.n_items, item_kg=vectors, dim=cf_config.dim)).model
    seconds["cf"] = round(time.perf_counter() - clock, 1)
    run = run_methods(split, methods, config, plain_mf=plain, align_config=align_config,
                      backbone=backbone, progress=progress, use_cache=True,
                      kg_vectors=vectors, stage1_from=first)
    seconds["rec"] = round(time.perf_counter() - clock - seconds["cf"], 1)
    rows = run.rows["test"]
    scores = {m: run.scores[m]["test"] for m in methods}
    scores["mf_kg"] = predict(kg_mf, rows)
    if "mf" not in scores:
        scores["mf"] = predict(plain, rows)
    for name in [m for m in methods if m in KG_METHODS]:
        for mode in KG_ABLATION_MODES:
            scores[f"{name}|{mode}"] = score_kg_ablation(run, name, mode, seed=seed)
    seconds["ablation"] = round(time.perf_counter() - clock - seconds["cf"] - seconds["rec"], 1)
    tick = time.perf_counter()  # last: the rows' scores above never depend on it
    valid_auc = _baselines(split, run, preset, seed, progress, scores,
                           {"mf_kg": kg_mf, "mf": plain})
    seconds["baselines"] = round(time.perf_counter() - tick, 1)
    masks = slice_masks(rows, split)
    frame = pd.concat([pd.DataFrame({
        "row": np.arange(len(rows)), "uid": rows.uid.to_numpy(), "iid": rows.iid.to_numpy(),
        "label": rows.label.to_numpy(), "item_cold": masks["item_cold"],
        "user_cold": masks["user_cold"], "method": name, "seed": seed,
        "score": np.asarray(values, dtype=np.float64)}) for name, values in scores.items()],
        ignore_index=True)
    seconds["total"] = round(time.perf_counter() - clock, 1)
    return frame, {"seconds": seconds, "valid_auc": valid_auc}, run


def _baselines(split: CTRSplit, run, preset: str, seed: int, progress: bool,
               scores: dict[str, np.ndarray], cf: dict) -> dict[str, float]:
    """The simple baselines of ``bench rec`` on the run's valid and test rows: their test
    scores into ``scores``; returns every CF baseline's validation AUC (``cf``: the trained
    MF models, name -> model)."""
    from sellakit.benchmarks.rec import baseline_scores
    from sellakit.cf import predict
    from sellakit.metrics import auc

    rows = {part: run.rows[part] for part in ("valid", "test")}
    valid = {name: predict(model, rows["valid"]) for name, model in cf.items()}
    for name, (values, _) in baseline_scores(split, rows, preset=preset, seed=seed,
                                             progress=progress).items():
        scores[name], valid[name] = values["test"], values["valid"]
    labels = rows["valid"].label.to_numpy()
    return {name: float(auc(labels, valid[name])) for name in CF_BASELINES}


def _wide(scores: pd.DataFrame, method: str, part: str) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, seeds x rows scores)`` of ``method`` on the rows of slice ``part``."""
    frame = scores[scores.method == method]
    if part != "all":
        frame = frame[frame[part]]
    wide = frame.pivot(index="row", columns="seed", values="score")  # rows: one sample
    labels = frame.drop_duplicates("row").set_index("row").loc[wide.index].label
    return labels.to_numpy(), wide.to_numpy().T


def _pairs(methods: list[str], strongest: str | None = None) -> list[tuple[str, str]]:
    """(method, against): each KG method against its partner, its ablations and the
    strongest CF baseline (``strongest``; None: the first of :data:`CF_BASELINES` present);
    then the KG-aware MF against plain MF (what the KG vector adds without an LLM)."""
    base = strongest if strongest in methods else \
        next((b for b in CF_BASELINES if b in methods), None)
    out = []
    for name in [m for m in methods if m in PARTNERS]:
        out += [(name, PARTNERS[name])] if PARTNERS[name] in methods else []
        out += [(name, f"{name}|{mode}") for mode in KG_ABLATION_MODES
                if f"{name}|{mode}" in methods]
        out += [(name, base)] if base else []
    return out + ([("mf_kg", "mf")] if {"mf_kg", "mf"} <= set(methods) else [])


def rec_kg_summary(scores: pd.DataFrame, strongest: str | None = None) -> dict:
    """Per method and slice, the seed-mean AUC with its interval; per pair (:func:`_pairs`,
    ``strongest`` the CF baseline chosen on validation) and slice, the paired difference
    ``{"diff", "lo", "hi", "p"}`` and its verdict."""
    from sellakit.stats import paired_bootstrap, verdict

    methods = list(dict.fromkeys(scores.method))
    results: dict = {"methods": {}, "comparisons": {}}
    for name in methods:
        results["methods"][name] = {}
        for part in SLICES:
            labels, matrix = _wide(scores, name, part)
            usable = len(set(labels)) == 2
            results["methods"][name][part] = {
                "rows": int(len(labels)),
                "auc": paired_bootstrap(labels, matrix, None) if usable else None}
    for name, other in _pairs(methods, strongest):
        key = f"{name} vs {other}"
        results["comparisons"][key] = {}
        for part in SLICES:
            labels, a = _wide(scores, name, part)
            _, b = _wide(scores, other, part)
            if len(set(labels)) < 2:
                results["comparisons"][key][part] = None
                continue
            diff = paired_bootstrap(labels, a, b)
            results["comparisons"][key][part] = {**diff,
                                                 "verdict": verdict(diff["lo"], diff["hi"])}
    return results


def rec_kg_markdown(results: dict, *, command: str) -> str:
    """The study's two tables (AUC per slice; paired differences per slice), with the command
    and the KG vectors' link-prediction check."""
    def cell(value) -> str:
        if value is None:
            return "n/a"
        if "value" in value:
            return f"{value['value']:.4f} [{value['lo']:.4f}, {value['hi']:.4f}]"
        return f"{value['diff']:+.4f} [{value['lo']:+.4f}, {value['hi']:+.4f}]"

    run = results["_run"]
    methods = markdown_table(["method", *SLICES], [
        [name, *[cell(row[part]["auc"]) for part in SLICES]]
        for name, row in results["methods"].items()])
    pairs = markdown_table(["comparison (AUC difference)", *SLICES], [
        [key, *[cell(row[part]) for part in SLICES]]
        for key, row in results["comparisons"].items()])
    rows = next(iter(results["methods"].values()))
    kg = run["kg"]
    choice = run.get("choice") or {}
    chosen = (", in the configuration rec-grid chose ("
              + ", ".join(f"{k}={v}" for k, v in sorted(choice.items())) + ")") if choice else ""
    return "\n".join([
        f"# <KG_ID> study on {run['dataset']} (KG vectors: {run['source']})", "",
        f"Command: `{command}`", "",
        f"Seeds {run['seeds']}, preset {run['preset']}{chosen}"
        + (f", {run['rec_overrides']}" if run.get("rec_overrides") else "")
        + f", on {run.get('machine', 'a machine not recorded')}; test rows: "
        + ", ".join(f"{part} {rows[part]['rows']}" for part in SLICES) + ".",
        f"Strongest CF baseline on validation (of {', '.join(CF_BASELINES)}): "
        f"`{run.get('strongest_baseline')}`.",
        f"KG vectors: {kg['known_items']} of {kg['items']} items known; link prediction on "
        f"held-out film facts: MRR {kg['link_prediction']['mrr']:.4f}, Hits@10 "
        f"{kg['link_prediction']['hits@10']:.4f}.", "",
        "Seed-mean test AUC, 95% row-bootstrap interval:", "", *methods, "",
        "Paired differences (seed-mean AUC, same rows; `|zero`, `|shuffle`: <KG_ID> zeroed or "
        "shuffled across items at scoring time):", "", *pairs, ""])
