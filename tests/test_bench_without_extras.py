"""The KG benchmarks and ``bench rec-kg`` run where the notebook extras are not installed (the
GPU machine has torch and transformers, but no plotly, umap, pykeen, ipywidgets, kaleido,
nbclient, papermill, nbformat or jupytext): each command runs as ``python -m sellakit`` in a
subprocess whose ``sitecustomize`` hides those packages from every import, on a small DERIVED
split (its PyKEEN set is read here, before it is hidden, and handed to the subprocess)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HIDDEN = ("plotly", "umap", "pykeen", "ipywidgets", "kaleido", "nbclient", "papermill",
          "nbformat", "jupytext")

#: Hides HIDDEN from the path finder (so ``importlib.util.find_spec`` answers None and an import
#: fails as if the package were absent), then serves the pickled PyKEEN set to the kit.
SITECUSTOMIZE = '''
import os
import sys
from importlib.machinery import PathFinder

HIDDEN = set(os.environ["SELLAKIT_TEST_HIDDEN"].split(","))


class _WithoutExtras(PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            return None
        return super().find_spec(name, path, target)


sys.meta_path[:] = [_WithoutExtras if f is PathFinder else f for f in sys.meta_path]
if os.environ.get("SELLAKIT_TEST_PYKEEN_SET"):
    import pickle

    import sellakit.kg.data as data

    with open(os.environ["SELLAKIT_TEST_PYKEEN_SET"], "rb") as file:
        _set = pickle.load(file)
    data.load_pykeen = lambda name: _set
'''


@pytest.fixture()
def without_extras(tmp_path, tmp_cache):
    """``run(*args)``: ``python -m sellakit *args`` (or ``python -c`` when the first is
    ``-c``) with the extras hidden; returns the finished process."""
    from sellakit.kg.data import load_pykeen

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    nations = tmp_path / "nations.pkl"
    nations.write_bytes(pickle.dumps(load_pykeen("nations")))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]),
           "SELLAKIT_TEST_HIDDEN": ",".join(HIDDEN), "SELLAKIT_TEST_PYKEEN_SET": str(nations),
           "PYTHONWARNINGS": "ignore"}

    def run(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, *(args if args[0] == "-c" else ("-m", "sellakit", *args))]
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
    return run


@pytest.mark.slow  # four benchmark runs in subprocesses on a derived split (~2 min on 2 cores)
def test_kg_benchmarks_run_and_resume_without_the_notebook_extras(without_extras, tmp_path):
    hidden = without_extras("-c", "import importlib.util as u, sys; "
                                  f"sys.exit(sum(u.find_spec(n) is not None for n in {HIDDEN}))")
    assert hidden.returncode == 0, "the extras are not hidden in the subprocess"

    common = ["--dataset", "nations-derived", "--target", "s0", "--threads", "1"]
    kg = without_extras("bench", "kg", *common, "--seeds", "1", "--no-ablations",
                        "--out", "kg.json")
    assert kg.returncode == 0, kg.stderr[-3000:]
    results = json.loads((tmp_path / "kg.json").read_text())
    assert {"j2", "j2_warm", "scratch", "kd", "no_kd", "kd_cold"} <= set(results)
    assert (tmp_path / "kg.parts" / "s0.json").exists()

    low = ["bench", "kg-sweep", "--sweep", "low-resource", *common, "--facts", "0.5,1",
           "--links", "1", "--epochs", "2", "--out", "low.json"]
    sweep = without_extras(*low)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    points = json.loads((tmp_path / "low.json").read_text())["points"]
    assert [p["facts"] for p in points] == [0.5, 1.0]
    assert set(points[0]["rows"]) == {"j2", "scratch", "kd", "no_kd"}
    # a killed sweep resumes from its finished points: a rerun reads each one back
    part = next(p for p in (tmp_path / "low.parts").glob("*.json") if "-f0.5-" in p.name)
    stored = json.loads(part.read_text())
    stored["rows"]["kd"]["mrr"] = 0.123
    part.write_text(json.dumps(stored))
    again = without_extras(*low)
    assert again.returncode == 0, again.stderr[-3000:]
    points = json.loads((tmp_path / "low.json").read_text())["points"]
    assert points[0]["rows"]["kd"]["mrr"] == 0.123 and points[1]["rows"]["kd"]["mrr"] != 0.123

    width = without_extras("bench", "kg-sweep", "--sweep", "width", *common, "--dims", "4",
                           "--epochs", "2", "--out", "width.json")
    assert width.returncode == 0, width.stderr[-3000:]
    points = json.loads((tmp_path / "width.json").read_text())["points"]
    assert [sorted(p["rows"]) for p in points] == [["j2"], ["kd", "no_kd", "scratch"]]
    assert points[1]["dim"] == 4


@pytest.mark.slow  # spawns processes
def test_rec_kg_imports_without_the_notebook_extras(without_extras, tmp_path):
    """``bench rec-kg``'s modules import, and its command runs as far as its first check."""
    modules = ("sellakit.benchmarks.rec_kg", "sellakit.benchmarks.rec", "sellakit.rec",
               "sellakit.rec.methods", "sellakit.kg.items", "sellakit.data.ml100k",
               "sellakit.cf", "sellakit.llm", "sellakit.metrics", "sellakit.stats",
               "sellakit.benchmarks.rec_study", "sellakit.benchmarks.kg_protocols")
    imported = without_extras("-c", "import " + ", ".join(modules))
    assert imported.returncode == 0, imported.stderr[-3000:]
    refused = without_extras("bench", "rec-kg", "--dataset", "amazon-book-synthetic",
                             "--out", "x.json")
    assert refused.returncode == 2 and "the film KG links MovieLens-100k's movies" in \
        refused.stderr, refused.stderr[-3000:]
