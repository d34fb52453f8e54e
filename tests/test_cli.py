"""The command line, called as a user would."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd

from sellakit.cli import main


def test_data_export_collm(tmp_path, ml1m_split):
    assert main(["data", "export", "ml-1m", "--format", "collm", str(tmp_path)]) == 0
    assert len(pd.read_pickle(tmp_path / "valid_ood2.pkl")) == 10_401


def test_bench_cf_writes_json_and_markdown(tmp_path, ml1m_split):
    out = tmp_path / "cf.json"
    assert main(["bench", "cf", "--dataset", "ml-1m", "--models", "lightgcn", "--preset",
                 "quick", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    record = results["lightgcn"]
    assert set(record) >= {"valid", "test", "test_warm", "test_cold", "seconds", "seed"}
    assert set(record["test"]) >= {"auc", "uauc"}
    table = out.with_suffix(".md").read_text()
    assert "published, CoLLM Table II" in table and "Command: `" in table


def test_bench_rec_writes_per_row_scores_beside_the_json(tmp_path, monkeypatch, ml1m_split):
    """The rec target writes JSON, markdown and the per-row scores (parquet) every interval in
    them comes from; the benchmark itself is replaced by GENERATED scores (it takes minutes)."""
    from conftest import generated_rec_scores

    from sellakit.benchmarks import rec

    def generated(split, methods, **kwargs):
        scores, per_seed = generated_rec_scores({m: 1.0 + i for i, m in enumerate(methods)})
        for record in per_seed.values():
            record["_seconds"] = {"total": 1, "stage1": 1, "stage2": 1, "prefix_cache_gb": 0}
        results = rec.summarise(scores, per_seed, methods)
        results["_run"] = {"preset": kwargs["preset"], "dataset": split.name,
                           "seeds": sorted(per_seed), "backbone": "generated", "device": "cpu",
                           "processes": 1, "rows": {"train": 0, "valid": 600, "test": 600},
                           "seconds": {s: r["_seconds"] for s, r in per_seed.items()}}
        return results, scores

    monkeypatch.setattr(rec, "rec_benchmark", generated)
    out = tmp_path / "rec.json"
    assert main(["bench", "rec", "--preset", "compare", "--methods", "mf,sella", "--seeds", "2",
                 "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    scores = pd.read_parquet(tmp_path / "rec.scores.parquet")
    assert results["_run"]["scores_file"] == "rec.scores.parquet"
    assert set(scores.columns) >= {"split", "row", "uid", "iid", "label", "method", "seed",
                                   "score"}
    assert sorted(scores.seed.unique()) == results["_run"]["seeds"]
    assert "sella vs mf" in results["_comparisons"]
    assert "sella vs mf" in out.with_suffix(".md").read_text()


def test_module_entry_point_help():
    proc = subprocess.run([sys.executable, "-m", "sellakit", "--help"], capture_output=True,
                          text=True, check=True)
    assert "sellakit run" in proc.stdout and "bench cf" in proc.stdout


def test_kit_errors_are_one_line_and_exit_2(capsys):
    """A SellakitError (here Amazon Book without its files) is a message, not a traceback."""
    assert main(["data", "fetch", "amazon-book"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sellakit: amazon-book needs its two files") and "Traceback" not in err


def test_bench_help_lists_every_target():
    proc = subprocess.run([sys.executable, "-m", "sellakit", "bench", "--help"],
                          capture_output=True, text=True, check=True)
    for target in ("cf", "align", "rec", "rec-scoring", "rec-prefix", "kg", "kg-eval", "cuda"):
        assert f"\n    {target} " in proc.stdout or f"\n    {target}\n" in proc.stdout, target


def test_bad_out_is_refused_before_the_run(tmp_path, capsys):
    """--out is checked first: a .md path (it would clobber the table) or a folder."""
    for out, why in ((tmp_path / "res.md", "give a .json file"), (tmp_path, "is a folder")):
        assert main(["bench", "kg", "--dataset", "umls-derived", "--out", str(out)]) == 2
        assert why in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing ran, nothing was written


def test_bench_kg_writes_ranks_beside_the_json(tmp_cache, tmp_path):
    """End to end on a small DERIVED split: JSON with J1, J2, the temperature grid, paired
    comparisons, the time account and the aims; per-query reciprocal ranks beside it that
    reproduce the JSON's MRRs."""
    import json

    import pandas as pd

    out = tmp_path / "kg.json"
    assert main(["bench", "kg", "--dataset", "nations-derived", "--target", "s0", "--seeds", "2",
                 "--no-ablations", "--threads", "1", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert {"teacher", "j1", "j2", "joint", "scratch", "kd", "temperature", "_comparisons",
            "time", "aims"} <= set(results)
    assert results["teacher_config"]["best_epoch"] <= results["teacher_config"]["max_epochs"]
    assert len(results["kd"]["seeds"]) == 2 and results["threads"] == 1
    ranks = pd.read_parquet(tmp_path / results["ranks_file"])
    for method in ("kd", "scratch", "j2"):
        rows = ranks[ranks.method == method]
        assert rows.seed.nunique() == (2 if method != "j2" else 1)
        assert abs(rows.groupby("seed").rr.mean().mean() - results[method]["mrr"]) < 1e-3
    assert (tmp_path / "kg.md").read_text().count("| s0 |") > 3
