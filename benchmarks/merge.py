"""Benchmark: TIES-merging 4 fine-tunes of MiniLM size, streaming per tensor.

Prints, each measured in this process against a baseline measured in the same run (best of 3 each):
- time of the merge (compute only, and with the streaming safetensors write) as a ratio to reading every
  input tensor once through the same readers (target <= 2.0: a merge should be I/O-bound), plus the same
  ratio in process CPU time, which other jobs on a shared machine disturb much less than wall time;
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
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import PeakSampler, rss_anon_bytes  # noqa: E402


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
    return read_all_cpu(sources, zoo)[0]


def read_all_cpu(sources: list, zoo=None) -> tuple[float, float]:
    """(wall, process CPU) seconds to read every tensor of every source once."""
    from weightzoo.zoo.store.resolve import load_state_dict

    t, c = time.perf_counter(), time.process_time()
    for s in sources:
        sd = load_state_dict(s, zoo=zoo)
        for k in sd:
            _ = sd[k]
    return time.perf_counter() - t, time.process_time() - c


def merge_time(base, models, out: Path | None, zoo=None) -> tuple[float, int]:
    dt, _, peak = merge_time_cpu(base, models, out, zoo)
    return dt, peak


def merge_time_cpu(base, models, out: Path | None, zoo=None) -> tuple[float, float, int]:
    """(wall, process CPU, peak RssAnon) of one TIES merge, computed (out=None) or written to ``out``."""
    from weightzoo.analysis.merging import merge, save_merged

    with PeakSampler() as ps:
        t, c = time.perf_counter(), time.process_time()
        m = merge("ties", models, base, params={"density": 0.2}, zoo=zoo)
        if out is None:
            for k in m:
                _ = m[k]
        else:
            save_merged(m, out)
        dt, dc = time.perf_counter() - t, time.process_time() - c
    return dt, dc, ps.peak


def best_of(n: int, fn) -> tuple:
    """The run with the smallest wall time of ``n`` (other jobs on a shared machine only ever add time),
    and the smallest CPU time seen."""
    runs = [fn() for _ in range(n)]
    best = min(runs, key=lambda r: r[0])
    return (best[0], min(r[1] for r in runs), *best[2:], max(r[-1] for r in runs))


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
        t_read, c_read = best_of(3, lambda: read_all_cpu(inputs))[:2]
        rss0 = rss_anon_bytes()
        models = [str(p) for p in fts]
        t_compute, c_compute, _, peak_c = best_of(3, lambda: merge_time_cpu(str(base_file), models, None))
        t_write, c_write, _, peak_w = best_of(3, lambda: merge_time_cpu(str(base_file), models, tmp / "merged.safetensors"))
        target = 4 * largest + 300 * 2**20
        print(f"\nTIES (density 0.2) of 4 fine-tunes, inputs on disk as safetensors (best of 3; load average "
              f"{os.getloadavg()[0]:.1f}):")
        print(f"  read all 5 inputs once:        {t_read:6.2f} s  (baseline; CPU {c_read:.2f} s)")
        print(f"  merge, compute only:           {t_compute:6.2f} s  ratio {t_compute / t_read:5.2f}  (target <= 2.0);"
              f" CPU {c_compute:.2f} s, CPU ratio {c_compute / c_read:.2f}")
        print(f"  merge + streaming write:       {t_write:6.2f} s  ratio {t_write / t_read:5.2f};"
              f" CPU {c_write:.2f} s, CPU ratio {c_write / c_read:.2f}")
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
            tz_merge, _, _, peak_z = best_of(3, lambda: merge_time_cpu("base", names[1:], None, zoo=z))
        print(f"\nsame merge from a zoo: read all {tz_read:.2f} s, merge {tz_merge:.2f} s, ratio {tz_merge / tz_read:.2f}; "
              f"peak RssAnon {peak_z / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
