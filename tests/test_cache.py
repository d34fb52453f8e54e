"""The cache: checksums, atomic writes, corrupt entries, clear errors."""

from __future__ import annotations

import hashlib
import threading

import numpy as np
import pytest

from sellakit.cache import Asset, CacheError, atomic_dir, cache_dir, fetch, sha256_of


def _asset_for(path, sha=None, name="thing.bin"):
    data = path.read_bytes()
    return Asset(filename=name, sha256=sha or hashlib.sha256(data).hexdigest(),
                 urls=(path.as_uri(),))


def test_cache_dir_follows_env(tmp_cache):
    assert cache_dir() == tmp_cache and tmp_cache.is_dir()


def test_fetch_verifies_and_reuses(tmp_cache, tmp_path):
    source = tmp_path / "src.bin"
    source.write_bytes(b"real content" * 100)
    asset = _asset_for(source)
    path = fetch(asset, allow_pip=False)
    assert path.read_bytes() == source.read_bytes()
    source.unlink()  # a second fetch must not need the source
    assert fetch(asset, allow_pip=False) == path


def test_checksum_mismatch_leaves_nothing(tmp_cache, tmp_path):
    source = tmp_path / "src.bin"
    source.write_bytes(b"tampered")
    asset = _asset_for(source, sha="0" * 64)
    with pytest.raises(CacheError) as err:
        fetch(asset, allow_pip=False)
    message = str(err.value)
    assert "thing.bin" in message and "expected" in message and "Fix:" in message
    leftovers = [p for p in (tmp_cache / "downloads").rglob("*") if p.is_file()]
    assert leftovers == []


def test_corrupt_entry_is_replaced(tmp_cache, tmp_path):
    source = tmp_path / "src.bin"
    source.write_bytes(b"good bytes" * 50)
    asset = _asset_for(source)
    path = fetch(asset, allow_pip=False)
    path.write_bytes(b"good bytes")  # truncated in place
    with pytest.warns(UserWarning, match="does not match its sha256"):
        again = fetch(asset, allow_pip=False)
    assert sha256_of(again) == asset.sha256


def test_no_source_gives_actionable_error(tmp_cache):
    asset = Asset(filename="missing.whl", sha256="1" * 64, pip_spec="no-such-dist-sellakit==0.0.1",
                  urls=("file:///nonexistent/missing.whl",))
    with pytest.raises(CacheError) as err:
        fetch(asset)
    message = str(err.value)
    assert "missing.whl" in message and "pip download" in message
    assert "SELLAKIT_CACHE" in message and str(tmp_cache) in message
    assert not (tmp_cache / "downloads" / "missing.whl").exists()


def test_url_only_asset_names_its_url_not_pip(tmp_cache):
    """An asset with no package source: the fix names the URL to reach, never `pip ... None`."""
    asset = Asset(filename="file.tsv", sha256="2" * 64, urls=("file:///nonexistent/file.tsv",))
    with pytest.raises(CacheError) as err:
        fetch(asset)
    message = str(err.value)
    assert "None" not in message and "pip" not in message
    assert "reach file:///nonexistent/file.tsv" in message and str(tmp_cache) in message


def test_atomic_dir_rolls_back(tmp_cache):
    final = tmp_cache / "derived" / "entry"
    with pytest.raises(RuntimeError):
        with atomic_dir(final) as tmp:
            (tmp / "half.parquet").write_text("half")
            raise RuntimeError("interrupted")
    assert not final.exists()
    assert list(final.parent.iterdir()) == []


def test_concurrent_fetches_agree(tmp_cache, tmp_path):
    source = tmp_path / "src.bin"
    source.write_bytes(b"x" * 1_000_000)
    asset = _asset_for(source)
    paths, errors = [], []

    def worker():
        try:
            paths.append(fetch(asset, allow_pip=False))
        except Exception as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(paths)) == 1
    assert sha256_of(paths[0]) == asset.sha256


def test_cached_arrays_computes_once_and_replaces_a_damaged_entry(tmp_cache):
    from sellakit.cache import cached_arrays

    calls = []

    def compute():
        calls.append(1)
        return {"x": np.arange(3)}

    first = cached_arrays("unit", "k1", compute)
    again = cached_arrays("unit", "k1", compute)
    assert len(calls) == 1 and (first["x"] == again["x"]).all()
    (tmp_cache / "derived" / "unit" / "k1.npz").write_bytes(b"garbage")
    assert (cached_arrays("unit", "k1", compute)["x"] == np.arange(3)).all() and len(calls) == 2
    assert not list((tmp_cache / "derived" / "unit").glob(".*"))  # no temporary left behind


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    """The temporary names are private (mkstemp / mkdtemp), the renamed results are not."""
    import os

    from sellakit.cache import atomic_file

    mask = os.umask(0o022)
    try:
        with atomic_file(tmp_path / "out.json") as tmp:
            tmp.write_text("{}")
        with atomic_dir(tmp_path / "folder") as tmp:
            (tmp / "a").write_text("")
    finally:
        os.umask(mask)
    assert (tmp_path / "out.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o755
