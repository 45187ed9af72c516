"""Ingest benchmarks for the zoo store (issue 2). Prints absolute figures and ratios to baselines run here.

    .venv/bin/python benchmarks/ingest.py [--quick]

1. MiniLM safetensors → zoo, against the floor "read with safetensors.safe_open + write the same bytes with
   plain h5py" (ratio = baseline time / ingest time; target ≥ 0.7).
2. Peak anonymous memory (RssAnon) above the post-import baseline while ingesting a generated 1 GiB
   safetensors file (target ≤ 300 MiB).
3. Re-ingesting an identical checkpoint (dedup: no new bytes), as a ratio to the first ingest.
4. Batch ingest of 10,000 small networks of 5k parameters: models/s.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import PeakSampler, rss_anon_bytes  # noqa: E402

from weightzoo.datasets.minilm import fetch_minilm  # noqa: E402
from weightzoo.zoo.store import Zoo  # noqa: E402


def _drop_zoo(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def baseline_read_write(src: Path, out: Path, durable: bool = False) -> float:
    """The floor: read with safe_open, write the same bytes with plain h5py (optionally fsynced, as we do)."""
    t0 = time.perf_counter()
    with safe_open(src, "np") as f, h5py.File(out, "w") as h:
        for k in f.keys():
            h.create_dataset(k, data=f.get_tensor(k))
    if durable:
        fd = os.open(out, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    return time.perf_counter() - t0


def bench_minilm(work: Path, repeats: int) -> None:
    src = fetch_minilm() / "model.safetensors"
    size = src.stat().st_size
    base, durable, ing, re = [], [], [], []
    for r in range(repeats):
        out = work / f"baseline-{r}.h5"
        base.append(baseline_read_write(src, out))
        out.unlink()
        durable.append(baseline_read_write(src, out, durable=True))
        out.unlink()
        zdir = work / f"zoo-{r}"
        with Zoo.open(zdir) as zoo:
            t0 = time.perf_counter()
            zoo.ingest(src, name="minilm")
            ing.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            before = zoo.stats()["stored_bytes"]
            zoo.ingest(src, name="minilm-again")
            re.append(time.perf_counter() - t0)
            assert zoo.stats()["stored_bytes"] == before
        _drop_zoo(zdir)
    b, bd, i, d = min(base), min(durable), min(ing), min(re)
    print(f"[1] MiniLM ({size / 1e6:.1f} MB): ingest {i:.3f} s ({size / i / 1e6:.0f} MB/s), durable (fsync) and "
          f"hashed; baseline safe_open+h5py {b:.3f} s -> ratio baseline/ingest = {b / i:.2f} (target >= 0.7); "
          f"same baseline + fsync {bd:.3f} s -> ratio {bd / i:.2f}")
    print(f"[3] re-ingest identical: {d:.3f} s, no new bytes; ratio to first ingest = {d / i:.2f}")


def bench_memory(work: Path, gib: float) -> None:
    src = work / "big.safetensors"
    n = int(gib * (1 << 30) / 4 / (4096 * 4096))
    gen = torch.Generator().manual_seed(0)
    sd = {f"layer{k}.weight": torch.randn(4096, 4096, generator=gen) for k in range(n)}
    save_file(sd, src)
    del sd
    gc.collect()
    # drop the file's pages from this process' view (they are file-backed anyway: RssAnon ignores them)
    base = rss_anon_bytes()
    with Zoo.open(work / "zoo-big") as zoo, PeakSampler() as s:
        t0 = time.perf_counter()
        zoo.ingest(src, name="big")
        dt = time.perf_counter() - t0
    extra = (s.peak - base) / (1 << 20)
    print(f"[2] ingest of a {src.stat().st_size / (1 << 30):.2f} GiB safetensors file: {dt:.2f} s; peak RssAnon "
          f"above baseline = {extra:.0f} MiB (target <= 300 MiB; one 64 MiB tensor = 64 MiB)")
    src.unlink()
    _drop_zoo(work / "zoo-big")


def bench_batch(work: Path, count: int) -> None:
    gen = torch.Generator().manual_seed(0)
    # 5,002 parameters: 64→64 (4,160) + 64→13 (845)... close to 5k like the Small CNN Zoo's 4,970
    def net() -> dict[str, torch.Tensor]:
        return {"0.weight": torch.randn(64, 64, generator=gen), "0.bias": torch.randn(64, generator=gen),
                "1.weight": torch.randn(12, 64, generator=gen), "1.bias": torch.randn(12, generator=gen)}

    nets = [net() for _ in range(count)]
    fresh = [net() for _ in range(50)]  # for one-by-one ingests: new bytes, so dedup does not flatter them
    nparams = sum(v.numel() for v in nets[0].values())
    with Zoo.open(work / "zoo-batch") as zoo:
        t0 = time.perf_counter()
        for start in range(0, count, 1000):
            zoo.ingest_many(dict(source=nets[j], name=f"net-{j:05d}", metadata={"seed": j})
                            for j in range(start, min(count, start + 1000)))
        dt = time.perf_counter() - t0
        packs = zoo.stats()["packs"]
        t0 = time.perf_counter()
        one = [zoo.ingest(fresh[j], name=f"single-{j}") for j in range(len(fresh))]
        single = (time.perf_counter() - t0) / len(one)
    print(f"[4] batch ingest of {count} networks ({nparams:,} params each): {count / dt:.0f} models/s "
          f"({dt:.1f} s, {packs} packs); one-by-one ingest {1 / single:.0f} models/s; ratio batch/single = "
          f"{(count / dt) * single:.1f}x")
    _drop_zoo(work / "zoo-batch")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (for a smoke run)")
    ap.add_argument("--dir", help="work folder (default: a temp folder on the same disk as /tmp)")
    args = ap.parse_args()
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="wz-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        print(f"torch {torch.__version__}, numpy {np.__version__}, h5py {h5py.__version__}, cores {os.cpu_count()}")
        bench_minilm(work, repeats=1 if args.quick else 3)
        bench_memory(work, 0.25 if args.quick else 1.0)
        bench_batch(work, 1000 if args.quick else 10_000)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
