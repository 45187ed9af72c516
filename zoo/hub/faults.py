"""Fault injection for the Hub mirror: deterministic rate limits, errors, dropped and truncated
responses and slow answers, so tests exercise the crawler's retries without a real network."""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from weightzoo.errors import InvalidOptionError

FAULT_KINDS = ("rate-limit", "error", "drop", "truncate", "slow")

@dataclass(frozen=True)
class Fault:
    """One injected fault, fired deterministically on requests whose path matches ``path`` (a regex).

    Args:
        kind: ``"rate-limit"`` (429 + ``Retry-After``), ``"error"`` (``status``, default 500), ``"drop"``
            (close the connection without a response), ``"truncate"`` (announce the full length, send
            half the body, close) or ``"slow"`` (wait ``delay`` seconds, then answer normally).
        path: regex searched in the request target (path and query); ``""`` matches everything.
        every: fire on every ``every``-th matching request (1 = all of them).
        times: fire at most this many times (``None``: no limit).
        probability: fire only with this probability (seeded: the same run fires the same requests).
        method: only ``"GET"`` or ``"HEAD"`` requests (``None``: both).
    """

    kind: str
    path: str = ""
    every: int = 1
    times: int | None = None
    probability: float = 1.0
    method: str | None = None
    status: int = 500
    retry_after: float = 1.0
    delay: float = 0.05

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise InvalidOptionError(f"Fault kind {self.kind!r} is not one of {', '.join(FAULT_KINDS)}")
        if self.every < 1 or (self.times is not None and self.times < 0) or not 0 <= self.probability <= 1:
            raise InvalidOptionError(f"Fault({self.kind}): every >= 1, times >= 0 and 0 <= probability <= 1")
        re.compile(self.path)

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """``"kind[:key=value,...]"``, e.g. ``"rate-limit:path=/resolve/,every=3,retry_after=1"``."""
        kind, _, rest = spec.partition(":")
        kw: dict[str, Any] = {}
        types = {"every": int, "times": int, "status": int, "probability": float, "retry_after": float,
                 "delay": float, "path": str, "method": str}
        for item in filter(None, rest.split(",")):
            key, sep, value = item.partition("=")
            if not sep or key not in types:
                raise InvalidOptionError(f"fault option {item!r}: expected key=value with key in {sorted(types)}")
            try:
                kw[key] = types[key](value)
            except ValueError as exc:
                raise InvalidOptionError(f"fault option {item!r}: {exc}") from None
        return cls(kind, **kw)


class FaultPlan:
    """Faults with their counters; :meth:`pick` decides (thread-safely, reproducibly) which fire."""

    def __init__(self, faults: Iterable[Fault] = (), seed: int = 0) -> None:
        self.faults = list(faults)
        self._seen = [0] * len(self.faults)
        self._fired = [0] * len(self.faults)
        self._rngs = [random.Random(seed * 1000 + i) for i in range(len(self.faults))]
        self._lock = threading.Lock()

    def pick(self, method: str, target: str) -> list[Fault]:
        out = []
        with self._lock:
            for i, f in enumerate(self.faults):
                if (f.method and f.method != method) or not re.search(f.path, target):
                    continue
                self._seen[i] += 1
                if self._seen[i] % f.every or (f.times is not None and self._fired[i] >= f.times):
                    continue
                if f.probability < 1 and self._rngs[i].random() >= f.probability:
                    continue
                self._fired[i] += 1
                out.append(f)
        return out

    @property
    def fired(self) -> list[int]:
        """How many times each fault fired."""
        return list(self._fired)


__all__ = ["FAULT_KINDS", "Fault", "FaultPlan"]
