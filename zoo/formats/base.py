"""The reader interface every checkpoint format implements.

A :class:`Checkpoint` knows its tensor table (names, dtypes, shapes) as soon as it is opened — from
validated headers, never by trusting them blindly — and hands out tensor bytes one tensor at a time, so
the store can stream a checkpoint of any size with bounded memory.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from .dtypes import dtype_from_code, tensor_from_bytes

#: Most dimensions a tensor may have (torch's and numpy's limit; HDF5 stores at most 32, see the packs).
MAX_RANK = 64
#: Largest dimension, element count and byte size (torch sizes are int64: ``[2**64, 0]`` has 0 elements
#: but cannot be built, so it would ingest and then fail every export).
MAX_EXTENT = 2**63 - 1


def shape_problem(shape: tuple[int, ...] | list[int], itemsize: int) -> str | None:
    """Why a declared shape cannot be a tensor here, or ``None``: rank above :data:`MAX_RANK`, a dimension
    (zero-element tensors included) or the byte size above :data:`MAX_EXTENT`."""
    if len(shape) > MAX_RANK:
        return f"rank {len(shape)} exceeds the limit of {MAX_RANK} dimensions"
    if any(d > MAX_EXTENT for d in shape):
        return f"a dimension of shape {list(shape)[:8]} exceeds 2**63 - 1 (torch sizes are int64)"
    if math.prod(shape) * itemsize > MAX_EXTENT:
        return f"shape {list(shape)[:8]} declares more than 2**63 - 1 bytes"
    return None


def name_problem(name: str) -> str | None:
    """Why a tensor name cannot be stored, or ``None``. Names are opaque strings, stored and exported
    byte for byte ('/', '..', empty and Unicode normalisation twins included: they never become paths), but a
    NUL (C readers of the name would cut it short, so two names could alias) and a lone surrogate (not
    Unicode: SQLite cannot encode it) are refused."""
    if "\x00" in name:
        return "tensor name contains a NUL character"
    if not name.isascii():
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            return "tensor name is not valid Unicode (a lone surrogate)"
    return None


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's entry in a tensor table: name, safetensors dtype code and shape."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        dt = dtype_from_code(self.dtype)  # raises KeyError for unknown codes
        if any((not isinstance(d, int)) or d < 0 for d in self.shape):
            raise ValueError(f"tensor {self.name!r}: invalid shape {self.shape}")
        problem = shape_problem(self.shape, dt.itemsize)
        if problem:
            raise ValueError(f"tensor {self.name!r}: {problem}")

    @classmethod
    def unchecked(cls, name: str, dtype: str, shape: tuple[int, ...]) -> TensorInfo:
        """A record of values a caller has already validated (a parsed header, a catalogue row): skips
        ``__post_init__``, which would otherwise dominate the cost of a million-tensor table."""
        info = object.__new__(cls)
        object.__setattr__(info, "name", name)
        object.__setattr__(info, "dtype", dtype)
        object.__setattr__(info, "shape", shape)
        return info

    # Cached (in the instance __dict__, which a frozen dataclass allows): the store asks for these several
    # times per tensor, and a table may hold a million.
    @functools.cached_property
    def numel(self) -> int:
        return math.prod(self.shape)

    @functools.cached_property
    def nbytes(self) -> int:
        return self.numel * dtype_from_code(self.dtype).itemsize


@dataclass
class Checkpoint(ABC):
    """An opened checkpoint: its tensor table up front, its bytes on demand.

    Attributes:
        path: where it was read from (``None`` for in-memory modules and state dicts).
        format: ``"safetensors"``, ``"safetensors-sharded"``, ``"torch-zip"``, ``"torch-legacy"``,
            ``"state-dict"`` or ``"module"``; a Hugging Face snapshot folder reports the format of its
            weight files and sets ``config``.
        tensors: the tensor table, in file order.
        config: the snapshot's ``config.json`` (``None`` when there is none).
        metadata: free-form string metadata from the file (the safetensors ``__metadata__``).
    """

    path: Path | None
    format: str
    tensors: list[TensorInfo]
    config: dict[str, Any] | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    # --- bytes -------------------------------------------------------------------------------------
    @abstractmethod
    def read_bytes(self, name: str) -> memoryview:
        """The raw little-endian C-order bytes of one tensor (may be a view of a memory map)."""

    def read(self, name: str) -> torch.Tensor:
        """One tensor with its true dtype and shape (a copy that owns its memory)."""
        info = self.info(name)
        return tensor_from_bytes(self.read_bytes(name), info.dtype, info.shape)

    def close(self) -> None:  # noqa: B027 - a hook: not every checkpoint holds files or maps
        """Release files and maps; further reads fail."""

    # --- conveniences ------------------------------------------------------------------------------
    def info(self, name: str) -> TensorInfo:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    def state_dict(self) -> Mapping[str, torch.Tensor]:
        """A lazy mapping name → tensor; each access reads one tensor."""
        return _CheckpointStateDict(self)

    @property
    def parameter_count(self) -> int:
        return sum(t.numel for t in self.tensors)

    @property
    def architecture(self) -> str | None:
        """The HF architecture class name (``config["architectures"][0]``) when there is a config."""
        archs = (self.config or {}).get("architectures")
        return archs[0] if isinstance(archs, list) and archs and isinstance(archs[0], str) else None

    @property
    def model_type(self) -> str | None:
        mt = (self.config or {}).get("model_type")
        return mt if isinstance(mt, str) else None

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@runtime_checkable
class TensorTable(Protocol):
    """Anything that knows its tensor table without reading tensor bytes (readers, zoo models, merges)."""

    def tensor_infos(self) -> list[TensorInfo]: ...


class LazyStateDict(Mapping[str, torch.Tensor], ABC):
    """A name → tensor mapping whose names are known up front and whose tensors are read on access.

    The one base of every lazy state dict (checkpoint readers, zoo models, merges, applied task vectors):
    subclasses give the names in order, :meth:`_load` (one tensor) and :meth:`tensor_infos` (the table,
    no bytes read), so streaming writers and analyses learn shapes and dtypes for free. Each read returns
    a new tensor the caller owns.
    """

    def __init__(self, names: Iterable[str]) -> None:
        self._names = list(names)
        self._set = set(self._names)

    @abstractmethod
    def _load(self, name: str) -> torch.Tensor:
        """Read (or compute) one tensor; ``name`` is known to be present."""

    @abstractmethod
    def tensor_infos(self) -> list[TensorInfo]:
        """The tensor table (name, dtype code, shape) in order, without reading any bytes."""

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self._set:
            raise KeyError(key)
        return self._load(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, key: object) -> bool:
        return key in self._set

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {len(self._names)} tensors>"


class _CheckpointStateDict(LazyStateDict):
    def __init__(self, ckpt: Checkpoint) -> None:
        super().__init__(t.name for t in ckpt.tensors)
        self._ckpt = ckpt

    def _load(self, name: str) -> torch.Tensor:
        return self._ckpt.read(name)

    def tensor_infos(self) -> list[TensorInfo]:
        return list(self._ckpt.tensors)

    @property
    def checkpoint(self) -> Checkpoint:
        """The checkpoint read from (its ``read_bytes`` is zero-copy for memory-mapped formats)."""
        return self._ckpt


__all__ = ["MAX_EXTENT", "MAX_RANK", "Checkpoint", "LazyStateDict", "TensorInfo", "TensorTable", "name_problem",
           "shape_problem"]
