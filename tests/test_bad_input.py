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


# issue 22: user files and validation ---------------------------------------------------------
# SETUP[case] makes a user's files before the case runs; the test then checks that each of them
# is still there, unchanged, and that no staging folder was left beside them.

def _notebooks(tmp, *, truncated: bool = False) -> None:
    import nbformat

    source = Path(tmp) / "src"
    source.mkdir()
    text = nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# x")]))
    (source / "x.ipynb").write_text(text[: len(text) // 2] if truncated else text)


def _user_folder(name: str, *, notebooks: bool = True, link: bool = False):
    def setup(tmp):
        folder = Path(tmp) / name
        folder.mkdir()
        (folder / "notes.txt").write_text("a user's notes")
        if link:
            (Path(tmp) / "link").symlink_to(folder)
        if notebooks:
            _notebooks(tmp)
    return setup


def _in_folder(action, *, env: dict | None = None, cwd: str | None = None):
    """``action`` run in ``tmp/cwd`` (when given) with ``env`` set, both restored after."""
    import os

    def run(tmp):
        before, saved = os.getcwd(), {k: os.environ.get(k) for k in env or {}}
        os.environ.update({k: v.format(tmp=tmp) for k, v in (env or {}).items()})
        os.chdir(Path(tmp) / cwd if cwd else before)
        try:
            return action(tmp)
        finally:
            os.chdir(before)
            for key, value in saved.items():
                os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
    return run


def _aligned_file(kind: str):
    """A saved aligned MF for another split (``rows``) or a file that is none (``garbage``)."""
    def run(tmp):
        from conftest import planted_ratings

        from sellakit.align import AlignedTables, Projector
        from sellakit.data import SplitSpec, split_by_months

        ratings, meta = planted_ratings()
        split = split_by_months(ratings, meta, SplitSpec((0, 3), (4, 4), (5, 5)),
                                name="planted_unit_test",
                                month=(ratings.timestamp // (30 * 86400)).clip(upper=5))
        path = Path(tmp) / "aligned.pt"
        if kind == "garbage":
            path.write_bytes(b"not a torch file")
        else:
            tables = AlignedTables(user=np.zeros((split.n_users, 4), np.float32),
                                   item=np.zeros((split.n_items + 500, 4), np.float32),
                                   semantic=np.zeros((split.n_items + 500, 8), np.float32),
                                   projector_state=Projector(4, 8, hidden=2).state_dict())
            tables.save(path)
        return AlignedTables.load(path, split)
    return run


def _garbage(name: str):
    return lambda tmp: (Path(tmp) / name).write_bytes(b"garbage")


def _cf_config(**fields):
    def run(tmp):
        from sellakit.cf import CFConfig

        return CFConfig.preset("quick", **fields)
    return run


def _quick_mode(tmp):
    from sellakit.config import quick_mode

    return quick_mode()


_META = b'{"asin": "0001", "title": "A"}\n'
_BAD_TIME = "0001,A1,5.0,1500000000\n0002,A2,4.0,1000000000000000\n"
_SYNTH = ("--dataset", "amazon-book-synthetic")
_BOOK = ("book", "--source", "{tmp}/src", "--site")
SETUP = {}
CASES.update({
    "book --site over a user's folder": (_cli(*_BOOK, "{tmp}/mine"),
                                         "already holds files the kit did not write"),
    "book --site .": (_in_folder(_cli(*_BOOK, "."), cwd="mine"),
                      "is the working directory or holds it"),
    "book --site docs (the repository's)": (
        _cli(*_BOOK, str(Path(__file__).resolve().parents[1] / "docs")),
        "is a folder of the sellakit repository itself"),
    "book --site a symlink": (_cli(*_BOOK, "{tmp}/link"), "is a symbolic link"),
    "book --site HOME": (_in_folder(_cli(*_BOOK, "{tmp}/mine"), env={"HOME": "{tmp}/mine"}),
                         "is your home folder"),
    "book over a truncated notebook": (_cli(*_BOOK, "{tmp}/site"),
                                       "src/x.ipynb is not a readable notebook"),
    "export . --force": (_in_folder(_cli("data", "export", "amazon-book-synthetic", ".",
                                         "--force"), cwd="mine"),
                         "is the working directory or holds it"),
    "export --force into a user's folder": (
        _cli("data", "export", "amazon-book-synthetic", "{tmp}/mine", "--force"),
        "already holds files the kit did not write"),
    "export into a symlinked folder": (
        _cli("data", "export", "amazon-book-synthetic", "{tmp}/link"), "is a symbolic link"),
    "--out empty": (_cli("bench", "cf", "--out", ""), "--out is empty"),
    "--out whose .ranks.parquet is a folder": (
        _cli("bench", "kg", "--dataset", "umls-derived", "--out", "{tmp}/r.json"),
        "r.ranks.parquet is written beside it, but is a folder"),
    "--threads 0": (_cli("bench", "kg", "--dataset", "umls-derived", "--threads", "0",
                         "--out", "{tmp}/r.json"), "--threads 0: give a whole number of at least 1"),
    "--seed -1": (_cli("bench", "cf", "--seed", "-1", "--out", "{tmp}/r.json"),
                  "--seed -1: give a whole number of at least 0"),
    "bench cuda --sizes a,b": (_cli("bench", "cuda", "--shape-dir", "{tmp}", "--sizes", "a,b",
                                    "--out", "{tmp}/r.json"), "a, b is not a whole number"),
    "bench cuda --parts nope": (_cli("bench", "cuda", "--shape-dir", "{tmp}", "--parts", "nope",
                                     "--aligned", "{tmp}/none.pt", "--out", "{tmp}/r.json"),
                                "nope is not a part"),
    "bench kg --target el on a derived set": (
        _cli("bench", "kg", "--dataset", "umls-derived", "--target", "el", "--out",
             "{tmp}/r.json"), "--target el: umls-derived-3 has no such KG; choose from s0"),
    "bench rec --aligned garbage.pt": (
        _cli("bench", "rec", *_SYNTH, "--aligned", "{tmp}/garbage.pt", "--out", "{tmp}/r.json"),
        "garbage.pt is not a saved aligned MF"),
    "bench cuda --aligned garbage.pt": (
        _cli("bench", "cuda", "--shape-dir", "{tmp}", "--aligned", "{tmp}/garbage.pt", "--out",
             "{tmp}/r.json"), "garbage.pt is not a saved aligned MF"),
    "aligned tables of 500 items too many": (_aligned_file("rows"), "made for another split"),
    "aligned file that is no torch file": (_aligned_file("garbage"), "is not a saved aligned MF"),
    "--models empty": (_cli("bench", "cf", "--models", "", "--out", "{tmp}/r.json"),
                       "--models '' names nothing"),
    "CFConfig max_epochs=0": (_cf_config(max_epochs=0), "CFConfig.max_epochs=0 is out of range; "
                                                        "it must be >= 1"),
    "CFConfig dim=0": (_cf_config(dim=0), "CFConfig.dim=0 is out of range"),
    "CFConfig batch_size=0": (_cf_config(batch_size=0), "CFConfig.batch_size=0 is out of range"),
    "CFConfig lr a string": (_cf_config(lr="0.01"), "CFConfig.lr='0.01' must be a number, not str"),
    "CFConfig device gpu": (_cf_config(device="gpu"), "CFConfig.device='gpu' is not a torch device"),
    "CFConfig dropout 1": (_cf_config(dropout=1.0), "it must be >= 0 and < 1"),
    "Amazon rating 7": (_amazon("0001,A1,7.0,1500000000\n"), "line 1: rating 7 is outside 1 to 5"),
    "Amazon rating -3": (_amazon("0001,A1,5.0,1500000000\n0002,A2,-3,1500000000\n"),
                         "line 2: rating -3 is outside 1 to 5"),
    "Amazon timestamp 1e15": (_amazon(_BAD_TIME), "line 2: timestamp 1000000000000000 is outside"),
    "Amazon null titles": (
        _amazon("0001,A1,5.0,1500000000\n", b"".join(b'{"asin": "%d", "title": null}\n' % i
                                                      for i in range(199)) + _META),
        "199 of 200 lines have no title (first: line 1)"),
    "Amazon metadata mostly unreadable": (
        _amazon("0001,A1,5.0,1500000000\n", b"{not json\n" * 500 + _META),
        "500 of 501 lines are not JSON with an 'asin' (first: line 1)"),
    "SELLAKIT_QUICK=maybe": (_in_folder(_quick_mode, env={"SELLAKIT_QUICK": "maybe"}),
                             "SELLAKIT_QUICK='maybe' is not a mode"),
    "SELLAKIT_DBP5L is a file": (
        _in_folder(_cli("bench", "kg", "--out", "{tmp}/r.json"),
                   env={"SELLAKIT_DBP5L": "{tmp}/already-here.txt"}), "is a file, not a folder"),
})
SETUP.update({
    "book --site over a user's folder": _user_folder("mine"),
    "book --site .": _user_folder("mine"),
    "book --site docs (the repository's)": _notebooks,
    "book --site a symlink": _user_folder("mine", link=True),
    "book --site HOME": lambda tmp: (_notebooks(tmp), (Path(tmp) / "mine").mkdir()),
    "book over a truncated notebook": lambda tmp: _notebooks(tmp, truncated=True),
    "export . --force": _user_folder("mine", notebooks=False),
    "export --force into a user's folder": _user_folder("mine", notebooks=False),
    "export into a symlinked folder": _user_folder("mine", notebooks=False, link=True),
    "--out whose .ranks.parquet is a folder": lambda tmp: (Path(tmp) / "r.ranks.parquet").mkdir(),
    "bench rec --aligned garbage.pt": _garbage("garbage.pt"),
    "bench cuda --aligned garbage.pt": _garbage("garbage.pt"),
})
# end of issue 22: user files and validation ---------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_line(case, tmp_path, tmp_cache, capsys):
    action, line = CASES[case]
    (tmp_path / "already-here.txt").write_text("a user's file")
    SETUP.get(case, lambda tmp: None)(str(tmp_path))
    users = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    try:
        returned = action(str(tmp_path))
    except SellakitError as err:  # the library: the kit's own error, with the line
        assert line in str(err), str(err)
    else:  # the command line: exit code 2 and the line on stderr, no traceback
        err = capsys.readouterr().err
        assert returned == 2 and err.startswith("sellakit: ") and line in err, err
        assert "Traceback" not in err
    assert (tmp_path / "already-here.txt").read_text() == "a user's file"
    assert {p: p.read_bytes() for p in users if p.is_file()} == users  # nothing of theirs gone
    leftovers = [p for p in tmp_cache.rglob("*") if p.name.startswith((".fetch-", ".tmp", "."))
                 and p.parent.name != "locks"]
    leftovers += [p for p in tmp_path.rglob(".*") if p not in users and tmp_cache not in p.parents
                  and p != tmp_cache]  # no staging folder beside a target
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


# issue 22: user files and validation (tests that are not one line of the table) ---------------

def test_book_replaces_only_the_site_it_built(tmp_path, monkeypatch):
    """A new folder becomes the kit's site (with its marker) and is rebuilt in place; nothing is
    written beside it (no staging, no myst-nb folder) and the source is left as it was."""
    from sellakit.book import build_book
    from sellakit.output import MARKER

    _notebooks(tmp_path)
    monkeypatch.chdir(tmp_path)
    for _ in range(2):  # the second build replaces the kit's own site without --force
        index = build_book("src", "site")
        assert index == (tmp_path / "site" / "index.html") and index.exists()
    assert (tmp_path / "site" / MARKER).is_file() and (tmp_path / "site" / "x.html").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site", "src"]


def test_cache_listing_goes_past_a_dangling_link(tmp_cache, capsys):
    (tmp_cache / "downloads").mkdir(parents=True)
    (tmp_cache / "downloads" / "gone.whl").symlink_to(tmp_cache / "nowhere")
    (tmp_cache / "downloads" / "z.whl").write_bytes(b"x" * 10)
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert "gone.whl -> " in out and "z.whl" in out


def test_a_cache_that_holds_ml1m_reports_its_own_error_not_pypi(ml1m, monkeypatch):
    """A read-only cache that already holds the wheel: the error is the cache's (make it
    writable, or move it), not "connect to PyPI"."""
    import sellakit.cache
    from sellakit.errors import CacheError

    def read_only(name, timeout=1800):
        raise CacheError("The sellakit cache /x cannot be written (Read-only file system).")

    monkeypatch.setattr(sellakit.cache, "lock", read_only)
    monkeypatch.setattr("sellakit.data.movielens.lock", read_only)
    from sellakit.data import load_movielens_1m

    with pytest.raises(CacheError) as raised:
        load_movielens_1m()
    assert "cannot be written" in str(raised.value) and "PyPI" not in str(raised.value)


def test_the_runner_writes_a_notebook_whole_or_not_at_all(tmp_path, monkeypatch):
    """A write that fails half-way leaves the previous executed copy and no temporary file;
    kernels get absolute SELLAKIT_* paths (they run in notebooks/)."""
    import nbformat

    from sellakit import runner

    monkeypatch.setenv("SELLAKIT_BUILD", str(tmp_path))
    monkeypatch.setenv("SELLAKIT_CACHE", "relative/cache")
    seen = {}

    class Client:
        def __init__(self, notebook, **kwargs):
            pass

        def execute(self, env):
            seen.update(env)

    def half_write(notebook, path):
        Path(path).write_text('{"cells": [')
        raise OSError("No space left on device")

    monkeypatch.setattr(runner, "_load_source", lambda stem: nbformat.v4.new_notebook())
    monkeypatch.setattr("nbclient.NotebookClient", Client)
    monkeypatch.setattr(nbformat, "write", half_write)
    out = tmp_path / "notebooks" / "00_overview.ipynb"
    out.parent.mkdir()
    out.write_text("the previous run")
    with pytest.raises(OSError):
        runner.run_notebook("00_overview")
    assert out.read_text() == "the previous run" and [p.name for p in out.parent.iterdir()] == \
        ["00_overview.ipynb"]
    assert seen["SELLAKIT_CACHE"] == str(Path.cwd() / "relative" / "cache")


def test_every_preset_of_every_config_passes_its_own_checks():
    from sellakit.align import AlignConfig
    from sellakit.cf import CFConfig
    from sellakit.kg import StudentConfig, TeacherConfig, TrainConfig
    from sellakit.kg.distill import KDConfig
    from sellakit.rec import RecConfig

    for config in (AlignConfig, RecConfig, StudentConfig, TeacherConfig, TrainConfig):
        for name in config.PRESETS:
            config.preset(name)
    for name in CFConfig.PRESETS:
        for model in ("mf", "lightgcn", "sasrec"):
            CFConfig.preset(name, model=model)
    KDConfig()
    assert CFConfig.preset("quick", device="cuda:1", lr=1, seed=0).lr == 1  # an int is a number


@pytest.mark.parametrize("value, quick", [("1", True), ("yes", True), ("quick", True),
                                          ("", True), ("0", False), ("off", False),
                                          ("Paper", False)])
def test_sellakit_quick_values(value, quick, monkeypatch):
    from sellakit.config import quick_mode

    monkeypatch.setenv("SELLAKIT_QUICK", value)
    assert quick_mode() is quick
