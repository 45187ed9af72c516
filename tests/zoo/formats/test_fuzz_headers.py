"""Fuzzing the safetensors header parser (issue 22): random headers, random bytes and truncations of valid
files give a parsed, self-consistent table or a typed :class:`~weightzoo.errors.CheckpointError` — never
another exception, never a hang. ``@pytest.mark.slow`` runs 10,000 headers."""

from __future__ import annotations

import io
import json
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from weightzoo.errors import CheckpointError
from weightzoo.zoo.formats.dtypes import CODES
from weightzoo.zoo.formats.safetensors import parse_header

_INTS = st.one_of(st.integers(-3, 70), st.integers(-(2**70), 2**70), st.just(2**64), st.just(2**63))
_NAMES = st.one_of(st.text(max_size=8), st.sampled_from(["", "a", "\ud800", "a\x00b", "__metadata__", "../x"]))
_JSON = st.recursive(st.one_of(st.none(), st.booleans(), _INTS, st.floats(allow_nan=False), st.text(max_size=5)),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
                     max_leaves=4)


@st.composite
def _entry(draw: st.DrawFn) -> object:
    """A plausible entry (sometimes broken in one field) or any JSON value."""
    if draw(st.integers(0, 9)) == 0:
        return draw(_JSON)
    entry: dict[str, object] = {
        "dtype": draw(st.one_of(st.sampled_from(CODES), st.text(max_size=4), _INTS)),
        "shape": draw(st.one_of(st.lists(_INTS, max_size=4), st.integers(0, 70).map(lambda r: [1] * r), _JSON)),
        "data_offsets": draw(st.one_of(st.lists(_INTS, min_size=2, max_size=2), _JSON)),
    }
    if draw(st.integers(0, 9)) == 0:
        entry[draw(st.text(max_size=3))] = draw(_JSON)
    return entry


@st.composite
def _file(draw: st.DrawFn) -> bytes:
    header = draw(st.dictionaries(_NAMES, _entry(), max_size=4))
    if draw(st.booleans()):
        header["__metadata__"] = draw(st.one_of(st.dictionaries(st.text(max_size=3), st.text(max_size=3)), _JSON))
    raw = json.dumps(header).encode("utf-8", "surrogatepass") if draw(st.booleans()) else \
        json.dumps(header, ensure_ascii=True).encode()
    raw = draw(st.one_of(st.just(raw), st.binary(max_size=64).map(lambda b: raw[: len(b)] + b)))
    data = draw(st.binary(max_size=96))
    n = draw(st.one_of(st.just(len(raw)), st.integers(0, 2**64 - 1)))
    blob = struct.pack("<Q", n) + raw + data
    if draw(st.integers(0, 4)) == 0:
        blob = blob[: draw(st.integers(0, len(blob)))]
    return blob


def _check(blob: bytes) -> None:
    try:
        header = parse_header(io.BytesIO(blob), len(blob), "fuzz.safetensors", max_header_bytes=1 << 16)
    except CheckpointError as e:  # NoWeightsError and the other subclasses included
        assert "\n" not in str(e)
        return
    # Accepted: the table must be consistent with the file.
    cursor = 0
    for info in header.tensors:
        begin, end = header.offsets[info.name]
        assert begin == cursor and end - begin == info.nbytes
        cursor = end
    assert cursor == header.data_length == len(blob) - header.data_start


_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                 derandomize=True)


@settings(max_examples=150, **_SETTINGS)
@given(_file())
def test_fuzzed_headers_give_typed_errors_or_valid_tables(blob: bytes) -> None:
    _check(blob)


@settings(max_examples=200, **_SETTINGS)
@given(st.binary(max_size=200))
def test_random_bytes_give_typed_errors(blob: bytes) -> None:
    _check(blob)


_TEMPLATES = [
    {"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, "b": {"dtype": "I64", "shape": [4],
                                                                          "data_offsets": [24, 56]}},
    {"__metadata__": {"format": "pt"}, "x": {"dtype": "BF16", "shape": [1] * 40, "data_offsets": [0, 2]}},
    {"z": {"dtype": "F32", "shape": [4611686018427387904, 0], "data_offsets": [0, 0]},
     "u": {"dtype": "U8", "shape": [], "data_offsets": [0, 1]}},
]
_TOKENS = [b"0", b"-1", b"1e400", b"18446744073709551616", b"9223372036854775808", b"null", b"true", b"[]", b"{}",
           b'"\\ud800"', b'"a\\u0000b"', b'"F8_E4M3"', b'"XYZ"', b"[" * 70 + b"]" * 70, b"1.5", b'"shape"']


def _mutate(seed: int, rounds: int) -> bytes:
    """A valid file (one of three templates) with ``rounds`` random edits: a token replaced, a byte
    flipped, bytes deleted or duplicated, the length field changed, the file truncated."""
    import random

    rng = random.Random(seed)
    header = json.dumps(_TEMPLATES[rng.randrange(len(_TEMPLATES))]).encode()
    data = bytes(rng.randrange(256) for _ in range(56 if header.startswith(b'{"a"') else 2 if b"BF16" in header else 1))
    n: int | None = None
    for _ in range(rounds):
        op = rng.randrange(6)
        if op == 0 and header:  # replace a value token between delimiters
            i = rng.randrange(len(header))
            j = min(len(header), i + rng.randrange(1, 12))
            header = header[:i] + rng.choice(_TOKENS) + header[j:]
        elif op == 1 and header:
            i = rng.randrange(len(header))
            header = header[:i] + bytes([header[i] ^ (1 << rng.randrange(8))]) + header[i + 1:]
        elif op == 2 and header:
            i = rng.randrange(len(header))
            header = header[:i] + header[i + rng.randrange(1, 8):]
        elif op == 3 and header:
            i = rng.randrange(len(header))
            header = header[:i] + header[i:i + rng.randrange(1, 30)] + header[i:]
        elif op == 4:
            n = rng.choice([0, 1, len(header) - 1, len(header) + 1, 2**63, 2**64 - 1, rng.randrange(2**20)])
        else:
            data = data[: rng.randrange(len(data) + 1)] + bytes(rng.randrange(3))
    blob = struct.pack("<Q", len(header) if n is None else n) + header + data
    return blob[: len(blob) - rng.randrange(4)] if rng.randrange(8) == 0 else blob


@pytest.mark.slow
@settings(max_examples=10_000, **_SETTINGS)
@given(st.integers(0, 2**32 - 1), st.integers(1, 4))
def test_ten_thousand_mutated_headers(seed: int, rounds: int) -> None:
    """10,000 mutations of valid files (cheap to draw, so the slow suite stays within its budget)."""
    _check(_mutate(seed, rounds))


def test_mutations_reach_both_outcomes() -> None:
    """A negative control for the fuzzer: its inputs are sometimes accepted and sometimes refused."""
    outcomes = set()
    for seed in range(300):
        blob = _mutate(seed, 1)
        try:
            parse_header(io.BytesIO(blob), len(blob), None)
            outcomes.add("ok")
        except CheckpointError:
            outcomes.add("refused")
    assert outcomes == {"ok", "refused"}
