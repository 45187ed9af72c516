"""Benchmark: TIES-merging 4 fine-tunes of MiniLM size, streaming per tensor.

Prints, each measured in this process against a baseline measured in the same run:
- time of the merge (compute only, and with the streaming safetensors write) as a ratio to reading every
  input tensor once through the same readers (target <= 2.0: a merge should be I/O-bound);
- peak anonymous memory (RssAnon from /proc/self/status, sampled every 2 ms in a thread) against
  4 x the largest tensor + 300 MiB;
- wall time of a whole `weightzoo merge` process merging 2 fine-tunes (startup included);
- the same merge from a zoo, when the zoo store is available.

Inputs are the real all-MiniLM-L6-v2 weights ($WEIGHTZOO_MINILM_DIR, or fetched once) and 4 seeded
perturbations of them saved as safetensors files (warm page cache: both sides read the same bytes).

Run: .venv/bin/python benchmarks/merge.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch


def rss_anon() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


class PeakSampler:
    """Samples RssAnon in a background thread; ``peak`` is the largest value seen."""

    def __init__(self, every: float = 0.002) -> None:
        self.every, self.peak, self._stop = every, rss_anon(), threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_anon())
            time.sleep(self.every)

    def __enter__(self) -> PeakSampler:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss_anon())


def minilm() -> Path:
    env = os.environ.get("WEIGHTZOO_MINILM_DIR")
    if env:
        return Path(env)
    from weightzoo.datasets.minilm import fetch_minilm

    return fetch_minilm()


def make_finetunes(base_file: Path, out: Path, n: int) -> list[Path]:
    from safetensors.torch import load_file, save_file

    base = load_file(str(base_file))
    paths = []
    for i in range(n):
        g = torch.Generator().manual_seed(i)
        ft = {k: (v + 0.01 * float(v.std() if v.numel() > 1 else 1) * torch.randn(v.shape, generator=g)
                  if v.is_floating_point() else v) for k, v in base.items()}
        p = out / f"ft{i}.safetensors"
        save_file(ft, str(p))
        paths.append(p)
        del ft
    return paths


def read_all(sources: list, zoo=None) -> float:
    from weightzoo.zoo.resolve import load_state_dict

    t = time.perf_counter()
    for s in sources:
        sd = load_state_dict(s, zoo=zoo)
        for k in sd:
            _ = sd[k]
    return time.perf_counter() - t


def merge_time(base, models, out: Path | None, zoo=None) -> tuple[float, int]:
    from weightzoo.analysis.merging import merge, save_merged

    with PeakSampler() as ps:
        t = time.perf_counter()
        m = merge("ties", models, base, params={"density": 0.2}, zoo=zoo)
        if out is None:
            for k in m:
                _ = m[k]
        else:
            save_merged(m, out)
        dt = time.perf_counter() - t
    return dt, ps.peak


def main() -> None:
    from weightzoo.analysis.task_vectors import open_source, tensor_specs

    snap = minilm()
    base_file = snap / "model.safetensors"
    specs = tensor_specs(open_source(str(base_file)))
    largest = max(s.numel * s.dtype.itemsize for s in specs.values())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    print(f"MiniLM: {len(specs)} tensors, {sum(s.numel for s in specs.values()) / 1e6:.1f} M parameters, "
          f"largest tensor {largest / 2**20:.1f} MiB")
    with tempfile.TemporaryDirectory(prefix="wz-merge-bench-") as tmp:
        tmp = Path(tmp)
        fts = make_finetunes(base_file, tmp, 4)
        inputs = [str(base_file)] + [str(p) for p in fts]
        read_all(inputs)  # warm the page cache: both sides then read from memory
        reads = [read_all(inputs) for _ in range(3)]
        t_read = min(reads)
        rss0 = rss_anon()
        t_compute, peak_c = merge_time(str(base_file), [str(p) for p in fts], None)
        t_write, peak_w = merge_time(str(base_file), [str(p) for p in fts], tmp / "merged.safetensors")
        target = 4 * largest + 300 * 2**20
        print("\nTIES (density 0.2) of 4 fine-tunes, inputs on disk as safetensors:")
        print(f"  read all 5 inputs once:        {t_read:6.2f} s  (baseline; best of 3)")
        print(f"  merge, compute only:           {t_compute:6.2f} s  ratio {t_compute / t_read:5.2f}  (target <= 2.0)")
        print(f"  merge + streaming write:       {t_write:6.2f} s  ratio {t_write / t_read:5.2f}")
        print(f"  RssAnon before merging:        {rss0 / 2**20:7.1f} MiB")
        print(f"  peak RssAnon (compute/write):  {peak_c / 2**20:7.1f} / {peak_w / 2**20:.1f} MiB;"
              f" target 4 x largest + 300 MiB = {target / 2**20:.1f} MiB -> {'OK' if max(peak_c, peak_w) <= target else 'MISS'}")
        print(f"  peak above the pre-merge RssAnon: {(max(peak_c, peak_w) - rss0) / 2**20:.1f} MiB"
              f" = {(max(peak_c, peak_w) - rss0) / largest:.1f} x largest tensor")

        exe = Path(sys.executable).with_name("weightzoo")
        cmd = [str(exe), "merge", "--method", "ties", "--base", str(base_file), "--models", str(fts[0]), str(fts[1]),
               "--param", "density=0.2", "--out", str(tmp / "cli.safetensors")]
        t = time.perf_counter()
        subprocess.run([str(exe), "--help"], check=True, capture_output=True)
        t_help = time.perf_counter() - t
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        t_cli = time.perf_counter() - t
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], check=True)
        t_torch = time.perf_counter() - t
        print(f"\nwhole `weightzoo merge` process, TIES of 2 MiniLM fine-tunes: {t_cli:.2f} s wall "
              f"(`weightzoo --help`: {t_help:.2f} s; `python -c 'import torch'`: {t_torch:.2f} s)")

        try:
            from weightzoo.zoo.store import Zoo
        except ImportError:
            print("\nzoo store not available: zoo figures skipped")
            return
        with Zoo.open(tmp / "zoo", create=True) as z:
            z.ingest(str(base_file), name="base")
            for i, p in enumerate(fts):
                z.ingest(str(p), name=f"ft{i}")
            names = ["base"] + [f"ft{i}" for i in range(4)]
            read_all(names, zoo=z)
            tz_read = min(read_all(names, zoo=z) for _ in range(3))
            tz_merge, peak_z = merge_time("base", names[1:], None, zoo=z)
        print(f"\nsame merge from a zoo: read all {tz_read:.2f} s, merge {tz_merge:.2f} s, ratio {tz_merge / tz_read:.2f}; "
              f"peak RssAnon {peak_z / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
