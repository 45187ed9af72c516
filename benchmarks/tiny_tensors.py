"""Per-tensor overheads (issue 22): a checkpoint of N one-byte tensors, ingested into a zoo and exported.

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/tiny_tensors.py [--n 1000000]

Baseline in the same run: the ``safetensors`` library itself (``safe_open`` reading every tensor, and
``save_file`` writing them) — the cost a user pays anyway to touch every tensor of that file. Ratios are
ours / baseline (lower is better). Target: ingest and export of 1,000,000 tensors each ≤ 10 s.
Also measures the cost of hash-checked reads (``verify=True``, the default) against unchecked reads
on a model of large tensors.
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

import torch

from weightzoo.zoo.store import Zoo


def write_tiny(path: Path, n: int) -> None:
    """N U8 tensors of shape [1] (names t0000000 ...), written directly (the library writer is not timed)."""
    header = {f"t{i:07d}": {"dtype": "U8", "shape": [1], "data_offsets": [i, i + 1]} for i in range(n)}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + bytes(i % 251 for i in range(n)))


def timed(fn) -> tuple[float, object]:  # noqa: ANN001
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--big-mib", type=int, default=256, help="size of the model for the verify-cost figure")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from safetensors import safe_open
    from safetensors.torch import save_file

    work = Path(tempfile.mkdtemp(prefix="wz-tiny-"))
    try:
        src = work / "tiny.safetensors"
        write_tiny(src, args.n)
        print(f"{args.n:,} one-byte tensors, file {src.stat().st_size / 1e6:.1f} MB")

        def baseline_read() -> dict[str, torch.Tensor]:
            with safe_open(src, "pt") as f:
                return {k: f.get_tensor(k) for k in f.keys()}
        t_base_read, loaded = timed(baseline_read)
        t_base_write, _ = timed(lambda: save_file(loaded, work / "copy.safetensors"))  # type: ignore[arg-type]
        loaded = {}  # free the baseline copy

        with Zoo.open(work / "zoo") as zoo:
            t_ingest, _ = timed(lambda: zoo.ingest(src, name="tiny"))
        with Zoo.open(work / "zoo") as zoo:
            from weightzoo.zoo.formats.writer import save_state_dict

            t_export, _ = timed(lambda: save_state_dict(zoo.state_dict("tiny"), work / "out.safetensors"))
        assert (work / "out.safetensors").stat().st_size == src.stat().st_size
        print(f"baseline safetensors read {t_base_read:.2f} s, write {t_base_write:.2f} s")
        print(f"ingest {t_ingest:.2f} s (ratio {t_ingest / t_base_read:.2f} x the baseline read; target <= 10 s)")
        print(f"export {t_export:.2f} s (ratio {t_export / t_base_write:.2f} x the baseline write; target <= 10 s)")

        # Cost of verify=True: read every tensor of a model of large tensors with and without hash checks.
        g = torch.Generator().manual_seed(0)
        big = {f"w{i}": torch.randn(args.big_mib * 2**18 // 16, generator=g) for i in range(16)}
        with Zoo.open(work / "zoo") as zoo:
            zoo.ingest(big, name="big")
            del big
            for _ in range(2):  # warm the page cache; keep the second figures
                t_off, _ = timed(lambda: [v.sum() for v in zoo.state_dict("big", verify=False).values()])
                t_on, _ = timed(lambda: [v.sum() for v in zoo.state_dict("big", verify=True).values()])
        print(f"read {args.big_mib} MiB: verify=False {t_off:.2f} s, verify=True {t_on:.2f} s "
              f"(ratio {t_on / t_off:.2f})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
