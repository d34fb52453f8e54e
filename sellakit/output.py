"""Folders the kit writes for a person (``sellakit book --site``, ``sellakit data export``):
never a folder of theirs.

Such a folder is replaced whole (staged beside it, then renamed into place), so the kit must
own it: :func:`check_output_dir` accepts a new or empty folder, or one carrying :data:`MARKER`
(a file the kit writes into every folder it makes), and refuses, with one line naming the path
and the fix, a symbolic link, a file, a folder holding someone's files, the working directory
or a folder above it, the home folder, and the repository's own folders.
:func:`replace_dir` writes the new content beside the target and puts the marker in it.

Example::

    >>> from sellakit.output import check_output_dir, replace_dir
    >>> out = check_output_dir("site", option="--site", replace=True)  # doctest: +SKIP
    >>> with replace_dir(out) as staging:  # doctest: +SKIP
    ...     (staging / "index.html").write_text("...")
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from sellakit.config import repo_root
from sellakit.errors import ConfigError

__all__ = ["MARKER", "check_output_dir", "replace_dir", "kit_made"]

#: The file that marks a folder as the kit's own output (safe to replace).
MARKER = ".sellakit-output"


def kit_made(folder: Path) -> bool:
    """Whether ``folder`` carries the kit's marker (the kit made it and may replace it)."""
    return (folder / MARKER).is_file()


def _protected(folder: Path) -> str | None:
    """Why ``folder`` (resolved) must never be replaced, or None."""
    home = Path.home().resolve()
    root = repo_root()
    if folder == Path.cwd().resolve() or folder in Path.cwd().resolve().parents:
        return "is the working directory or holds it"
    if folder == home or folder in home.parents:
        return "is your home folder or holds it"
    if folder == root or folder in root.parents or \
            (folder.parent == root and folder.exists() and not kit_made(folder)):
        return "is a folder of the sellakit repository itself"
    return None


def check_output_dir(path: str | os.PathLike, *, option: str, replace: bool) -> Path:
    """``path`` as an absolute folder the kit may (re)write whole, or a :class:`ConfigError`.

    ``replace``: a folder the kit made before (it carries :data:`MARKER`) is replaced; without
    it such a folder is refused too (the caller's ``--force`` turns it on). A folder with files
    and no marker is refused either way: it is someone's, and nothing of theirs is deleted.
    """
    if str(path) == "":
        raise ConfigError(f"{option} is empty. Fix: give a new or empty folder.")
    out = Path(path)
    fix = f"Fix: give {option} a new or empty folder, e.g. {out / 'site'}."
    if out.is_symlink():
        raise ConfigError(f"{option} {out} is a symbolic link (to {os.readlink(out)}); the kit "
                          f"replaces the folder it writes and does not follow links. {fix}")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{option} {out} is a file. {fix}")
    resolved = out.resolve()
    why = _protected(resolved)
    if why:
        raise ConfigError(f"{option} {out} {why}; the kit replaces the whole folder it writes. "
                          f"{fix}")
    if out.is_dir() and any(out.iterdir()):
        if not kit_made(out):
            raise ConfigError(f"{option} {out} already holds files the kit did not write (no "
                              f"{MARKER} in it), and it never deletes them. {fix}")
        if not replace:
            raise ConfigError(f"{option} {out} already holds files (from an earlier run). "
                              "Fix: choose an empty or new folder, or pass --force "
                              "(force=True) to replace its contents.")
    return resolved


@contextlib.contextmanager
def replace_dir(final: Path) -> Iterator[Path]:
    """Yield a staging folder beside ``final`` (an absolute path from
    :func:`check_output_dir`) holding the kit's marker; on success it replaces ``final``
    whole, on any error it is removed and ``final`` is left as it was."""
    from sellakit.cache import atomic_dir

    final = Path(os.path.abspath(final))  # a parent that is the target's parent, never "."
    with atomic_dir(final) as staging:
        (staging / MARKER).write_text("Written by sellakit; the kit replaces this folder "
                                      "whole when it writes it again.\n")
        yield staging
