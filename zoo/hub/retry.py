"""Retries the crawler owns: 429 with ``Retry-After``, 5xx, timeouts, dropped and truncated responses.

``huggingface_hub`` 2.4 retries less than one might think (``model_info`` and range GETs not at all,
``hf_hub_download`` only on 408/429), so every call the crawler makes goes through :class:`Retrier`:
exponential backoff ``min(max_delay, base_delay · 2^(k-1))`` with equal jitter (a seeded RNG, so tests
replay), and a server's ``Retry-After`` (seconds or an HTTP date, capped at ``max_retry_after``) honoured
as given. Errors that retrying cannot fix (404, 401, a gated repo, a corrupt header) are raised at once.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from weightzoo.errors import InvalidOptionError, TruncatedResponseError

T = TypeVar("T")

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: ``attempts`` tries in all, backoff from ``base_delay`` doubling up to ``max_delay``.

    Args:
        attempts: tries per call, the first included (default 6).
        base_delay: first backoff in seconds (default 0.5).
        max_delay: cap on one backoff (default 30 s).
        max_retry_after: cap on a server-requested wait (default 120 s).
        timeout: seconds a request may stall before it counts as a timeout (default 30).
        seed: seeds the jitter (``None``: from the system).
    """

    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0
    timeout: float = 30.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base_delay < 0 or self.max_delay < 0 or self.timeout <= 0:
            raise InvalidOptionError(f"RetryPolicy: attempts >= 1, delays >= 0 and timeout > 0 (got {self})")


def _causes(exc: BaseException) -> list[BaseException]:
    out, seen = [], set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def classify(exc: BaseException) -> tuple[str | None, float | None]:
    """``(kind, wait)`` for a retryable error (kind: ``rate-limited``, ``server-error``, ``timeout``,
    ``connection``, ``truncated``; wait: the server's ``Retry-After``), ``(None, None)`` otherwise."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    for e in _causes(exc):
        if isinstance(e, OfflineModeIsEnabled):
            return None, None
        if isinstance(e, HfHubHTTPError):
            resp = e.response
            status = getattr(resp, "status_code", None)
            if status == 429:
                return "rate-limited", _retry_after(resp.headers.get("Retry-After"))
            if status in RETRY_STATUS:
                return "server-error", None
            return None, None
        if isinstance(e, httpx2.TimeoutException):
            return "timeout", None
        if isinstance(e, httpx2.TransportError):
            return "connection", None
        if isinstance(e, TruncatedResponseError):
            return "truncated", None
    return None, None


class Retrier:
    """Runs calls under a :class:`RetryPolicy`, counting retries by kind (thread-safe)."""

    def __init__(self, policy: RetryPolicy | None = None, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.policy = policy or RetryPolicy()
        self._rng = random.Random(self.policy.seed)
        self._sleep = sleep
        self._lock = threading.Lock()
        self.retries: Counter[str] = Counter()

    def delay(self, attempt: int, server_wait: float | None) -> float:
        """Seconds to wait before try ``attempt + 1``."""
        p = self.policy
        if server_wait is not None:
            return min(server_wait, p.max_retry_after)
        backoff = min(p.max_delay, p.base_delay * 2 ** (attempt - 1))
        with self._lock:
            return backoff / 2 + self._rng.random() * backoff / 2

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()``, retried on retryable errors; the last error is raised when tries run out."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except Exception as exc:
                kind, wait = classify(exc)
                if kind is None or attempt >= self.policy.attempts:
                    raise
                with self._lock:
                    self.retries[kind] += 1
                self._sleep(self.delay(attempt, wait))


__all__ = ["RETRY_STATUS", "Retrier", "RetryPolicy", "TruncatedResponseError", "classify"]
