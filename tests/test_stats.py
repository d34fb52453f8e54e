"""Intervals and paired tests (sellakit.stats) on generated scores: a method against itself,
DeLong against the bootstrap, coverage of a known difference, and UAUC's user bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from sellakit.metrics import auc, uauc
from sellakit.errors import DataError
from sellakit.stats import auc_interval, paired_bootstrap, paired_delong


def _scores(n=1200, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    users = rng.integers(0, 120, n)
    strong = labels + rng.normal(0, 1.2, n)
    weak = labels + rng.normal(0, 2.5, n)
    return labels, users, strong, weak


def test_a_method_against_itself_differs_by_zero_with_p_one():
    labels, users, strong, _ = _scores()
    for result in (paired_delong(labels, strong, strong),
                   paired_bootstrap(labels, strong, strong),
                   paired_bootstrap(labels, strong, strong, users=users, metric="uauc")):
        assert result["diff"] == 0 and result["p"] == 1.0
        assert result["lo"] == 0 and result["hi"] == 0


def test_delong_and_bootstrap_agree_and_see_a_real_difference():
    labels, users, strong, weak = _scores()
    delong = paired_delong(labels, strong, weak)
    boot = paired_bootstrap(labels, strong, weak, draws=1000)
    assert delong["diff"] == pytest.approx(auc(labels, strong) - auc(labels, weak))
    assert boot["diff"] == pytest.approx(delong["diff"])
    assert delong["lo"] > 0 and boot["lo"] > 0 and delong["p"] < 1e-3
    # The two interval widths agree within 25%.
    assert (boot["hi"] - boot["lo"]) == pytest.approx(delong["hi"] - delong["lo"], rel=0.25)
    one = auc_interval(labels, strong)
    assert one["lo"] < auc(labels, strong) < one["hi"]


def test_delong_interval_covers_the_truth_about_95_percent_of_the_time():
    """Two methods with equal skill: the interval should cover 0 in ~95% of draws."""
    covered = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        labels = rng.integers(0, 2, 300)
        a = labels + rng.normal(0, 1.5, 300)
        b = labels + rng.normal(0, 1.5, 300)
        result = paired_delong(labels, a, b)
        covered += result["lo"] <= 0 <= result["hi"]
    assert 0.90 <= covered / 200 <= 0.99


def test_uauc_bootstrap_resamples_users_and_pools_seeds():
    labels, users, strong, weak = _scores()
    result = paired_bootstrap(labels, strong, weak, users=users, metric="uauc", draws=500)
    assert result["diff"] == pytest.approx(uauc(users, labels, strong) - uauc(users, labels, weak))
    assert result["lo"] < result["diff"] < result["hi"]
    # Two seeds each: the difference is the mean over seeds.
    _, _, strong2, weak2 = _scores(seed=1)
    pooled = paired_bootstrap(labels, np.stack([strong, strong + 0.1 * weak]),
                              np.stack([weak, weak]), draws=300)
    expected = np.mean([auc(labels, strong) - auc(labels, weak),
                        auc(labels, strong + 0.1 * weak) - auc(labels, weak)])
    assert pooled["diff"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="users"):
        paired_bootstrap(labels, strong, weak, metric="uauc")


def test_rec_summary_compares_on_the_same_rows_and_gates_on_warm_rows():
    """The rec benchmark's summary, from per-row scores in long form: seed means, a method
    against itself is never 'better', a strong method beats a weak one, and a token method
    below MF on warm rows is flagged."""
    import pandas as pd
    from conftest import generated_rec_scores

    from sellakit.benchmarks.rec import compare_methods, rec_markdown, summarise

    noise = {"mf": 1.0, "tallrec": 3.0, "collm": 1.0, "sella": 0.8, "sella_no_warm": 6.0}
    # 300 rows (half the default, half the bootstraps' cost): every verdict below still holds
    # with a margin (sella vs tallrec: interval from +0.15; sella_no_warm vs mf: up to -0.15).
    scores, per_seed = generated_rec_scores(noise, n=300)
    n = scores.row.max() + 1
    methods = list(noise)
    results = summarise(scores, per_seed, methods)
    assert results["sella"]["test"]["auc"] == pytest.approx(
        np.mean([per_seed[s]["sella"]["test"]["auc"] for s in (1, 2)]))
    comparisons = results["_comparisons"]
    assert comparisons["sella vs tallrec"]["verdict"] == "better"
    assert comparisons["sella_no_warm vs mf"]["verdict"] == "worse"
    assert "mf vs tallrec" not in comparisons and "tallrec vs mf" in comparisons
    assert len(comparisons["sella vs mf"]["delong"]) == 2
    assert results["_sanity"]["baseline"] == "mf"  # the one simple baseline present
    assert results["_sanity"]["below_baseline"] == ["sella_no_warm"]
    lo, hi = results["sella"]["interval"]["auc"]["lo"], results["sella"]["interval"]["auc"]["hi"]
    assert lo < results["sella"]["test"]["auc"] < hi
    copy = scores[scores.method == "mf"].assign(method="copy")
    same = compare_methods(pd.concat([scores, copy]), ["mf", "copy"])
    assert same["copy vs mf"]["auc"]["diff"] == 0 and same["copy vs mf"]["auc"]["p"] == 1.0
    results["_run"] = {"preset": "generated", "dataset": "generated", "seeds": [1, 2],
                       "seconds": {1: {"total": 1, "stage1": 1, "stage2": 1,
                                       "prefix_cache_gb": 0}},
                       "backbone": "none", "device": "cpu", "processes": 1,
                       "rows": {"train": 0, "valid": n, "test": n}}
    table = rec_markdown(results, command="generated")
    assert "within noise" in table or "better" in table
    assert "token methods below it: sella_no_warm" in table


def test_bootstrap_of_per_query_means():
    """MRR-style comparisons: per-query values, seeds averaged per query (counts may differ)."""
    rng = np.random.default_rng(0)
    rr = 1.0 / rng.integers(1, 50, size=(3, 400))
    same = paired_bootstrap(None, rr, rr, metric="mean")
    assert same["diff"] == 0 and same["p"] == 1.0
    better = paired_bootstrap(None, rr + 0.05, rr[:1], metric="mean")
    assert better["lo"] > 0 and abs(better["diff"] - (rr.mean(0) + 0.05 - rr[0]).mean()) < 1e-12
    alone = paired_bootstrap(None, rr, None, metric="mean")
    assert alone["lo"] < rr.mean() < alone["hi"]
    with pytest.raises(DataError, match="same rows"):
        paired_bootstrap(None, rr, rr[:, :10], metric="mean")


def test_two_level_bootstrap_carries_the_spread_between_seeds():
    """Seeds resampled, then queries: a seed-to-seed shift widens the interval that the query
    bootstrap alone leaves narrow; a real difference stays clear; one seed each is the query
    bootstrap."""
    from sellakit.stats import seed_query_bootstrap

    rng = np.random.default_rng(1)
    rr = 1.0 / rng.integers(1, 50, size=(1, 500))
    same = seed_query_bootstrap(np.repeat(rr, 3, 0), np.repeat(rr, 3, 0))
    assert same["diff"] == 0 and same["p"] == 1.0 and same["seeds_a"] == 3
    shifted = rr + np.array([[-0.04], [0.0], [0.04]])  # training noise: whole seeds move
    two = seed_query_bootstrap(shifted, rr)
    one = paired_bootstrap(None, shifted, rr, metric="mean")
    assert (two["hi"] - two["lo"]) > 2 * (one["hi"] - one["lo"])
    assert two["lo"] < 0 < two["hi"] and one["lo"] > -0.01
    clear = seed_query_bootstrap(shifted + 0.1, rr)
    assert clear["lo"] > 0 and abs(clear["diff"] - 0.1) < 1e-12
    other = rr + rng.normal(0, 0.05, rr.shape)
    single, query = seed_query_bootstrap(rr, other), paired_bootstrap(None, rr, other,
                                                                      metric="mean")
    width = query["hi"] - query["lo"]
    assert single["seeds_a"] == single["seeds_b"] == 1 and abs(single["diff"] - query["diff"]) \
        < 1e-12 and abs((single["hi"] - single["lo"]) - width) < 0.15 * width
    with pytest.raises(DataError, match="same queries"):
        seed_query_bootstrap(rr, rr[:, :10])


def test_one_verdict_rule():
    """A claim only where the paired interval excludes 0; an interval touching 0 is noise."""
    from sellakit.stats import verdict

    assert verdict(0.001, 0.02) == "better" and verdict(-0.02, -0.001) == "worse"
    assert {verdict(0.0, 0.02), verdict(-0.02, 0.0), verdict(-0.01, 0.01)} == {"within noise"}


def test_the_verdict_words_are_written_once():
    """Benchmarks and notebooks call :func:`sellakit.stats.verdict`; no other module spells
    its words as string constants (a second copy of the rule would)."""
    import ast
    from pathlib import Path

    from sellakit.stats import VERDICTS

    root = Path(__file__).resolve().parents[1]
    files = [p for p in (root / "sellakit").rglob("*.py") if p.name != "stats.py"]
    offenders = [f"{path.relative_to(root)}:{node.lineno}"
                 for path in files + sorted((root / "notebooks").glob("*.py"))
                 for node in ast.walk(ast.parse(path.read_text()))
                 if isinstance(node, ast.Constant) and node.value in VERDICTS]
    assert not offenders, offenders
