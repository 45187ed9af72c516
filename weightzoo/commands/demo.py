"""``weightzoo demo``: the whole library end to end on embedded defaults (what ``make demo`` runs).

Everything is real and needs no network beyond PyPI: the all-MiniLM-L6-v2 snapshot shipped in a PyPI
package, and networks trained here on scikit-learn's digits. A local Hub mirror serves a small "remote"
zoo; the demo crawls it metadata-first, then downloads; builds benchmark zoos; turns models into graphs
and checks a weight-space symmetry; trains a metanetwork (accuracy prediction) and a graph hypernetwork and
predicts for networks and architectures they never saw; nowcasts a short training run; retrieves similar
architectures; infers lineage from the weights and scores it against the declared edges; merges task
vectors; computes filter statistics; verifies every stored byte; and writes ``DIR/report.html`` with the
learned runs (``DIR/runs/*``). Each step prints what it measured, beside its baseline, and how long it took.
``--quick`` shrinks every size (the test suite runs it); the default takes a few minutes on 2 cores.
The learned steps are sized for a demo (seconds of training, one to three seeds): the documented results
with their budgets are in docs/results.md.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="the whole library end to end: crawl, zoos, graphs, metanetwork, GHN, "
                       "nowcasting, retrieval, inferred lineage, merge, filters, verify, report")
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
    archs_trained_fraction: float = 0.25
    base_epochs: int = 8
    metanet_seeds: tuple[int, ...] = (0, 1, 2)
    metanet_epochs: int = 40
    ghn_epochs: int = 60
    ghn_unseen: int = 8
    trajectory_networks: int = 8
    trajectory_epochs: tuple[int, ...] = (0, 4, 8)
    nowcast_epochs: int = 10
    nowcast_networks: int = 2
    nowcast_steps: int = 200

    @classmethod
    def quick(cls) -> Sizes:
        # archs=8: the smallest archs zoo (seed 0) with train and val architectures, which the GHN needs; none
        # trained (training them is most of the archs zoo's cost, and no quick step needs their accuracy)
        return cls(cnn_zoo=8, inr_images=4, inr_fits=2, lineage_trees=1, archs=8, archs_trained_fraction=0.0,
                   base_epochs=4,
                   metanet_seeds=(0,), metanet_epochs=4, ghn_epochs=2, ghn_unseen=1, trajectory_networks=4,
                   trajectory_epochs=(0, 4), nowcast_epochs=2, nowcast_networks=1, nowcast_steps=100)


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
            if rec.name in (MINILM, BASE, *FINETUNES):  # the crawled models (a re-run's zoo holds more)
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
        ("archs", s.archs, {"trained_fraction": s.archs_trained_fraction}, "architectures"),
    ]
    with Zoo.open(d.zoo_dir) as z:
        for name, size, options, unit in plan:
            t = time.perf_counter()
            rep = build(name, z, size=size, seed=d.seed, progress=False, **options)
            d.say(f"{name}: {size} {unit} → {rep.models_ingested} checkpoints in {time.perf_counter() - t:.1f} s")


def _runs(d: Demo) -> Path:
    return d.out / "runs"


def _write_run(d: Demo, name: str, metrics: dict[str, Any]) -> Path:
    """A demo evaluation as a run folder the report reads (``runs/NAME/metrics.json``)."""
    from weightzoo.zoo.formats.durable import write_json_atomic

    folder = _runs(d) / name
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "metrics.json", metrics)
    return folder


@contextlib.contextmanager
def _quiet() -> Any:
    """Hide the "Loading weights from local directory" lines huggingface_hub's mixin prints on loads."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def _mean_std(values: list[float]) -> str:
    import numpy as np

    vals = [v for v in values if v is not None]
    if not vals:
        return "n/a"
    return f"{np.mean(vals):.3f}" + (f" ± {np.std(vals, ddof=1):.3f}" if len(vals) > 1 else "")


def step_metanet(d: Demo) -> None:
    """A graph metanetwork predicts test accuracy from weights on digits-cnn, beside the StatNN baseline."""
    from weightzoo.datasets.builder import read_manifest
    from weightzoo.metanets.data import GraphDataset
    from weightzoo.metanets.metrics import kendall_tau
    from weightzoo.metanets.train import TrainConfig, TrainedMetanet, graphs_for, train

    s = d.sizes
    ds = GraphDataset.from_zoo(d.zoo_dir, target="test_accuracy", dataset="digits-cnn", epochs="all")
    groups = read_manifest(d.zoo_dir, "digits-cnn")["groups"]
    held_out = [(net, g["models"]) for net, g in sorted(groups.items()) if g["split"] == "test"]
    if not held_out:
        d.say("the digits-cnn split has no test network at this size and seed: nothing to predict for")
        return
    refs = [m for _, models in held_out for m in models]
    graphs, records, targets = graphs_for(refs, zoo=d.zoo_dir, target="test_accuracy")
    n_train = len({ds.records[i].network for i in ds.indices("train")})
    d.say(f"digits-cnn: {len(ds.indices('train'))} training checkpoints of {n_train} networks; {len(held_out)} "
          f"held-out network(s) ({len(refs)} checkpoints) never seen in training")
    predictions: dict[str, list[float]] = {}
    summary: dict[str, Any] = {"target": "test_accuracy", "task": "accuracy prediction from weights (digits-cnn)"}
    for model, options, epochs, what in (("gmn", {"hidden": 32, "layers": 2}, s.metanet_epochs, "graph metanetwork"),
                                         ("statnn", {}, 1, "StatNN baseline: weight statistics + trees")):
        t = time.perf_counter()
        cfg = TrainConfig(model=model, dataset="digits-cnn", checkpoints="all", epochs=epochs, patience=10,
                          model_options=options)
        with _quiet():
            results = train(d.zoo_dir, cfg, s.metanet_seeds, _runs(d) / f"metanet-{model}", dataset=ds)
            tm = TrainedMetanet.load(_runs(d) / f"metanet-{model}")
        predictions[model] = [float(p) for p in tm.predict(graphs, records)]
        tau = kendall_tau(predictions[model], targets)
        summary[model] = {"kendall_tau": tau if math.isfinite(tau) else None}
        d.say(f"{model} ({what}), {len(results)} seed(s): test Kendall τ {_mean_std([r['test'].get('kendall_tau') for r in results])} "
              f"on the final checkpoints; τ {tau:.3f} over every checkpoint of the held-out networks "
              f"({time.perf_counter() - t:.1f} s)")
    _write_run(d, "metanet-unseen-networks", summary)
    net, models = held_out[0]
    shown = ", ".join(f"{rec.epoch if rec is not None else '?'}: {targets[i]:.2f} / {predictions['gmn'][i]:.2f} / "
                      f"{predictions['statnn'][i]:.2f}" for i, rec in enumerate(records) if refs[i] in models)
    d.say(f"held-out network {net}, test accuracy recorded / gmn / statnn at epoch {shown}")


def _unseen_module(seed: int) -> Any:
    """A class-based CNN no zoo holds (a residual add, a sigmoid gate, batch norm): what a user brings."""
    import torch
    from torch import nn

    class GatedResidualCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(1, 12, 3, padding=1)
            self.bn = nn.BatchNorm2d(12)
            self.block = nn.Sequential(nn.Conv2d(12, 12, 3, padding=1), nn.ReLU(), nn.Conv2d(12, 12, 3, padding=1))
            self.gate = nn.Conv2d(12, 12, 1)
            self.head = nn.Linear(12, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.bn(self.stem(x)))
            h = h + self.block(h)
            h = h * torch.sigmoid(self.gate(h))
            return self.head(h.mean((2, 3)))  # type: ignore[no-any-return]

    torch.manual_seed(seed)
    return GatedResidualCNN()


def step_ghn(d: Demo) -> None:
    """A GHN trained on the archs zoo predicts parameters of architectures it never saw, against init baselines."""
    import torch

    from weightzoo.hyper.archs import ArchitecturePool, image_splits
    from weightzoo.hyper.baselines import baseline_init
    from weightzoo.hyper.evaluate import zero_shot
    from weightzoo.hyper.predict import predict_parameters
    from weightzoo.hyper.train import TrainConfig, load_ghn, prepare, train_runs
    from weightzoo.zoo.graphs import ComputeGraph

    pool = ArchitecturePool.from_zoo(d.zoo_dir)
    train_archs, val_archs = pool.split("train"), pool.split("val")
    unseen = (pool.split("heldout") + pool.split("test"))[:d.sizes.ghn_unseen]
    if not train_archs or not val_archs:
        d.say(f"the archs zoo has {len(train_archs)} train and {len(val_archs)} val architectures at this size and "
              "seed; the GHN needs both (use a larger size)")
        return
    t = time.perf_counter()
    cfg = TrainConfig(hidden=32, epochs=d.sizes.ghn_epochs, patience=d.sizes.ghn_epochs, val_archs=8)
    summary = train_runs(pool, _runs(d) / "ghn", cfg, seeds=[d.seed], progress=False)
    best = summary["runs"][summary["best"]]
    steps = best["epochs_run"] * -(-len(train_archs) // cfg.meta_batch)
    d.say(f"GHN trained on {len(train_archs)} architectures ({steps} steps, each ≤ {cfg.meta_batch} architectures × "
          f"{cfg.batch_size} images), "
          f"best validation accuracy {best['best_val_accuracy']:.3f} on {len(val_archs)} others "
          f"({time.perf_counter() - t:.1f} s)")
    ghn = load_ghn(_runs(d) / "ghn")
    images = image_splits()
    methods = ("ghn", "default", "kaiming", "orthogonal")
    accs: dict[str, list[float]] = {m: [] for m in methods}
    user = _unseen_module(d.seed)
    graph = ComputeGraph.record(user, example_input=torch.zeros(1, 1, 8, 8))
    targets: list[tuple[str, Any, Any]] = [(f"{a.name} ({a.family}, {a.split})", prepare(a, seed=d.seed).module, None)
                                           for a in unseen]
    targets.append(("GatedResidualCNN (a class-based module)", user, graph))
    for label, module, g in targets:
        pred = predict_parameters(ghn, module, graph=g)
        row = {"ghn": zero_shot(pred.module, images)}
        for method in methods[1:]:
            m = copy.deepcopy(module)
            if method != "default":
                baseline_init(method)(m, torch.Generator().manual_seed(d.seed))
            row[method] = zero_shot(m, images)
        for m in methods:
            accs[m].append(row[m])
        d.say(f"{label}: {pred.report.fraction:.0%} of parameter tensors predicted; zero-shot accuracy GHN "
              f"{row['ghn']:.3f}, default init {row['default']:.3f}, kaiming {row['kaiming']:.3f}, orthogonal "
              f"{row['orthogonal']:.3f}")
    mean = {m: sum(v) / len(v) for m, v in accs.items()}
    d.say(f"mean over {len(targets)} unseen architectures: " + ", ".join(f"{m} {v:.3f}" for m, v in mean.items())
          + " (chance 0.1)")
    _write_run(d, "ghn-unseen-architectures", {"task": "zero-shot digits accuracy of unseen architectures",
                                               **{m: {"accuracy": v} for m, v in mean.items()}})


def step_nowcast(d: Demo) -> None:
    """Nowcasters trained on a small trajectory zoo jump ahead during a short training run of a new network."""
    from weightzoo.datasets.registry import build
    from weightzoo.errors import DatasetError
    from weightzoo.hyper.nowcast.evaluate import speedup
    from weightzoo.hyper.nowcast.models import load_nowcaster
    from weightzoo.hyper.nowcast.training import train_nowcasters
    from weightzoo.zoo.store import Zoo

    s = d.sizes
    tz = d.out / "trajectory-zoo"  # its own zoo: 10-step snapshots would crowd the main zoo's lineage graph
    t = time.perf_counter()
    with Zoo.open(tz) as z:
        rep = build("digits-cnn", z, size=s.trajectory_networks, seed=d.seed, progress=False,
                    epochs=s.trajectory_epochs, trajectory_every=10)
    d.say(f"trajectory zoo: {s.trajectory_networks} digits CNNs, parameters every 10 steps → {rep.models_ingested} "
          f"checkpoints in {tz} ({time.perf_counter() - t:.1f} s)")
    t = time.perf_counter()
    run = _runs(d) / "nowcast"
    try:
        summary = train_nowcasters(tz, "digits-cnn", run, seeds=[d.seed], epochs=s.nowcast_epochs, max_minutes=0.5,
                                   progress=False)
    except DatasetError as exc:  # e.g. no training network with a long enough trajectory at this size and seed
        d.say(f"no nowcaster trained: {exc}")
        return
    losses = ", ".join(f"{k.split('/')[-1]} {v['loss']:.4f}" for k, v in summary["val_loss"].items())
    d.say(f"nowcasters (history 5 × 10 steps, 40 steps ahead) on {summary['settings']['train_examples']} examples: "
          f"validation loss {losses} ({time.perf_counter() - t:.1f} s)")
    t = time.perf_counter()
    with _quiet():
        nowcasters = {k: load_nowcaster(run / f"seed{d.seed}" / k) for k in ("graph", "mlp", "linear")}
    result = speedup(nowcasters, "digits-cnn", seed=d.seed, networks=s.nowcast_networks, steps=s.nowcast_steps)
    methods = result["methods"]
    d.say(f"{s.nowcast_networks} new network(s), {s.nowcast_steps} Adam steps: Adam's final validation loss reached "
          f"with " + ", ".join(f"{m} {100 * methods[m]['mean_reduction']:.0f} % fewer steps "
                               f"({methods[m]['applied']}/{methods[m]['attempted']} jumps kept)"
                               for m in ("graph", "mlp", "linear"))
          + f" ({time.perf_counter() - t:.1f} s)")
    _write_run(d, "nowcast-short-run", {"task": f"steps to Adam's loss after {s.nowcast_steps} steps (digits-cnn)",
                                        **{m: {"fewer_steps": methods[m]["mean_reduction"],
                                               "final_accuracy": methods[m]["final_accuracy"]}
                                           for m in ("graph", "mlp", "linear", "adam")}})


def step_retrieval(d: Demo) -> None:
    """Nearest architectures of the archs zoo by WL subtree features, beside the op-histogram baseline."""
    from weightzoo.analysis.retrieval import evaluate_zoo, resolve_encoder, retrieve
    from weightzoo.zoo.store import Zoo

    with Zoo.open(d.zoo_dir) as z:
        archs = sorted(m.name for m in z.models() if m.name.startswith("archs/"))
        k = 5
        results = evaluate_zoo(z, [resolve_encoder("wl"), resolve_encoder("ops")], k=k, groups={"archs": archs})
        for r in results:
            d.say(f"{r.encoder:>3} encoder, family retrieval over {r.size} architectures: MAP@{k} "
                  f"{r.metrics[f'map@{k}']:.3f}, MRR@{k} {r.metrics[f'mrr@{k}']:.3f}")
        _write_run(d, "retrieval", {"task": f"family retrieval in the archs zoo (k={k})",
                                    **{r.encoder: {f"map@{k}": r.metrics[f"map@{k}"], f"mrr@{k}": r.metrics[f"mrr@{k}"]}
                                       for r in results}})
        heldout = [m.name for m in z.models() if m.name.startswith("archs/") and m.metadata.get("split") == "heldout"]
        queries: list[tuple[str, Any]] = [(f"{q} ({z.model(q).metadata.get('family')})", q) for q in heldout[:1]]
        queries.append(("GatedResidualCNN (a class-based module)", _unseen_module(d.seed)))
        for label, query in queries:
            matches = [m for m in retrieve(query, z, len(z.models()), encoder="wl") if m.model.startswith("archs/")][:3]
            d.say(f"{label} → " + ", ".join(f"{m.model} ({m.family}, {m.similarity:.3f})" for m in matches))


def step_lineage(d: Demo) -> None:
    """Lineage of the digits-lineage zoo inferred from the weights alone, scored against the declared edges."""
    from weightzoo.analysis.lineage import infer_lineage, score_lineage
    from weightzoo.zoo.store import Zoo

    with Zoo.open(d.zoo_dir) as z:
        refs = [m.ref for m in z.models(ingested=True) if m.name.startswith("digits-lineage/")]
        names = {m.name for m in z.models(ingested=True) if m.name.startswith("digits-lineage/")}
        truth = [e for e in z.lineage_edges(source="declared") if e["child"] in names]
        result = infer_lineage(z, models=refs, use_declared=False, store=True)  # declared edges hidden from it
    score = score_lineage([e.to_dict() for e in result.edges], truth)
    rel: dict[str, int] = {}
    for e in result.edges:
        rel[e.relation] = rel.get(e.relation, 0) + 1

    def pct(key: str) -> str:
        v = score.get(key)
        return "n/a" if v is None else f"{100 * float(v):.0f} %"

    d.say(f"{len(refs)} models, declared edges hidden: {len(result.edges)} edges inferred "
          f"({', '.join(f'{n} {r}' for r, n in sorted(rel.items()))}) in {result.seconds:.1f} s; stored as inferred lineage")
    d.say(f"against the {score['true_edges']} declared edges: edge accuracy {pct('edge_accuracy')}, direction accuracy "
          f"{pct('direction_accuracy')}, merges found {pct('merge_recall')} (precision {pct('merge_precision')})")
    _write_run(d, "lineage-inference", {"task": "lineage of digits-lineage inferred from weights vs declared edges",
                                        **{k: v for k, v in score.items() if isinstance(v, int | float)}})


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
    ("metanetwork: accuracy prediction from weights on digits-cnn, for networks it never saw", step_metanet),
    ("graph hypernetwork: parameters for architectures it never saw", step_ghn),
    ("nowcasting a short training run", step_nowcast),
    ("architecture retrieval in the archs zoo", step_retrieval),
    ("lineage inferred from the weights of digits-lineage", step_lineage),
    ("task vectors and a TIES merge", step_merge),
    ("filter statistics (CNN Filter DB)", step_filters),
    ("verifying the zoo", step_verify),
    ("writing the HTML report", step_report),
]


def run(args: argparse.Namespace) -> int:
    import torch

    from weightzoo.datasets.minilm import default_cache

    # one thread: the demo's networks are tiny (8×8 images), where a second thread costs more than it gives,
    # and the dataset builders already train in parallel worker processes
    torch.set_num_threads(1)
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
