"""Measured exercise answers (issue 26, point 3): an answer box quotes a number of
bench/exercise_answers.json as `` `NN.K/path/to/value` = 0.494 ``; the quoted number is the
file's, rounded to the digits shown. The file is made by `python -m sellakit.benchmarks.exercises`
(resumable: a finished exercise is kept)."""

from __future__ import annotations

import json
import re

import jupytext
import pytest

from sellakit.benchmarks import exercises
from sellakit.config import repo_root
from sellakit.runner import NOTEBOOKS

ROOT = repo_root()
ANSWERS = json.loads((ROOT / "bench" / "exercise_answers.json").read_text())
#: `03.1/exercise/genre_agreement_nearest` = 0.494 (a path into the answers file, then its value)
QUOTE = re.compile(r"`(\d\d\.\d+)/([^`]+)`\s*=\s*(-?[0-9][0-9,]*(?:\.[0-9]+)?)")


def _quotes(stem: str) -> list[tuple[str, str, str]]:
    notebook = jupytext.read(ROOT / "notebooks" / f"{stem}.py")
    text = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    return QUOTE.findall(re.sub(r"\n#?\s*", " ", text))  # a quote may wrap a line


def _value(exercise: str, path: str):
    value = ANSWERS[exercise]
    for key in path.split("/"):
        value = value[key]
    return value


@pytest.mark.parametrize("stem", [s for s in NOTEBOOKS if s[:2] in {"03", "04", "05", "06", "07"}])
def test_answer_boxes_quote_the_measured_file(stem):
    for exercise, path, quoted in _quotes(stem):
        assert exercise.startswith(stem[:2]), f"{stem} quotes another notebook's {exercise}"
        assert exercise in ANSWERS, f"{exercise} is not measured: run its exercise row"
        value = _value(exercise, path)
        digits = len(quoted.split(".")[1]) if "." in quoted else 0
        assert round(float(value), digits) == float(quoted.replace(",", "")), \
            f"{stem}: `{exercise}/{path}` = {quoted}, the file holds {value}"


def test_every_measured_answer_is_quoted_in_its_notebook():
    quoted = {e for stem in NOTEBOOKS for e, _, _ in _quotes(stem)}
    assert set(ANSWERS) <= quoted, sorted(set(ANSWERS) - quoted)
    for name, answer in ANSWERS.items():
        assert answer["notebook"] == exercises.EXERCISES[name].notebook


def test_answers_run_once_and_resume(tmp_path, monkeypatch):
    """A finished exercise is written at once and skipped on a rerun; ``again`` remeasures."""
    calls = []

    def measure() -> dict:
        calls.append(1)
        return {"value": len(calls)}

    monkeypatch.setattr(exercises, "EXERCISES", {
        "01.9": exercises.Exercise("01_data", "nothing", measure, 0)})
    out = tmp_path / "answers.json"
    assert exercises.run_exercises(out=out)["01.9"]["value"] == 1
    assert exercises.run_exercises(out=out)["01.9"]["value"] == 1 and len(calls) == 1
    assert exercises.run_exercises(["01.9"], out, again=True)["01.9"]["value"] == 2
    assert json.loads(out.read_text())["01.9"]["notebook"] == "01_data"
    with pytest.raises(exercises.ConfigError, match="No exercise 99.1"):
        exercises.run_exercises(["99.1"], out)


def test_an_answer_with_ranks_keeps_them_beside_the_file_and_pairs_them(tmp_path, monkeypatch):
    """An exercise that returns per-query ranks has them written beside the answers (one long
    table, replaced on a remeasure, other exercises' rows kept), not inside the JSON; its
    paired MRR differences come from the same ranks."""
    import numpy as np
    import pandas as pd

    from sellakit.benchmarks.kg import long_ranks

    ranks = {"kd": [np.array([1.0, 2.0, 1.0, 4.0] * 50)],
             "no_kd": [np.array([2.0, 2.0, 1.0, 4.0] * 50)]}
    paired = exercises._paired_mrr(ranks, [("kd", "no_kd")])["kd_vs_no_kd"]
    assert paired["diff"] == pytest.approx(0.125) and paired["lo"] > 0
    assert paired["verdict"] == "better"

    def measure(scale: float):
        def run() -> dict:
            return {"value": scale, "_ranks": long_ranks("el", {"kd": [ranks["kd"][0] * scale]},
                                                         2025)}
        return run

    monkeypatch.setattr(exercises, "EXERCISES", {
        "07.8": exercises.Exercise("07_kg_distillation", "one", measure(1.0), 0),
        "07.9": exercises.Exercise("07_kg_distillation", "two", measure(2.0), 0)})
    out = tmp_path / "answers.json"
    exercises.run_exercises(out=out)
    assert "_ranks" not in json.loads(out.read_text())["07.8"]
    table = pd.read_parquet(out.with_suffix(".ranks.parquet"))
    assert table.groupby("exercise").size().to_dict() == {"07.8": 200, "07.9": 200}
    monkeypatch.setitem(exercises.EXERCISES, "07.8",
                        exercises.Exercise("07_kg_distillation", "one", measure(4.0), 0))
    exercises.run_exercises(["07.8"], out, again=True)
    table = pd.read_parquet(out.with_suffix(".ranks.parquet"))
    assert len(table) == 400 and table[table.exercise == "07.8"].rr.min() == 1 / 16
