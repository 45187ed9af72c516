"""Weight sources for analyses: open any model reference lazily and learn its tensors' shapes and dtypes.

A source is a zoo model name, a checkpoint path, an ``nn.Module``, a :class:`~weightzoo.zoo.formats.Checkpoint`
or a state dict; :func:`open_source` turns each into a lazy name → tensor mapping through the store's one
resolver (:func:`weightzoo.zoo.store.load_state_dict`). Task vectors, merging, LoRA and aTLAS read their
inputs through this module.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from weightzoo.errors import InvalidOptionError, NoWeightsError
from weightzoo.zoo.formats.base import LazyStateDict, TensorInfo, TensorTable
from weightzoo.zoo.formats.dtypes import dtype_from_code, dtype_from_torch

if TYPE_CHECKING:
    from weightzoo.zoo.store import ZooLike


def open_source(source: Any, *, zoo: ZooLike | None = None) -> Mapping[str, torch.Tensor]:
    """A lazy name → tensor mapping for a zoo model name, checkpoint path, module, Checkpoint or dict."""
    from weightzoo.zoo.store.resolve import load_state_dict

    if getattr(source, "is_task_vector", False):
        raise TypeError("expected a model (name, path, module or state dict), got a TaskVector")
    return load_state_dict(source, zoo=zoo)


def source_label(source: Any, index: int | None = None) -> str:
    """A short human label for an input, used in reports and error messages."""
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    return f"model[{index}]" if index is not None else type(source).__name__


@dataclass(frozen=True)
class TensorSpec:
    """Shape and dtype of one tensor, known without reading its bytes where the source allows it."""

    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def is_float(self) -> bool:
        return self.dtype.is_floating_point

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


class SpecStateDict(LazyStateDict):
    """A lazy state dict whose table is ``specs`` (name → :class:`TensorSpec`, known before any read):
    the base of merges, applied task vectors and aTLAS results. Subclasses implement ``_load``."""

    def __init__(self, specs: Mapping[str, TensorSpec]) -> None:
        self.specs = dict(specs)
        super().__init__(self.specs)

    def tensor_infos(self) -> list[TensorInfo]:
        return [TensorInfo(n, dtype_from_torch(s.dtype).code, s.shape) for n, s in self.specs.items()]


def tensor_specs(sd: Mapping[str, torch.Tensor]) -> dict[str, TensorSpec]:
    """Name → :class:`TensorSpec` for every tensor of ``sd``, in its order.

    Uses the tensor table of a checkpoint or zoo model when the mapping exposes one (no bytes read); an
    in-memory dict is inspected directly; any other mapping is read tensor by tensor (one at a time).
    """
    if isinstance(sd, TensorTable):  # readers, zoo models, merges: the table, no bytes read
        out: dict[str, TensorSpec] = {}
        for info in sd.tensor_infos():
            code = getattr(info, "dtype", None)
            dt = dtype_from_code(code).torch if isinstance(code, str) else code
            if not isinstance(dt, torch.dtype):
                break
            out[info.name] = TensorSpec(tuple(int(d) for d in info.shape), dt)
        if set(out) == set(sd.keys()):
            return {k: out[k] for k in sd.keys()}
    specs = {}
    for name in sd:
        t = sd[name]
        specs[name] = TensorSpec(tuple(t.shape), t.dtype)
    return specs


def owns_reads(sd: Mapping[str, torch.Tensor]) -> bool:
    """Whether each read of ``sd`` returns a new tensor (checkpoint readers, zoo models) rather than the
    caller's own (a module's state dict): only then may a read be modified in place."""
    return isinstance(sd, TensorTable)


def read_as(sd: Mapping[str, torch.Tensor], name: str, dtype: torch.dtype) -> torch.Tensor:
    """``sd[name]`` in ``dtype`` as a tensor the caller owns (copied only when it would alias the input)."""
    t = sd[name]
    if t.dtype != dtype:
        return t.to(dtype)
    return t if owns_reads(sd) else t.clone()


def compute_dtype(*dtypes: torch.dtype) -> torch.dtype:
    """The dtype arithmetic runs in: float64 if any input is float64, else float32 (bf16/f16 upcast)."""
    return torch.float64 if torch.float64 in dtypes else torch.float32


def find_weights_file(folder: Path, stems: Sequence[str]) -> Path:
    """The first existing ``<stem>.safetensors`` / ``.bin`` / ``.pt`` in ``folder``."""
    for stem in stems:
        for ext in (".safetensors", ".bin", ".pt", ".pth"):
            p = folder / f"{stem}{ext}"
            if p.is_file():
                return p
    raise NoWeightsError(folder, f"no {'/'.join(stems)} weights file (.safetensors, .bin, .pt) in the folder")


def read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise InvalidOptionError(f"{path}: cannot read JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidOptionError(f"{path}: expected a JSON object")
    return data


def pattern_value(patterns: Mapping[str, Any], module: str, default: Any) -> Any:
    """PEFT's rank/alpha pattern lookup: the first key that is the module name or matches its end."""
    for key, value in patterns.items():
        if key == module or re.match(rf"(.*\.)?{key}$", module):
            return value
    return default


__all__ = ["SpecStateDict", "TensorSpec", "compute_dtype", "find_weights_file", "open_source", "owns_reads", "pattern_value",
           "read_as", "read_json", "source_label", "tensor_specs"]
