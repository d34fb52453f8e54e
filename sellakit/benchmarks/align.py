"""``sellakit bench align``: plain against aligned MF, and the alignment measures."""

from __future__ import annotations

import pandas as pd

from sellakit.benchmarks.report import markdown_table
from sellakit.data.protocol import CTRSplit

__all__ = ["align_benchmark", "align_markdown"]


def align_benchmark(split: CTRSplit, *, preset: str = "quick", seed: int = 2025,
                    model: str = "smollm2-135m", progress: bool = True
                    ) -> tuple[dict, pd.DataFrame]:
    """Plain vs aligned MF on ``split`` with the LLM's item vectors (see compare_alignment).

    Returns the results (with DeLong's paired test AUC differences under ``_comparisons``) and
    the per-row test scores of each model, written beside the JSON."""
    from sellakit.align import AlignConfig, compare_alignment, state_geometry
    from sellakit.cf import predict
    from sellakit.llm import item_semantic_embeddings, load_backbone
    from sellakit.stats import paired_delong, verdict

    config = AlignConfig.preset(preset, seed=seed)
    backbone = load_backbone(model)
    semantic = item_semantic_embeddings(backbone, split.item_titles, progress=progress)
    plain, aligned, record = compare_alignment(split, semantic, config, progress=progress)
    # The same run toward the raw item states, for the choice of target (the kit keeps the
    # centred one): measures are against each run's own target.
    _, aligned_raw, raw = compare_alignment(split, semantic, AlignConfig.preset(
        preset, seed=seed, center_semantic=False), progress=progress)
    scores = split.test[["uid", "iid", "label"]].reset_index(drop=True).assign(
        plain=predict(plain.model, split.test), aligned=predict(aligned.model, split.test),
        aligned_raw=predict(aligned_raw.model, split.test))
    comparisons = {}
    for a, b in (("aligned", "plain"), ("aligned_raw", "plain"), ("aligned", "aligned_raw")):
        diff = paired_delong(scores.label, scores[a], scores[b])
        comparisons[f"{a} vs {b}"] = {**diff, "verdict": verdict(diff["lo"], diff["hi"])}
    return ({**record, "raw_target": {k: raw[k] for k in ("aligned", "before", "after",
                                                          "best_epoch", "seconds")},
             "space": state_geometry(semantic), "preset": preset, "backbone": backbone.name,
             "_comparisons": comparisons}, scores)


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
    if "raw_target" in result:
        raw = result["raw_target"]
        lines.append(f"| aligned MF, raw target | {raw['aligned']['test']['auc']:.4f} | "
                     f"{raw['aligned']['test']['uauc']:.4f} | "
                     f"{raw['aligned']['test_warm']['auc']:.4f} | "
                     f"{raw['aligned']['test_cold']['auc']:.4f} | "
                     f"{raw['best_epoch']['aligned']} |")
    lines.append("")

    def cell(value) -> str:
        return "" if value is None else f"{value:.4f}"

    raw = result.get("raw_target", {})
    lines += markdown_table(
        ["measure (train items vs LLM space)", "before (init)", "after", "plain MF",
         "after, raw target"],
        [[m, cell(result["before"][m]), cell(result["after"][m]),
          cell(result["plain_space"].get(m)), cell(raw.get("after", {}).get(m))]
         for m in result["before"]])
    if "space" in result:
        space = result["space"]
        lines += ["", "The target: item states centred (mean item state subtracted) against raw. "
                  f"Raw: median norm {space['raw']['median_norm']:.1f}, mean pairwise cosine "
                  f"{space['raw']['mean_pairwise_cosine']:.3f}; centred: median norm "
                  f"{space['centred']['median_norm']:.1f}, mean pairwise cosine "
                  f"{space['centred']['mean_pairwise_cosine']:.3f}. Measures are against each "
                  "run's own target; the kit aligns to the centred states (AlignConfig."
                  "center_semantic)."]
    if "_comparisons" in result:
        lines += ["", "Test AUC differences on the same rows (DeLong's paired test, 95% interval; "
                  "per-row scores beside the JSON):", ""]
        lines += [f"- {name}: {c['diff']:+.4f} [{c['lo']:+.4f}, {c['hi']:+.4f}], {c['verdict']}"
                  for name, c in result["_comparisons"].items()]
    return "\n".join(lines) + "\n"
