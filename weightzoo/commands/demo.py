"""``weightzoo demo``: the whole library end to end on embedded defaults (what ``make demo`` runs).

Everything is real and needs no network beyond PyPI: the all-MiniLM-L6-v2 snapshot shipped in a PyPI
package, and networks trained here on scikit-learn's digits. A local Hub mirror serves a small "remote"
zoo; the demo crawls it metadata-first, then downloads; builds benchmark zoos; turns models into graphs
and checks a weight-space symmetry; merges task vectors; computes filter statistics; verifies every stored
byte; and writes ``DIR/report.html``. Each step prints what it measured and how long it took.
``--quick`` shrinks every size (the test suite runs it); the default takes a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="the whole library end to end: crawl, zoos, graphs, merge, filters, verify, report")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder: DIR/zoo, DIR/hub-source, DIR/report.html (default ./demo-out)")
    p.add_argument("--zoo", default=None, metavar="DIR", help="zoo folder (default DIR/zoo)")
    p.add_argument("--cache", help="download/cache folder (default: $WEIGHTZOO_CACHE or ~/.cache/weightzoo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="smallest sizes (every step still runs); for tests")
    p.set_defaults(func=run)


@dataclass
class Sizes:
    """How big each part of the demo is."""

    cnn_zoo: int = 24
    inr_images: int = 16
    inr_fits: int = 3
    lineage_trees: int = 3
    archs: int = 12
    base_epochs: int = 8

    @classmethod
    def quick(cls) -> Sizes:
        return cls(cnn_zoo=8, inr_images=4, inr_fits=2, lineage_trees=1, archs=4, base_epochs=4)


@dataclass
class Demo:
    """The demo's shared state: folders, seed, sizes, the digits split and what earlier steps made."""

    out: Path
    zoo_dir: Path
    cache: Path
    seed: int
    sizes: Sizes
    t0: float = field(default_factory=time.perf_counter)
    data: dict[str, Any] = field(default_factory=dict)

    def say(self, text: str) -> None:
        print(f"      {text}", flush=True)


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


BASE = "demo/digits-cnn"
FINETUNES = {"demo/digits-cnn-ft04": (0, 4), "demo/digits-cnn-ft59": (5, 9)}
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def step_remote_zoo(d: Demo) -> None:
    """Train a digits CNN and two fine-tunes; with MiniLM they make the "remote" zoo a Hub mirror serves."""
    from weightzoo.datasets.digits import digits_split
    from weightzoo.datasets.minilm import fetch_minilm
    from weightzoo.zoo.arch import spec_from_module
    from weightzoo.zoo.store import Zoo

    snapshot = fetch_minilm(d.cache)
    split = digits_split()
    d.data["split"] = split
    xtr, ytr, xte, yte = split.x_train, split.y_train, split.x_test, split.y_test
    base = _train(_digits_cnn(d.seed), xtr, ytr, epochs=d.sizes.base_epochs, lr=1e-2, seed=d.seed)
    spec = spec_from_module(base)
    spec["input_shape"] = [1, 8, 8]
    d.data["spec"] = spec
    source = d.out / "hub-source"
    with Zoo.open(source) as z:
        z.ingest(snapshot, name=MINILM, replace=True, license="apache-2.0", tags=["sentence-similarity"])
        z.ingest(base, name=BASE, replace=True, spec=spec, license="mit",
                 metadata={"seed": d.seed, "test_accuracy": _accuracy(base, xte, yte)})
        for name, (lo, hi) in FINETUNES.items():
            keep = (ytr >= lo) & (ytr <= hi)
            ft = _train(copy.deepcopy(base), xtr[keep], ytr[keep], epochs=3, lr=3e-3, seed=d.seed + lo)
            z.ingest(ft, name=name, replace=True, spec=spec, license="mit", metadata={"task": f"digits {lo}-{hi}"})
            z.add_lineage(name, BASE, "finetune")
    d.say(f"base CNN test accuracy {_accuracy(base, xte, yte):.3f}; remote zoo: MiniLM + 1 base + "
          f"{len(FINETUNES)} fine-tunes in {source}")


def step_crawl(d: Demo) -> None:
    """Serve the remote zoo with the Hub's HTTP API, crawl it metadata-first, then with --download."""
    from weightzoo.zoo.hub import crawl
    from weightzoo.zoo.hub.mirror import HubMirror
    from weightzoo.zoo.store import Zoo

    from .store import _record_line

    with HubMirror(zoo=d.out / "hub-source") as hub:
        d.say(f"Hub mirror at {hub.url} ({len(hub.repos)} repositories)")
        meta = crawl(d.zoo_dir, endpoint=hub.url, progress=False, workers=4)
        with Zoo.open(d.zoo_dir) as z:
            stats = z.stats()
        d.say(f"metadata-first: {meta.listed} listed, {meta.recorded} recorded, {meta.lineage_edges} lineage edges "
              f"from cards, {stats['ingested']} ingested (headers only, no weights moved) in {meta.seconds:.1f} s")
        full = crawl(d.zoo_dir, endpoint=hub.url, progress=False, workers=4, download=True,
                     cache_dir=str(d.out / "hf-cache"))
        d.say(f"--download: {full.ingested} models ingested in {full.seconds:.1f} s; {len(hub.log)} HTTP requests served")
    with Zoo.open(d.zoo_dir) as z:
        for name in (BASE, *FINETUNES):
            z.set_spec(name, d.data["spec"])
        for rec in z.models():
            d.say(_record_line(rec))
        d.say("lineage from the cards: " + ", ".join(f"{e['child']} <- {e['parent']}" for e in z.lineage(BASE, direction="down")))


def step_graphs(d: Demo) -> None:
    """ParameterGraph and ComputeGraph of the crawled CNN, and a weight-space symmetry."""
    import torch

    from weightzoo.zoo.graphs import ComputeGraph, ParameterGraph
    from weightzoo.zoo.store import Zoo
    from weightzoo.zoo.symmetry import permute_hidden

    xte = d.data["split"].x_test
    with Zoo.open(d.zoo_dir) as z:
        sd = z.state_dict(BASE)
        g = ParameterGraph.from_spec(d.data["spec"], sd)
        exact = all(torch.equal(g.to_state_dict()[k], sd[k]) for k in sd)
        module = z.module(BASE)
    cg = ComputeGraph.record(module)
    permuted = permute_hidden(module, torch.Generator().manual_seed(d.seed))
    with torch.no_grad():
        same = torch.allclose(module(xte), permuted(xte), atol=1e-5)
    s = g.summary()
    d.say(f"ParameterGraph: {s['nodes']} nodes, {s['edges']} edges, {s['parameters']} parameters, round trip "
          f"bit-exact: {exact}")
    d.say(f"ComputeGraph: {' -> '.join(cg.op_names())}; coverage complete: {cg.coverage.complete}")
    d.say(f"permuting hidden channels leaves the outputs unchanged: {same}")


def step_benchmark_zoos(d: Demo) -> None:
    """Small digits-cnn, digits-inr, digits-lineage and archs zoos, with real training."""
    from weightzoo.datasets.registry import build
    from weightzoo.zoo.store import Zoo

    s = d.sizes
    plan: list[tuple[str, int, dict[str, Any], str]] = [
        ("digits-cnn", s.cnn_zoo, {}, "networks"),
        ("digits-inr", s.inr_images, {"fits": s.inr_fits}, "images"),
        ("digits-lineage", s.lineage_trees, {}, "trees"),
        ("archs", s.archs, {}, "architectures"),
    ]
    with Zoo.open(d.zoo_dir) as z:
        for name, size, options, unit in plan:
            t = time.perf_counter()
            rep = build(name, z, size=size, seed=d.seed, progress=False, **options)
            d.say(f"{name}: {size} {unit} → {rep.models_ingested} checkpoints in {time.perf_counter() - t:.1f} s")


def step_merge(d: Demo) -> None:
    """Task vectors of the two fine-tunes, merged with TIES into the zoo, with lineage."""
    from weightzoo.analysis.merging import merge, save_merged
    from weightzoo.analysis.task_vectors import TaskVector
    from weightzoo.zoo.store import Zoo

    split = d.data["split"]
    xte, yte = split.x_test, split.y_test
    names = list(FINETUNES)
    with Zoo.open(d.zoo_dir) as z:
        a, b = (TaskVector(n, BASE, zoo=z) for n in names)
        d.say(f"task vectors: norms {a.norm():.2f} and {b.norm():.2f}, cosine {a.cosine(b):.3f}")
        merged = merge("ties", names, base=BASE, params={"density": 0.5, "lambda": 1.0}, zoo=z)
        if z.has_model("demo/digits-cnn-ties"):  # a re-run replaces the previous merge
            z.rm("demo/digits-cnn-ties")
        save_merged(merged, "zoo:demo/digits-cnn-ties", zoo=z, parents=names)
        z.set_spec("demo/digits-cnn-ties", d.data["spec"])
        low, high = yte <= 4, yte >= 5
        for name in [BASE, *names, "demo/digits-cnn-ties"]:
            net = z.module(name)
            d.say(f"{name:22s} accuracy on 0-4 {_accuracy(net, xte[low], yte[low]):.3f}, 5-9 "
                  f"{_accuracy(net, xte[high], yte[high]):.3f}, all {_accuracy(net, xte, yte):.3f}")


def step_filters(d: Demo) -> None:
    """CNN Filter DB statistics over the demo's CNNs."""
    from weightzoo.analysis.filters import scan_filters

    cnns = [BASE, *FINETUNES, "demo/digits-cnn-ties"]
    scan = scan_filters(cnns, zoo=d.zoo_dir, keep_filters=False)
    for layer in scan.layers[:3]:
        d.say(f"{layer['model']} {layer['layer']}: {layer['n_filters']} filters, sparsity {layer['sparsity']:.2f}, "
              f"variance entropy {layer['variance_entropy']:.3f}, orthogonality {layer['orthogonality']:.3f}")
    flagged = sum(1 for r in scan.layers if r["flags"])
    d.say(f"... {len(scan.layers)} conv layers in {len(cnns)} models, {flagged} flagged as degenerated")


def step_verify(d: Demo) -> None:
    """Re-hash every stored tensor."""
    from weightzoo.zoo.store import Zoo

    with Zoo.open(d.zoo_dir) as z:
        report = z.verify()
        stats = z.stats()
    d.data["clean"] = report.clean
    d.say(f"{report.blobs_checked} blobs re-hashed: {'clean' if report.clean else 'CORRUPT'}; {stats['models']} models, "
          f"{stats['logical_bytes'] / 1e6:.1f} MB of weights in {stats['stored_bytes'] / 1e6:.1f} MB stored")


def step_report(d: Demo) -> None:
    """The HTML report of the zoo and of the demo's runs."""
    from weightzoo.analysis.report import build_report

    runs = sorted(p for p in (d.out / "runs").glob("*") if p.is_dir()) if (d.out / "runs").is_dir() else []
    path, sections = build_report(d.zoo_dir, d.out / "report.html", runs=runs, title="weightzoo demo")
    d.say(", ".join(f"{s.title}: {s.figures} figure(s)" if s.figures else f"{s.title}: {'data' if s.has_data else 'no data'}"
                    for s in sections))
    d.say(f"report: {path.resolve()}")


STEPS: list[tuple[str, Callable[[Demo], None]]] = [
    ("training a digits CNN and two fine-tunes; the remote zoo (with the real MiniLM snapshot)", step_remote_zoo),
    ("crawling a local Hub mirror: metadata first, then --download", step_crawl),
    ("graphs of the crawled CNN and a weight-space symmetry", step_graphs),
    ("benchmark zoos: digits-cnn, digits-inr, digits-lineage, archs (real training)", step_benchmark_zoos),
    ("task vectors and a TIES merge", step_merge),
    ("filter statistics (CNN Filter DB)", step_filters),
    ("verifying the zoo", step_verify),
    ("writing the HTML report", step_report),
]


def run(args: argparse.Namespace) -> int:
    import torch

    from weightzoo.datasets.minilm import default_cache

    torch.set_num_threads(max(1, torch.get_num_threads()))
    out = Path(args.out or "demo-out")
    zoo_dir = Path(args.zoo) if args.zoo else out / "zoo"
    out.mkdir(parents=True, exist_ok=True)
    d = Demo(out=out, zoo_dir=zoo_dir, cache=Path(args.cache) if args.cache else default_cache(), seed=args.seed,
             sizes=Sizes.quick() if args.quick else Sizes())
    for i, (text, fn) in enumerate(STEPS, 1):
        t = time.perf_counter()
        print(f"[{i}/{len(STEPS)}] {text}", flush=True)
        fn(d)
        print(f"      ({time.perf_counter() - t:.1f} s; {time.perf_counter() - d.t0:.0f} s in all)", flush=True)
    print(f"done in {time.perf_counter() - d.t0:.0f} s. Open {(out / 'report.html').resolve()}; try: "
          f"weightzoo ls --zoo {zoo_dir}; weightzoo lineage {BASE} --zoo {zoo_dir}")
    return 0 if d.data.get("clean", False) else 1


__all__ = ["STEPS", "Sizes", "register", "run"]
