"""``sellakit bench cf``: the CF models and the count-rate baselines on a CTR split, CoLLM's
published rows beside them."""

from __future__ import annotations

from sellakit.cf import CFConfig, fit_and_evaluate
from sellakit.cf.rates import RATE_BASELINES, evaluate_rates
from sellakit.data.protocol import CTRSplit
from sellakit.benchmarks.report import markdown_table
from sellakit.published import published

__all__ = ["cf_benchmark", "cf_markdown"]


def cf_benchmark(split: CTRSplit, models: list[str], *, preset: str = "paper", seed: int = 2025,
                 progress: bool = True) -> dict:
    """The count-rate baselines (:data:`~sellakit.cf.rates.RATE_BASELINES`, settings chosen on
    valid), then each model trained with its ``preset`` config, selected on valid; test scored
    once.

    Returns ``{name: {"valid", "test", "test_warm", "test_cold", "seconds", "seed", ...}}``;
    a rate baseline's record also holds its chosen ``settings``.
    """
    results = {name: {**record, "preset": "none (counts)"}
               for name, record in evaluate_rates(split).items()}
    configs = {model: CFConfig.preset(preset, model=model, seed=seed) for model in models}
    for model, config in configs.items():
        _, record = fit_and_evaluate(split, config, progress=progress)
        results[model] = {**record, "preset": preset}
    return results


#: What the table says of the two MF rows beside the rate baselines.
_NOTES = {"biased_mf": "MF with global, user and item biases",
          "mf": "CoLLM's MF, no bias (a user unseen in train scores 0.5)"}


def cf_markdown(results: dict, *, command: str, dataset: str) -> str:
    """A markdown table of ``results`` with CoLLM's published rows beside it, the rate
    baselines' chosen settings, and the best row on validation."""
    def cell(value) -> str:
        return "–" if value is None else f"{value:.4f}"

    rows = [[model, cell(r["valid"]["auc"]), cell(r["test"]["auc"]), cell(r["test"]["uauc"]),
             cell(r["test_warm"]["auc"]), cell(r["test_warm"]["uauc"]),
             cell(r["test_cold"]["auc"]), cell(r["test_cold"]["uauc"]), r["seconds"],
             "–" if r["seed"] is None else r["seed"]]
            for model, r in results.items()]
    rows += [[row.label, None, cell(row.metrics["auc"]), cell(row.metrics["uauc"])] + [None] * 6
             for row in published(dataset, kind="cf") if row.method.lower() in results]
    lines = [f"CF baselines on {dataset} (test once, epoch and smoothing chosen on validation "
             f"AUC). Command: `{command}`", ""]
    lines += markdown_table(["model", "valid AUC", "test AUC", "test UAUC", "warm AUC",
                             "warm UAUC", "cold AUC", "cold UAUC", "seconds", "seed"], rows)
    rates = [f"`{name}` {RATE_BASELINES[name].help} (item strength "
             f"{r['settings']['item_strength']:g}"
             + (f", user strength {r['settings']['user_strength']:g}, user weight "
                f"{r['settings']['user_weight']:g}" if r["settings"]["user_strength"] else "")
             + ")" for name, r in results.items() if name in RATE_BASELINES]
    rates += [f"`{name}` {note}" for name, note in _NOTES.items() if name in results]
    best = max(results, key=lambda name: results[name]["valid"]["auc"])
    lines += ["", "Count-rate baselines need no training; their settings are chosen on "
              "validation. " + "; ".join(rates) + f". Best on validation: `{best}`."]
    return "\n".join(lines) + "\n"
