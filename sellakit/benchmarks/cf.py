"""``sellakit bench cf``: the CF models and the count-rate baselines on a CTR split, CoLLM's
published rows beside them."""

from __future__ import annotations

import time

import pandas as pd

from sellakit.cf import CFConfig, fit_and_evaluate, predict
from sellakit.cf.rates import RATE_BASELINES, rate_record, rate_scores
from sellakit.data.protocol import CTRSplit
from sellakit.benchmarks.report import machine, markdown_table
from sellakit.published import published

__all__ = ["cf_benchmark", "cf_markdown"]


def cf_benchmark(split: CTRSplit, models: list[str], *, preset: str = "paper", seed: int = 2025,
                 progress: bool = True) -> tuple[dict, pd.DataFrame]:
    """The count-rate baselines (:data:`~sellakit.cf.rates.RATE_BASELINES`, settings chosen on
    valid), then each model trained with its ``preset`` config, selected on valid; test scored
    once; each row that is not a simple baseline against the strongest of them on validation.

    Returns ``({name: {"valid", "test", "test_warm", "test_cold", "seconds", "seed", ...},
    "_versus": {"baseline", "rows": {name: {"auc", "uauc", "verdict"}}}}``, per-row scores)``:
    a rate baseline's record also holds its chosen ``settings``; the scores are in
    :func:`sellakit.benchmarks.rec_study.versus_strongest`'s long form (valid and test rows).
    """
    from sellakit.benchmarks.rec import _long_scores
    from sellakit.benchmarks.rec_study import versus_strongest

    started = time.perf_counter()
    fits = rate_scores(split)
    seconds = round(time.perf_counter() - started, 2)
    results = {name: {**rate_record(split, fit, seconds), "preset": "none (counts)"}
               for name, fit in fits.items()}
    scored = {name: dict(fit.scores) for name, fit in fits.items()}
    for model in models:
        config = CFConfig.preset(preset, model=model, seed=seed)
        trained, record = fit_and_evaluate(split, config, progress=progress)
        results[model] = {**record, "preset": preset}
        scored[model] = {part: predict(trained.model, getattr(split, part),
                                       history_len=config.history_len)
                         for part in ("valid", "test")}
    scores = _long_scores({"valid": split.valid, "test": split.test}, scored, seed)
    results["_versus"] = versus_strongest(scores, list(scored))
    results["_run"] = {"machine": machine()}  # the seconds column's machine
    return results, scores


#: What the table says of the two MF rows beside the rate baselines.
_NOTES = {"biased_mf": "MF with global, user and item biases",
          "mf": "CoLLM's MF, no bias (a user unseen in train scores 0.5)"}


def cf_markdown(results: dict, *, command: str, dataset: str) -> str:
    """A markdown table of ``results`` (:func:`cf_benchmark`'s) with CoLLM's published rows
    beside it, the rate baselines' chosen settings, the best row on validation, and each other
    row's paired test-AUC difference from the strongest simple baseline."""
    def cell(value) -> str:
        return "–" if value is None else f"{value:.4f}"

    versus = results.get("_versus") or {"rows": {}}
    models = {name: r for name, r in results.items() if not name.startswith("_")}

    def against(name: str) -> str | None:
        if name not in versus["rows"]:
            return None
        d = versus["rows"][name]["auc"]
        return f"{d['diff']:+.4f} [{d['lo']:+.4f}, {d['hi']:+.4f}]"

    rows = [[model, cell(r["valid"]["auc"]), cell(r["test"]["auc"]), cell(r["test"]["uauc"]),
             cell(r["test_warm"]["auc"]), cell(r["test_warm"]["uauc"]),
             cell(r["test_cold"]["auc"]), cell(r["test_cold"]["uauc"]), against(model),
             r["seconds"], "–" if r["seed"] is None else r["seed"]]
            for model, r in models.items()]
    rows += [[row.label, None, cell(row.metrics["auc"]), cell(row.metrics["uauc"])] + [None] * 7
             for row in published(dataset, kind="cf") if row.method.lower() in models]
    run = results.get("_run") or {}
    lines = [f"CF baselines on {dataset} (test once, epoch and smoothing chosen on validation "
             f"AUC), timed on {run.get('machine', 'a machine not recorded')}. Command: "
             f"`{command}`", ""]
    lines += markdown_table(["model", "valid AUC", "test AUC", "test UAUC", "warm AUC",
                             "warm UAUC", "cold AUC", "cold UAUC",
                             "test AUC − strongest [95%]", "seconds", "seed"], rows)
    rates = [f"`{name}` {RATE_BASELINES[name].help} (item strength "
             f"{r['settings']['item_strength']:g}"
             + (f", user strength {r['settings']['user_strength']:g}, user weight "
                f"{r['settings']['user_weight']:g}" if r["settings"]["user_strength"] else "")
             + ")" for name, r in models.items() if name in RATE_BASELINES]
    rates += [f"`{name}` {note}" for name, note in _NOTES.items() if name in models]
    best = max(models, key=lambda name: models[name]["valid"]["auc"])
    lines += ["", "Count-rate baselines need no training; their settings are chosen on "
              "validation. " + "; ".join(rates) + f". Best on validation: `{best}`."]
    if versus["rows"]:
        verdicts = "; ".join(f"`{name}` {row['verdict']}" for name, row in versus["rows"].items())
        lines += ["", f"Against the strongest simple baseline on validation, "
                  f"`{versus['baseline']}` (paired bootstrap over test rows, 95%): {verdicts}."]
    return "\n".join(lines) + "\n"
