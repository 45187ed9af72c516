"""Durable writes: the one way weightzoo puts a file (or folder) in place.

Every writer in the project — zoo packs, safetensors exports, graph files, filter tables, manifests, the
MiniLM fetch — writes to a uniquely named temporary in the target's own folder, fsyncs it, renames it over
the target with ``os.replace`` and fsyncs the folder. A reader therefore sees the old file or the new one,
never half of either, and after the call returns the new one survives a power cut. A failure removes the
temporary and leaves the target untouched.

    >>> with atomic_write("out.json", "w") as f:          # doctest: +SKIP
    ...     json.dump(obj, f)
    >>> with atomic_path("graph.safetensors") as tmp:     # doctest: +SKIP
    ...     save_file(tensors, tmp)                       # libraries that write by path

:func:`durable_replace` is the primitive the two context managers (and the store's packs, which name their
own temporaries so ``verify --repair`` can find orphans) share.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from weightzoo.errors import StorageError


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make the entries of ``folder`` durable (a rename into it, a new file); raises ``OSError``."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_path(path: Path) -> None:
    """fsync a file, or a folder and every file below it (a staged snapshot)."""
    if path.is_dir():
        for child in path.rglob("*"):
            if child.is_file() and not child.is_symlink():
                _fsync_path(child)
        fsync_dir(path)
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_replace(tmp: str | os.PathLike[str], target: str | os.PathLike[str], *, sync_source: bool = True) -> None:
    """fsync ``tmp`` (unless the caller just did), rename it over ``target`` and fsync the folder.

    ``tmp`` must sit in ``target``'s folder (a rename is atomic only within one file system). A folder
    replaces a missing or empty folder. Raises ``OSError``; the caller decides what to clean up.
    """
    tmp, target = Path(tmp), Path(target)
    if sync_source:
        _fsync_path(tmp)
    os.replace(tmp, target)
    fsync_dir(target.parent)


def temp_name(target: str | os.PathLike[str]) -> Path:
    """A new, unique, empty temporary file next to ``target`` (``.<name>.<random>.tmp``)."""
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    return Path(tmp)


def _discard(tmp: Path) -> None:
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_path(target: str | os.PathLike[str], *, folder: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``target`` to write by name; put it in place durably on success.

    With ``folder=True`` the temporary is a new empty folder (fill it, and it replaces ``target``
    whole; an existing ``target`` folder is removed just before the rename). Any exception removes the
    temporary and re-raises; an ``OSError`` while writing or placing becomes
    :class:`~weightzoo.errors.StorageError` naming ``target``.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if folder:
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
            tmp.chmod(0o755)  # mkdtemp's 0700 is for secrets; a model folder is as readable as mkdir makes it
        else:
            tmp = temp_name(target)
    except OSError as exc:
        raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from exc
    try:
        yield tmp
        if folder and target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        durable_replace(tmp, target)
    except OSError as exc:
        _discard(tmp)
        if isinstance(exc, StorageError):
            raise
        raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from exc
    except BaseException:
        _discard(tmp)
        raise


@contextmanager
def atomic_write(target: str | os.PathLike[str], mode: str = "wb", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary next to ``target`` for writing (``"wb"`` or ``"w"``); on success flush, fsync and
    rename it over ``target``. See :func:`atomic_path` for failures."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(target) as tmp, open(tmp, mode, **open_kwargs) as f:
        yield f  # closed here, then fsynced and renamed by atomic_path


def write_bytes_atomic(target: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``target`` durably; returns the path."""
    with atomic_write(target, "wb") as f:
        f.write(data)
    return Path(target)


def write_json_atomic(target: str | os.PathLike[str], obj: Any, *, indent: int | None = 1) -> Path:
    """Write ``obj`` as JSON (sorted keys, no NaN) to ``target`` durably; returns the path."""
    with atomic_write(target, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=indent, sort_keys=True, allow_nan=False)
    return Path(target)


__all__ = ["atomic_path", "atomic_write", "durable_replace", "fsync_dir", "temp_name", "write_bytes_atomic",
           "write_json_atomic"]
