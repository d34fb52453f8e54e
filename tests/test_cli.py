"""The command line, called as a user would."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pandas as pd
import pytest

from sellakit.cli import main
from sellakit.config import Config
from sellakit.errors import ConfigError


def test_data_export_collm(tmp_path, ml1m_split):
    assert main(["data", "export", "ml-1m", "--format", "collm", str(tmp_path)]) == 0
    assert len(pd.read_pickle(tmp_path / "valid_ood2.pkl")) == 10_401


def test_bench_cf_writes_json_and_markdown(tmp_path, monkeypatch, ml1m_split):
    """The real path (CLI, ML-1M, LightGCN, markdown) with 3 epochs instead of the quick
    preset's budget: what is checked here is the files, not the model (tests/test_cf.py)."""
    from sellakit.cf import CFConfig

    quick = CFConfig.quick
    monkeypatch.setattr(CFConfig, "quick", lambda model="mf", **overrides: quick(
        model, **{"max_epochs": 3, **overrides}))
    out = tmp_path / "cf.json"
    assert main(["bench", "cf", "--dataset", "ml-1m", "--models", "lightgcn", "--preset",
                 "quick", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    record = results["lightgcn"]
    assert set(record) >= {"valid", "test", "test_warm", "test_cold", "seconds", "seed"}
    assert 1 <= record["best_epoch"] <= 3
    assert set(record["test"]) >= {"auc", "uauc"}
    table = out.with_suffix(".md").read_text()
    assert "published, CoLLM Table II" in table and "Command: `" in table
    assert results["_run"]["machine"].startswith("CPU, ")  # the seconds' machine, in the table
    assert f"timed on {results['_run']['machine']}" in table
    # the count-rate baselines stand in every CF table, settings chosen on validation
    assert list(results)[:2] == ["item_rate", "item_user_rate"]
    assert results["item_rate"]["test"]["auc"] == pytest.approx(0.7089, abs=5e-4)
    assert results["item_user_rate"]["settings"]["user_weight"] > 0
    assert "| item_user_rate |" in table and "item strength" in table
    # per-row scores beside the JSON: every AUC comes back from them, and the trained model
    # stands against the strongest simple baseline on validation with a paired interval
    from sellakit.metrics import auc

    scores = pd.read_parquet(tmp_path / results["_versus"]["scores_file"])
    assert set(scores.method) == {"item_rate", "item_user_rate", "lightgcn"}
    for (method, part), rows in scores.groupby(["method", "split"]):
        assert auc(rows.label, rows.score) == pytest.approx(results[method][part]["auc"],
                                                            abs=1e-9)
    assert results["_versus"]["baseline"] == "item_user_rate"
    versus = results["_versus"]["rows"]["lightgcn"]
    assert versus["auc"]["diff"] == pytest.approx(
        results["lightgcn"]["test"]["auc"] - results["item_user_rate"]["test"]["auc"], abs=1e-9)
    assert versus["auc"]["lo"] < versus["auc"]["diff"] < versus["auc"]["hi"]
    assert f"`lightgcn` {versus['verdict']}" in table


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
    for target in ("cf", "align", "rec", "rec-scoring", "rec-prefix", "rec-curve", "rec-grid",
                   "rec-study", "kg", "kg-eval", "cuda", "series"):
        assert f"\n    {target} " in proc.stdout or f"\n    {target}\n" in proc.stdout, target


def test_bad_out_is_refused_before_the_run(tmp_path, capsys):
    """--out is checked first: a .md path (it would clobber the table) or a folder."""
    for out, why in ((tmp_path / "res.md", "give a .json file"), (tmp_path, "is a folder")):
        assert main(["bench", "kg", "--dataset", "umls-derived", "--out", str(out)]) == 2
        assert why in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing ran, nothing was written


def test_bench_kg_writes_ranks_beside_the_json(tmp_cache, tmp_path):
    """End to end on a small DERIVED split in the new-KG setting: JSON with every row at every
    seed (J2 too), two-level comparisons, the time account and the aims; per-query reciprocal
    ranks beside it that reproduce the JSON's MRRs; each finished target written as a part, so
    a rerun reads it back instead of training."""
    import json

    import pandas as pd

    out = tmp_path / "kg.json"
    argv = ["bench", "kg", "--dataset", "nations-derived", "--target", "s0", "--seeds", "2",
            "--no-ablations", "--threads", "1", "--out", str(out)]
    assert main(argv) == 0
    results = json.loads(out.read_text())
    assert {"j2", "j2_warm", "joint", "scratch", "kd", "no_kd", "kd_cold", "_comparisons",
            "time", "aims"} <= set(results) and "j1" not in results
    assert results["setting"] == "new-kg" and "s0" not in results["teacher_config"]["kgs"]
    assert len(results["kd"]["seeds"]) == 2 and results["threads"] == 1
    ranks = pd.read_parquet(tmp_path / results["ranks_file"])
    for method in ("kd", "scratch", "j2", "j2_warm"):
        rows = ranks[ranks.method == method]
        assert rows.seed.nunique() == 2
        assert abs(rows.groupby("seed").rr.mean().mean() - results[method]["mrr"]) < 1e-3
    assert (tmp_path / "kg.md").read_text().count("| s0 |") > 3
    part = tmp_path / "kg.parts" / "s0.json"
    assert part.exists()
    stored = json.loads(part.read_text())
    stored["kd"]["mrr"] = 0.123  # a rerun must read the part back, not train again
    part.write_text(json.dumps(stored))
    assert main(argv) == 0 and json.loads(out.read_text())["kd"]["mrr"] == 0.123


def test_bench_kg_j2_seeds_0_leaves_j2_out(tmp_cache, tmp_path):
    """--j2-seeds 0 (for an encoder whose joint retrain costs hours): no J2 row, no comparison
    or aim that needs one, the table's J2 time a dash; every other row still runs, and KD is
    compared with each ablation run, from the ranks file (so also on a resumed run)."""
    import json

    out = tmp_path / "kg.json"
    argv = ["bench", "kg", "--dataset", "nations-derived", "--target", "s0", "--seeds", "1",
            "--j2-seeds", "0", "--ablations=-feature", "--threads", "1", "--out", str(out)]
    assert main(argv) == 0
    results = json.loads(out.read_text())
    assert {"scratch", "kd", "no_kd", "kd_cold"} <= set(results)
    assert not {"j2", "j2_warm", "joint"} & set(results) and results["j2_seeds"] == 0
    assert results["aims"] == {} and "j2" not in results["time"]
    assert {"kd - no_kd", "kd - -feature"} <= set(results["_comparisons"])  # KD vs its ablation
    assert not any("j2" in name for name in results["_comparisons"])
    assert "0 for J2" in (tmp_path / "kg.md").read_text()
    # the comparisons follow from the ranks file: a part read back gets them again
    part = tmp_path / "kg.parts" / "s0.json"
    stored = json.loads(part.read_text())
    stored["_comparisons"] = {}
    part.write_text(json.dumps(stored))
    assert main(argv) == 0
    assert json.loads(out.read_text())["_comparisons"] == results["_comparisons"]


def _bench_option(target: str, option: str):
    """The argparse action of ``option`` in ``sellakit bench TARGET``."""
    from sellakit.cli import build_parser

    def subcommand(parser, name):
        subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return subs.choices[name]

    parser = subcommand(subcommand(build_parser(), "bench"), target)
    return next((a for a in parser._actions if option in a.option_strings), None)


def test_bench_offers_exactly_the_presets_of_its_config():
    from sellakit.align.contrastive import AlignConfig
    from sellakit.cf import CFConfig
    from sellakit.kg import StudentConfig, TeacherConfig
    from sellakit.rec.config import RecConfig

    expected = {"cf": [CFConfig], "align": [AlignConfig], "rec": [RecConfig],
                "rec-curve": [RecConfig], "rec-grid": [RecConfig], "rec-study": [RecConfig],
                "kg": [TeacherConfig, StudentConfig]}  # bench kg runs both at one preset
    for target, configs in expected.items():
        action = _bench_option(target, "--preset")
        for config in configs:
            assert tuple(action.choices) == config.PRESETS, (target, config)
            assert all(config.preset(name) for name in config.PRESETS)
        assert action.default in action.choices
        for name in action.choices:  # the help describes each offered preset, from the table
            assert f"{name}: {Config.PRESET_TABLE[name]}" in action.help
    for target in ("rec-scoring", "rec-prefix", "kg-eval", "cuda"):
        assert _bench_option(target, "--preset") is None, target


@pytest.mark.parametrize("target", ["cf", "align"])
def test_an_unoffered_preset_exits_2_with_one_line(target, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", target, "--preset", "compare", "--out", str(tmp_path / "x.json")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice: 'compare'" in err, err
    assert err.startswith(f"sellakit bench {target}: ") and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_a_preset_listed_and_defined_must_agree():
    """PRESETS and the preset classmethods cannot drift apart, nor name a preset the table
    lacks: the class is refused when it is made."""
    for body in ({"PRESETS": ("quick",)},  # listed, not defined
                 {"compare": classmethod(lambda cls: cls())},  # defined, not listed
                 {"PRESETS": ("huge",), "huge": classmethod(lambda cls: cls())}):
        with pytest.raises(ConfigError):
            type("Broken", (Config,), body)


def test_each_ctr_target_keeps_its_own_default_dataset():
    """rec-kg's film-KG default once leaked into every target through a shared parent parser
    (rec-curve ran on ML-100k without being asked)."""
    from sellakit.cli import build_parser

    parser = build_parser()
    defaults = {t: parser.parse_args(["bench", t, "--out", "x.json"]).dataset
                for t in ("cf", "align", "rec", "rec-curve", "rec-grid", "rec-study", "rec-kg")}
    assert defaults == {**{t: "ml-1m" for t in defaults}, "rec-kg": "ml-100k-cold-items"}


def test_a_tables_command_names_the_data_variable_not_this_machines_folder(monkeypatch, tmp_path):
    """A --data-dir equal to $SELLAKIT_DBP5L is printed as the variable (both spellings), so a
    committed table's command runs on another machine; any other folder is printed as given."""
    from sellakit.cli import _PATH_VARIABLES, command_text
    from sellakit.kg.data import DBP5L_ENV

    assert _PATH_VARIABLES["--data-dir"] == DBP5L_ENV
    monkeypatch.setenv(DBP5L_ENV, str(tmp_path))
    assert command_text(["bench", "kg", "--data-dir", f"{tmp_path}/", "--out", "a.json"]) == \
        'sellakit bench kg --data-dir "$SELLAKIT_DBP5L" --out a.json'
    assert command_text(["bench", "kg", f"--data-dir={tmp_path}"]) == \
        'sellakit bench kg --data-dir="$SELLAKIT_DBP5L"'
    assert command_text(["bench", "kg", "--data-dir", "/elsewhere"]) == \
        "sellakit bench kg --data-dir /elsewhere"
    monkeypatch.delenv(DBP5L_ENV)
    assert command_text(["bench", "kg", "--data-dir", str(tmp_path)]) == \
        f"sellakit bench kg --data-dir {tmp_path}"


def test_committed_tables_name_no_machines_data_folder():
    """Every committed table's command gives --data-dir as the variable, so a reader can run
    it as printed (a run without $SELLAKIT_DBP5L set records the folder it was given)."""
    import re

    from sellakit.config import repo_root

    given = {md.name: re.findall(r"--data-dir[= ](\S+)", md.read_text())
             for md in sorted((repo_root() / "bench").glob("*.md"))}
    foreign = {name: dirs for name, dirs in given.items()
               if any(d.strip("`") not in ('"$SELLAKIT_DBP5L"', "/path/to/KEnS/data")
                      for d in dirs)}
    assert any(given.values()) and not foreign
