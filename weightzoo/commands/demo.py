"""``weightzoo demo``: the main job end to end on embedded defaults (what ``make demo`` runs).

Everything is real and needs no network beyond PyPI: the all-MiniLM-L6-v2 snapshot shipped in a PyPI
package, and small CNNs trained here on scikit-learn's digits. The demo ingests them into a zoo, builds
a small benchmark zoo, turns models into graphs, checks a weight-space symmetry, fine-tunes and merges,
computes filter statistics, and verifies every stored byte.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ._common import add_zoo


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job end to end: ingest, benchmark zoo, graphs, merge, stats, verify")
    add_zoo(p)
    p.add_argument("--cache", help="download/cache folder (default: $WEIGHTZOO_CACHE or ~/.cache/weightzoo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--zoo-size", type=int, default=8, help="networks in the digits-cnn benchmark zoo (default 8)")
    p.set_defaults(func=run, zoo_default="./demo-zoo")


def _train(model: Any, x: Any, y: Any, epochs: int, lr: float, seed: int) -> Any:
    import torch

    from weightzoo.datasets.digits import make_optimizer, train_epoch

    opt = make_optimizer("adam", list(model.parameters()), lr, 0.0)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        train_epoch(model, opt, x, y, batch_size=64, generator=gen)
    return model.eval()


def _accuracy(model: Any, x: Any, y: Any) -> float:
    from weightzoo.datasets.digits import measure

    return float(measure(model, x, y)["accuracy"])  # type: ignore[arg-type]


def _digits_cnn(seed: int) -> Any:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )


def run(args: argparse.Namespace) -> int:
    import copy

    import torch

    from weightzoo.analysis.filters import scan_filters
    from weightzoo.analysis.merging import merge, save_merged
    from weightzoo.datasets.digits import digits_split
    from weightzoo.datasets.minilm import default_cache, fetch_minilm
    from weightzoo.datasets.registry import build
    from weightzoo.zoo.arch import spec_from_module
    from weightzoo.zoo.graphs import ComputeGraph, ParameterGraph
    from weightzoo.zoo.store import Zoo
    from weightzoo.zoo.symmetry import permute_hidden

    from .store import _record_line

    torch.set_num_threads(max(1, torch.get_num_threads()))
    zoo_dir = Path(args.zoo or args.zoo_default)
    cache = Path(args.cache) if args.cache else default_cache()
    t0 = time.perf_counter()

    def step(n: int, text: str) -> None:
        print(f"[{n}/7] {text}  ({time.perf_counter() - t0:.0f} s)", flush=True)

    step(1, f"fetching the real all-MiniLM-L6-v2 snapshot (PyPI package, cached in {cache})")
    snapshot = fetch_minilm(cache)

    step(2, f"training a small CNN on scikit-learn digits (seed {args.seed}), saving it with torch.save")
    split = digits_split()
    xtr, ytr, xte, yte = split.x_train, split.y_train, split.x_test, split.y_test
    base = _train(_digits_cnn(args.seed), xtr, ytr, epochs=8, lr=1e-2, seed=args.seed)
    metrics = {"train_accuracy": _accuracy(base, xtr, ytr), "test_accuracy": _accuracy(base, xte, yte)}
    ckpt = cache / f"digits-cnn-seed{args.seed}.pt"
    torch.save(base.state_dict(), ckpt)
    spec = spec_from_module(base)
    spec["input_shape"] = [1, 8, 8]
    print(f"      test accuracy {metrics['test_accuracy']:.3f}")

    with Zoo.open(zoo_dir) as zoo:
        print(f"      ingesting both into {zoo_dir}")
        zoo.ingest(snapshot, name="sentence-transformers/all-MiniLM-L6-v2", replace=True,
                   license="apache-2.0", tags=["sentence-similarity"])
        zoo.ingest(ckpt, name="digits-cnn", replace=True, spec=spec, metadata={"seed": args.seed, **metrics})

        step(3, f"building a digits-cnn benchmark zoo of {args.zoo_size} networks (real training, all cores)")
        rep = build("digits-cnn", zoo, size=args.zoo_size, seed=args.seed, progress=False)
        finals = [m for m in zoo.models(name="digits-cnn/*") if m.metadata.get("epoch") == max(
            mm.metadata.get("epoch", 0) for mm in zoo.models(name="digits-cnn/*"))]
        accs = sorted(m.metadata["test_accuracy"] for m in finals)
        print(f"      {rep.models_ingested} checkpoints ingested ({rep.units_built} networks built, "
              f"{rep.units_skipped} already there); final test accuracies {', '.join(f'{a:.2f}' for a in accs)}")

        step(4, "graphs: ParameterGraph and ComputeGraph of the stored CNN, and a weight-space symmetry")
        rec = zoo.model("digits-cnn")
        g = ParameterGraph.from_spec(rec.spec or spec, zoo.state_dict("digits-cnn"))
        exact = all(torch.equal(g.to_state_dict()[k], v) for k, v in zoo.state_dict("digits-cnn").items())
        module = zoo.module("digits-cnn")
        cg = ComputeGraph.record(module)
        permuted = permute_hidden(module, torch.Generator().manual_seed(args.seed))
        with torch.no_grad():
            same = torch.allclose(module(xte), permuted(xte), atol=1e-5)
        s = g.summary()
        print(f"      ParameterGraph: {s['nodes']} nodes, {s['edges']} edges, {s['parameters']} parameters, "
              f"round trip bit-exact: {exact}")
        print(f"      ComputeGraph: {' -> '.join(cg.op_names())}; coverage complete: {cg.coverage.complete}")
        print(f"      permuting hidden channels leaves the outputs unchanged: {same}")

        step(5, "task vectors: fine-tune on digits 0-4 and 5-9, merge with TIES into the zoo, with lineage")
        names = []
        for lo, hi in ((0, 4), (5, 9)):
            keep = (ytr >= lo) & (ytr <= hi)
            ft = _train(copy.deepcopy(base), xtr[keep], ytr[keep], epochs=3, lr=3e-3, seed=args.seed + lo)
            name = f"digits-cnn-ft{lo}{hi}"
            zoo.ingest(ft, name=name, replace=True, spec=spec, metadata={"task": f"{lo}-{hi}"})
            zoo.add_lineage(name, "digits-cnn", "finetune")
            names.append(name)
        merged = merge("ties", names, base="digits-cnn", params={"density": 0.5, "lambda": 1.0}, zoo=zoo)
        if zoo.has_model("digits-cnn-ties"):  # a re-run replaces the previous merge
            zoo.rm("digits-cnn-ties")
        save_merged(merged, "zoo:digits-cnn-ties", zoo=zoo, parents=names)
        zoo.set_spec("digits-cnn-ties", spec)
        for name in ["digits-cnn", *names, "digits-cnn-ties"]:
            net = zoo.module(name)
            low, high = yte <= 4, yte >= 5
            print(f"      {name:18s} acc 0-4 {_accuracy(net, xte[low], yte[low]):.3f}  5-9 "
                  f"{_accuracy(net, xte[high], yte[high]):.3f}  all {_accuracy(net, xte, yte):.3f}")
        print(f"      lineage: {', '.join(e['child'] + ' <- ' + e['parent'] for e in zoo.lineage('digits-cnn', direction='down'))}")

        step(6, "filter statistics (CNN Filter DB metrics) over the CNNs in the zoo")
        cnns = ["digits-cnn", *names, "digits-cnn-ties"]
        scan = scan_filters(cnns, zoo=zoo)
        for layer in scan.layers[:3]:
            print(f"      {layer['model']} {layer['layer']}: {layer['n_filters']} filters, sparsity "
                  f"{layer['sparsity']:.2f}, variance entropy {layer['variance_entropy']:.3f}, orthogonality "
                  f"{layer['orthogonality']:.3f}")
        print(f"      ... {len(scan.layers)} conv layers in {len(cnns)} models")

        step(7, "verifying the zoo (re-hashing every stored tensor)")
        report = zoo.verify()
        stats = zoo.stats()
        for rec in zoo.models():
            if not rec.name.startswith("digits-cnn/"):
                print(f"      {_record_line(rec)}")
    print(f"      {report.blobs_checked} blobs re-hashed: {'clean' if report.clean else 'CORRUPT'}; "
          f"{stats['models']} models, {stats['logical_bytes'] / 1e6:.1f} MB of weights in "
          f"{stats['stored_bytes'] / 1e6:.1f} MB stored")
    print(f"done in {time.perf_counter() - t0:.0f} s. Try: weightzoo ls --zoo {zoo_dir}; "
          f"weightzoo show digits-cnn --zoo {zoo_dir}; weightzoo lineage digits-cnn --zoo {zoo_dir}")
    return 0 if report.clean else 1
