"""A streaming safetensors writer: the header first, from the tensor table, then each tensor's bytes.

The safetensors layout is an 8-byte little-endian header length, a JSON header mapping each name to its
``dtype``, ``shape`` and ``data_offsets`` (relative to the end of the header), then the raw C-order,
little-endian bytes. All offsets follow from the tensor table alone, so the header is written before any
tensor is computed and each tensor is written (then dropped) as soon as it exists: writing a model costs
the memory of one tensor. Over ``max_shard_size`` bytes the tensors go to several files
``model-00001-of-0000N.safetensors`` with a ``model.safetensors.index.json`` (the Hugging Face layout).

Files are written to a unique temporary name in the target folder, fsynced and renamed into place.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import StorageError, WeightzooError
from .task_vectors import TensorSpec, tensor_specs

_ALIGN = 8  # header padded with spaces so tensor data starts 8-byte aligned (as the reference writer does)


def _code(dtype: torch.dtype) -> str:
    from ..zoo.dtypes import dtype_from_torch

    return dtype_from_torch(dtype).code


def parse_size(text: str | int) -> int:
    """Bytes from ``"5GB"``, ``"500MiB"``, ``"2e9"`` or an int (decimal units as in Hugging Face)."""
    if isinstance(text, int):
        return text
    s = str(text).strip().upper().replace(" ", "")
    units = {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "KB": 10**3, "MB": 10**6, "GB": 10**9,
             "TB": 10**12, "B": 1}
    for u, mult in units.items():
        if s.endswith(u):
            try:
                return int(float(s[: -len(u)]) * mult)
            except ValueError:
                break
    try:
        return int(float(s))
    except ValueError:
        raise WeightzooError(f"cannot read a size from {text!r} (use e.g. 5GB, 500MiB or a number of bytes)") from None


def _header(table: list[tuple[str, TensorSpec]], metadata: Mapping[str, str] | None) -> tuple[bytes, int]:
    head: dict[str, Any] = {}
    if metadata:
        head["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    off = 0
    for name, spec in table:
        n = spec.numel * spec.dtype.itemsize
        head[name] = {"dtype": _code(spec.dtype), "shape": list(spec.shape), "data_offsets": [off, off + n]}
        off += n
    raw = json.dumps(head, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-(8 + len(raw)) % _ALIGN)
    return len(raw).to_bytes(8, "little") + raw, off


def _write_one(path: Path, tensors: Mapping[str, torch.Tensor], table: list[tuple[str, TensorSpec]],
               metadata: Mapping[str, str] | None) -> int:
    from ..zoo.dtypes import tensor_bytes

    header, total = _header(table, metadata)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header)
            for name, spec in table:
                t = tensors[name]
                if tuple(t.shape) != spec.shape or t.dtype != spec.dtype:
                    raise WeightzooError(f"tensor {name!r}: produced {t.dtype} {tuple(t.shape)}, the header promised "
                                         f"{spec.dtype} {spec.shape}")
                f.write(tensor_bytes(t))
                del t
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _unlink(tmp)
        raise StorageError(f"cannot write {path}: {exc}") from exc
    except BaseException:
        _unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return total


def _unlink(p: str) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_safetensors(tensors: Mapping[str, torch.Tensor], out: str | os.PathLike[str], *,
                      specs: Mapping[str, TensorSpec] | None = None, max_shard_size: int | str | None = None,
                      metadata: Mapping[str, str] | None = None) -> list[Path]:
    """Write ``tensors`` (any mapping, read one tensor at a time) as safetensors; returns the files written.

    Args:
        tensors: name → tensor; lazy mappings are read in table order, one tensor at a time.
        out: a ``.safetensors`` file path, or a folder (``model.safetensors`` or shards go inside).
        specs: the tensor table (name → :class:`TensorSpec`); read from ``tensors`` when omitted (free for
            checkpoint readers and lazy results that expose ``specs``).
        max_shard_size: bytes (or ``"5GB"``) per file; above it, shards plus ``model.safetensors.index.json``.
        metadata: string metadata for the header (``__metadata__``).

    Each tensor must come out with the promised dtype and shape, else :class:`WeightzooError`.
    """
    if specs is None:
        specs = getattr(tensors, "specs", None) or tensor_specs(tensors)
    table = list(specs.items())
    limit = None if max_shard_size is None else parse_size(max_shard_size)
    if limit is not None and limit <= 0:
        raise WeightzooError(f"max_shard_size must be positive, got {max_shard_size!r}")
    out = Path(out)
    is_file = out.suffix == ".safetensors"
    folder = out.parent if is_file else out
    shards: list[list[tuple[str, TensorSpec]]] = [[]]
    size = 0
    for name, spec in table:
        n = spec.numel * spec.dtype.itemsize
        if limit is not None and shards[-1] and size + n > limit:
            shards.append([])
            size = 0
        shards[-1].append((name, spec))
        size += n
    if len(shards) == 1:
        path = out if is_file else folder / "model.safetensors"
        _write_one(path, tensors, shards[0], metadata)
        return [path]
    stem = out.stem if is_file else "model"
    n_sh = len(shards)
    paths = [folder / f"{stem}-{i + 1:05d}-of-{n_sh:05d}.safetensors" for i in range(n_sh)]
    total = 0
    weight_map: dict[str, str] = {}
    for path, shard in zip(paths, shards):
        total += _write_one(path, tensors, shard, metadata)
        weight_map.update({name: path.name for name, _ in shard})
    index = {"metadata": {"total_size": total, **(dict(metadata) if metadata else {})}, "weight_map": weight_map}
    idx = folder / f"{stem}.safetensors.index.json"
    fd, tmp = tempfile.mkstemp(prefix=f".{idx.name}.", suffix=".tmp", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(index, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, idx)
    _fsync_dir(folder)
    return [*paths, idx]


__all__ = ["parse_size", "write_safetensors"]
