"""Benchmarks behind the README's tables: JSON results plus a markdown table with the command.

Published numbers stand beside ours, labelled as published with their source and backbone.
"""

from __future__ import annotations

from sellakit.cf import CFConfig, fit_and_evaluate
from sellakit.data.protocol import CTRSplit

__all__ = ["cf_benchmark", "cf_markdown", "PUBLISHED_CF", "align_benchmark", "align_markdown",
           "rec_benchmark", "rec_markdown", "PUBLISHED_REC", "rec_scoring_benchmark",
           "rec_scoring_markdown"]

#: CoLLM (Zhang et al., TKDE; arXiv 2310.19488), Table II, ML-1M test: (AUC, UAUC). Published.
PUBLISHED_CF = {
    "ml-1m": {"mf": (0.6482, 0.6361), "lightgcn": (0.5959, 0.6499), "sasrec": (0.7078, 0.6884)},
    "amazon_book": {"mf": (0.7134, 0.5565), "lightgcn": (0.7103, 0.5639),
                    "sasrec": (0.6887, 0.5714)},
}


def cf_benchmark(split: CTRSplit, models: list[str], *, preset: str = "paper", seed: int = 2025,
                 progress: bool = True) -> dict:
    """Train each model with its ``preset`` config, select on valid, score test once.

    Returns ``{model: {"valid", "test", "test_warm", "test_cold", "seconds", "seed", ...}}``.
    """
    if preset not in {"quick", "paper"}:
        raise ValueError(f"preset {preset!r}: use 'quick' or 'paper'.")
    results = {}
    for model in models:
        config = getattr(CFConfig, preset)(model, seed=seed)
        _, record = fit_and_evaluate(split, config, progress=progress)
        results[model] = {**record, "preset": preset}
    return results


def cf_markdown(results: dict, *, command: str, dataset: str) -> str:
    """A markdown table of ``results`` with CoLLM's published rows beside it."""
    def cell(value) -> str:
        return "–" if value is None else f"{value:.4f}"

    lines = [f"CF baselines on {dataset} (test once, epoch chosen on validation AUC). "
             f"Command: `{command}`", "",
             "| model | valid AUC | test AUC | test UAUC | warm AUC | warm UAUC | cold AUC | "
             "cold UAUC | seconds | seed |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for model, r in results.items():
        lines.append(
            f"| {model} | {cell(r['valid']['auc'])} | {cell(r['test']['auc'])} | "
            f"{cell(r['test']['uauc'])} | {cell(r['test_warm']['auc'])} | "
            f"{cell(r['test_warm']['uauc'])} | {cell(r['test_cold']['auc'])} | "
            f"{cell(r['test_cold']['uauc'])} | {r['seconds']} | {r['seed']} |")
    published = PUBLISHED_CF.get(dataset, {})
    for model in results:
        if model in published:
            auc, uauc = published[model]
            lines.append(f"| {model} — published, CoLLM Table II | | {auc:.4f} | {uauc:.4f} "
                         "| | | | | | |")
    return "\n".join(lines) + "\n"


def align_benchmark(split: CTRSplit, *, preset: str = "quick", seed: int = 2025,
                    model: str = "smollm2-135m", progress: bool = True) -> dict:
    """Plain vs aligned MF on ``split`` with the LLM's item vectors (see compare_alignment)."""
    from sellakit.align import AlignConfig, compare_alignment
    from sellakit.llm import item_semantic_embeddings, load_backbone

    backbone = load_backbone(model)
    semantic = item_semantic_embeddings(backbone, split.item_titles, progress=progress)
    config = getattr(AlignConfig, preset)(seed=seed)
    _, _, record = compare_alignment(split, semantic, config, progress=progress)
    return {**record, "preset": preset, "backbone": backbone.name}


def align_markdown(result: dict, *, command: str) -> str:
    """Plain vs aligned MF (test AUC/UAUC) and the alignment measures before/after."""
    lines = [f"Alignment on {result['dataset']} ({result['backbone']}, preset {result['preset']}, "
             f"seed {result['seed']}, {result['seconds']} s). Command: `{command}`", "",
             "| model | test AUC | test UAUC | warm AUC | cold AUC | epoch kept |",
             "|---|---:|---:|---:|---:|---:|"]
    for name in ("plain", "aligned"):
        r = result[name]
        lines.append(f"| {name} MF | {r['test']['auc']:.4f} | {r['test']['uauc']:.4f} | "
                     f"{r['test_warm']['auc']:.4f} | {r['test_cold']['auc']:.4f} | "
                     f"{result['best_epoch'][name]} |")
    measures = list(result["before"])
    lines += ["", "| measure (train items vs LLM space) | before (init) | after | plain MF |",
              "|---|---:|---:|---:|"]
    for m in measures:
        plain = result["plain_space"].get(m)
        lines.append(f"| {m} | {result['before'][m]:.4f} | {result['after'][m]:.4f} | "
                     f"{'' if plain is None else f'{plain:.4f}'} |")
    return "\n".join(lines) + "\n"


#: Published ML-1M test (AUC, UAUC) of the LLM recommenders, all on Vicuna-7B. Published.
PUBLISHED_REC = {
    "MF — published, CoLLM Table II": (0.6482, 0.6361),
    "TALLRec — published, CoLLM Table II (Vicuna-7B)": (0.7097, 0.6818),
    "CoLLM-MF — published, CoLLM Table II (Vicuna-7B)": (0.7295, 0.6875),
    "BinLLM — published, BinLLM Table 2 (Vicuna-7B)": (0.7425, 0.6956),
}


def rec_benchmark(split: CTRSplit, methods: list[str], *, preset: str = "quick",
                  seed: int = 2025, model: str = "smollm2-135m", aligned: str | None = None,
                  progress: bool = True) -> dict:
    """MF, TALLRec-style, CoLLM-style and SeLLa-Rec (and ablations) on ``split``.

    Returns ``{method: {"test": {"auc", "uauc", "rows"}, "test_warm", "test_cold", "valid",
    "seconds", "backbone", "seed", ...}}`` plus ``"_run"`` (preset, rows, stage-2 seconds).
    With ``accelerate launch``, every process runs this and the main one writes the file.
    """
    import time

    from sellakit.llm import load_backbone
    from sellakit.rec import RecConfig, make_accelerator, prepare_stage2, run_methods

    if preset not in {"quick", "paper"}:
        raise ValueError(f"preset {preset!r}: use 'quick' or 'paper'.")
    config = getattr(RecConfig, preset)(seed=seed)
    accelerator = make_accelerator(config)
    started = time.perf_counter()
    backbone = load_backbone(model, device=accelerator.device)
    plain, semantic, tables = prepare_stage2(split, backbone, preset=preset, seed=seed,
                                             aligned=aligned, progress=progress)
    stage2 = time.perf_counter() - started
    run = run_methods(split, methods, config, plain_mf=plain, aligned=tables, semantic=semantic,
                      backbone=backbone, accelerator=accelerator, progress=progress)
    results = {m: run.results[m] for m in methods}
    results["_run"] = {"preset": preset, "dataset": split.name, "backbone": backbone.name,
                       "device": str(accelerator.device), "processes": accelerator.num_processes,
                       "rows": {s: len(f) for s, f in run.rows.items()},
                       "stage1_seconds": round(run.training["tallrec"].seconds, 1)
                       if "tallrec" in run.training else None,
                       "stage2_seconds": round(stage2, 1), "config": vars(config)}
    return results


def rec_markdown(results: dict, *, command: str) -> str:
    """Our rows (AUC/UAUC on all, warm and cold test rows) and the published ones."""
    meta = results["_run"]
    rows = meta["rows"]
    lines = [f"LLM recommenders on {meta['dataset']}, preset {meta['preset']} "
             f"({rows['train']:,} train / {rows['valid']:,} valid / {rows['test']:,} test rows), "
             f"backbone {meta['backbone']}, {meta['device']} x{meta['processes']}. "
             f"Command: `{command}`", "",
             "| method | valid AUC | test AUC | test UAUC | warm AUC | warm UAUC | cold AUC | "
             "cold UAUC | seconds | seed |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        if name.startswith("_"):
            continue
        cells = [r["valid"]["auc"], r["test"]["auc"], r["test"]["uauc"], r["test_warm"]["auc"],
                 r["test_warm"]["uauc"], r["test_cold"]["auc"], r["test_cold"]["uauc"]]
        lines.append(f"| {name} | " + " | ".join(f"{c:.4f}" for c in cells)
                     + f" | {r['seconds']} | {r['seed']} |")
    for name, (auc, uauc) in PUBLISHED_REC.items():
        lines.append(f"| {name} | | {auc:.4f} | {uauc:.4f} | | | | | | |")
    lines += ["", f"Stage 1 (LoRA, text prompts) {meta['stage1_seconds']} s, shared by every "
              f"LLM method; stage 2 (plain + aligned MF, item vectors) {meta['stage2_seconds']} s. "
              "Seconds per method: its own training and validation."]
    return "\n".join(lines) + "\n"


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


def rec_scoring_markdown(result: dict, *, command: str) -> str:
    return (f"SeLLa-Rec scoring throughput, {result['model']} on {result['device']} "
            f"({result['dtype']}), {result['prompts']} ML-1M test prompts of "
            f"{result['mean_tokens']:.0f} tokens on average. Command: `{command}`\n\n"
            "| scoring | prompts/s |\n|---|---:|\n"
            f"| length-sorted batches of {result['batch_size']}, right-padded | "
            f"{result['batched_prompts_per_s']:.2f} |\n"
            f"| one prompt at a time | {result['one_at_a_time_prompts_per_s']:.2f} |\n\n"
            f"Speed-up {result['speedup']:.2f}x; largest score difference between the two "
            f"{result['max_abs_score_diff']:.1e}.\n")
