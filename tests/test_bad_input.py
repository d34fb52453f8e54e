"""Bad input, tried as a careless or hostile user would: each case is one line a person can act
on (never a traceback), and nothing half-written or stale is left in the cache afterwards."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from sellakit.cli import main
from sellakit.errors import SellakitError


def _cli(*argv: str):
    return lambda tmp: main([a.format(tmp=tmp) for a in argv])


def _call(function, *args, **kwargs):
    return lambda tmp: function(*[a.format(tmp=tmp) if isinstance(a, str) else a for a in args],
                                **kwargs)


def _load_ml1m_path(tmp):
    from sellakit.data import load_movielens_1m

    return load_movielens_1m(path=tmp)  # a folder, not the zip


def _load_model(kind):
    def run(tmp):
        from sellakit.llm import load_backbone

        target = Path(tmp) / "model"
        if kind == "empty folder":
            target.mkdir()
        elif kind == "truncated weights":
            from sellakit.llm import tiny_random_llama

            tiny = tiny_random_llama()
            tiny.model.save_pretrained(target)
            tiny.tokenizer.save_pretrained(target)
            weights = target / "model.safetensors"
            weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        elif kind == "file":
            target.write_text("not a model")
        return load_backbone(str(target))
    return run


def _one_class_validation(tmp):
    from conftest import planted_ratings

    from sellakit.cf import CFConfig, train_cf
    from sellakit.data import SplitSpec, split_by_months

    ratings, meta = planted_ratings()
    month = (ratings.timestamp // (30 * 86400)).clip(upper=5)
    ratings.loc[month == 4, "rating"] = 5  # every validation row liked
    spec = SplitSpec(train_months=(0, 3), valid_months=(4, 4), test_months=(5, 5))
    split = split_by_months(ratings, meta, spec, name="one_class_unit_test", month=month)
    return train_cf(split, CFConfig.preset("quick", max_epochs=1), progress=False)


def _amazon(csv_text: str | None, meta_bytes: bytes = b'{"asin": "0001", "title": "A"}\n'):
    """Amazon's two files in ``tmp``; ``csv_text`` None makes the CSV path a folder."""
    def run(tmp):
        from sellakit.data.amazon import load_amazon_books

        csv, meta = Path(tmp) / "Books.csv", Path(tmp) / "meta_Books.json"
        csv.mkdir() if csv_text is None else csv.write_text(csv_text)
        meta.write_bytes(meta_bytes)
        return load_amazon_books(csv, meta)
    return run


def _bad_config(tmp):
    from sellakit.cf import CFConfig

    return CFConfig(model="foo")


def _unknown_preset(tmp):
    from sellakit.kg import TeacherConfig

    return TeacherConfig.preset("huge")


# case -> (what the user does, the line they must see)
CASES = {
    "amazon-book without its files": (
        _cli("data", "fetch", "amazon-book"), "amazon-book needs its two files"),
    "--out is a markdown file": (
        _cli("bench", "kg", "--dataset", "umls-derived", "--out", "{tmp}/res.md"),
        "give a .json file"),
    "--out is a folder": (
        _cli("bench", "kg", "--dataset", "umls-derived", "--out", "{tmp}"), "is a folder"),
    "export into a folder with files": (
        _cli("data", "export", "amazon-book-synthetic", "{tmp}"), "already holds files"),
    "DBP-5L folder that does not exist": (
        _cli("bench", "kg", "--data-dir", "{tmp}/nope", "--out", "{tmp}/r.json"),
        "does not exist"),
    "ML-1M path= is a folder": (_load_ml1m_path, "is a folder"),
    "Amazon CSV with 5 columns": (_amazon("0001,A1,5.0,1500000000,x\n"),
                                  "5 columns, expected 4"),
    "Amazon CSV that is empty": (_amazon(""), "Books.csv is empty"),
    "Amazon CSV that is a folder": (_amazon(None), "Books.csv is a folder"),
    "Amazon metadata not UTF-8": (_amazon("0001,A1,5.0,1500000000\n", b'{"asin": "\xff"}\n'),
                                  "line 1: not UTF-8"),
    "model path is an empty folder": (_load_model("empty folder"), "not a model folder"),
    "model path is a file": (_load_model("file"), "not a model folder"),
    "model folder with truncated weights": (_load_model("truncated weights"),
                                            "Could not load the model"),
    "validation rows of one class": (_one_class_validation, "hold only label [1]"),
    "config choice not allowed": (_bad_config, "CFConfig.model='foo' is not allowed"),
    "unknown preset": (_unknown_preset, "TeacherConfig has no preset 'huge'"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_line(case, tmp_path, tmp_cache, capsys):
    action, line = CASES[case]
    (tmp_path / "already-here.txt").write_text("a user's file")
    try:
        returned = action(str(tmp_path))
    except SellakitError as err:  # the library: the kit's own error, with the line
        assert line in str(err), str(err)
    else:  # the command line: exit code 2 and the line on stderr, no traceback
        err = capsys.readouterr().err
        assert returned == 2 and err.startswith("sellakit: ") and line in err, err
        assert "Traceback" not in err
    assert (tmp_path / "already-here.txt").read_text() == "a user's file"
    leftovers = [p for p in tmp_cache.rglob("*") if p.name.startswith((".fetch-", ".tmp", "."))
                 and p.parent.name != "locks"]
    assert not leftovers, leftovers


def test_a_planted_teacher_pickle_never_runs_and_is_replaced(tmp_cache, tmp_path):
    """A cache file that would run code when unpickled is refused (weights only) and the
    teacher is trained again in its place."""
    from sellakit.kg import (TeacherConfig, TrainConfig, derived_multisource,
                             load_or_pretrain_teacher)
    from sellakit.kg.pretrain import teacher_cache_path

    marker = tmp_path / "pwned"

    class Planted:
        def __reduce__(self):
            return (Path.touch, (marker,))

    from sellakit.kg.protocol import data_rule

    ms = derived_multisource("nations", n_sources=2, seed=0)
    rule = data_rule(ms)
    config = TeacherConfig(train=TrainConfig(dim=8, epochs=1, eval_every=1))
    path = teacher_cache_path(ms, rule, config)
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps({"state": Planted()}))
    teacher = load_or_pretrain_teacher(ms, rule, config, progress=False)
    assert not marker.exists()  # the pickle's code never ran
    assert not teacher.cached and path.exists() and path.read_bytes()[:2] == b"PK"  # retrained
    again = load_or_pretrain_teacher(ms, rule, config, progress=False)
    assert again.cached and set(again.j1) == set(ms.kgs)
    assert np.array_equal(again.j1["s0"]["metrics"]["ranks"], teacher.j1["s0"]["metrics"]["ranks"])


def test_read_only_cache_names_the_fix(tmp_path, monkeypatch):
    from sellakit.cache import cache_dir
    from sellakit.errors import CacheError

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("SELLAKIT_CACHE", str(blocker / "cache"))  # cannot be created
    with pytest.raises(CacheError, match="cannot be written.*SELLAKIT_CACHE"):
        cache_dir()


def test_a_killed_fetch_leaves_nothing_for_long(tmp_cache):
    """Temporary folders of a killed process are swept on the next fetch (after an hour, so a
    live writer's folder is never touched)."""
    import os
    import time

    from sellakit.cache import Asset, fetch
    from sellakit.errors import CacheError

    downloads = tmp_cache / "downloads"
    old, fresh = downloads / ".fetch-old", downloads / ".fetch-live"
    for folder in (old, fresh):
        folder.mkdir(parents=True)
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    with pytest.raises(CacheError):
        fetch(Asset("nothing.whl", "0" * 64))
    assert not old.exists() and fresh.exists()
