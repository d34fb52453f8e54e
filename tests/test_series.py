"""``sellakit run`` and ``sellakit bench series``: the series' chains side by side, and the
quick series' time, first from an empty cache, then warm. The notebooks' runs are replaced by a
stand-in here (tests/test_notebooks.py executes the real ones); what is tested is the order,
the chains, the cache each run gets, resuming and the table."""

from __future__ import annotations

import json
import os
import threading

import pytest

from sellakit import runner
from sellakit.benchmarks import series
from sellakit.cli import main
from sellakit.errors import ConfigError
from sellakit.runner import NOTEBOOKS, SERIES_CHAINS

STEMS = ["00_overview", "01_data"]


@pytest.fixture()
def fake_runs(monkeypatch):
    """Each "run" records the notebook, the cache it saw and pip's cache switch; a run on a
    cache that already holds the notebook's file is "warm" and takes 1 s, else 10 s."""
    runs = []

    def run_notebook(stem, quick=True, env=None):
        cache = env["SELLAKIT_CACHE"]
        marker = os.path.join(cache, stem)
        warm = os.path.exists(marker)
        open(marker, "w").close()
        runs.append((stem, cache, env.get("PIP_NO_CACHE_DIR"), warm, quick))
        return {"seconds": 1.0 if warm else 10.0, "values": {"dataset": "ml-1m"}}

    monkeypatch.setattr("sellakit.runner.run_notebook", run_notebook)
    return runs


def test_series_runs_first_then_warm_on_its_own_cache_and_resumes(fake_runs, tmp_path,
                                                                   monkeypatch):
    out, cache = tmp_path / "series.json", tmp_path / "cache"
    before = os.environ.get("SELLAKIT_CACHE")
    results = series.series_benchmark(out, cache=cache, stems=STEMS, command="cmd")
    assert [(stem, warm) for stem, _, _, warm, _ in fake_runs] == [
        ("00_overview", False), ("01_data", False), ("00_overview", True), ("01_data", True)]
    assert {c for _, c, _, _, _ in fake_runs} == {str(cache.absolute())}
    assert all(pip == "1" and quick for _, _, pip, _, quick in fake_runs)
    assert os.environ.get("SELLAKIT_CACHE") == before  # the caller's environment is untouched
    assert results["seconds"] == {"first": {s: 10.0 for s in STEMS},
                                  "warm": {s: 1.0 for s in STEMS}}
    assert results["total_s"] == {"first": 20.0, "warm": 2.0}
    assert results["met"] is None  # two notebooks are not the series: no target applies
    assert results["resumed"] == [] and results["datasets"] == {s: "ml-1m" for s in STEMS}
    text = series.series_markdown(results, command="cmd")
    assert "| `00_overview` | 10.0 | 1.0 |" in text and "no target applies" in text
    # a rerun reads the finished parts back and runs nothing
    monkeypatch.setattr("sellakit.runner.run_notebook", lambda *a, **k: pytest.fail("ran"))
    assert series.series_benchmark(out, cache=cache, stems=STEMS)["seconds"] == \
        results["seconds"]


def test_a_killed_series_resumes_and_says_which_part_restarted(fake_runs, tmp_path):
    out, cache = tmp_path / "series.json", tmp_path / "cache"
    store = series.PartStore(out, {"stems": STEMS, "quick": True, "serial": False,
                                   "dbp5l": bool(os.environ.get("SELLAKIT_DBP5L"))})
    store.save("first-00_overview", {"seconds": 7.0, "dataset": None, "resumed": False},
               series.pd.DataFrame())
    cache.mkdir()
    (cache / "00_overview").touch()  # what the killed run had cached
    results = series.series_benchmark(out, cache=cache, stems=STEMS)
    assert [stem for stem, *_ in fake_runs] == ["01_data", "00_overview", "01_data"]
    assert results["seconds"]["first"] == {"00_overview": 7.0, "01_data": 10.0}
    assert results["resumed"] == ["first-01_data"]
    assert "Resumed after an interruption" in series.series_markdown(results, command="c")


def test_the_whole_series_is_held_to_the_targets_on_its_wall_clock(fake_runs, tmp_path,
                                                                     monkeypatch):
    """One notebook at a time, each "run" moving a clock on by its seconds: the wall clock of a
    pass is then the sum, and it (not the sum) is what the targets judge."""
    clock = [1000.0]
    fake_run = runner.run_notebook

    def timed_run(stem, quick=True, env=None):
        run = fake_run(stem, quick=quick, env=env)
        clock[0] += run["seconds"]
        return run

    monkeypatch.setattr("sellakit.runner.run_notebook", timed_run)
    monkeypatch.setattr(series.time, "time", lambda: clock[0])
    results = series.series_benchmark(tmp_path / "s.json", cache=tmp_path / "c", serial=True)
    first, warm = 10.0 * len(NOTEBOOKS), 1.0 * len(NOTEBOOKS)
    assert results["_run"]["whole_series"] and results["total_s"]["first"] == first
    assert results["wall_s"] == {"first": first, "warm": warm}
    assert results["met"] == {"first": first <= series.TARGETS_S["first"],
                              "warm": warm <= series.TARGETS_S["warm"]}
    text = series.series_markdown(results, command="c")
    assert f"first {first:,.0f} s against at most 540 s" in text
    assert "one notebook at a time" in text and f"| **series, wall clock** | **{first:,.1f}**" \
        in text


def test_a_pass_that_resumed_has_no_wall_clock():
    done = {"resumed": False, "started": 5.0, "finished": 9.0}
    assert series._wall_seconds([done, {**done, "started": 7.0, "finished": 12.0}]) == 7.0
    assert series._wall_seconds([done, {**done, "resumed": True}]) is None
    assert series._wall_seconds([{"seconds": 4.0, "resumed": False}]) is None  # an older part


def test_the_series_bench_runs_both_chains_at_once(fake_runs, tmp_path, monkeypatch):
    """Side by side (the default), each chain's notebooks run in order on a thread of their
    own, at the same time as the other chain's, with idle OpenMP threads sleeping."""
    heads = {chain[0] for chain in SERIES_CHAINS}
    both_running = threading.Barrier(len(SERIES_CHAINS), timeout=30)
    threads, envs = {}, []
    fake_run = runner.run_notebook

    def run(stem, quick=True, env=None):
        if stem in heads:
            both_running.wait()  # broken (an error) unless every chain's head runs at once
        threads.setdefault(threading.current_thread().name, []).append(stem)
        envs.append(env)
        return fake_run(stem, quick=quick, env=env)

    monkeypatch.setattr("sellakit.runner.run_notebook", run)
    results = series.series_benchmark(tmp_path / "s.json", cache=tmp_path / "c")
    # a thread per chain and pass, each running its chain in order
    assert sorted(threads.values()) == sorted([list(chain) for chain in SERIES_CHAINS] * 2)
    assert all(env["OMP_WAIT_POLICY"] == "PASSIVE" for env in envs)
    assert results["wall_s"]["first"] is not None and results["resumed"] == []


def test_a_cache_that_is_not_empty_and_unknown_notebooks_are_refused(fake_runs, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "models").mkdir()
    with pytest.raises(ConfigError, match="is not empty"):
        series.series_benchmark(tmp_path / "a.json", cache=cache, stems=STEMS)
    with pytest.raises(ConfigError, match="09_nothing"):
        series.series_benchmark(tmp_path / "b.json", cache=tmp_path / "c2",
                                stems=["09_nothing"])
    assert not fake_runs


def test_the_command_writes_json_and_table(fake_runs, tmp_path, capsys):
    out = tmp_path / "series.json"
    assert main(["bench", "series", "--out", str(out), "--cache", str(tmp_path / "c"),
                 "--notebooks", ",".join(STEMS)]) == 0
    written = json.loads(out.read_text())
    assert written["total_s"]["warm"] == 2.0 and "_parts_host" in written
    table = out.with_suffix(".md").read_text()
    assert "sellakit bench series" in table and "| sum of the notebooks | 20.0 | 2.0 |" in table
    assert "| **series, wall clock** |" in table and "side by side" in table


def test_notebook_chains_keep_each_dependency_on_one_process():
    """`make test` runs the notebooks as chains on separate processes (tests/conftest.py):
    every notebook is in exactly one chain, and shares it with what it depends on
    (``runner.NOTEBOOKS``), which runs first."""
    from conftest import SERIES_GROUPS

    chains = {stem: [group for group, prefixes in SERIES_GROUPS.items() if stem[:2] in prefixes]
              for stem in NOTEBOOKS}
    assert all(len(found) == 1 for found in chains.values()), chains
    for stem, notebook in NOTEBOOKS.items():
        for needed in notebook.depends_on:
            assert chains[needed] == chains[stem] and needed < stem, (stem, needed)


def test_sellakit_run_runs_the_chains_side_by_side_and_raises_a_failure_after(tmp_path,
                                                                              monkeypatch):
    """`make run` in quick mode: both chains at once; a notebook that fails stops its own chain,
    the other chain finishes, then the error is raised; the summary is in series order."""
    monkeypatch.setenv("SELLAKIT_BUILD", str(tmp_path))
    heads = {chain[0] for chain in SERIES_CHAINS}
    both_running = threading.Barrier(len(SERIES_CHAINS), timeout=30)
    ran = []

    def run(stem, quick=True, publish=False, env=None):
        if stem in heads:
            both_running.wait()
        ran.append(stem)
        if stem == fail:
            raise RuntimeError(f"{stem} failed")
        return {"seconds": 1.0, "values": {"omp": env["OMP_WAIT_POLICY"]}, "path": stem}

    monkeypatch.setattr(runner, "run_notebook", run)
    fail = None
    summary = runner.run_series(side_by_side=True)
    assert list(summary) == list(NOTEBOOKS)
    assert {run["values"]["omp"] for run in summary.values()} == {"PASSIVE"}
    assert list(json.loads((tmp_path / "summary.json").read_text())) == list(NOTEBOOKS)
    fail, ran[:] = SERIES_CHAINS[0][1], []
    with pytest.raises(RuntimeError, match=f"{fail} failed"):
        runner.run_series(side_by_side=True)
    assert set(SERIES_CHAINS[1]) <= set(ran) and SERIES_CHAINS[0][2] not in ran


def test_sellakit_run_chooses_side_by_side_in_quick_mode_only(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("SELLAKIT_BUILD", str(tmp_path))
    (tmp_path / "summary.md").write_text("summary")
    calls = []
    monkeypatch.setattr(runner, "run_series", lambda stems, **kw: calls.append(kw))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    for args in (["run"], ["run", "--serial"], ["run", "--paper"]):
        assert main(args) == 0
    assert [c["side_by_side"] for c in calls] == [True, False, False]
