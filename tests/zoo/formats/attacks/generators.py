"""Reproducible attack and malformed checkpoint files, written at test time (no binary blobs in git).

Each ``write_*`` function writes one file (or folder) into ``folder`` and returns its path. Most start
from a small *valid* safetensors file built byte by byte by :func:`safetensors_file`, then break exactly
one rule, so a test failing here points at one check of the reader. ``docs/formats.md`` lists which
error each one must raise.
"""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import torch

# A valid layout used as the starting point: "a" is F32[2, 3] (24 bytes) at [0, 24), "b" is I64[4]
# (32 bytes) at [24, 56).
VALID_HEADER: dict[str, Any] = {
    "__metadata__": {"format": "pt"},
    "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
    "b": {"dtype": "I64", "shape": [4], "data_offsets": [24, 56]},
}
VALID_DATA = struct.pack("<6f", 0.5, -1.0, 2.0, float("nan"), float("inf"), -0.0) + struct.pack("<4q", 1, -2, 3, 2**62)


def safetensors_bytes(header: dict[str, Any] | bytes, data: bytes, *, header_len: int | None = None) -> bytes:
    """A safetensors file: u64 header length (``header_len`` overrides the true one), header, data."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(raw) if header_len is None else header_len
    return struct.pack("<Q", n) + raw + data


def safetensors_file(folder: Path, name: str = "model.safetensors", header: dict[str, Any] | bytes | None = None,
                     data: bytes = VALID_DATA, *, header_len: int | None = None) -> Path:
    p = folder / name
    p.write_bytes(safetensors_bytes(VALID_HEADER if header is None else header, data, header_len=header_len))
    return p


def _with(**entries: Any) -> dict[str, Any]:
    h = json.loads(json.dumps(VALID_HEADER))
    h.update(entries)
    return h


# --- safetensors: truncation and lengths -------------------------------------------------------------


def write_truncated(folder: Path, where: str) -> Path:
    """The valid file cut ``"header"`` (inside the JSON), ``"mid-tensor"`` or ``"last-byte"``."""
    full = safetensors_bytes(VALID_HEADER, VALID_DATA)
    header_end = len(full) - len(VALID_DATA)
    cut = {"header": header_end // 2, "mid-tensor": header_end + 30, "last-byte": len(full) - 1}[where]
    p = folder / f"truncated-{where}.safetensors"
    p.write_bytes(full[:cut])
    return p


def write_header_longer_than_file(folder: Path) -> Path:
    return safetensors_file(folder, "long-header.safetensors", header_len=10**12)


def write_header_over_limit(folder: Path, header_len: int = 101 * 2**20) -> Path:
    """A *sparse* file that really is large enough for its huge declared header (no disk, no RAM used):
    only the ``max_header_bytes`` bound can refuse it, and it must do so before reading the header."""
    p = folder / "huge-header.safetensors"
    with open(p, "wb") as f:
        f.write(struct.pack("<Q", header_len) + b"{")
        f.truncate(8 + header_len + 64)
    return p


# --- safetensors: offsets, dtypes, shapes, names, encoding ------------------------------------------


def write_offsets_out_of_bounds(folder: Path) -> Path:
    return safetensors_file(folder, "oob.safetensors",
                            _with(b={"dtype": "I64", "shape": [4], "data_offsets": [24, 56 + 8 * 1000]}))


def write_overlapping(folder: Path) -> Path:
    # "b" starts 8 bytes inside "a"; the data section is shortened to match, so only the overlap is wrong.
    return safetensors_file(folder, "overlap.safetensors",
                            _with(b={"dtype": "I64", "shape": [4], "data_offsets": [16, 48]}), VALID_DATA[:48])


def write_hole(folder: Path) -> Path:
    # "b" moved 8 bytes later: bytes [24, 32) belong to no tensor.
    return safetensors_file(folder, "hole.safetensors",
                            _with(b={"dtype": "I64", "shape": [4], "data_offsets": [32, 64]}), VALID_DATA + bytes(8))


def write_trailing_bytes(folder: Path) -> Path:
    return safetensors_file(folder, "trailing.safetensors", data=VALID_DATA + b"hidden payload")


def write_unknown_dtype(folder: Path) -> Path:
    return safetensors_file(folder, "dtype.safetensors", _with(b={"dtype": "F128", "shape": [4], "data_offsets": [24, 56]}))


def write_shape_mismatch(folder: Path) -> Path:
    return safetensors_file(folder, "shape.safetensors", _with(b={"dtype": "I64", "shape": [5], "data_offsets": [24, 56]}))


def write_duplicate_names(folder: Path) -> Path:
    """Two entries named "a": safetensors 0.8 silently keeps the last one, so the two readers disagree."""
    raw = (b'{"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, '
           b'"a": {"dtype": "I64", "shape": [3], "data_offsets": [0, 24]}}')
    return safetensors_file(folder, "dup.safetensors", raw, VALID_DATA[:24])


def write_invalid_json(folder: Path) -> Path:
    raw = json.dumps(VALID_HEADER).encode()[:-1] + b",}"
    return safetensors_file(folder, "json.safetensors", raw)


def write_invalid_utf8(folder: Path) -> Path:
    raw = json.dumps(VALID_HEADER).encode().replace(b'"pt"', b'"p\xff"')
    return safetensors_file(folder, "utf8.safetensors", raw)


def write_empty(folder: Path, name: str = "empty.safetensors") -> Path:
    p = folder / name
    p.write_bytes(b"")
    return p


# --- pickles -----------------------------------------------------------------------------------------


class RunsCommand:
    """Pickles as a call to ``os.system(command)``: what a malicious checkpoint does on unpickling."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (self.command,))


def write_code_pickle(folder: Path, sentinel: Path, kind: str) -> Path:
    """A checkpoint whose unpickling runs ``touch sentinel``: ``kind`` = ``"zip"``, ``"legacy"`` or ``"plain"``."""
    payload = {"weight": torch.ones(3), "extra": RunsCommand(f"touch {sentinel}")}
    p = folder / f"evil-{kind}.bin"
    if kind == "zip":
        torch.save(payload, p)
    elif kind == "legacy":
        torch.save(payload, p, _use_new_zipfile_serialization=False)
    else:
        p.write_bytes(pickle.dumps(payload, protocol=2))
    return p


def _rezip(src: Path, dst: Path, method: int, extra: dict[str, bytes] | None = None) -> Path:
    """Copy a torch zip with every member recompressed with ``method`` (plus ``extra`` members)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression=method) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
        for name, data in (extra or {}).items():
            zout.writestr(name, data)
    return dst


def write_deflated(folder: Path) -> Path:
    """A genuine ``torch.save`` checkpoint re-zipped with DEFLATE (random weights: compresses < 2x)."""
    src = folder / "stored.bin"
    torch.save({"w": torch.randn(64, 64, generator=torch.Generator().manual_seed(0))}, src)
    return _rezip(src, folder / "deflated.bin", zipfile.ZIP_DEFLATED)


def write_zip_bomb(folder: Path, mib: int = 16) -> Path:
    """A torch checkpoint of ``mib`` MiB of zeros, deflated to a few KiB (ratio ~1000)."""
    src = folder / "zeros.bin"
    torch.save({"w": torch.zeros(mib * 2**18)}, src)
    out = _rezip(src, folder / "bomb.bin", zipfile.ZIP_DEFLATED)
    src.unlink()
    return out


def write_zip_lying_size(folder: Path, declared: int = 0xFFFF_FFF0) -> Path:
    """A STORED torch zip whose central directory declares a member of ~4 GiB (a tiny real member)."""
    src = folder / "small.bin"
    torch.save({"w": torch.ones(4)}, src)
    data = bytearray(src.read_bytes())
    # Patch the "uncompressed size" of the data/0 member in the central directory (signature PK\1\2).
    pos = 0
    while (pos := data.find(b"PK\x01\x02", pos)) != -1:
        name_len = struct.unpack_from("<H", data, pos + 28)[0]
        name = bytes(data[pos + 46 : pos + 46 + name_len])
        if name.endswith(b"/data/0"):
            struct.pack_into("<I", data, pos + 24, declared)
        pos += 4
    out = folder / "lying.bin"
    out.write_bytes(bytes(data))
    src.unlink()
    return out


def write_legacy_tar(folder: Path) -> Path:
    """The layout of torch's pre-0.4 tar checkpoints (members sys_info, pickle, tensors, storages)."""
    p = folder / "old.pth"
    with tarfile.open(p, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in [("sys_info", pickle.dumps({"protocol_version": 1001})),
                           ("pickle", pickle.dumps({})), ("tensors", pickle.dumps(0)), ("storages", pickle.dumps(0))]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return p


# --- names and paths ----------------------------------------------------------------------------------


def write_zip_named_safetensors(folder: Path) -> Path:
    p = folder / "model.safetensors"
    torch.save({"w": torch.ones(2)}, p)
    return p


def write_safetensors_named_bin(folder: Path) -> Path:
    return safetensors_file(folder, "pytorch_model.bin")


def write_index(folder: Path, weight_map: dict[str, str], name: str = "model.safetensors.index.json") -> Path:
    p = folder / name
    p.write_text(json.dumps({"metadata": {"total_size": 56}, "weight_map": weight_map}))
    return p


def write_index_escape(folder: Path, how: str, outside: Path) -> Path:
    """A snapshot whose index sends tensor "a" to ``..``, to an absolute path, or through a symlink
    that leads to a valid safetensors file outside the snapshot (``how`` = ``dotdot``/``absolute``/``symlink``)."""
    outside.mkdir(parents=True, exist_ok=True)
    target = safetensors_file(outside, "secret.safetensors")
    snap = folder / f"snapshot-{how}"
    snap.mkdir(parents=True)
    if how == "dotdot":
        rel = os.path.relpath(target, snap)
        shard = rel
    elif how == "absolute":
        shard = str(target)
    else:
        (snap / "model-00001-of-00001.safetensors").symlink_to(target)
        shard = "model-00001-of-00001.safetensors"
    write_index(snap, {"a": shard, "b": shard})
    return snap


def write_symlinked_weights(folder: Path, outside: Path) -> Path:
    """A snapshot whose ``model.safetensors`` is a symlink to a file outside it."""
    outside.mkdir(parents=True, exist_ok=True)
    target = safetensors_file(outside, "elsewhere.safetensors")
    snap = folder / "snapshot-link"
    snap.mkdir(parents=True)
    (snap / "model.safetensors").symlink_to(target)
    return snap


def write_no_weights(folder: Path) -> Path:
    snap = folder / "no-weights"
    snap.mkdir()
    (snap / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (snap / "tokenizer.json").write_text("{}")
    (snap / "training_args.bin").write_bytes(b"\x80\x02}q\x00.")
    return snap


def write_expanded_view(folder: Path, elements: int = 1 << 40) -> Path:
    """A ~1.5 KB torch checkpoint declaring a stride-0 view of ``elements`` floats over one float of storage:
    storing it contiguously would allocate ``4 * elements`` bytes."""
    p = folder / "expanded.pt"
    torch.save({"w": torch.zeros(1).expand(elements)}, p)
    return p


# --- round two (issue 22): special files, loops, Unicode, ranks, extents, constructors, amplification --


def write_fifo(folder: Path) -> Path:
    """A FIFO named like a checkpoint (no writer: opening it for reading would block forever)."""
    p = folder / "x.safetensors"
    os.mkfifo(p)
    return p


def write_symlink_loop(folder: Path, which: str = "model.safetensors") -> Path:
    """A snapshot folder whose ``which`` (``model.safetensors`` or ``config.json``) is a symlink loop."""
    snap = folder / f"loop-{which.split('.')[0]}"
    snap.mkdir()
    if which != "model.safetensors":
        safetensors_file(snap)
    os.symlink(which, snap / which)  # points at itself: ELOOP
    return snap


def write_tensor_named(folder: Path, name: str, file: str = "named.safetensors") -> Path:
    """A valid file whose one tensor is called ``name`` (written with JSON escapes, so a lone surrogate
    ``"\\ud800"`` is representable)."""
    header = json.dumps({name: {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, ensure_ascii=True)
    return safetensors_file(folder, file, header.encode(), struct.pack("<f", 1.0))


def write_rank(folder: Path, rank: int, *, elements: int = 1) -> Path:
    """A valid F32 tensor of ``rank`` dimensions holding ``elements`` (a power of two) values."""
    shape = [1] * rank
    k, i = elements, 0
    while k > 1:
        shape[i] *= 2
        k //= 2
        i += 1
    data = b"\x00\x00\x80\x3f" * elements
    header = {"t": {"dtype": "F32", "shape": shape, "data_offsets": [0, len(data)]}}
    return safetensors_file(folder, f"rank{rank}.safetensors", header, data)


def write_zero_element(folder: Path, big: int = 2**64) -> Path:
    """A zero-element tensor of shape ``[big, 0]`` (0 bytes: consistent, but torch sizes are int64)."""
    header = {"z": {"dtype": "F32", "shape": [big, 0], "data_offsets": [0, 0]},
              "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
    return safetensors_file(folder, f"zero-{big}.safetensors", header, struct.pack("<f", 1.0))


def write_snapshot_with_config(folder: Path, config: bytes, name: str = "snap-config") -> Path:
    """A snapshot folder: a valid ``model.safetensors`` and ``config.json`` with the raw bytes ``config``."""
    snap = folder / name
    snap.mkdir()
    safetensors_file(snap)
    (snap / "config.json").write_bytes(config)
    return snap


def empty_lists_json(nbytes: int) -> bytes:
    """``{"a": [[],[],...]}`` of about ``nbytes``: one Python list per 3 bytes once parsed."""
    n = max(1, (nbytes - 10) // 3)
    return b'{"a": [' + b",".join([b"[]"] * n) + b"]}"


def write_header_of_empty_lists(folder: Path, nbytes: int = 8 * 2**20) -> Path:
    """A safetensors file whose header is mostly empty lists (a parse-time memory bomb)."""
    header = b'{"__metadata__": {"x": "y"}, "pad": ' + empty_lists_json(nbytes)[6:-1] + b"}"
    return safetensors_file(folder, "empty-lists.safetensors", header, b"")


class _Reduce:
    """Pickles as ``fn(*args)``: what an attacker's pickle can call under ``weights_only``."""

    def __init__(self, fn: Any, *args: Any) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.fn, self.args


def write_tensor_constructor(folder: Path, elements: int = 2**28, kind: str = "zip") -> Path:
    """A tiny torch checkpoint whose pickle calls ``torch.Tensor(elements)`` (an allowed constructor:
    ``elements`` × 4 bytes of uninitialised memory)."""
    p = folder / f"ctor-{kind}.pt"
    payload = {"w": _Reduce(torch.Tensor, elements)}
    torch.save(payload, p, _use_new_zipfile_serialization=kind == "zip")
    return p


def write_storage_constructor(folder: Path, elements: int = 2**20) -> Path:
    """A torch zip whose tensor is rebuilt over ``torch.FloatStorage(elements)`` called by the pickle."""
    p = folder / "storage-ctor.pt"
    fake = _Reduce(torch._utils._rebuild_tensor_v2, _Reduce(torch.FloatStorage, elements), 0, (elements,), (1,),
                   False, collections.OrderedDict())
    torch.save({"w": fake}, p)
    return p


def write_parameter_data_swap(folder: Path, elements: int = 2**26) -> Path:
    """A parameter whose restored state replaces ``.data`` with ``torch.Tensor(elements)``."""
    p = folder / "data-swap.pt"
    param = _Reduce(torch._utils._rebuild_parameter_with_state, torch.ones(2), False, collections.OrderedDict(),
                    {"data": _Reduce(torch.Tensor, elements)})
    torch.save({"w": param}, p)
    return p


def write_bytearray_pickle(folder: Path, nbytes: int = 2**32, kind: str = "plain") -> Path:
    """``bytearray(nbytes)`` as a 41-byte plain pickle, or inside a torch zip (``kind="zip"``)."""
    if kind == "plain":
        p = folder / "bytearray.pkl"
        p.write_bytes(pickle.dumps(_Reduce(bytearray, nbytes), protocol=2))
    else:
        p = folder / "bytearray.pt"
        torch.save({"w": torch.ones(1), "x": _Reduce(bytearray, nbytes)}, p)
    return p


def write_overlapping_views(folder: Path, views: int = 200, elements: int = 2**18) -> Path:
    """``views`` views of one storage of ``elements`` floats: each fits its storage, together they
    declare ``views``× the file."""
    base = torch.randn(elements, generator=torch.Generator().manual_seed(0))
    p = folder / "views.pt"
    torch.save({f"v{i}": base[i:] for i in range(views)}, p)
    return p


def write_lazy_views(folder: Path) -> Path:
    """Legitimate lazily conjugated and negated views (``x.conj()``, ``torch._neg_view``)."""
    g = torch.Generator().manual_seed(0)
    p = folder / "lazy.pt"
    torch.save({"c": torch.randn(4, dtype=torch.complex64, generator=g).conj(),
                "n": torch._neg_view(torch.randn(4, generator=g))}, p)
    return p


def write_sparse(folder: Path, layout: str = "coo") -> Path:
    """A state dict holding a sparse COO or CSR tensor."""
    dense = torch.eye(3)
    p = folder / f"sparse-{layout}.pt"
    torch.save({"s": dense.to_sparse() if layout == "coo" else dense.to_sparse_csr()}, p)
    return p


def write_deep_nesting(folder: Path, depth: int = 3000, key: str = "x") -> Path:
    """A state dict nested ``depth`` levels under ``key`` (``"model"`` makes it a chain of wrappers)."""
    import sys

    obj: Any = {"w": torch.ones(2)}
    for _ in range(depth):
        obj = {key: obj}
    p = folder / f"deep-{key}.pt"
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4 * depth + 1000))
    try:
        torch.save(obj, p)
    finally:
        sys.setrecursionlimit(limit)
    return p
