r"""Per-tensor sketches of a model: everything lineage recovery needs, read one tensor at a time.

A :class:`ModelSketch` keeps, for every floating-point tensor ``t`` (integer tensors with a scale companion
are dequantised first, see :func:`dequantised_tensors`):

- a **sketch** :math:`S_t(x) \in \mathbb{R}^{\min(n_t, k)}`: the tensor itself when it has at most ``k``
  elements, else its values at ``k`` fixed coordinates (drawn once from the tensor's name and shape, so
  every model samples a tensor at the same places). :math:`S_t` is linear (an exact mixture of models
  stays exact on it), :math:`(n_t/k)\,\|S_t(a) - S_t(b)\|^2` is an unbiased estimate of
  :math:`\|a - b\|^2`, and quantiles of :math:`|S_t(a) - S_t(b)|` estimate those of :math:`|a - b|`;
- its exact squared norm, excess **kurtosis** :math:`\mathbb{E}[(x-\mu)^4]/\sigma^4 - 3` (MoTHer's
  direction signal) and an int8 **grid residual** (how far the values are from a symmetric per-row
  absmax grid of 255 levels: ≈ 0 for fake-quantised weights, ≈ 0.25 for ordinary floats);
- the store's content hash (exact duplicates and shared frozen tensors) and the stored dtype.

Memory is bounded by ``k`` floats per tensor per model, whatever the model's size (no whole-model
materialisation; one tensor at a time is read, in float64). Nothing is normalised over the set of models.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from weightzoo.errors import AnalysisError

#: Default sketch size per tensor (floats): tensors up to this many elements are kept exactly.
DEFAULT_SKETCH_SIZE = 4096

# A quantised tensor's scale is stored beside it under one of these names.
_SCALE_SUFFIXES = ("_scale", ".scale", "_scales", ".scales", "_absmax")
_FLOAT_BITS = {torch.float64: 64, torch.float32: 32, torch.float16: 16, torch.bfloat16: 16}


@dataclass(frozen=True)
class TensorSketch:
    """The sketch of one tensor (see the module docstring)."""

    shape: tuple[int, ...]
    values: np.ndarray  # float64, length min(numel, k): exact values or those at k fixed coordinates
    sq_norm: float
    kurtosis: float | None  # None for tensors with fewer than 2 dimensions or constant values
    grid_residual: float | None  # None unless a weight matrix (≥ 2 dimensions)
    bits: int  # stored precision (64, 32, 16, 8 for dequantised integers)
    hash: str | None = None  # the store's content hash, when read from a zoo

    @property
    def exact(self) -> bool:
        return self.values.size == math.prod(self.shape)

    @property
    def weight(self) -> float:
        """sqrt(numel / sketch size): scales the sketch so squared distances estimate the tensor's."""
        return math.sqrt(math.prod(self.shape) / max(self.values.size, 1))


@dataclass(frozen=True)
class ModelSketch:
    """Every tensor sketch of one model, plus where it came from (``created_at``: the Hub's upload time)."""

    ref: str
    tensors: Mapping[str, TensorSketch]
    created_at: float | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def signature(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """Architecture signature: sorted (name, shape) of the floating-point tensors."""
        return tuple(sorted((n, t.shape) for n, t in self.tensors.items()))

    @property
    def kurtosis(self) -> float:
        """Mean excess kurtosis over the weight matrices (tensors with ≥ 2 dimensions); 0 if none."""
        ks = [t.kurtosis for t in self.tensors.values() if t.kurtosis is not None]
        return float(np.mean(ks)) if ks else 0.0

    @property
    def grid_residual(self) -> float:
        """Mean int8-grid residual over the weight matrices (≈ 0: fake-quantised)."""
        gs = [t.grid_residual for t in self.tensors.values() if t.grid_residual is not None]
        return float(np.mean(gs)) if gs else 0.25

    @property
    def bits(self) -> int:
        """The lowest stored precision among the weight matrices (all tensors if none)."""
        mats = [t.bits for t in self.tensors.values() if len(t.shape) >= 2]
        return min(mats or [t.bits for t in self.tensors.values()] or [32])

    @property
    def sq_norm(self) -> float:
        return float(sum(t.sq_norm for t in self.tensors.values()))

    def vector(self, names: Sequence[str]) -> np.ndarray:
        """The sketches of ``names`` concatenated, each scaled by its :attr:`TensorSketch.weight` (so
        Euclidean distances between vectors estimate those between the models on those tensors)."""
        if not names:
            return np.zeros(0)
        return np.concatenate([self.tensors[n].values * self.tensors[n].weight for n in names])


class _Coordinates:
    """The sampled coordinates per (name, shape), drawn once and shared by every model of a run."""

    def __init__(self, k: int, cache_elements: int = 1 << 24) -> None:
        self.k = k
        self.cache_left = cache_elements
        self._cache: dict[tuple[str, tuple[int, ...]], np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        key = (name, shape)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        n = math.prod(shape)
        rng = np.random.default_rng(zlib.crc32(f"{name}|{shape}".encode()))
        idx = np.sort(rng.choice(n, size=self.k, replace=False))
        if self.k <= self.cache_left:
            self.cache_left -= self.k
            self._cache[key] = idx
        return idx


def _kurtosis(x: np.ndarray) -> float | None:
    if x.size < 4:
        return None
    c = x - x.mean()
    c2 = c * c  # products, not c ** 4: a float64 power is several times slower
    var = float(c2.mean())
    if var <= 1e-30:
        return None
    return float(np.dot(c2, c2) / c2.size / (var * var) - 3.0)


def _grid_residual(x: np.ndarray, shape: tuple[int, ...]) -> float | None:
    """Mean distance of ``x * 127 / absmax(row)`` to the nearest integer, over at most 64 rows."""
    if len(shape) < 2 or x.size == 0:
        return None
    rows = x.reshape(shape[0], -1)[:64]
    amax = np.abs(rows).max(axis=1, keepdims=True)
    ok = amax[:, 0] > 0
    if not ok.any():
        return None
    q = rows[ok] * (127.0 / amax[ok])
    return float(np.mean(np.abs(q - np.round(q))))


def sketch_tensor(name: str, t: torch.Tensor, *, k: int = DEFAULT_SKETCH_SIZE, coords: _Coordinates | None = None,
                  bits: int | None = None, content_hash: str | None = None) -> TensorSketch:
    """Sketch one floating-point tensor (read once, in float64)."""
    shape = tuple(int(d) for d in t.shape)
    x = t.detach().to(torch.float64).reshape(-1).numpy()
    if not np.isfinite(x).all():
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    values = x.copy() if x.size <= k else x[(coords or _Coordinates(k)).get(name, shape)]
    return TensorSketch(shape=shape, values=values, sq_norm=float(x @ x),
                        kurtosis=_kurtosis(x) if len(shape) >= 2 else None,
                        grid_residual=_grid_residual(x, shape), bits=bits or _FLOAT_BITS.get(t.dtype, 32),
                        hash=content_hash)


def _scale_of(name: str, names: set[str]) -> str | None:
    stems = [name] + ([name[: -len(".weight")]] if name.endswith(".weight") else [])
    for stem in stems:
        for suffix in _SCALE_SUFFIXES:
            if stem + suffix in names:
                return stem + suffix
    return None


def dequantised_tensors(sd: Mapping[str, torch.Tensor], names: Iterable[str] | None = None
                        ) -> Iterator[tuple[str, torch.Tensor, int]]:
    """``(name, float tensor, stored bits)`` for every floating-point tensor of ``sd``, one at a time.

    Integer tensors with a scale companion (``W`` int8 beside ``W_scale``, ``W.scale`` or, for
    ``m.weight``, ``m.weight_scale`` / ``m.scale``; the scale broadcasts per row or per tensor) come back
    dequantised as ``W * scale`` under the name ``W`` with 8 bits; the scale tensors themselves, and other
    integer tensors (counters, indices), are left out.
    """
    all_names = list(sd.keys()) if names is None else list(names)
    present = set(all_names)
    scales = {s for n in all_names if (s := _scale_of(n, present)) is not None and s != n}
    for n in all_names:
        if n in scales:
            continue
        t = sd[n]
        if t.dtype.is_floating_point:
            yield n, t, _FLOAT_BITS.get(t.dtype, 8)
        elif t.dtype in (torch.int8, torch.uint8, torch.int16, torch.int32) and (s := _scale_of(n, present)):
            scale = sd[s].to(torch.float64)
            q = t.to(torch.float64)
            if t.dtype == torch.uint8:
                q = q - 128.0  # unsigned storage of a symmetric grid
            while scale.dim() < q.dim():
                scale = scale.unsqueeze(-1)
            try:
                yield n, q * scale, t.element_size() * 8
            except RuntimeError as exc:
                raise AnalysisError(f"tensor {n!r}: scale {s!r} of shape {tuple(sd[s].shape)} does not broadcast "
                                    f"over {tuple(t.shape)}") from exc


def sketch_state_dict(ref: str, sd: Mapping[str, torch.Tensor], *, k: int = DEFAULT_SKETCH_SIZE,
                      coords: _Coordinates | None = None, content_hashes: Mapping[str, str | None] | None = None,
                      created_at: float | None = None, metadata: Mapping[str, Any] | None = None) -> ModelSketch:
    """Sketch every (dequantised) floating-point tensor of a lazy state dict, one tensor at a time."""
    if k < 1:
        raise AnalysisError(f"sketch size must be at least 1, not {k}")
    coords = coords or _Coordinates(k)
    tensors: dict[str, TensorSketch] = {}
    for name, t, bits in dequantised_tensors(sd):
        tensors[name] = sketch_tensor(name, t, k=k, coords=coords, bits=bits,
                                      content_hash=(content_hashes or {}).get(name))
        del t
    return ModelSketch(ref=ref, tensors=tensors, created_at=created_at, metadata=dict(metadata or {}))


_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}")


def hub_created_at(metadata: Mapping[str, Any]) -> float | None:
    """The Hub's upload time (``createdAt``, recorded by the crawler) as a POSIX time; ``None`` if unknown.

    Only the Hub's time counts: the zoo's own ``created_at`` column is the local ingest time, which says
    nothing about which model came first.
    """
    from datetime import datetime

    for key in ("created_at", "createdAt"):
        v = metadata.get(key)
        if isinstance(v, str) and _ISO.match(v):
            try:
                return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
            except ValueError:
                return None
    return None


def sketch_zoo(zoo: Any, refs: Iterable[str] | None = None, *, k: int = DEFAULT_SKETCH_SIZE,
               progress: bool = False) -> list[ModelSketch]:
    """Sketch the ingested models of an open :class:`~weightzoo.zoo.store.Zoo` (all of them by default)."""
    from tqdm.auto import tqdm

    records = zoo.models(ingested=True) if refs is None else [zoo.model(r) for r in refs]
    coords = _Coordinates(k)
    out = []
    for rec in tqdm(records, desc="sketching", unit="model", disable=not progress):
        table = {t.name: t.hash for t in zoo.tensors(rec.ref)}
        out.append(sketch_state_dict(rec.ref, zoo.state_dict(rec.ref), k=k, coords=coords, content_hashes=table,
                                     created_at=hub_created_at(rec.metadata), metadata=rec.metadata))
    return out


__all__ = ["DEFAULT_SKETCH_SIZE", "ModelSketch", "TensorSketch", "dequantised_tensors", "hub_created_at",
           "sketch_state_dict", "sketch_tensor", "sketch_zoo"]
