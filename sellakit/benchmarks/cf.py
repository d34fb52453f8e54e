"""``sellakit bench cf``: the CF baselines on a CTR split, CoLLM's published rows beside them."""

from __future__ import annotations

from sellakit.cf import CFConfig, fit_and_evaluate
from sellakit.data.protocol import CTRSplit
from sellakit.benchmarks.report import markdown_table
from sellakit.published import published

__all__ = ["cf_benchmark", "cf_markdown"]


def cf_benchmark(split: CTRSplit, models: list[str], *, preset: str = "paper", seed: int = 2025,
                 progress: bool = True) -> dict:
    """Train each model with its ``preset`` config, select on valid, score test once.

    Returns ``{model: {"valid", "test", "test_warm", "test_cold", "seconds", "seed", ...}}``.
    """
    configs = {model: CFConfig.preset(preset, model=model, seed=seed) for model in models}
    results = {}
    for model, config in configs.items():
        _, record = fit_and_evaluate(split, config, progress=progress)
        results[model] = {**record, "preset": preset}
    return results


def cf_markdown(results: dict, *, command: str, dataset: str) -> str:
    """A markdown table of ``results`` with CoLLM's published rows beside it."""
    def cell(value) -> str:
        return "–" if value is None else f"{value:.4f}"

    rows = [[model, cell(r["valid"]["auc"]), cell(r["test"]["auc"]), cell(r["test"]["uauc"]),
             cell(r["test_warm"]["auc"]), cell(r["test_warm"]["uauc"]),
             cell(r["test_cold"]["auc"]), cell(r["test_cold"]["uauc"]), r["seconds"], r["seed"]]
            for model, r in results.items()]
    rows += [[row.label, None, cell(row.metrics["auc"]), cell(row.metrics["uauc"])] + [None] * 6
             for row in published(dataset, kind="cf") if row.method.lower() in results]
    lines = [f"CF baselines on {dataset} (test once, epoch chosen on validation AUC). "
             f"Command: `{command}`", ""]
    lines += markdown_table(["model", "valid AUC", "test AUC", "test UAUC", "warm AUC",
                             "warm UAUC", "cold AUC", "cold UAUC", "seconds", "seed"], rows)
    return "\n".join(lines) + "\n"
