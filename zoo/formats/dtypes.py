"""Tensor dtypes as the zoo records them.

The canonical name of a dtype is its safetensors code (``F32``, ``BF16``, ``F8_E4M3`` ...). Each code maps
to a torch dtype, an item size, and the numpy dtype its bytes are stored as in HDF5: the true numpy dtype
where numpy has one, raw unsigned bits otherwise (bfloat16 as ``uint16``, float8 as ``uint8``), so every
tensor comes back bit-exactly with its true dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class DType:
    """One tensor dtype: its safetensors ``code``, torch dtype, item size and numpy storage dtype."""

    code: str
    torch: torch.dtype
    itemsize: int
    storage: np.dtype  # numpy dtype of the stored array (raw bits where numpy lacks the dtype)
    raw_bits: bool  # True when ``storage`` is an unsigned-int view, not the dtype itself

    @property
    def is_floating(self) -> bool:
        return self.torch.is_floating_point

    @property
    def is_integer(self) -> bool:
        return not self.torch.is_floating_point and not self.torch.is_complex and self.torch != torch.bool


def _entries() -> list[DType]:
    e = [
        DType("BOOL", torch.bool, 1, np.dtype(np.bool_), False),
        DType("U8", torch.uint8, 1, np.dtype(np.uint8), False),
        DType("I8", torch.int8, 1, np.dtype(np.int8), False),
        DType("I16", torch.int16, 2, np.dtype("<i2"), False),
        DType("I32", torch.int32, 4, np.dtype("<i4"), False),
        DType("I64", torch.int64, 8, np.dtype("<i8"), False),
        DType("F16", torch.float16, 2, np.dtype("<f2"), False),
        DType("BF16", torch.bfloat16, 2, np.dtype("<u2"), True),
        DType("F32", torch.float32, 4, np.dtype("<f4"), False),
        DType("F64", torch.float64, 8, np.dtype("<f8"), False),
        DType("C64", torch.complex64, 8, np.dtype("<c8"), False),
        DType("F8_E4M3", torch.float8_e4m3fn, 1, np.dtype(np.uint8), True),
        DType("F8_E5M2", torch.float8_e5m2, 1, np.dtype(np.uint8), True),
    ]
    # Newer torch releases add unsigned and exotic float8 types; take them when present.
    for code, attr, size, store, raw in [
        ("U16", "uint16", 2, "<u2", False),
        ("U32", "uint32", 4, "<u4", False),
        ("U64", "uint64", 8, "<u8", False),
        ("F8_E8M0", "float8_e8m0fnu", 1, "u1", True),
        ("F8_E4M3FNUZ", "float8_e4m3fnuz", 1, "u1", True),
        ("F8_E5M2FNUZ", "float8_e5m2fnuz", 1, "u1", True),
    ]:
        if hasattr(torch, attr):
            e.append(DType(code, getattr(torch, attr), size, np.dtype(store), raw))
    return e


_BY_CODE: dict[str, DType] = {d.code: d for d in _entries()}
_BY_TORCH: dict[torch.dtype, DType] = {d.torch: d for d in _BY_CODE.values()}

#: All dtype codes the zoo knows, in a stable order.
CODES: tuple[str, ...] = tuple(_BY_CODE)


def dtype_from_code(code: str) -> DType:
    """The :class:`DType` of a safetensors code; ``KeyError`` listing the known codes if unknown."""
    try:
        return _BY_CODE[code]
    except KeyError:
        raise KeyError(f"unknown dtype {code!r}; known: {', '.join(CODES)}") from None


def dtype_from_torch(dtype: torch.dtype) -> DType:
    """The :class:`DType` of a torch dtype; ``KeyError`` if the zoo cannot store it."""
    try:
        return _BY_TORCH[dtype]
    except KeyError:
        raise KeyError(f"torch dtype {dtype} cannot be stored; known: {', '.join(CODES)}") from None


def tensor_bytes(tensor: torch.Tensor) -> memoryview:
    """The tensor's bytes in C order, little-endian, without copying when it is already contiguous."""
    t = tensor.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    t = t.resolve_conj().resolve_neg()  # a lazily conjugated (x.conj()) or negated view: its values, not its bits
    t = t.contiguous().reshape(-1)
    if t.dtype == torch.bool:
        t = t.view(torch.uint8)
    return memoryview(t.view(torch.uint8).numpy()).cast("B")  # type: ignore[arg-type]  # numpy arrays are buffers


def tensor_from_bytes(data: bytes | bytearray | memoryview | np.ndarray, code: str, shape: tuple[int, ...]) -> torch.Tensor:
    """A torch tensor of dtype ``code`` and ``shape`` over ``data`` (copied, so it owns its memory)."""
    dt = dtype_from_code(code)
    raw = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8).reshape(-1)
    expected = dt.itemsize * int(np.prod(shape, dtype=np.int64))
    if raw.size != expected:
        raise ValueError(f"{raw.size} bytes cannot hold a {code} tensor of shape {tuple(shape)} ({expected} bytes)")
    if expected == 0:  # an empty uint8 buffer has stride 0, which .view() to a wider dtype refuses
        return torch.empty(tuple(shape), dtype=dt.torch)
    t = torch.from_numpy(raw.copy())
    if dt.torch == torch.bool:
        return t.view(torch.bool).reshape(shape)
    return t.view(dt.torch).reshape(shape)





_CHUNK = 1 << 24  # elements per chunk when scanning for NaN/Inf (bounded temporaries)


def count_nonfinite(data: memoryview | bytes | np.ndarray, code: str) -> tuple[int, int]:
    """``(nan_count, inf_count)`` of a tensor's raw bytes, scanned in chunks (memory stays bounded).

    Works on the bits for dtypes numpy lacks: bfloat16 (exponent 0xFF), float8 e5m2 (exponent 0x1F),
    float8 e4m3fn (only NaN, 0x7F/0xFF; it has no infinities).
    """
    dt = dtype_from_code(code)
    if not dt.torch.is_floating_point and not dt.torch.is_complex:
        return 0, 0
    raw = data if isinstance(data, np.ndarray) else np.frombuffer(data, dtype=np.uint8)
    arr = raw.view(dt.storage).reshape(-1)
    nan = inf = 0
    for start in range(0, arr.size, _CHUNK):
        c = arr[start : start + _CHUNK]
        if not dt.raw_bits:
            nan += int(np.count_nonzero(np.isnan(c)))
            inf += int(np.count_nonzero(np.isinf(c)))
        elif code == "BF16":
            exp_all = (c & 0x7F80) == 0x7F80
            man = (c & 0x007F) != 0
            nan += int(np.count_nonzero(exp_all & man))
            inf += int(np.count_nonzero(exp_all & ~man))
        elif code in ("F8_E5M2",):
            exp_all = (c & 0x7C) == 0x7C
            man = (c & 0x03) != 0
            nan += int(np.count_nonzero(exp_all & man))
            inf += int(np.count_nonzero(exp_all & ~man))
        elif code == "F8_E4M3":
            nan += int(np.count_nonzero((c & 0x7F) == 0x7F))
        else:  # exotic float8 variants: decode through torch (small dtypes, chunks keep it bounded)
            t = torch.from_numpy(c.copy()).view(dt.torch).float()
            nan += int(torch.isnan(t).sum())
            inf += int(torch.isinf(t).sum())
    return nan, inf
__all__ = ["CODES", "DType", "count_nonfinite", "dtype_from_code", "dtype_from_torch", "tensor_bytes", "tensor_from_bytes"]
