"""Lineage recovery on digits-lineage with distractors and quantised copies: ours vs MoTHer, ≥ 3 seeds.

Protocol (per seed s):
- the zoo: ``weightzoo datasets build digits-lineage --size 16 --seed s`` (really trained trees: a base,
  2–4 fine-tunes on digit subsets, 0–2 fine-tunes of each, a weight-averaged merge with probability 0.5);
- evaluated: every model of trees t0000–t0007; distractors: the bases of trees t0008–t0015 (same
  architecture, independently trained, unrelated to every evaluated model);
- quantised copies: in each evaluated tree one random non-merge model gets a copy, alternately an
  int8 copy (int8 weights + per-row float32 scales, dequantised by the sketcher) and a float16 cast;
- declared lineage is hidden from the algorithm (``use_declared=False``): direction comes from the medoid;
- methods in the same run, on the same sketches: ours (``infer_lineage``), ours with MoTHer's L2 tree
  distance (``metric="l2"``, an ablation of the quantile distance), MoTHer as published
  (distance + kurtosis + arborescence over every model of the architecture, trees only), and MoTHer on
  our families (clustering handed to it);
- scores: edge accuracy, direction accuracy, merge precision/recall, quantised-copy precision/recall,
  family ARI; a bootstrap 95 % interval (10,000 resamples of trees, pooled over seeds) of the difference
  in edge accuracy between ours and the best baseline; CPU wall time of each method.

Run:  nice -n 10 .venv/bin/python docs/experiments/lineage_digits.py --seeds 0 1 2   (from the repo root; CPU)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from weightzoo.analysis.lineage import infer_lineage, score_lineage, sketch_zoo
from weightzoo.analysis.lineage.mother import mother_lineage
from weightzoo.zoo.store import Zoo

EVAL_TREES, DISTRACTOR_TREES = 8, 8


def build(zoo_dir: Path, seed: int) -> None:
    from weightzoo.datasets.registry import build as build_dataset

    build_dataset("digits-lineage", zoo_dir, size=EVAL_TREES + DISTRACTOR_TREES, seed=seed, workers=1, progress=False)


def int8_copy(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        if v.dim() >= 2:
            amax = v.reshape(v.shape[0], -1).abs().amax(1).clamp_min(1e-12)
            scale = amax / 127.0
            out[k] = torch.round(v / scale.reshape(-1, *([1] * (v.dim() - 1)))).clamp(-127, 127).to(torch.int8)
            out[f"{k}_scale"] = scale.float()
        else:
            out[k] = v.clone()
    return out


def prepare(zoo: Zoo, seed: int) -> tuple[list[str], list[dict], dict[str, str]]:
    """The evaluated refs, the true edges among them and the true family of each."""
    rng = np.random.default_rng(1000 + seed)
    refs, truth, fam = [], [], {}
    for t in range(EVAL_TREES + DISTRACTOR_TREES):
        prefix = f"digits-lineage/t{t:04d}-"
        members = [m.ref for m in zoo.models(name=f"{prefix}*") if not m.ref.endswith(("-q8", "-fp16"))]
        if t >= EVAL_TREES:
            refs.append(f"{prefix}base")
            fam[f"{prefix}base"] = f"distractor-{t}"
            continue
        for r in members:
            refs.append(r)
            fam[r] = f"t{t}"
            truth += [e for e in zoo.lineage(r, direction="up", depth=1, source="declared") if e["child"] == r]
        plain = [r for r in members if "-merge-" not in r]
        src = plain[int(rng.integers(len(plain)))]
        name = f"{src}-{'q8' if t % 2 == 0 else 'fp16'}"
        if not zoo.has_model(name):
            sd = dict(zoo.state_dict(src))
            zoo.ingest(int8_copy(sd) if t % 2 == 0 else {k: v.half() for k, v in sd.items()}, name=name,
                       metadata={"copy_of": src})
        refs.append(name)
        fam[name] = f"t{t}"
        truth.append({"child": name, "parent": src, "relation": "quantized"})
    return refs, truth, fam


def per_tree_hits(pred: list[dict], truth: list[dict], fam: dict[str, str]) -> dict[str, tuple[int, int]]:
    P = {(e["child"], e["parent"]) for e in pred}
    out: dict[str, list[int]] = {}
    for e in truth:
        h = out.setdefault(fam[e["child"]], [0, 0])
        h[0] += (e["child"], e["parent"]) in P
        h[1] += 1
    return {k: (a, b) for k, (a, b) in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--cache", default=".cache/lineage")
    ap.add_argument("--out", default="docs/experiments/lineage_digits.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows: dict[str, list[dict]] = {"ours": [], "ours_l2": [], "mother": [], "mother_on_our_families": []}
    hits: dict[str, dict[str, tuple[int, int]]] = {k: {} for k in rows}
    for seed in args.seeds:
        zdir = Path(args.cache) / f"zoo-s{seed}"
        if not (zdir / "catalog.sqlite").exists():
            build(zdir, seed)
        with Zoo.open(zdir) as zoo:
            refs, truth, fam = prepare(zoo, seed)
            t0 = time.perf_counter()
            ours = infer_lineage(zoo, models=refs, use_declared=False)
            t_ours = time.perf_counter() - t0
            t0 = time.perf_counter()
            ours_l2 = infer_lineage(zoo, models=refs, use_declared=False, metric="l2")
            t_l2 = time.perf_counter() - t0
            t0 = time.perf_counter()
            sk = sketch_zoo(zoo, refs)
            t_sketch = time.perf_counter() - t0
        t0 = time.perf_counter()
        mother = [e.to_dict() for e in mother_lineage(sk)]
        t_mother = time.perf_counter() - t0 + t_sketch
        mother_fam = [e.to_dict() for e in mother_lineage(sk, families=ours.families)]
        preds = {"ours": ([e.to_dict() for e in ours.edges], ours.families, t_ours),
                 "ours_l2": ([e.to_dict() for e in ours_l2.edges], ours_l2.families, t_l2),
                 "mother": (mother, [tuple(refs)], t_mother),
                 "mother_on_our_families": (mother_fam, ours.families, t_mother)}
        for method, (pred, fams, secs) in preds.items():
            s = score_lineage(pred, truth, families=fams, true_families=fam)
            s.update(seed=seed, seconds=secs, models=len(refs), pairs_compared=ours.pairs_compared
                     if method.startswith("ours") else len(refs) * (len(refs) - 1) // 2)
            rows[method].append(s)
            hits[method].update({f"s{seed}-{k}": v for k, v in per_tree_hits(pred, truth, fam).items()})
            print(f"seed {seed} {method:24s} edge acc {s['edge_accuracy']:.3f}  dir {s['direction_accuracy']}  "
                  f"merge P/R {s['merge_precision']}/{s['merge_recall']}  quant P/R {s['quantized_precision']}/"
                  f"{s['quantized_recall']}  ARI {s['family_ari']:.3f}  {secs:.1f}s", flush=True)
    summary: dict[str, dict] = {}
    for method, rs in rows.items():
        summary[method] = {}
        for key in ("edge_accuracy", "direction_accuracy", "merge_precision", "merge_recall", "quantized_precision",
                    "quantized_recall", "family_ari", "seconds", "pairs_compared", "models"):
            vals = [r[key] for r in rs if r.get(key) is not None]
            summary[method][key] = [statistics.mean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0] if vals else None
    best = max(("mother", "mother_on_our_families"), key=lambda m: summary[m]["edge_accuracy"][0])
    trees = sorted(hits["ours"])
    a = np.array([hits["ours"][t][0] for t in trees], float)
    b = np.array([hits[best][t][0] for t in trees], float)
    n = np.array([hits["ours"][t][1] for t in trees], float)
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(10_000):
        i = rng.integers(0, len(trees), len(trees))
        diffs.append((a[i].sum() - b[i].sum()) / n[i].sum())
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    summary["bootstrap"] = {"best_baseline": best, "edge_accuracy_difference": float((a.sum() - b.sum()) / n.sum()),
                            "ci95": [float(lo), float(hi)], "trees": len(trees)}
    Path(args.out).write_text(json.dumps({"seeds": args.seeds, "rows": rows, "summary": summary}, indent=2, default=float))
    print(json.dumps(summary, indent=2, default=float))


if __name__ == "__main__":
    main()
