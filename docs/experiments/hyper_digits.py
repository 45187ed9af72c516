"""GHN results on digits: zero-shot and fine-tuning accuracy of predicted parameters vs every baseline.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python docs/experiments/hyper_digits.py --out runs/hyper-digits \
        --archs 160 --seeds 0 1 2 --epochs 4 --eval-archs 12 --finetune-archs 8 --budgets 25 100

Trains one GHN per seed (``weightzoo.hyper.train``) on the training architectures of the ``archs``
generator (or of an ``archs`` zoo with ``--zoo``), then measures, for every evaluation split (held-out
architectures of the training families, the held-out wide / deep / attention-heavy families, and the
BN-free ones apart), the zero-shot accuracy of each initialisation under the one BatchNorm protocol
(recalibration on training images), and the accuracy after each fine-tuning budget. Baselines get a
fresh initialisation seed per GHN seed. Writes ``OUT/results.json``, prints Markdown tables, and draws
``--figure`` (accuracy vs fine-tuning steps per initialisation).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from weightzoo.datasets.builder import derive_seed
from weightzoo.hyper.archs import EVAL_SPLITS, Architecture, ArchitecturePool, image_splits
from weightzoo.hyper.baselines import FanInStats, kaiming_init, mimetic_init, nearest_init, orthogonal_init
from weightzoo.hyper.evaluate import compare, finetune, zero_shot
from weightzoo.hyper.train import TrainConfig, evaluate_ghn, load_ghn, prepare, train_ghn
from weightzoo.zoo.arch.cells import build_cells


def _fresh(spec: dict[str, Any], seed: int, name: str) -> nn.Module:
    torch.manual_seed(derive_seed("hyper-baseline", seed, name))
    return build_cells(spec)


def _small(a: Architecture) -> Architecture:
    """The same genotype (and norm) on 2 cells with an 8-channel stem: a benchmark this CPU can train on."""
    spec = dict(a.spec)
    spec.update(stem={"channels": 8, "kernel": spec["stem"]["kernel"]},
                cells=[{"type": "normal", "channels": 8}, {"type": "reduce", "channels": 16}])
    return replace(a, spec=spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--zoo", default=None, help="an archs zoo (default: sample --archs architectures)")
    ap.add_argument("--archs", type=int, default=160)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--max-minutes", type=float, default=None)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--encoder", default="gated")
    ap.add_argument("--meta-batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--eval-archs", type=int, default=12, help="architectures per evaluation split")
    ap.add_argument("--finetune-archs", type=int, default=8, help="held-out test architectures fine-tuned")
    ap.add_argument("--budgets", type=int, nargs="+", default=[25, 100])
    ap.add_argument("--bn-batches", type=int, default=4)
    ap.add_argument("--figure", default=None)
    ap.add_argument("--small", action="store_true",
                    help="scaled-down bodies: each genotype on 2 cells (normal, reduce) with an 8-channel stem")
    ap.add_argument("--phase", default="all", choices=("all", "train", "evaluate", "report"),
                    help="train / evaluate write per-seed files (run seeds in parallel); report aggregates")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    pool = ArchitecturePool.from_zoo(args.zoo) if args.zoo else ArchitecturePool.sample(args.archs, seed=0)
    if args.small:
        pool = ArchitecturePool([_small(a) for a in pool.archs], source=pool.source + " (small bodies)")
    images = image_splits()
    config = TrainConfig(hidden=args.hidden, encoder=args.encoder, epochs=args.epochs, meta_batch=args.meta_batch,
                         batch_size=32, lr=args.lr, val_archs=8, max_minutes=args.max_minutes,
                         bn_batches=args.bn_batches, patience=100)
    train_seconds = {}
    for seed in args.seeds if args.phase in ("all", "train") else []:
        t = time.perf_counter()
        r = train_ghn(pool, out / f"seed-{seed}", replace(config, seed=seed), progress=False,
                      log=lambda s, seed=seed: print(f"[seed {seed}] {s}", flush=True))
        train_seconds[seed] = r.wall_seconds
        print(f"[seed {seed}] trained: best val {r.best_val_accuracy:.4f} in {time.perf_counter() - t:.0f} s", flush=True)

    if args.phase == "train":
        return
    if args.phase in ("all", "evaluate"):
        for seed in args.seeds:
            _evaluate(args, pool, images, seed, out)
    if args.phase in ("all", "report"):
        _report(args, pool, out, t_all)


def _evaluate(args: argparse.Namespace, pool: ArchitecturePool, images: Any, seed: int, out: Path) -> None:
    """Zero-shot and fine-tuning accuracies of every method for one GHN seed → ``OUT/seed-K/eval.json``."""
    trained = [a for a in pool.archs if a.metadata.get("trained") and a.split == "train"]
    fanin = None
    trained_states: list[dict[str, torch.Tensor]] = []
    if trained and args.zoo:
        from weightzoo.zoo.store import Zoo

        with Zoo.open(args.zoo, create=False) as zoo:
            mods = []
            for a in trained:
                m = build_cells(a.spec)
                m.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in zoo.state_dict(a.name).items()})
                p = prepare(a)
                mods.append((m, p.graph))
                trained_states.append(dict(m.state_dict()))
        fanin = FanInStats.fit(mods)

    splits = {s: pool.split(s)[:args.eval_archs] for s in EVAL_SPLITS}
    zs: dict[str, dict[str, list[float]]] = {s: {} for s in splits}
    t_eval = time.perf_counter()
    ghn = load_ghn(out / f"seed-{seed}")
    for split, archs in splits.items():
        prep = [prepare(a) for a in archs]
        zs[split].setdefault("ghn", []).extend(evaluate_ghn(ghn, prep, images.x_calib, images.x_test, images.y_test,
                                                            bn_batches=args.bn_batches))
        for a in archs:
            gen = torch.Generator().manual_seed(derive_seed("hyper-baseline-gen", seed, a.name))
            methods = {"default": _fresh(a.spec, seed, a.name),
                       "kaiming": kaiming_init(_fresh(a.spec, seed, a.name), gen),
                       "orthogonal": orthogonal_init(_fresh(a.spec, seed, a.name), gen)}
            m = _fresh(a.spec, seed, a.name)
            mimetic_init(m, gen)
            methods["mimetic"] = m
            if fanin is not None:
                m = _fresh(a.spec, seed, a.name)
                methods["fanin-stats"] = fanin.apply(m, prepare(a).graph, gen)
                m = _fresh(a.spec, seed, a.name)
                nearest_init(m, trained_states)
                methods["nearest"] = m
            for name, module in methods.items():
                zs[split].setdefault(name, []).append(zero_shot(module, images, bn_batches=args.bn_batches))
    print(f"[seed {seed}] zero-shot done ({time.perf_counter() - t_eval:.0f} s)", flush=True)
    zero_shot_seconds = time.perf_counter() - t_eval

    t_ft = time.perf_counter()
    ft_archs = pool.split("test")[:args.finetune_archs]
    budgets = sorted({0, *args.budgets})
    ft: dict[int, dict[str, list[float]]] = {b: {} for b in budgets}
    for a in ft_archs:
        gen = torch.Generator().manual_seed(derive_seed("hyper-baseline-gen", seed, a.name))
        p = prepare(a)
        starts = {"ghn": ghn.predict(_fresh(a.spec, seed, a.name), graph=p.graph)}
        starts["default"] = _fresh(a.spec, seed, a.name)
        starts["kaiming"] = kaiming_init(_fresh(a.spec, seed, a.name), gen)
        starts["orthogonal"] = orthogonal_init(_fresh(a.spec, seed, a.name), gen)
        if fanin is not None:
            starts["fanin-stats"] = fanin.apply(_fresh(a.spec, seed, a.name), p.graph, gen)
        for name, module in starts.items():
            accs = finetune(module, images, budgets, seed=derive_seed("hyper-ft", seed, a.name),
                            bn_batches=args.bn_batches)
            for b, acc in accs.items():
                ft[b].setdefault(name, []).append(acc)
    print(f"[seed {seed}] fine-tuning done ({time.perf_counter() - t_ft:.0f} s)", flush=True)
    finetune_seconds = time.perf_counter() - t_ft
    (out / f"seed-{seed}" / "eval.json").write_text(json.dumps({
        "zero_shot": zs, "finetune": {str(b): v for b, v in ft.items()}, "split_sizes": {s: len(v) for s, v in
                                                                                         splits.items()},
        "zero_shot_seconds": zero_shot_seconds, "finetune_seconds": finetune_seconds,
        "finetune_archs": [a.name for a in ft_archs]}))


def _report(args: argparse.Namespace, pool: ArchitecturePool, out: Path, t_all: float) -> None:
    """Aggregate every seed's ``eval.json`` into ``OUT/results.json``, Markdown tables and the figure."""
    zs: dict[str, dict[str, list[float]]] = {}
    ft: dict[int, dict[str, list[float]]] = {}
    seconds: dict[str, dict[str, float]] = {}
    seed_means: dict[str, dict[str, list[float]]] = {}  # "zero:split" / "ft:budget" -> method -> per-seed means
    for seed in args.seeds:
        ev = json.loads((out / f"seed-{seed}" / "eval.json").read_text())
        metrics = json.loads((out / f"seed-{seed}" / "metrics.json").read_text())
        seconds[f"seed-{seed}"] = {"train": metrics["wall_seconds"], "zero_shot": ev["zero_shot_seconds"],
                                   "finetune": ev["finetune_seconds"], "epochs_run": metrics["epochs_run"],
                                   "best_val_accuracy": metrics["best_val_accuracy"]}
        for split, methods in ev["zero_shot"].items():
            for m, v in methods.items():
                zs.setdefault(split, {}).setdefault(m, []).extend(v)
                if v:
                    seed_means.setdefault(f"zero:{split}", {}).setdefault(m, []).append(float(np.mean(v)))
        for b, methods in ev["finetune"].items():
            for m, v in methods.items():
                ft.setdefault(int(b), {}).setdefault(m, []).extend(v)
                if v:
                    seed_means.setdefault(f"ft:{b}", {}).setdefault(m, []).append(float(np.mean(v)))
    budgets = sorted(ft)
    results = {
        "command": "docs/experiments/hyper_digits.py " + " ".join(f"{k}={v}" for k, v in vars(args).items()),
        "pool": pool.source, "seconds": seconds,
        "zero_shot": {s: {"per_arch": v, "compare": compare(v, "ghn")} for s, v in zs.items()},
        "finetune": {str(b): {"per_arch": v, "compare": compare(v, "ghn")} for b, v in ft.items()},
        "seed_means": seed_means,
    }

    def cell(key: str, m: str, values: list[float]) -> str:
        per_seed = seed_means.get(key, {}).get(m, [])
        return f"{np.mean(per_seed):.3f} ± {np.std(per_seed):.3f} (med {np.median(values):.3f})"
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\n| split | n | {' | '.join(zs['test'])} | GHN − best baseline (95 % CI) |")
    for split, v in zs.items():
        c = compare(v, "ghn")
        if not v.get("ghn"):
            continue
        cells = " | ".join(cell(f"zero:{split}", m, v[m]) for m in v)
        d = c.get("difference_to_best", {})
        print(f"| {split} | {len(v['ghn'])} | {cells} | {d.get('mean', float('nan')):+.3f} "
              f"[{d.get('lo', float('nan')):+.3f}, {d.get('hi', float('nan')):+.3f}] vs {c.get('best_baseline')} |")
    for b, v in ft.items():
        c = compare(v, "ghn")
        w = c.get("wins_against_best", {})
        d = c.get("difference_to_best", {})
        print(f"| {b} | {len(v['ghn'])} | " + " | ".join(cell(f"ft:{b}", m, v[m]) for m in v)
              + f" | {d.get('mean', float('nan')):+.3f} [{d.get('lo', float('nan')):+.3f}, "
              f"{d.get('hi', float('nan')):+.3f}] vs {c.get('best_baseline')}, W/T/L {w.get('wins')}/{w.get('ties')}/"
              f"{w.get('losses')} |")
    print(json.dumps(seconds))
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.4))
        for name in ft[0]:
            ax.plot(budgets, [float(np.mean(ft[b][name])) for b in budgets], marker="o", label=name)
        ax.set_xlabel("fine-tuning steps (Adam, batch 64)")
        ax.set_ylabel("test accuracy (digits)")
        ax.set_title("held-out architectures: accuracy vs steps per init", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(args.figure, dpi=120)


if __name__ == "__main__":
    main()
