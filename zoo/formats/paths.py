"""Containment of file names that come from inside a checkpoint (index ``weight_map`` entries, folder
listings): no ``..``, no absolute paths, no symlink that resolves outside the snapshot.

A checkpoint folder is untrusted input. An index whose ``weight_map`` says ``"../../home/me/.ssh/id_rsa"``
or a ``model.safetensors`` symlink to ``/etc/shadow`` must not make us read (and then store, and export)
files the user never meant to hand over.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePosixPath, PureWindowsPath

from weightzoo.errors import (
    CheckpointReadError,
    NoWeightsError,
    UnsafeCheckpointError,
    UnsupportedFormatError,
)

_SPECIAL = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
            (stat.S_ISBLK, "a block device"))


def read_error(path: str | os.PathLike[str], exc: OSError, what: str = "file") -> CheckpointReadError:
    """The typed error for an ``OSError`` met while reading untrusted input (one line, no errno soup)."""
    if exc.errno == errno.ELOOP:
        reason = f"{what} is a symlink loop (too many levels of symbolic links)"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        reason = f"{what} is not readable by this user (permission denied)"
    else:
        reason = f"cannot read {what}: {exc.strerror or exc}"
    return CheckpointReadError(path, reason)


def check_input_path(path: str | os.PathLike[str], what: str = "file") -> os.stat_result:
    """``stat`` an input path (following symlinks) and refuse what must never be opened for reading.

    A FIFO without a writer blocks ``open`` forever; ``/dev/zero`` never ends; a socket cannot be read. So
    anything but a regular file or a folder is refused *before* it is opened.

    Raises:
        NoWeightsError: no such path (a dangling symlink included).
        CheckpointReadError: a symlink loop, permission denied, an I/O error.
        UnsupportedFormatError: a FIFO, socket or device.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise NoWeightsError(path, f"no such {what}") from None
    except (NotADirectoryError, ValueError) as exc:  # a file used as a folder; a NUL in the name
        raise NoWeightsError(path, f"no such {what} ({exc})") from None
    except OSError as exc:
        raise read_error(path, exc, what) from None
    for test, kind in _SPECIAL:
        if test(st.st_mode):
            raise UnsupportedFormatError(path, f"{what} is {kind}, not a regular file; refused before opening it "
                                         "(reading it could block forever or never end)")
    return st


def allowed_root(folder: Path) -> Path:
    """The folder that files referenced from ``folder`` must stay inside (symlinks resolved).

    Normally ``folder`` itself. A Hugging Face cache snapshot (``.../models--org--name/snapshots/<rev>/``)
    holds symlinks into ``../../blobs``, so there the root is the repository's cache folder
    (``models--org--name``): links into its blobs are fine, links anywhere else are not.
    """
    real = folder.resolve()
    parent = real.parent
    if parent.name == "snapshots" and parent.parent.name.startswith(("models--", "datasets--", "spaces--")):
        return parent.parent
    return real


def safe_member(folder: Path, name: str, *, root: Path | None = None, what: str = "file") -> Path:
    """``folder / name``, after checking that ``name`` cannot reach outside ``root``.

    Args:
        folder: the folder ``name`` is relative to (the snapshot or the index's folder).
        name: a relative POSIX path taken from checkpoint content.
        root: the containment root (default :func:`allowed_root` of ``folder``).
        what: what ``name`` is ("weight_map entry", "weights file"), for the message.

    Raises:
        UnsafeCheckpointError: ``name`` is empty, absolute, contains ``..`` or a NUL, or resolves
            (following symlinks) to a path outside ``root``.
    """
    root = allowed_root(folder) if root is None else root.resolve()
    if not isinstance(name, str) or not name or "\x00" in name:
        raise UnsafeCheckpointError(folder, f"{what} {name!r} is not a usable file name")
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or name.startswith("\\"):
        raise UnsafeCheckpointError(folder, f"{what} {name!r} is an absolute path (only names inside the folder)")
    if ".." in posix.parts or ".." in windows.parts:
        raise UnsafeCheckpointError(folder, f"{what} {name!r} contains '..' (only names inside the folder)")
    candidate = folder / posix
    real = Path(os.path.realpath(candidate))
    if not real.is_relative_to(root):
        raise UnsafeCheckpointError(
            folder, f"{what} {name!r} resolves to {real}, outside {root} (a symlink escaping the snapshot)"
        )
    return candidate


__all__ = ["allowed_root", "check_input_path", "read_error", "safe_member"]
