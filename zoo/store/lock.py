"""The zoo's single-writer lock: an advisory ``flock`` on ``<zoo>/.lock``.

The operating system drops the lock when its holder dies (even on SIGKILL), so a crashed writer never
leaves the zoo locked. Readers never take it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import threading
import time
from pathlib import Path

from weightzoo.errors import StorageError, ZooBusyError, ZooCorruptError, ZooReadOnlyError


class WriterLock:
    """Exclusive writer lock, re-entrant within one thread: other threads sharing the same ``Zoo`` wait
    like other processes do (a thread must not, say, repair away a pack another thread is committing).
    Waits up to ``timeout`` seconds, then raises ZooBusyError."""

    def __init__(self, zoo: Path, timeout: float = 30.0, *, read_only: bool = False) -> None:
        self.path = zoo / ".lock"
        self.timeout = timeout
        self.read_only = read_only  # a zoo this user cannot write: every write is refused up front
        self._fd: int | None = None
        self._depth = 0
        self._thread_lock = threading.RLock()

    def acquire(self) -> None:
        if self.read_only:
            raise ZooReadOnlyError(f"{self.path.parent}: zoo is read-only for this user (reads work; writing needs "
                                   "write permission on the folder and its catalogue)")
        if not self._thread_lock.acquire(timeout=self.timeout if self.timeout > 0 else 0):
            raise ZooBusyError(self.path.parent, "another thread of this process")
        if self._depth:
            self._depth += 1
            return
        try:
            self._acquire_file()
        except BaseException:
            self._thread_lock.release()
            raise

    def _acquire_file(self) -> None:
        fd = _open_lock_file(self.path)
        deadline = time.monotonic() + self.timeout
        delay = 0.01
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    os.close(fd)
                    raise ZooBusyError(self.path.parent, holder) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        self._fd = fd
        self._depth = 1

    def release(self) -> None:
        if not self._depth:
            return
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        self._thread_lock.release()

    @property
    def held(self) -> bool:
        return self._depth > 0

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _open_lock_file(path: Path) -> int:
    """Open (creating) the lock file without ever touching a file that is not ours.

    ``O_NOFOLLOW``: a ``.lock`` symlink to a user's file must not get that file truncated and overwritten
    with ``pid N``. ``O_NONBLOCK``: a FIFO named ``.lock`` must not hang the open. Then the opened file must
    be a regular file with one link (a hard link to a user's file is refused as well).
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ZooCorruptError(f"{path} is a symbolic link; the zoo's lock file must be a plain file (refusing to "
                                  "follow it: it could point at a file of yours) — remove it") from None
        if exc.errno == errno.EISDIR:
            raise ZooCorruptError(f"{path} is a folder; the zoo's lock file must be a plain file — remove it") from None
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise ZooReadOnlyError(f"{path.parent}: zoo is read-only for this user (cannot open its lock file for "
                                   "writing); reading it works, writing needs write permission") from None
        raise StorageError(f"{path}: cannot open the zoo's lock file: {exc.strerror or exc}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
        os.close(fd)
        what = "not a plain file" if not stat.S_ISREG(st.st_mode) else f"a file with {st.st_nlink} hard links"
        raise ZooCorruptError(f"{path} is {what}; the zoo's lock file must be a plain file of its own — remove it")
    return fd


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 64, 0).decode(errors="replace").strip()
    except OSError:
        return ""


__all__ = ["WriterLock"]
