"""Benchmarks behind the README's tables: JSON results plus a markdown table with the command.

Published numbers stand beside ours, labelled as published with their source and backbone.
"""

from __future__ import annotations

from sellakit.cf import CFConfig, fit_and_evaluate
from sellakit.data.protocol import CTRSplit

__all__ = ["cf_benchmark", "cf_markdown", "PUBLISHED_CF"]

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
