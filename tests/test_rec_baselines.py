"""The simple baselines in every rec table: rows of the benchmark's per-row scores, the strongest
on validation named in each verdict and in the sanity gate (planted and GENERATED data)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from sellakit.benchmarks import rec
from sellakit.metrics import auc


def _generated(noise: dict[str, float], seed: int) -> tuple[pd.DataFrame, dict]:
    """GENERATED test and validation scores (score = label + noise of the method's sd)."""
    from conftest import generated_rec_scores

    test, per_seed = generated_rec_scores(noise, seed=seed)
    valid, _ = generated_rec_scores(noise, seed=seed + 1)
    return pd.concat([test, valid.assign(split="valid")], ignore_index=True), per_seed


def test_the_strongest_baseline_on_validation_stands_in_every_verdict():
    # item_user_rate is the best simple baseline; sella beats mf but not it.
    noise = {"item_rate": 1.3, "item_user_rate": 0.7, "biased_mf": 1.1, "mf": 2.0,
             "tallrec": 3.0, "sella": 1.0}
    scores, per_seed = _generated(noise, seed=3)
    methods = list(noise)
    assert rec.strongest_baseline(scores, methods) == "item_user_rate"
    results = rec.summarise(scores, per_seed, methods)
    comparisons = results["_comparisons"]
    assert comparisons["sella vs mf"]["verdict"] == "better"
    assert comparisons["sella vs item_user_rate"]["verdict"] == "worse"
    assert comparisons["sella vs mf"]["strongest"] == "item_user_rate"
    assert comparisons["sella vs mf"]["verdict_vs_strongest"] == "worse"
    assert "strongest" not in comparisons["item_rate vs item_user_rate"]  # not an LLM method
    assert "item_user_rate vs mf" not in comparisons  # the strongest is compared first
    assert results["_sanity"]["baseline"] == "item_user_rate"
    assert "sella" in results["_sanity"]["below_baseline"]
    n = scores.row.max() + 1
    results["_run"] = {"preset": "generated", "dataset": "generated", "seeds": [1, 2],
                       "seconds": {1: {"total": 1, "stage1": 1, "stage2": 1,
                                       "prefix_cache_gb": 0}},
                       "backbone": "none", "device": "cpu", "processes": 1,
                       "rows": {"train": 0, "valid": n, "test": n}}
    table = rec.rec_markdown(results, command="generated")
    assert "| sella vs mf | " in table and "better; vs strongest (item_user_rate): worse" in table
    assert "Strongest simple baseline on validation: `item_user_rate`" in table
    # the choice reads validation rows only: make biased_mf the best on them
    swapped = scores.copy()
    valid = swapped.split == "valid"
    swapped.loc[valid & (swapped.method == "biased_mf"), "score"] = \
        swapped.loc[valid & (swapped.method == "biased_mf"), "label"]
    assert rec.strongest_baseline(swapped, methods) == "biased_mf"
    with pytest.raises(Exception, match="no validation rows"):
        rec.strongest_baseline(scores[scores.split == "test"], methods)


def test_rec_benchmark_scores_the_baselines_on_the_methods_rows(small_split, monkeypatch):
    """The real rec_benchmark around a stand-in for the LLM methods (GENERATED scores for
    `mf`): the count rates and the biased MF are scored on the same sampled rows, with every
    column of the methods' per-row scores, one set per seed."""
    import sellakit.llm
    from sellakit.rec.methods import method_results, sample_splits

    def one_seed(split, methods, config, *args):
        rows = sample_splits(split, config)
        rng = np.random.default_rng(config.seed)
        scores = {s: f.label.to_numpy() + rng.normal(0, 2, len(f))
                  for s, f in rows.items() if s != "train"}
        return SimpleNamespace(
            rows=rows, scores={"mf": scores}, backbone=SimpleNamespace(name="generated"),
            results={"mf": method_results(rows, scores, seconds=0.0, backbone="generated",
                                           seed=config.seed)},
            training={}, seconds={}, prefixes={})

    from sellakit.cf import CFConfig

    quick = CFConfig.quick  # a short budget: what is checked is where the scores go
    monkeypatch.setattr(CFConfig, "quick", lambda model="mf", **overrides: quick(
        model, **{"max_epochs": 15, "patience": 5, "dim": 16, "lr": 1e-2, **overrides}))
    monkeypatch.setattr(rec, "_one_seed", one_seed)
    monkeypatch.setattr(sellakit.llm, "load_backbone", lambda *a, **k: None)
    # compare: rows sampled once for every seed (sample_seed), CF in the quick preset
    results, scores = rec.rec_benchmark(small_split, ["mf"], preset="compare", seeds=2,
                                        progress=False)
    methods = ["item_rate", "item_user_rate", "biased_mf", "mf"]
    assert [m for m in results if not m.startswith("_")] == methods
    assert set(scores.method) == set(methods)
    assert list(scores.columns) == ["split", "row", "uid", "iid", "label", "not_cold",
                                    "method", "seed", "score"]
    per = scores.groupby(["method", "seed", "split"]).size().unstack(["method"])
    assert (per.nunique(axis=1) == 1).all()  # every method scored on the same rows
    # the rates read training labels only, so both seeds score them alike; MF with biases
    # trains once per seed
    rates = scores[scores.method == "item_rate"].pivot(index=["split", "row"], columns="seed",
                                                       values="score")
    np.testing.assert_array_equal(rates[2025], rates[2026])
    biased = scores[scores.method == "biased_mf"].pivot(index=["split", "row"],
                                                          columns="seed", values="score")
    assert results["biased_mf"]["seed"] == [2025, 2026]
    assert not np.array_equal(biased[2025], biased[2026])
    for name in methods:  # every record comes back from its per-row scores
        rows = scores[(scores.method == name) & (scores.split == "test")]
        again = np.mean([auc(g.label, g.score) for _, g in rows.groupby("seed")])
        assert results[name]["test"]["auc"] == pytest.approx(again)
    strongest = results["_sanity"]["baseline"]
    assert strongest == rec.strongest_baseline(scores, methods)
    assert {f"{m} vs {strongest}" for m in methods if m != strongest} <= \
        set(results["_comparisons"])
