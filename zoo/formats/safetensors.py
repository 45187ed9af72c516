"""The safetensors reader: our own header validation, then read-only ``mmap`` slices.

A safetensors file is ``u64 n`` (little-endian) · ``n`` bytes of UTF-8 JSON · the data section. The
JSON maps each tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to
the data section) plus an optional ``"__metadata__"`` of strings. We trust none of it until it passes,
in this order (each failure is a :class:`~weightzoo.errors.CheckpointError` naming the rule):

1. the file holds the 8 length bytes; ``n ≤ file size − 8`` and ``n ≤ max_header_bytes`` — both checked
   *before* reading (allocating) the header;
2. the header is UTF-8, well-formed JSON, an object, with no key twice (the ``safetensors`` library keeps
   the last of two equal names; we refuse them);
3. ``__metadata__`` maps strings to strings; each entry has exactly ``dtype``, ``shape``, ``data_offsets``;
   the dtype is a known code; the shape is at most 64 non-negative integers, each (and the byte size)
   below 2**63; the name holds no NUL and is valid Unicode; ``0 ≤ begin ≤ end ≤`` data length;
4. ``prod(shape) × itemsize = end − begin``;
5. sorted by offset, the tensors tile the data section exactly: no holes, no overlaps, no trailing bytes.

Only then is the file mapped (``mmap``, read-only). :meth:`SafetensorsCheckpoint.read_bytes` returns a
``memoryview`` slice of the map, so streaming a 1 GiB file costs page cache, not anonymous memory.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from weightzoo.errors import CheckpointError, NoWeightsError

from ._json import loads_strict
from .base import MAX_EXTENT, MAX_RANK, Checkpoint, TensorInfo, name_problem, shape_problem
from .dtypes import CODES, dtype_from_code

#: Default bound on the JSON header (the Hub client itself refuses headers above 25 MB).
MAX_HEADER_BYTES = 100 * 2**20

_ITEMSIZE = {code: dtype_from_code(code).itemsize for code in CODES}


@dataclass(frozen=True)
class SafetensorsHeader:
    """A validated header: tensors in data order with their byte ranges (relative to the data section)."""

    tensors: list[TensorInfo]
    offsets: dict[str, tuple[int, int]]
    metadata: dict[str, str]
    data_start: int  # absolute file offset of the data section (8 + header length)
    data_length: int


def parse_header(f: BinaryIO, size: int, path: str | os.PathLike[str] | None,
                 max_header_bytes: int = MAX_HEADER_BYTES) -> SafetensorsHeader:
    """Read and validate the header of an open safetensors file of ``size`` bytes (see the module doc).

    Raises:
        CheckpointError: the file is truncated or the header breaks any of the rules above.
        NoWeightsError: the header is valid but names no tensors.
    """
    if size < 8:
        raise CheckpointError(path, f"truncated: {size} bytes, shorter than the 8-byte header length")
    f.seek(0)
    (n,) = struct.unpack("<Q", f.read(8))
    if n > size - 8:
        raise CheckpointError(path, f"header length {n} exceeds the {size - 8} bytes after it (truncated file?)")
    if n > max_header_bytes:
        raise CheckpointError(path, f"header length {n} exceeds the limit of {max_header_bytes} bytes")
    raw = f.read(n)
    if len(raw) != n:
        raise CheckpointError(path, f"truncated: header of {n} bytes, only {len(raw)} readable")
    if not raw.startswith(b"{"):
        raise CheckpointError(path, "header does not start with '{'")
    doc = loads_strict(raw, path, "safetensors header", check_values=False)  # every value is checked below
    if not isinstance(doc, dict):
        raise CheckpointError(path, f"header is a JSON {type(doc).__name__}, not an object")
    data_start = 8 + n
    data_length = size - data_start

    metadata: dict[str, str] = {}
    meta = doc.pop("__metadata__", None)
    if meta is not None:
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise CheckpointError(path, "__metadata__ must map strings to strings")
        metadata = dict(meta)

    entries: list[tuple[int, int, TensorInfo]] = []
    unchecked = TensorInfo.unchecked
    for name, entry in doc.items():
        # One pass per entry, written for speed (a header may name a million tensors); each rule's
        # message is the same as a straightforward check would give.
        if (type(entry) is not dict or len(entry) != 3 or "dtype" not in entry or "shape" not in entry
                or "data_offsets" not in entry):
            keys = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
            raise CheckpointError(path, f"entry must have exactly dtype, shape, data_offsets (has {keys})",
                                  tensor=name)
        dtype, shape, offs = entry["dtype"], entry["shape"], entry["data_offsets"]
        itemsize = _ITEMSIZE.get(dtype) if type(dtype) is str else None
        if itemsize is None:
            raise CheckpointError(path, f"unknown dtype {dtype!r} (known: {', '.join(CODES)})", tensor=name)
        numel = 1
        if type(shape) is list:
            for d in shape:
                if type(d) is not int or d < 0:
                    numel = -1
                    break
                numel *= d
        if type(shape) is not list or numel < 0:
            raise CheckpointError(path, f"shape {shape!r} is not a list of non-negative integers", tensor=name)
        if len(shape) > MAX_RANK or numel * itemsize > MAX_EXTENT or (numel == 0 and shape_problem(shape, itemsize)):
            raise CheckpointError(path, shape_problem(shape, itemsize) or "invalid shape", tensor=name)
        if "\x00" in name or (not name.isascii() and name_problem(name)):
            raise CheckpointError(path, name_problem(name) or "invalid name", tensor=name)
        if not (type(offs) is list and len(offs) == 2 and type(offs[0]) is int and type(offs[1]) is int):
            raise CheckpointError(path, f"data_offsets {offs!r} is not a pair of integers", tensor=name)
        begin, end = offs
        if not 0 <= begin <= end:
            raise CheckpointError(path, f"data_offsets {offs} are not 0 <= begin <= end", tensor=name)
        if end > data_length:
            raise CheckpointError(
                path, f"data_offsets {offs} out of bounds: the data section holds {data_length} bytes "
                "(truncated file?)", tensor=name)
        expected = numel * itemsize
        if expected != end - begin:
            raise CheckpointError(
                path, f"shape {shape} of {dtype} needs {expected} bytes but data_offsets span {end - begin}",
                tensor=name)
        entries.append((begin, end, unchecked(name, dtype, tuple(shape))))

    if not entries:
        raise NoWeightsError(path, "safetensors file names no tensors")
    entries.sort(key=lambda e: (e[0], e[1], e[2].name))
    cursor = 0
    for begin, end, info in entries:
        if begin < cursor:
            raise CheckpointError(path, f"bytes [{begin}, {end}) overlap the previous tensor (ends at {cursor})",
                                  tensor=info.name)
        if begin > cursor:
            raise CheckpointError(path, f"hole of {begin - cursor} unclaimed bytes before [{begin}, {end})",
                                  tensor=info.name)
        cursor = end
    if cursor != data_length:
        raise CheckpointError(path, f"{data_length - cursor} trailing bytes after the last tensor")
    return SafetensorsHeader(
        tensors=[e[2] for e in entries],
        offsets={e[2].name: (e[0], e[1]) for e in entries},
        metadata=metadata,
        data_start=data_start,
        data_length=data_length,
    )


class SafetensorsCheckpoint(Checkpoint):
    """A validated ``.safetensors`` file, memory-mapped read-only (format ``"safetensors"``)."""

    def __init__(self, path: str | os.PathLike[str], *, max_header_bytes: int = MAX_HEADER_BYTES) -> None:
        p = Path(path)
        with open(p, "rb") as f:
            # fstat of the open descriptor: the size we validate is the size of the file we map.
            size = os.fstat(f.fileno()).st_size
            header = parse_header(f, size, p, max_header_bytes)
            self._map: mmap.mmap | None = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        if len(self._map) != size:
            self._map.close()
            raise CheckpointError(p, "file changed size while it was being opened")
        self._view: memoryview | None = memoryview(self._map)
        self._header = header
        super().__init__(path=p, format="safetensors", tensors=header.tensors, metadata=header.metadata)

    def read_bytes(self, name: str) -> memoryview:
        """A read-only view of the tensor's bytes in the map (no copy)."""
        if self._view is None:
            raise CheckpointError(self.path, "checkpoint is closed")
        begin, end = self._header.offsets[name]  # KeyError for unknown names, like info()
        start = self._header.data_start
        return self._view[start + begin : start + end]

    def close(self) -> None:
        """Release the map. Views handed out earlier keep it alive until they are dropped."""
        view, mm = self._view, self._map
        self._view, self._map = None, None
        if view is not None:
            view.release()
        if mm is not None:
            try:
                mm.close()
            except BufferError:
                pass  # a caller still holds a slice; the map is freed when the last view goes


__all__ = ["MAX_HEADER_BYTES", "SafetensorsCheckpoint", "SafetensorsHeader", "parse_header"]
