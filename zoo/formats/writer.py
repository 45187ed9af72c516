"""Streaming safetensors writer: header first (offsets from the tensor table), then one tensor at a time.

The safetensors layout is an 8-byte little-endian header length, a JSON header mapping each name to its
``dtype``, ``shape`` and ``data_offsets`` (relative to the end of the header), then the raw C-order,
little-endian bytes. Every offset follows from the tensor table alone, so the header is written before
any tensor is read or computed, and each tensor is written, then dropped: memory stays at one tensor
whatever the model size, and a lazy mapping (a zoo model, a merge) is computed exactly once per tensor.

Output goes to a uniquely named temporary file in the target folder, is fsynced, renamed into place and
the folder fsynced, so a reader never sees half a file. Sharded output follows the Hugging Face layout
(``model-00001-of-00003.safetensors`` + ``model.safetensors.index.json``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch

from weightzoo.errors import InvalidOptionError, ShapeMismatchError

from .base import TensorInfo, TensorTable
from .dtypes import dtype_from_torch, tensor_bytes
from .durable import atomic_write, write_bytes_atomic

BytesFn = Callable[[str], "memoryview | bytes"]

_UNITS = {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "KB": 10**3, "MB": 10**6, "GB": 10**9,
          "TB": 10**12, "B": 1}


def parse_size(text: str | int) -> int:
    """Bytes from ``"5GB"``, ``"500MiB"``, ``"2e9"`` or an int (decimal units, as Hugging Face reads them).

    Raises :class:`~weightzoo.errors.InvalidOptionError` (a ``ValueError``) for anything else.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    s = str(text).strip().upper().replace(" ", "")
    for unit, mult in _UNITS.items():
        if s.endswith(unit):
            try:
                return int(float(s[: -len(unit)]) * mult)
            except (ValueError, OverflowError):  # "inf", "1e400GB"
                break
    try:
        return int(float(s))
    except (ValueError, OverflowError):
        raise InvalidOptionError(f"cannot read a size from {text!r} (use e.g. 5GB, 500MiB or a number of bytes)") from None


def safetensors_header(infos: Sequence[TensorInfo], metadata: Mapping[str, str] | None = None) -> bytes:
    """The first bytes of a safetensors file holding ``infos`` in order: u64 length + JSON header, padded
    with spaces so the data section starts 8-byte aligned; tensor ``i`` then sits at the running offset."""
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    for info in infos:
        header[info.name] = {"dtype": info.dtype, "shape": list(info.shape), "data_offsets": [offset, offset + info.nbytes]}
        offset += info.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw


def write_safetensors(path: str | os.PathLike[str], infos: Sequence[TensorInfo], get_bytes: BytesFn,
                      metadata: Mapping[str, str] | None = None) -> Path:
    """Write tensors ``infos`` (bytes from ``get_bytes(name)``, called once each, in order) to one
    safetensors file, atomically (temp file, fsync, rename, fsync of the folder)."""
    out = Path(path)
    head = safetensors_header(infos, metadata)
    with atomic_write(out, "wb") as f:
        f.write(head)
        for info in infos:
            data = get_bytes(info.name)
            if len(data) != info.nbytes:
                raise ShapeMismatchError(f"tensor {info.name!r}: got {len(data)} bytes, the header promised {info.nbytes}")
            f.write(data)
            del data  # the next tensor is computed without this one alive
    return out


def write_sharded(folder: str | os.PathLike[str], infos: Sequence[TensorInfo], get_bytes: BytesFn, *,
                  max_shard_bytes: int, metadata: Mapping[str, str] | None = None,
                  prefix: str = "model") -> list[Path]:
    """Write shards of at most ``max_shard_bytes`` (a bigger tensor gets a shard of its own) plus the index
    ``{prefix}.safetensors.index.json`` (written last, so a complete index means complete shards).

    Returns the shard paths followed by the index path. The index ``metadata`` holds ``total_size`` and
    the string ``metadata`` given for the shard headers.
    """
    if max_shard_bytes <= 0:
        raise InvalidOptionError(f"max_shard_bytes must be positive, got {max_shard_bytes}")
    out = Path(folder)
    shards: list[list[TensorInfo]] = [[]]
    size = 0
    for info in infos:
        if shards[-1] and size + info.nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(info)
        size += info.nbytes
    n = len(shards)
    files: list[Path] = []
    weight_map: dict[str, str] = {}
    # Shards replace files of the same name one by one: drop an old index first, so a failure half-way
    # leaves no index that would stitch new shards to old ones.
    (out / f"{prefix}.safetensors.index.json").unlink(missing_ok=True)
    for i, shard in enumerate(shards, 1):
        fname = f"{prefix}-{i:05d}-of-{n:05d}.safetensors"
        files.append(write_safetensors(out / fname, shard, get_bytes, metadata))
        weight_map.update({t.name: fname for t in shard})
    meta: dict[str, object] = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta["total_size"] = sum(t.nbytes for t in infos)
    index = json.dumps({"metadata": meta, "weight_map": weight_map}, indent=2).encode()
    files.append(write_bytes_atomic(out / f"{prefix}.safetensors.index.json", index))
    return files


def save_state_dict(state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike[str], *,
                    max_shard_bytes: int | str | None = None, metadata: Mapping[str, str] | None = None) -> list[Path]:
    """Save a (possibly lazy) state dict as safetensors, reading (or computing) each tensor exactly once.

    Args:
        state_dict: name → tensor. The tensor table comes from ``tensor_infos()`` when the mapping has one
            (checkpoint readers, zoo models, merges: no bytes read for it); otherwise from the tensors.
            A mapping with ``read_bytes(name)`` (a zoo model) hands over raw bytes, with no tensor built.
        path: a ``.safetensors`` file, or a folder (``model.safetensors`` goes inside).
        max_shard_bytes: bytes per shard (an int or ``"5GB"``, see :func:`parse_size`): the output is then
            shards plus an index, in ``path`` if it is a folder, else next to it named after its stem.
        metadata: string metadata for the header(s) (``__metadata__``) and the shard index.

    Returns the files written (shards, then the index). Each tensor must come out with the dtype and shape
    of the table, else :class:`~weightzoo.errors.ShapeMismatchError` (and no file is left behind).
    """
    infos = _table(state_dict)
    by_name = {i.name: i for i in infos}
    raw_reader = getattr(state_dict, "read_bytes", None)  # zoo models: stored bytes as they are, no tensor built

    def get(name: str) -> memoryview:
        if raw_reader is not None:
            return raw_reader(name)  # type: ignore[no-any-return]  # length checked against the table on write
        t = state_dict[name]
        info = by_name[name]
        code = dtype_from_torch(t.dtype).code
        if tuple(t.shape) != tuple(info.shape) or code != info.dtype:
            raise ShapeMismatchError(f"tensor {name!r}: produced {code} {tuple(t.shape)}, the header promised "
                                     f"{info.dtype} {tuple(info.shape)}", [(name, tuple(info.shape), tuple(t.shape))])
        return tensor_bytes(t)

    out = Path(path)
    is_file = out.suffix == ".safetensors"
    if max_shard_bytes is not None:
        limit = parse_size(max_shard_bytes)
        folder, prefix = (out.parent, out.stem) if is_file else (out, "model")
        return write_sharded(folder, infos, get, max_shard_bytes=limit, metadata=metadata, prefix=prefix)
    return [write_safetensors(out if is_file else out / "model.safetensors", infos, get, metadata)]


def _table(state_dict: Mapping[str, torch.Tensor]) -> list[TensorInfo]:
    if isinstance(state_dict, TensorTable):
        return list(state_dict.tensor_infos())
    return [TensorInfo(k, dtype_from_torch(v.dtype).code, tuple(v.shape)) for k, v in state_dict.items()]


__all__ = ["safetensors_header", "parse_size", "save_state_dict", "write_safetensors", "write_sharded"]
