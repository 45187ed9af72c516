"""The zoo's single-writer lock: an advisory ``flock`` on ``<zoo>/.lock``.

The operating system drops the lock when its holder dies (even on SIGKILL), so a crashed writer never
leaves the zoo locked. Readers never take it.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

from weightzoo.errors import ZooBusyError


class WriterLock:
    """Exclusive writer lock, re-entrant within one thread: other threads sharing the same ``Zoo`` wait
    like other processes do (a thread must not, say, repair away a pack another thread is committing).
    Waits up to ``timeout`` seconds, then raises ZooBusyError."""

    def __init__(self, zoo: Path, timeout: float = 30.0) -> None:
        self.path = zoo / ".lock"
        self.timeout = timeout
        self._fd: int | None = None
        self._depth = 0
        self._thread_lock = threading.RLock()

    def acquire(self) -> None:
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
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
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


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 64, 0).decode(errors="replace").strip()
    except OSError:
        return ""


__all__ = ["WriterLock"]
