"""Benchmark: lineage inference over a zoo of 1,000 models, streaming tensors, with and without pruning.

The zoo: ``--families`` unrelated families (default 100) of one MLP architecture (64-128-128-10, 26k
parameters), each a seeded tree — a base, 3 fine-tunes, 2 fine-tunes of the first, a weight-averaged
merge of two fine-tunes, a float16 and an int8 copy, and an exact duplicate: 10 models a family.

Prints, measured in this process:
- ours: ``infer_lineage`` over the whole zoo (LSH + shared-hash candidates) — models/s, the number of
  pairs compared against all n(n−1)/2, peak anonymous memory (RssAnon sampled every 5 ms) above the
  process's memory before the run, and edge accuracy against the known trees;
- the baseline, in the same run: the same pipeline comparing every pair (``exhaustive_below`` > n);
- ratios: wall time and pairs compared of ours against the baseline.

Run: nice -n 10 .venv/bin/python benchmarks/lineage.py [--families 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import PeakSampler, rss_anon_bytes  # noqa: E402

SHAPES = {"l1.weight": (128, 64), "l1.bias": (128,), "l2.weight": (128, 128), "l2.bias": (128,),
          "l3.weight": (10, 128), "l3.bias": (10,)}


def family(f: int) -> tuple[dict[str, dict[str, torch.Tensor]], list[tuple[str, str, str]]]:
    g = torch.Generator().manual_seed(f)
    base = {k: torch.randn(s, generator=g) / s[-1] ** 0.5 for k, s in SHAPES.items()}

    def ft(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v + 0.05 * v.std() * torch.randn(v.shape, generator=g) for k, v in sd.items()}

    p = f"f{f:04d}"
    m = {f"{p}-base": base}
    for i in range(3):
        m[f"{p}-ft{i}"] = ft(base)
    for j in range(2):
        m[f"{p}-ft0-ft{j}"] = ft(m[f"{p}-ft0"])
    m[f"{p}-merge"] = {k: (m[f"{p}-ft1"][k] + m[f"{p}-ft2"][k]) / 2 for k in SHAPES}
    m[f"{p}-ft1-fp16"] = {k: v.half() for k, v in m[f"{p}-ft1"].items()}
    q = {}
    for k, v in m[f"{p}-ft2"].items():
        if v.dim() == 2:
            s = v.abs().amax(1) / 127
            q[k], q[k + "_scale"] = torch.round(v / s[:, None]).to(torch.int8), s
        else:
            q[k] = v
    m[f"{p}-ft2-int8"] = q
    m[f"{p}-base-copy"] = {k: v.clone() for k, v in base.items()}
    truth = [(f"{p}-ft{i}", f"{p}-base", "finetune") for i in range(3)]
    truth += [(f"{p}-ft0-ft{j}", f"{p}-ft0", "finetune") for j in range(2)]
    truth += [(f"{p}-merge", f"{p}-ft1", "merge"), (f"{p}-merge", f"{p}-ft2", "merge"),
              (f"{p}-ft1-fp16", f"{p}-ft1", "quantized"), (f"{p}-ft2-int8", f"{p}-ft2", "quantized"),
              (f"{p}-base-copy", f"{p}-base", "duplicate")]
    return m, truth


def run(zoo_dir: Path, exhaustive: bool, n: int) -> dict:
    from weightzoo.analysis.lineage import infer_lineage

    before = rss_anon_bytes()
    t0 = time.perf_counter()
    with PeakSampler() as peak:
        res = infer_lineage(zoo_dir, use_declared=False, detect_adapters=False,
                            **({"exhaustive_below": n + 1} if exhaustive else {}))
    secs = time.perf_counter() - t0
    return {"result": res, "seconds": secs, "peak_mb": (peak.peak - before) / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", type=int, default=100)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from weightzoo.analysis.lineage import score_lineage
    from weightzoo.zoo.store import Zoo

    with tempfile.TemporaryDirectory() as tmp:
        zoo_dir = Path(tmp) / "zoo"
        truth = []
        t0 = time.perf_counter()
        with Zoo.open(zoo_dir) as zoo:
            for start in range(0, args.families, 20):
                items = []
                for f in range(start, min(start + 20, args.families)):
                    models, edges = family(f)
                    items += [dict(source=sd, name=name) for name, sd in models.items()]
                    truth += edges
                zoo.ingest_many(items, progress=False)
            n = len(zoo)
        print(f"zoo: {n} models in {args.families} families, built in {time.perf_counter() - t0:.1f}s")
        truth_d = [{"child": c, "parent": p, "relation": r} for c, p, r in truth]
        rows = {}
        for label, exhaustive in (("ours (LSH + shared hashes)", False), ("baseline (all pairs)", True)):
            r = run(zoo_dir, exhaustive, n)
            res = r["result"]
            s = score_lineage([e.to_dict() for e in res.edges], truth_d)
            rows[label] = r
            print(f"{label:28s} {r['seconds']:7.1f}s  {n / r['seconds']:7.1f} models/s  pairs compared "
                  f"{res.pairs_compared:>7d} of {n * (n - 1) // 2}  peak +{r['peak_mb']:.0f} MiB  "
                  f"edge accuracy {s['edge_accuracy']:.3f}  merges P/R {s['merge_precision']}/{s['merge_recall']}")
        ours, base = rows["ours (LSH + shared hashes)"], rows["baseline (all pairs)"]
        print(f"ratio ours / all pairs: time {ours['seconds'] / base['seconds']:.2f}x, pairs compared "
              f"{ours['result'].pairs_compared / max(base['result'].pairs_compared, 1):.3f}x")


if __name__ == "__main__":
    main()
