"""Streaming safetensors writer: header first (offsets from the tensor table), then one tensor at a time.

Memory stays at one tensor whatever the model size. Output goes to a temporary file in the same folder,
is fsynced and renamed into place, so a reader never sees half a file. Sharded output follows the Hugging
Face layout (``model-00001-of-00003.safetensors`` + ``model.safetensors.index.json``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch

from ..dtypes import dtype_from_torch, tensor_bytes
from .base import TensorInfo

BytesFn = Callable[[str], "memoryview | bytes"]


def write_safetensors(path: str | os.PathLike[str], infos: Sequence[TensorInfo], get_bytes: BytesFn,
                      metadata: Mapping[str, str] | None = None) -> Path:
    """Write tensors ``infos`` (bytes from ``get_bytes(name)``) to one safetensors file, atomically."""
    out = Path(path)
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    for info in infos:
        header[info.name] = {"dtype": info.dtype, "shape": list(info.shape), "data_offsets": [offset, offset + info.nbytes]}
        offset += info.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format aligns the data section to 8 bytes
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(len(raw).to_bytes(8, "little"))
            f.write(raw)
            for info in infos:
                data = get_bytes(info.name)
                if len(data) != info.nbytes:
                    raise ValueError(f"tensor {info.name!r}: got {len(data)} bytes, expected {info.nbytes}")
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def write_sharded(folder: str | os.PathLike[str], infos: Sequence[TensorInfo], get_bytes: BytesFn, *,
                  max_shard_bytes: int, metadata: Mapping[str, str] | None = None,
                  prefix: str = "model") -> list[Path]:
    """Write shards of at most ``max_shard_bytes`` (a bigger tensor gets a shard of its own) plus the index."""
    if max_shard_bytes <= 0:
        raise ValueError("max_shard_bytes must be positive")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    shards: list[list[TensorInfo]] = [[]]
    size = 0
    for info in infos:
        if shards[-1] and size + info.nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(info)
        size += info.nbytes
    n = len(shards)
    files, weight_map = [], {}
    for i, shard in enumerate(shards, 1):
        fname = f"{prefix}-{i:05d}-of-{n:05d}.safetensors"
        files.append(write_safetensors(out / fname, shard, get_bytes, metadata))
        weight_map.update({t.name: fname for t in shard})
    index = {"metadata": {"total_size": sum(t.nbytes for t in infos)}, "weight_map": weight_map}
    tmp = out / f".{prefix}.safetensors.index.json.tmp"
    tmp.write_text(json.dumps(index, indent=2))
    os.replace(tmp, out / f"{prefix}.safetensors.index.json")
    return files


def save_state_dict(state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike[str], *,
                    max_shard_bytes: int | None = None, metadata: Mapping[str, str] | None = None) -> list[Path]:
    """Save a (possibly lazy) state dict as safetensors, reading one tensor at a time.

    With ``max_shard_bytes`` the output is a folder of shards; otherwise ``path`` is one file. Lazy
    mappings (a zoo model, a checkpoint) are read twice per tensor at most: once for the table
    (dtype and shape only where the mapping offers them cheaply), once for the bytes.
    """
    infos = _table(state_dict)

    def get(name: str) -> memoryview:
        return tensor_bytes(state_dict[name])

    if max_shard_bytes is not None:
        return write_sharded(path, infos, get, max_shard_bytes=max_shard_bytes, metadata=metadata)
    return [write_safetensors(path, infos, get, metadata)]


def _table(state_dict: Mapping[str, torch.Tensor]) -> list[TensorInfo]:
    table = getattr(state_dict, "tensor_infos", None)
    if callable(table):
        return list(table())
    return [TensorInfo(k, dtype_from_torch(v.dtype).code, tuple(v.shape)) for k, v in state_dict.items()]


__all__ = ["save_state_dict", "write_safetensors", "write_sharded"]
