"""``sellakit bench rec`` (the LLM recommenders, published rows beside them) and
``sellakit bench rec-scoring`` (batched against one-at-a-time scoring throughput)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sellakit.benchmarks.report import markdown_table
from sellakit.data.protocol import CTRSplit
from sellakit.published import llm_rec_context

__all__ = ["rec_benchmark", "rec_markdown", "summarise", "compare_methods", "sanity_gate",
           "strongest_baseline", "baseline_scores",
           "rec_scoring_benchmark", "rec_scoring_markdown",
           "rec_prefix_benchmark", "rec_prefix_markdown", "expected_box",
           "random_sella_scorer", "BASELINES", "SIMPLE_BASELINES", "ADDED_BASELINES"]

#: Baselines every other method is compared with, pairwise, on the same rows (besides the
#: strongest simple baseline, :func:`strongest_baseline`).
BASELINES = ("mf", "tallrec", "collm")
#: The baselines without an LLM, for every table: count rates (sellakit.cf.rates), MF with
#: biases and CoLLM's bias-free MF. The strongest on validation stands in every verdict.
SIMPLE_BASELINES = ("item_rate", "item_user_rate", "biased_mf", "mf")
#: What :func:`rec_benchmark` scores beside the requested methods, on the same rows.
ADDED_BASELINES = ("item_rate", "item_user_rate", "biased_mf")
_SLICES = ("test", "test_warm", "test_cold", "test_item_cold")


def rec_benchmark(split: CTRSplit, methods: list[str], *, preset: str = "quick",
                  seed: int = 2025, seeds: int = 1, model: str = "smollm2-135m",
                  aligned: str | None = None, progress: bool = True
                  ) -> tuple[dict, pd.DataFrame]:
    """MF, TALLRec-style, CoLLM-style and SeLLa-Rec (and ablations) on ``split``, for
    ``seeds`` seeds (``seed``, ``seed + 1``, ...) on the same sampled rows. Stage 1 (the
    TALLRec-style LoRA) and the text cache are made once, with the first seed, and shared:
    seeds vary MF, stage 2 and stage 3 (so ``tallrec`` has one seed).

    The simple baselines (:data:`ADDED_BASELINES`: count rates with settings chosen on the
    validation rows, MF with biases, one per seed) are scored on the same rows and join
    ``methods``; the strongest simple baseline on validation stands in every comparison.

    Returns ``(results, scores)``. ``results[method]`` holds the seed means of every slice
    (``test``, ``test_warm``, ``test_cold``, ``test_item_cold``, ``valid``: ``auc``, ``uauc``,
    ``rows``), ``sd`` (their standard deviations over seeds), ``interval`` (95% row-bootstrap
    interval of the seed-mean test AUC, user-bootstrap of UAUC), ``seeds`` (each seed's own
    record) and ``seconds``; ``results["_comparisons"]`` each method against each baseline
    (:func:`compare_methods`); ``results["_sanity"]`` the warm-row gate; ``results["_run"]``
    the settings. ``scores`` is one row per (split, row, method, seed): the per-row scores
    every interval is computed from. With ``accelerate launch``, every process runs this and
    the main one writes the files.
    """
    import time

    from sellakit.rec import RecConfig, make_accelerator

    from sellakit.llm import load_backbone

    from sellakit.align import AlignedTables

    # read and checked against the split before the backbone loads or MF trains
    tables = AlignedTables.load(aligned, split) if aligned is not None else None
    per_seed, frames, meta, first = {}, [], {}, None
    for k in range(seeds):
        config = RecConfig.preset(preset, seed=seed + k)
        accelerator = make_accelerator(config)
        started = time.perf_counter()
        backbone = first.backbone if first else load_backbone(model, device=accelerator.device)
        run = _one_seed(split, methods, config, preset, backbone, tables, accelerator,
                        progress, first)
        first = first or run
        per_seed[config.seed], frame = _with_baselines(split, run, methods, preset,
                                                       config.seed, progress)
        frames.append(frame)
        meta = {"backbone": run.backbone.name, "device": str(accelerator.device),
                "processes": accelerator.num_processes,
                "rows": {s: len(f) for s, f in run.rows.items()}, "config": vars(config)}
        per_seed[config.seed]["_seconds"] = {
            "total": round(time.perf_counter() - started, 1),
            "stage1": round(run.training["tallrec"].seconds, 1) if "tallrec" in run.training
            else None, "stage2": run.seconds.get("stage2"),
            "prefix_cache": run.seconds.get("prefix_cache"),
            "prefix_cache_gb": round(sum(c.nbytes for c in run.prefixes.values()) / 1e9, 2)}
    scores = pd.concat(frames, ignore_index=True)
    results = summarise(scores, per_seed, [*ADDED_BASELINES, *methods])
    results["_run"] = {"preset": preset, "dataset": split.name, "seeds": sorted(per_seed),
                       "seconds": {s: r["_seconds"] for s, r in per_seed.items()}, **meta}
    return results, scores


def _one_seed(split: CTRSplit, methods: list[str], config, preset: str, backbone,
              tables, accelerator, progress: bool, first=None):
    """One seed: plain MF, then :func:`~sellakit.rec.run_methods` (stage 2 after stage 1,
    unless ``tables``, a saved aligned MF, are given); stage 1 and the text cache come from
    ``first`` (the first seed's run) when given, so seeds vary MF and stages 2-3 on one
    stage 1."""
    from sellakit.data.catalog import item_words
    from sellakit.llm import item_semantic_embeddings
    from sellakit.rec import prepare_stage2, run_methods

    plain, align_config = prepare_stage2(split, preset=preset, seed=config.seed,
                                         progress=progress)
    semantic = None
    if tables is not None:
        semantic = item_semantic_embeddings(backbone, split.item_titles, progress=progress,
                                            template=item_words(split.name).item_template)
        align_config = None
    return run_methods(split, methods, config, plain_mf=plain, aligned=tables,
                       align_config=align_config, semantic=semantic, backbone=backbone,
                       accelerator=accelerator, progress=progress, stage1_from=first)


def _published_rows(split_name: str) -> list:
    """The published rows a table of ``split_name``'s split stands beside: its data set's
    (the dataset table's ``published`` key), none for a stand-in or a split it does not list."""
    from sellakit.data.catalog import dataset_of_split

    row = dataset_of_split(split_name)
    return llm_rec_context(row.published) if row is not None and row.published else []


def _with_baselines(split: CTRSplit, run, methods: list[str], preset: str, seed: int,
                    progress: bool) -> tuple[dict, pd.DataFrame]:
    """One seed's records of ``methods`` and of the simple baselines scored on the same rows
    (:func:`baseline_scores`), and all their per-row scores in long form."""
    added = baseline_scores(split, run.rows, preset=preset, seed=seed, progress=progress)
    records = {**{m: run.results[m] for m in methods},
               **{m: record for m, (_, record) in added.items()}}
    scores = {**{m: run.scores[m] for m in methods}, **{m: v for m, (v, _) in added.items()}}
    return records, _long_scores(run.rows, scores, seed)


def baseline_scores(split: CTRSplit, rows: dict[str, pd.DataFrame], *, preset: str,
                    seed: int, progress: bool = True) -> dict[str, tuple[dict, dict]]:
    """The simple baselines of :data:`ADDED_BASELINES` on ``rows`` (a run's sampled frames;
    ``"train"`` is not scored): name -> ``(scores per split, record)``. The count rates count
    ``split.train`` and choose their settings on ``rows["valid"]``; MF with biases trains on
    ``split.train`` in the CF preset of the rec ``preset`` (as the plain MF), epoch chosen on
    ``split.valid``."""
    import time

    from sellakit.cf import CFConfig, fit_and_evaluate, predict
    from sellakit.cf.rates import rate_scores
    from sellakit.rec import RecConfig
    from sellakit.rec.methods import method_results

    scored = {s: f for s, f in rows.items() if s != "train"}
    started = time.perf_counter()
    fits = rate_scores(split, scored)
    seconds = time.perf_counter() - started
    out = {name: (dict(fit.scores), method_results(
        scored, fit.scores, seconds=seconds, backbone="none (counts)", best_step=None,
        seed=seed, settings=fit.settings())) for name, fit in fits.items()}
    config = CFConfig.preset(RecConfig.STAGE2_PRESETS[preset], model="biased_mf", seed=seed)
    biased, _ = fit_and_evaluate(split, config, progress=progress)
    values = {s: predict(biased.model, f) for s, f in scored.items()}
    out["biased_mf"] = (values, method_results(
        scored, values, seconds=biased.seconds, backbone="none (MF with biases alone)",
        best_step=biased.best_step, seed=seed))
    return {name: out[name] for name in ADDED_BASELINES}


def _long_scores(rows: dict[str, pd.DataFrame], scores: dict[str, dict[str, np.ndarray]],
                 seed: int) -> pd.DataFrame:
    """Per-row scores in long form: split, row, uid, iid, label, not_cold, method, seed,
    score (``test_item_cold`` rows are the split ``item_cold``), from ``scores[method][split]``
    on the frames ``rows[split]``."""
    parts = []
    for name, by_split in scores.items():
        for part, values in by_split.items():
            frame = rows[part]
            parts.append(pd.DataFrame({
                "split": part, "row": np.arange(len(frame)), "uid": frame.uid.to_numpy(),
                "iid": frame.iid.to_numpy(), "label": frame.label.to_numpy(),
                "not_cold": frame.not_cold.to_numpy(), "method": name, "seed": seed,
                "score": np.asarray(values, dtype=np.float64)}))
    return pd.concat(parts, ignore_index=True)


def _matrix(scores: pd.DataFrame, part: str, method: str, warm: bool | None = None):
    """``(labels, users, seeds x rows scores)`` of one method on one split."""
    frame = scores[(scores.split == part) & (scores.method == method)]
    if warm is not None:
        frame = frame[frame.not_cold == int(warm)]
    wide = frame.pivot(index="row", columns="seed", values="score")
    first = frame[frame.seed == frame.seed.min()].set_index("row").loc[wide.index]
    return first.label.to_numpy(), first.uid.to_numpy(), wide.to_numpy().T


def summarise(scores: pd.DataFrame, per_seed: dict, methods: list[str]) -> dict:
    """Seed means and sds, intervals, comparisons and the sanity gate, from per-row scores."""
    from sellakit.stats import paired_bootstrap

    results = {}
    for name in methods:
        records = [per_seed[s][name] for s in sorted(per_seed)]
        slices = [k for k in ("valid",) + _SLICES if k in records[0]]
        labels, users, matrix = _matrix(scores, "test", name)
        results[name] = {
            **{k: {m: float(np.mean([r[k][m] for r in records])) for m in ("auc", "uauc", "rows")}
               for k in slices},
            "sd": {k: {m: float(np.std([r[k][m] for r in records], ddof=1))
                       if len(records) > 1 else None for m in ("auc", "uauc")} for k in slices},
            "interval": {"auc": paired_bootstrap(labels, matrix, None),
                         "uauc": paired_bootstrap(labels, matrix, None, users=users,
                                                  metric="uauc")},
            "seconds": float(np.mean([r["seconds"] for r in records])),
            "best_step": [r.get("best_step") for r in records],
            "backbone": records[0]["backbone"], "seed": sorted(per_seed),
            "seeds": {s: per_seed[s][name] for s in sorted(per_seed)}}
    results["_comparisons"] = compare_methods(scores, methods)
    results["_sanity"] = sanity_gate(scores, methods)
    return results


def strongest_baseline(scores: pd.DataFrame, methods: list[str]) -> str | None:
    """The simple baseline (:data:`SIMPLE_BASELINES`) among ``methods`` with the best
    seed-mean AUC on the validation rows of ``scores`` (ties: the earlier in
    :data:`SIMPLE_BASELINES`); the only one when one is present; None when none is."""
    from sellakit.errors import DataError
    from sellakit.metrics import auc

    present = [m for m in SIMPLE_BASELINES if m in methods]
    if len(present) <= 1:
        return present[0] if present else None
    if not (scores.split == "valid").any():
        raise DataError(f"The per-row scores hold no validation rows, but the strongest of "
                        f"{', '.join(present)} is chosen on them; score the valid split too.")
    valid = {}
    for name in present:
        labels, _, matrix = _matrix(scores, "valid", name)
        valid[name] = float(np.mean([auc(labels, row) for row in matrix]))
    return max(present, key=valid.get)


def compare_methods(scores: pd.DataFrame, methods: list[str]) -> dict:
    """Each method against the strongest simple baseline (:func:`strongest_baseline`) and each
    baseline of :data:`BASELINES` present, on the same test rows: ``{"sella vs mf": {"auc":
    {diff, lo, hi, p}, "uauc": {...}, "delong": [per seed], "verdict"}}``; a method with an LLM
    also carries ``strongest`` (the strongest baseline's name) and ``verdict_vs_strongest``,
    so no verdict against a weaker baseline stands without it. The pooled intervals resample
    rows (AUC) or users (UAUC), the difference being the mean over seeds; the verdict
    (:func:`sellakit.stats.verdict`) reads the AUC interval."""
    from sellakit.stats import paired_bootstrap, paired_delong, verdict

    strongest = strongest_baseline(scores, methods)
    bases = list(dict.fromkeys([b for b in (strongest, *BASELINES) if b in methods]))
    out = {}
    for k, base in enumerate(bases):
        for name in [m for m in methods if m not in bases[:k + 1]]:
            labels, users, a = _matrix(scores, "test", name)
            _, _, b = _matrix(scores, "test", base)
            auc = paired_bootstrap(labels, a, b)
            out[f"{name} vs {base}"] = {
                "auc": auc, "uauc": paired_bootstrap(labels, a, b, users=users, metric="uauc"),
                "delong": [paired_delong(labels, x, y) for x, y in zip(a, b)],
                "verdict": verdict(auc["lo"], auc["hi"])}
    for key, comparison in out.items():
        name = key.split(" vs ")[0]
        if strongest is not None and name not in SIMPLE_BASELINES:
            comparison.update(strongest=strongest,
                              verdict_vs_strongest=out[f"{name} vs {strongest}"]["verdict"])
    return out


def sanity_gate(scores: pd.DataFrame, methods: list[str]) -> dict:
    """On warm test rows, the CF signal should reach the LLM: a token method whose seed-mean
    AUC falls below the lower end of the strongest simple baseline's 95% interval
    (:func:`strongest_baseline`) is flagged."""
    from sellakit.metrics import auc
    from sellakit.stats import paired_bootstrap

    base = strongest_baseline(scores, methods)
    if base is None:
        return {}
    labels, _, matrix = _matrix(scores, "test", base, warm=True)
    floor = paired_bootstrap(labels, matrix, None)["lo"]
    token = [m for m in methods if m not in (*SIMPLE_BASELINES, "tallrec")]
    warm = {m: float(np.mean([auc(labels, row) for row in _matrix(scores, "test", m, True)[2]]))
            for m in token}
    return {"baseline": base, "baseline_warm_interval_lo": floor, "warm_auc": warm,
            "below_baseline": sorted(m for m, v in warm.items() if v < floor)}


def rec_markdown(results: dict, *, command: str) -> str:
    """Our rows (seed means, intervals, slices), the paired comparisons, the sanity gate, and
    the published rows."""
    meta = results["_run"]
    rows = meta["rows"]
    n_seeds = len(meta["seeds"])
    lines = [f"LLM recommenders on {meta['dataset']}, preset {meta['preset']} "
             f"({rows['train']:,} train / {rows['valid']:,} valid / {rows['test']:,} test rows"
             + (f", {rows['item_cold']:,} item-cold test rows" if "item_cold" in rows else "")
             + f"), backbone {meta['backbone']}, {meta['device']} x{meta['processes']}, "
             f"seeds {', '.join(map(str, meta['seeds']))} (mean ± sd over seeds; 95% "
             "intervals by bootstrap over test rows, UAUC over users). "
             f"Command: `{command}`", ""]

    def cell(r: dict, key: str, metric: str = "auc") -> str | None:
        if key not in r or r[key][metric] is None:
            return None
        sd = r["sd"][key][metric]
        return f"{r[key][metric]:.4f}" + (f" ± {sd:.4f}" if sd is not None and n_seeds > 1
                                          else "")

    table = []
    for name, r in results.items():
        if name.startswith("_"):
            continue
        interval = r["interval"]["auc"]
        table.append([name, cell(r, "valid"), cell(r, "test"),
                      f"[{interval['lo']:.4f}, {interval['hi']:.4f}]", cell(r, "test", "uauc"),
                      cell(r, "test_warm"), cell(r, "test_cold"), cell(r, "test_item_cold"),
                      f"{r['seconds']:.0f}"])
    table += [[row.label, None, f"{row.metrics['auc']:.4f}", None, f"{row.metrics['uauc']:.4f}"]
              + [None] * 4 for row in _published_rows(meta["dataset"])]
    lines += markdown_table(["method", "valid AUC", "test AUC", "95% interval", "test UAUC",
                             "warm AUC", "cold AUC", "item-cold AUC", "seconds"], table)
    lines += ["", "Paired differences on the same test rows (pooled over seeds):", ""]
    lines += markdown_table(
        ["comparison", "ΔAUC", "95% interval", "p", "ΔUAUC", "95% interval", "verdict"],
        [[key, f"{c['auc']['diff']:+.4f}", f"[{c['auc']['lo']:+.4f}, {c['auc']['hi']:+.4f}]",
          f"{c['auc']['p']:.3f}", f"{c['uauc']['diff']:+.4f}",
          f"[{c['uauc']['lo']:+.4f}, {c['uauc']['hi']:+.4f}]", _verdict_cell(key, c)]
         for key, c in results["_comparisons"].items()])
    gate = results.get("_sanity") or {}
    if gate:
        below = ", ".join(gate["below_baseline"]) or "none"
        lines += ["", f"Strongest simple baseline on validation: `{gate['baseline']}`. Sanity "
                  f"gate (warm test rows): its 95% interval starts at "
                  f"{gate['baseline_warm_interval_lo']:.4f}; token methods below it: {below}."
                  + (" Those methods' tokens do not carry what the baseline knows."
                     if gate["below_baseline"] else "")]
    seconds = list(meta["seconds"].values())[0]
    totals = ", ".join(f"{s}: {r['total']} s" for s, r in meta["seconds"].items())
    lines += ["", f"Seconds per seed, everything included: {totals}. First seed: stage 1 "
              f"(LoRA, text "
              f"prompts) {seconds['stage1']} s; stage 2 (item states of the stage-1 model, "
              f"aligned MF) {seconds['stage2']} s; text key/value cache "
              f"{seconds['prefix_cache_gb']} GB. Seconds per method: its own training and "
              "validation. Published rows: another backbone and the full protocol; for scale "
              "only."]
    return "\n".join(lines) + "\n"


def _verdict_cell(key: str, comparison: dict) -> str:
    """The verdict, and against a weaker baseline the verdict against the strongest too."""
    strongest = comparison.get("strongest")
    if strongest is None or key.endswith(f" vs {strongest}"):
        return comparison["verdict"]
    return f"{comparison['verdict']}; vs strongest ({strongest}): " \
        f"{comparison['verdict_vs_strongest']}"


def expected_box(path) -> tuple[str, dict]:
    """The "what you should see" box of notebook 05, from the compare benchmark's JSON:
    ``(markdown, values)``; ``values`` holds every number the text quotes (a test checks them
    against the file)."""
    import json
    from pathlib import Path

    path = Path(path)
    if not path.exists():
        return (f"*No benchmark file at `{path.name}`. Make it with `sellakit bench rec --dataset "
                "ml-1m --preset compare --seeds 2 --out bench/rec_ml1m_compare.json`.*", {})
    results = json.loads(path.read_text())
    meta = results["_run"]
    methods = [m for m in results if not m.startswith("_")]
    values = {"seeds": meta["seeds"], "rows": meta["rows"],
              "test_auc": {m: results[m]["test"]["auc"] for m in methods},
              "test_auc_sd": {m: results[m]["sd"]["test"]["auc"] for m in methods},
              "comparisons": {k: {"diff": c["auc"]["diff"], "lo": c["auc"]["lo"],
                                  "hi": c["auc"]["hi"], "verdict": c["verdict"]}
                              for k, c in results["_comparisons"].items()
                              if k.split(" vs ")[0] == "sella"},
              **_gate_values(results.get("_sanity") or {})}
    lines = [f"**What you should see** (`{path.name}`: {len(meta['seeds'])} seeds, "
             f"{meta['rows']['test']:,} test rows, {meta['backbone']}). Test AUC, mean ± sd "
             "over seeds:", ""]
    lines += [f"- `{m}` {values['test_auc'][m]:.3f}"
              + (f" ± {values['test_auc_sd'][m]:.3f}" if values["test_auc_sd"][m] is not None
                 else "")
              for m in methods]
    lines += ["", "SeLLa-Rec against each baseline (paired 95% interval of ΔAUC):", ""]
    lines += [f"- {k}: {c['diff']:+.3f} [{c['lo']:+.3f}, {c['hi']:+.3f}], {c['verdict']}"
              for k, c in values["comparisons"].items()]
    below, base = values["below_baseline"], values["baseline"]
    lines += ["", f"Strongest simple baseline on validation: `{base}`. Sanity gate on warm "
              "rows: " + (f"{', '.join(below)} fall below its interval (their tokens do not "
                          "carry what it knows)." if below
                          else "every token method reaches its interval.")]
    return "\n".join(lines), values


def _gate_values(gate: dict) -> dict:
    """The sanity gate's baseline and the methods below it; a file written before the simple
    baselines joined the table gated on MF (``below_mf``)."""
    if "baseline" in gate:
        return {"baseline": gate["baseline"], "below_baseline": gate["below_baseline"]}
    return {"baseline": "mf", "below_baseline": gate.get("below_mf", [])}


def random_sella_scorer(llm, tokenizer, n_users: int, n_items: int, *, trainable: bool,
                        seed: int = 2025):
    """A SeLLa-Rec scorer over ``llm`` with random CF (256-d) and semantic tables of the real
    shapes, for timing: the tables' values do not change the cost."""
    import numpy as np
    from torch import nn

    from sellakit.align import Projector
    from sellakit.rec import SpecialTokenRec, answer_token_ids, copy_table

    rng = np.random.default_rng(seed)
    d = llm.get_input_embeddings().weight.shape[1]
    return SpecialTokenRec(
        llm, answer_token_ids(tokenizer),
        user_table=copy_table(rng.normal(size=(n_users, 256)), trainable=trainable),
        item_table=copy_table(rng.normal(size=(n_items, 256)), trainable=trainable),
        cf_projector=Projector(256, d),
        semantic=copy_table(rng.normal(size=(n_items, d)), trainable=trainable),
        semantic_projector=nn.Linear(d, d))


def rec_scoring_benchmark(*, model: str = "smollm2-135m", rows: int = 128,
                          batch_size: int = 32, history_len: int = 10, seed: int = 2025) -> dict:
    """Prompts per second of SeLLa-Rec scoring: length-sorted, right-padded batches against one
    prompt at a time, on the same ML-1M test prompts (seeded sample), same model, same run."""
    import time

    import numpy as np

    from sellakit.data import collm_split, load_movielens_1m
    from sellakit.llm import load_backbone
    from sellakit.rec import TEMPLATES, PromptBuilder, add_slot_tokens, sample_rows, score_prompts

    split = collm_split(load_movielens_1m())
    backbone = load_backbone(model)
    add_slot_tokens(backbone.tokenizer, backbone.model)
    frame = sample_rows(split.test, rows, seed)
    prompts = PromptBuilder(backbone.tokenizer, TEMPLATES["sella"],
                            history_len=history_len).encode_rows(frame, split.item_titles)
    scorer = random_sella_scorer(backbone.model, backbone.tokenizer, split.n_users,
                                 split.n_items, trainable=False, seed=seed
                                 ).to(backbone.device, backbone.dtype)
    pad = backbone.tokenizer.pad_token_id
    score_prompts(scorer, prompts[:4], frame.iloc[:4], pad_id=pad, batch_size=4)  # warm-up
    timings, scores = {}, {}
    for name, size in (("batched", batch_size), ("one_at_a_time", 1)):
        started = time.perf_counter()
        scores[name] = score_prompts(scorer, prompts, frame, pad_id=pad, batch_size=size)
        timings[name] = time.perf_counter() - started
    return {"model": backbone.name, "device": str(backbone.device),
            "dtype": str(backbone.dtype).removeprefix("torch."), "prompts": rows,
            "batch_size": batch_size, "history_len": history_len,
            "mean_tokens": float(np.mean([len(p.ids) for p in prompts])),
            "batched_prompts_per_s": rows / timings["batched"],
            "one_at_a_time_prompts_per_s": rows / timings["one_at_a_time"],
            "speedup": timings["one_at_a_time"] / timings["batched"],
            "max_abs_score_diff": float(np.abs(scores["batched"] - scores["one_at_a_time"]).max())}


def rec_prefix_benchmark(*, model: str = "smollm2-135m", rows: int = 32, batch_size: int = 8,
                         steps: int = 6, history_lens: tuple[int, ...] = (5, 10),
                         seed: int = 2025) -> dict:
    """Stage-3 step time with the text's key/value cache against the whole prompt, on the same
    ML-1M training rows, same model, same run, the two ways alternating step by step (so a busy
    machine slows both alike); forward and backward into the slot vectors, the LLM frozen. Also
    the largest score difference between the two ways. Per history length (5: the compare
    preset, 10: the paper's)."""
    import torch

    from sellakit.data import collm_split, load_movielens_1m
    from sellakit.llm import load_backbone
    from sellakit.rec import add_slot_tokens, sample_rows

    split = collm_split(load_movielens_1m())
    backbone = load_backbone(model)
    add_slot_tokens(backbone.tokenizer, backbone.model)
    for p in backbone.model.parameters():
        p.requires_grad_(False)
    frame = sample_rows(split.train, rows, seed)
    scorer = random_sella_scorer(backbone.model, backbone.tokenizer, split.n_users,
                                 split.n_items, trainable=True, seed=seed
                                 ).to(backbone.device, backbone.dtype)
    result = {"model": backbone.name, "device": str(backbone.device),
              "dtype": str(backbone.dtype).removeprefix("torch."),
              "threads": torch.get_num_threads(), "rows": rows, "batch_size": batch_size,
              "steps": steps, "per_history": {}}
    for history_len in history_lens:
        result["per_history"][str(history_len)] = _prefix_timings(
            backbone, scorer, split, frame, history_len, batch_size, steps)
    return result


def _prefix_timings(backbone, scorer, split, frame, history_len: int, batch_size: int,
                    steps: int) -> dict:
    """One history length of :func:`rec_prefix_benchmark`."""
    import time

    from sellakit.rec import (TEMPLATES, PrefixCache, PromptBuilder, collate_rows,
                              score_prompts)

    prompts = PromptBuilder(backbone.tokenizer, TEMPLATES["sella"],
                            history_len=history_len).encode_rows(frame, split.item_titles)
    pad, rows = backbone.tokenizer.pad_token_id, len(frame)
    started = time.perf_counter()
    cache = PrefixCache.build(backbone.model, prompts, batch_size=16)
    build = time.perf_counter() - started
    scorer.eval()
    whole = score_prompts(scorer, prompts, frame, pad_id=pad, batch_size=16)
    cached = score_prompts(scorer, prompts, frame, pad_id=pad, batch_size=16, prefix=cache)
    spent = {"whole_prompt": [], "cached_text": []}
    for step in range(steps + 1):  # step 0 warms both ways up and is not counted
        index = np.arange(step * batch_size, (step + 1) * batch_size) % rows
        for name, prefix in (("whole_prompt", None), ("cached_text", cache)):
            batch = collate_rows([prompts[i] for i in index], frame.iloc[index], pad,
                                 backbone.device, prefix=prefix, index=index)
            tick = time.perf_counter()
            scorer(batch).float().sum().backward()
            if step:
                spent[name].append(time.perf_counter() - tick)
    timings = {k: float(np.mean(v)) for k, v in spent.items()}
    return {"mean_text_tokens": float(np.mean([p.prefix_len for p in prompts])),
            "suffix_tokens": len(prompts[0].ids) - prompts[0].prefix_len,
            "step_seconds": timings, "speedup": timings["whole_prompt"] / timings["cached_text"],
            "cache_build_seconds_per_row": build / rows,
            "cache_mb_per_row": cache.nbytes / rows / 1e6,
            "max_abs_score_diff": float(np.abs(whole - cached).max())}


def rec_prefix_markdown(result: dict, *, command: str) -> str:
    """Step time of the two ways, side by side, and their score agreement."""
    lines = [f"Stage-3 step (forward + backward into the slot vectors, LLM frozen), "
             f"{result['model']} on {result['device']} ({result['dtype']}, "
             f"{result['threads']} threads), batches of {result['batch_size']} ML-1M training "
             f"prompts, {result['steps']} steps each way, alternating. Command: `{command}`", ""]
    table = []
    for history, r in result["per_history"].items():
        table.append([history, f"{r['mean_text_tokens']:.0f}", r["suffix_tokens"],
                      f"{r['step_seconds']['whole_prompt']:.3f}",
                      f"{r['step_seconds']['cached_text']:.3f}", f"{r['speedup']:.1f}x",
                      f"{r['cache_build_seconds_per_row']:.3f}",
                      f"{r['cache_mb_per_row']:.1f}", f"{r['max_abs_score_diff']:.1e}"])
    lines += markdown_table(["history titles", "text tokens", "suffix tokens",
                             "s/step, whole prompt", "s/step, cached text", "speed-up",
                             "cache s/row (once)", "cache MB/row", "largest score diff"], table)
    lines += ["", "The cache is built once per row after stage 1 and reused by every epoch, "
              "stage-3 method and scoring pass; the score difference is between the two ways "
              f"on the same {result['rows']} rows."]
    return "\n".join(lines) + "\n"


def rec_scoring_markdown(result: dict, *, command: str) -> str:
    """Prompts per second of the two ways, on the same prompts."""
    lines = [f"SeLLa-Rec scoring throughput, {result['model']} on {result['device']} "
             f"({result['dtype']}), {result['prompts']} ML-1M test prompts of "
             f"{result['mean_tokens']:.0f} tokens on average. Command: `{command}`", ""]
    lines += markdown_table(["scoring", "prompts/s"], [
        [f"length-sorted batches of {result['batch_size']}, right-padded",
         f"{result['batched_prompts_per_s']:.2f}"],
        ["one prompt at a time", f"{result['one_at_a_time_prompts_per_s']:.2f}"]])
    lines += ["", f"Speed-up {result['speedup']:.2f}x; largest score difference between the two "
              f"{result['max_abs_score_diff']:.1e}."]
    return "\n".join(lines) + "\n"
