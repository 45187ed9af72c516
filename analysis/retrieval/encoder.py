"""The interface every retrieval encoder implements, and the one resolver of encoder names.

An encoder maps a :class:`~weightzoo.zoo.graphs.ComputeGraph` to a vector compared by cosine similarity.
*Dense* encoders (:class:`~.op_histogram.OpHistogramEncoder`, :class:`~.learned.LearnedEncoder`) return
fixed-length vectors; the *sparse* :class:`~.wl.WLEncoder` returns token counts that the index weights
by tf-idf over its own corpus. Its :meth:`Encoder.fingerprint` (name, version, settings, and a hash of
them and of any weights) is stored with an index, so an index is never searched with another encoder.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from weightzoo.zoo.graphs import ComputeGraph


class Encoder(ABC):
    """Architecture encoder: ComputeGraph → vector (``kind == "dense"``) or token counts (``"sparse"``)."""

    name: ClassVar[str]
    version: ClassVar[int]
    kind: ClassVar[str]

    def settings(self) -> dict[str, Any]:
        """Everything that changes the output besides the graph (JSON-able)."""
        return {}

    def fingerprint(self) -> dict[str, Any]:
        """``{"name", "version", "settings", "hash"}``; two encoders with equal hashes encode identically."""
        body = {"name": self.name, "version": self.version, "settings": self.settings()}
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
        return {**body, "hash": digest}

    def encode(self, graphs: Sequence[ComputeGraph]) -> np.ndarray:
        """``[B, D]`` float32 L2-normalised vectors (dense encoders)."""
        raise NotImplementedError(f"{type(self).__name__} is a {self.kind} encoder")

    def tokens(self, graph: ComputeGraph) -> Counter[str]:
        """Token counts of one graph (sparse encoders)."""
        raise NotImplementedError(f"{type(self).__name__} is a {self.kind} encoder")

    def describe(self, token: str) -> str:
        """A readable description of a token (sparse encoders)."""
        return token


class DenseEncoder(Encoder):
    kind = "dense"

    @abstractmethod
    def encode(self, graphs: Sequence[ComputeGraph]) -> np.ndarray: ...


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


__all__ = ["DenseEncoder", "Encoder", "l2_normalise"]
