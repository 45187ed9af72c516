"""Streaming a large safetensors file through ``read_bytes`` costs page cache, not anonymous memory."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest

from weightzoo.zoo.formats import open_checkpoint

MIB = 2**20


def _rss_anon() -> int:
    """Anonymous resident memory of this process, in bytes (mapped file pages are not counted)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    pytest.skip("no RssAnon in /proc/self/status")


def _write_large(path: Path, tensors: int, mib_each: int) -> None:
    """A valid safetensors file of ``tensors`` × ``mib_each`` MiB of F32, written 1 MiB at a time."""
    nbytes = mib_each * MIB
    header = {f"layer.{i}.weight": {"dtype": "F32", "shape": [nbytes // 4], "data_offsets": [i * nbytes, (i + 1) * nbytes]}
              for i in range(tensors)}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    chunk = bytes(range(256)) * (MIB // 256)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for _ in range(tensors * mib_each):
            f.write(chunk)


@pytest.mark.slow
def test_streaming_256_mib_keeps_anonymous_memory_flat(tmp_path: Path) -> None:
    p = tmp_path / "large.safetensors"
    _write_large(p, tensors=16, mib_each=16)
    expected = hashlib.blake2b(bytes(range(256)) * (16 * MIB // 256)).hexdigest()
    before = _rss_anon()
    peak = before
    with open_checkpoint(p) as ckpt:
        for info in ckpt.tensors:
            view = ckpt.read_bytes(info.name)
            assert len(view) == 16 * MIB
            assert hashlib.blake2b(view).hexdigest() == expected  # touches every page of the tensor
            del view
            peak = max(peak, _rss_anon())
    grown = (peak - before) / MIB
    assert grown < 64, f"RssAnon grew by {grown:.1f} MiB while streaming 256 MiB"
