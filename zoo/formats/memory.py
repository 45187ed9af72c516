"""Checkpoints that are already tensors in memory: an ``nn.Module``, a state dict, or what a safe
``torch.load`` returned.

Each tensor must be a plain strided tensor of a dtype the zoo can store (see :mod:`weightzoo.zoo.formats.dtypes`);
sparse, quantized, meta and nested tensors are refused by name rather than silently densified or dropped.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

from weightzoo.errors import CheckpointError, NoWeightsError

from .base import Checkpoint, TensorInfo, name_problem
from .dtypes import dtype_from_torch, tensor_bytes


def tensor_info(name: str, tensor: torch.Tensor, path: str | os.PathLike[str] | None) -> TensorInfo:
    """The :class:`TensorInfo` of an in-memory tensor, refusing layouts and dtypes the zoo cannot store."""
    problem = name_problem(name)
    if problem:
        raise CheckpointError(path, problem, tensor=name)
    if tensor.layout != torch.strided or tensor.is_quantized or tensor.is_meta or tensor.is_nested:
        kind = ("nested" if tensor.is_nested else "meta" if tensor.is_meta else "quantized" if tensor.is_quantized
                else str(tensor.layout))
        raise CheckpointError(path, f"{kind} tensors are not supported (only dense strided tensors; densify it "
                              "with .to_dense() and save again)", tensor=name)
    try:
        code = dtype_from_torch(tensor.dtype).code
    except KeyError:
        raise CheckpointError(path, f"dtype {tensor.dtype} cannot be stored", tensor=name) from None
    return TensorInfo(name, code, tuple(int(d) for d in tensor.shape))


class TensorDictCheckpoint(Checkpoint):
    """A checkpoint over a dict of in-memory (or torch-mmapped) tensors.

    Args:
        tensors: name → tensor; every value must be a dense tensor of a storable dtype.
        path: the file the tensors came from (``None`` for modules and state dicts).
        format: ``"module"``, ``"state-dict"``, ``"torch-zip"`` or ``"torch-legacy"``.
        metadata: string metadata to carry (e.g. scalars found next to the state dict in a pickle).
    """

    def __init__(self, tensors: Mapping[str, torch.Tensor], *, path: str | os.PathLike[str] | None = None,
                 format: str = "state-dict", metadata: Mapping[str, str] | None = None) -> None:
        p = None if path is None else Path(path)
        infos: list[TensorInfo] = []
        held: dict[str, torch.Tensor] = {}
        for name, t in tensors.items():
            if not isinstance(name, str):
                raise CheckpointError(p, f"state dict key {name!r} is a {type(name).__name__}, not a string")
            if not isinstance(t, torch.Tensor):
                raise CheckpointError(p, f"value is a {type(t).__name__}, not a tensor", tensor=name)
            infos.append(tensor_info(name, t, p))
            held[name] = t.detach()
        if not infos:
            raise NoWeightsError(p, "holds no tensors")
        self._tensors: dict[str, torch.Tensor] | None = held
        super().__init__(path=p, format=format, tensors=infos, metadata=dict(metadata or {}))

    def _get(self, name: str) -> torch.Tensor:
        if self._tensors is None:
            raise CheckpointError(self.path, "checkpoint is closed")
        return self._tensors[name]

    def read_bytes(self, name: str) -> memoryview:
        """The tensor's bytes (a view, without copying, when the tensor is contiguous on the CPU)."""
        return tensor_bytes(self._get(name))

    def read(self, name: str) -> torch.Tensor:
        """A contiguous CPU copy with the true dtype (never the caller's own tensor: writes cannot leak)."""
        t = self._get(name).cpu().resolve_conj().resolve_neg()  # lazily conjugated/negated views: their values
        return t.clone(memory_format=torch.contiguous_format)

    def close(self) -> None:
        self._tensors = None


def from_module(module: torch.nn.Module) -> TensorDictCheckpoint:
    """The module's ``state_dict()`` (parameters and persistent buffers) as a checkpoint (format ``"module"``)."""
    cls = type(module)
    return TensorDictCheckpoint(module.state_dict(), format="module",
                                metadata={"module_class": f"{cls.__module__}.{cls.__qualname__}"})


def from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> TensorDictCheckpoint:
    """A mapping of names to tensors as a checkpoint (format ``"state-dict"``); any other value is refused."""
    return TensorDictCheckpoint(state_dict, format="state-dict")


__all__ = ["TensorDictCheckpoint", "from_module", "from_state_dict", "tensor_info"]
