"""``sellakit bench align``: plain against aligned MF, and the alignment measures."""

from __future__ import annotations

from sellakit.benchmarks.report import markdown_table
from sellakit.data.protocol import CTRSplit

__all__ = ["align_benchmark", "align_markdown"]


def align_benchmark(split: CTRSplit, *, preset: str = "quick", seed: int = 2025,
                    model: str = "smollm2-135m", progress: bool = True) -> dict:
    """Plain vs aligned MF on ``split`` with the LLM's item vectors (see compare_alignment)."""
    from sellakit.align import AlignConfig, compare_alignment
    from sellakit.llm import item_semantic_embeddings, load_backbone

    config = AlignConfig.preset(preset, seed=seed)
    backbone = load_backbone(model)
    semantic = item_semantic_embeddings(backbone, split.item_titles, progress=progress)
    _, _, record = compare_alignment(split, semantic, config, progress=progress)
    return {**record, "preset": preset, "backbone": backbone.name}


def align_markdown(result: dict, *, command: str) -> str:
    """Plain vs aligned MF (test AUC/UAUC) and the alignment measures before/after."""
    lines = [f"Alignment on {result['dataset']} ({result['backbone']}, preset {result['preset']}, "
             f"seed {result['seed']}, {result['seconds']} s). Command: `{command}`", ""]
    lines += markdown_table(
        ["model", "test AUC", "test UAUC", "warm AUC", "cold AUC", "epoch kept"],
        [[f"{name} MF", f"{r['test']['auc']:.4f}", f"{r['test']['uauc']:.4f}",
          f"{r['test_warm']['auc']:.4f}", f"{r['test_cold']['auc']:.4f}",
          result["best_epoch"][name]]
         for name, r in ((n, result[n]) for n in ("plain", "aligned"))])
    lines.append("")

    def cell(value) -> str:
        return "" if value is None else f"{value:.4f}"

    lines += markdown_table(
        ["measure (train items vs LLM space)", "before (init)", "after", "plain MF"],
        [[m, cell(result["before"][m]), cell(result["after"][m]),
          cell(result["plain_space"].get(m))] for m in result["before"]])
    return "\n".join(lines) + "\n"
