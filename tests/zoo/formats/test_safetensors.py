"""The safetensors reader: one test per malformed input (exact error type), plus what valid files give."""

from __future__ import annotations

import io
import json
import math
import struct
import tracemalloc
from pathlib import Path

import pytest
import safetensors.torch
import torch

from weightzoo.errors import CheckpointError, NoWeightsError
from weightzoo.zoo.formats import SafetensorsCheckpoint, open_checkpoint, parse_header


def _raises_exactly(exc: type[Exception], path: Path, match: str, **kw: object) -> CheckpointError:
    with pytest.raises(exc, match=match) as info:
        open_checkpoint(path, **kw)
    assert type(info.value) is exc, f"expected exactly {exc.__name__}, got {type(info.value).__name__}"
    return info.value


def test_valid_file_reads_exact_values_with_nan_and_inf(tmp_path: Path, attacks) -> None:
    p = attacks.safetensors_file(tmp_path)
    with open_checkpoint(p) as ckpt:
        assert isinstance(ckpt, SafetensorsCheckpoint)
        assert ckpt.format == "safetensors"
        assert [(t.name, t.dtype, t.shape) for t in ckpt.tensors] == [("a", "F32", (2, 3)), ("b", "I64", (4,))]
        assert ckpt.metadata == {"format": "pt"}
        a = ckpt.read("a")
        # NaN and Inf are accepted (the store counts them); -0.0 keeps its sign bit.
        assert math.isnan(a[1, 0]) and a[1, 1] == math.inf and math.copysign(1, a[1, 2]) == -1
        assert ckpt.read("b").tolist() == [1, -2, 3, 2**62]
        view = ckpt.read_bytes("b")
        assert isinstance(view, memoryview) and view.readonly and bytes(view) == attacks.VALID_DATA[24:]
        del view
    with pytest.raises(CheckpointError, match="closed"):
        ckpt.read_bytes("a")


@pytest.mark.parametrize("where", ["header", "mid-tensor", "last-byte"])
def test_truncated_file(tmp_path: Path, attacks, where: str) -> None:
    _raises_exactly(CheckpointError, attacks.write_truncated(tmp_path, where), "truncated|exceeds|out of bounds")


def test_header_length_beyond_file(tmp_path: Path, attacks) -> None:
    _raises_exactly(CheckpointError, attacks.write_header_longer_than_file(tmp_path), "exceeds the .* bytes after it")


def test_header_length_above_limit_refused_before_allocating(tmp_path: Path, attacks) -> None:
    p = attacks.write_header_over_limit(tmp_path)  # sparse: the 101 MiB header really fits in the file
    assert p.stat().st_size > 101 * 2**20
    tracemalloc.start()
    try:
        _raises_exactly(CheckpointError, p, "exceeds the limit of 104857600")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20, f"{peak} bytes allocated while refusing the header"
    # And the limit is a parameter: a normal file above a small limit is refused the same way.
    _raises_exactly(CheckpointError, attacks.safetensors_file(tmp_path), "exceeds the limit of 16", max_header_bytes=16)


@pytest.mark.parametrize(
    ("writer", "match"),
    [
        ("write_offsets_out_of_bounds", "out of bounds"),
        ("write_overlapping", "overlap"),
        ("write_hole", "hole of 8 unclaimed bytes"),
        ("write_trailing_bytes", "14 trailing bytes"),
        ("write_unknown_dtype", "unknown dtype 'F128'"),
        ("write_shape_mismatch", "needs 40 bytes but data_offsets span 32"),
        ("write_duplicate_names", "names 'a' twice"),
        ("write_invalid_json", "not valid JSON"),
        ("write_invalid_utf8", "not valid UTF-8"),
    ],
)
def test_malformed_header(tmp_path: Path, attacks, writer: str, match: str) -> None:
    _raises_exactly(CheckpointError, getattr(attacks, writer)(tmp_path), match)


def test_duplicate_names_are_accepted_by_the_safetensors_library(tmp_path: Path, attacks) -> None:
    """Why we parse ourselves: the library keeps the last "a" and reads an I64 where we refuse."""
    p = attacks.write_duplicate_names(tmp_path)
    loaded = safetensors.torch.load_file(p)
    assert loaded["a"].dtype == torch.int64


@pytest.mark.parametrize(
    ("header", "match"),
    [
        ({"__metadata__": {"k": 1}, "a": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}}, "strings to strings"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "extra": 1}}, "exactly dtype, shape"),
        ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, "non-negative"),
        ({"a": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, "non-negative"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, "begin <= end"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4.0]}}, "pair of integers"),
    ],
)
def test_other_invalid_entries(tmp_path: Path, attacks, header: object, match: str) -> None:
    p = attacks.safetensors_file(tmp_path, "x.safetensors", json.dumps(header).encode(), b"\0" * 4)
    _raises_exactly(CheckpointError, p, match)


def test_header_must_be_a_json_object() -> None:
    raw = b"[1, 2]"
    f = io.BytesIO(struct.pack("<Q", len(raw)) + raw)
    with pytest.raises(CheckpointError, match="does not start with"):
        parse_header(f, len(raw) + 8, "x.safetensors")


def test_nan_constant_in_header_refused(tmp_path: Path, attacks) -> None:
    raw = b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, NaN]}}'
    _raises_exactly(CheckpointError, attacks.safetensors_file(tmp_path, "nan.safetensors", raw, b"\0" * 4), "not valid JSON")


def test_empty_file(tmp_path: Path, attacks) -> None:
    _raises_exactly(CheckpointError, attacks.write_empty(tmp_path), "empty file")


def test_no_tensors(tmp_path: Path, attacks) -> None:
    _raises_exactly(NoWeightsError, attacks.safetensors_file(tmp_path, "none.safetensors", {}, b""), "no tensors")


def test_zero_size_tensors_and_padding(tmp_path: Path, attacks) -> None:
    """Empty tensors share an offset; headers padded with spaces (as the library pads to 8 bytes) are fine."""
    header = {"e": {"dtype": "BF16", "shape": [0, 3], "data_offsets": [0, 0]},
              "f": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
              "g": {"dtype": "BOOL", "shape": [], "data_offsets": [2, 2 + 1]}}
    raw = json.dumps(header).encode() + b"   "
    p = attacks.safetensors_file(tmp_path, "z.safetensors", raw, b"\x07\x09\x01")
    with open_checkpoint(p) as ckpt:
        assert ckpt.read("e").shape == (0, 3) and ckpt.read("e").dtype == torch.bfloat16
        assert ckpt.read("f").tolist() == [7, 9]
        assert ckpt.read("g").item() is True



def test_close_while_a_view_is_held(tmp_path: Path, attacks) -> None:
    """Closing does not invalidate bytes already handed out: the map lives until the last view goes."""
    ckpt = open_checkpoint(attacks.safetensors_file(tmp_path))
    view = ckpt.read_bytes("b")
    ckpt.close()
    assert bytes(view) == attacks.VALID_DATA[24:]
    with pytest.raises(CheckpointError, match="closed"):
        ckpt.read("b")
