r"""Training a GHN on an architecture zoo: meta-batches of architectures, loss of the predicted networks.

Each step samples ``meta_batch`` training architectures, predicts all their parameters in one batched
GHN pass, runs every network on the same batch of digits *GHN-training* images with
:func:`torch.func.functional_call` (BatchNorm in train mode, as GHN-2 trains) and minimises the mean
cross-entropy (plus ``reg`` × GHN-3's :math:`\sum\lVert W\rVert_F` penalty). AdamW, cosine schedule,
gradient clipping. After every epoch the GHN predicts the validation architectures, their BatchNorm
statistics are recalibrated on the calibration images (:mod:`.bn`) and accuracy on the validation
images decides early stopping and the best checkpoint.

A run writes ``OUT/seed-K/``: ``config.json`` + ``model.safetensors`` (the best GHN, loadable with
``GHN.from_pretrained``), ``metrics.json`` (history, image cut, architectures, wall time) and
``checkpoint/`` (last state, for resuming: safetensors + JSON, no pickles). Every random choice derives
from ``(seed, epoch)``, so a resumed run continues exactly where it stopped. ``OUT/summary.json`` names
the best-validation seed, which ``load_ghn(OUT)`` returns.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from weightzoo.datasets.builder import derive_seed
from weightzoo.errors import HyperNetworkError
from weightzoo.zoo.arch.cells import build_cells
from weightzoo.zoo.formats.durable import atomic_path, write_json_atomic
from weightzoo.zoo.graphs import ComputeGraph

from .archs import Architecture, ArchitecturePool, ImageSplits, image_splits
from .bn import recalibrate_bn
from .ghn import GHN
from .graph_input import GraphInput, graph_input

DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one GHN training run (every field is written to ``metrics.json``)."""

    hidden: int = 32
    encoder: str = "gated"
    layers: int | None = None
    rank: int = 16
    residual: bool = False
    epochs: int = 10
    meta_batch: int = 8
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-5
    reg: float = 0.0
    clip: float = 5.0
    patience: int = 4
    bn_batches: int = 4
    val_archs: int = 32
    max_minutes: float | None = None
    device: str = "cpu"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise HyperNetworkError(f"unknown device {self.device!r}; valid: {', '.join(DEVICES)}")
        if min(self.epochs, self.meta_batch, self.batch_size, self.val_archs) < 1 or self.lr <= 0:
            raise HyperNetworkError("TrainConfig: epochs, meta_batch, batch_size, val_archs and lr must be positive")


@dataclass
class Prepared:
    """One architecture ready for training/evaluation: its module (seeded default init) and graph input."""

    arch: Architecture
    module: nn.Module
    graph: ComputeGraph
    inputs: GraphInput


def prepare(arch: Architecture, seed: int = 0) -> Prepared:
    """Build ``arch`` with a seeded PyTorch default initialisation and record its ComputeGraph."""
    torch.manual_seed(derive_seed("hyper-init", seed, arch.name))
    module = build_cells(arch.spec)
    graph = ComputeGraph.record(module, spec=arch.spec)
    return Prepared(arch, module, graph, graph_input(graph))


@dataclass
class TrainResult:
    """What :func:`train_ghn` returns (and writes to ``metrics.json``)."""

    out: Path
    best_val_accuracy: float
    best_epoch: int
    epochs_run: int
    wall_seconds: float
    stopped: str
    history: list[dict[str, Any]] = field(default_factory=list)


def predict_prepared(ghn: GHN, prepared: Sequence[Prepared]) -> list[dict[str, torch.Tensor]]:
    """Predicted parameters for prepared architectures (one batched GHN pass)."""
    init = [{t.name: p.module.get_parameter(t.name).detach() for t in p.inputs.targets} for p in prepared] \
        if ghn.residual else None
    return ghn([p.inputs for p in prepared], init)


@torch.no_grad()
def evaluate_ghn(ghn: GHN, prepared: Sequence[Prepared], x_calib: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                 *, bn_batches: int = 4, chunk: int = 8) -> list[float]:
    """Accuracy of each architecture with predicted parameters, BN recalibrated on ``x_calib``."""
    import copy

    was = ghn.training
    ghn.eval()
    accs = []
    try:
        for i in range(0, len(prepared), chunk):
            part = prepared[i:i + chunk]
            for p, params in zip(part, predict_prepared(ghn, part), strict=True):
                m = copy.deepcopy(p.module)
                for name, value in params.items():
                    m.get_parameter(name).copy_(value)
                accs.append(accuracy_after_calibration(m, x_calib, x, y, bn_batches=bn_batches))
    finally:
        ghn.train(was)
    return accs


@torch.no_grad()
def accuracy_after_calibration(module: nn.Module, x_calib: torch.Tensor, x: torch.Tensor, y: torch.Tensor, *,
                               bn_batches: int = 4) -> float:
    """The protocol every method shares: recalibrate BN on calibration images, then eval-mode accuracy."""
    recalibrate_bn(module, x_calib, batches=bn_batches)
    module.eval()
    logits = module(x)
    if not torch.isfinite(logits).all():
        return 0.0
    return float((logits.argmax(1) == y).float().mean())


def _save_state(path: Path, ghn: GHN, opt: torch.optim.Optimizer, sched: Any, state: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    tensors = {f"ghn.{k}": v.detach().contiguous() for k, v in ghn.state_dict().items()}
    osd = opt.state_dict()
    for pid, st in osd["state"].items():
        for k, v in st.items():
            tensors[f"opt.{pid}.{k}"] = v.detach().contiguous() if isinstance(v, torch.Tensor) else torch.tensor(v)
    with atomic_path(path / "state.safetensors") as tmp:
        save_file(tensors, tmp)
    write_json_atomic(path / "state.json", {**state, "param_groups": osd["param_groups"],
                                            "scheduler": sched.state_dict()})


def _load_state(path: Path, ghn: GHN, opt: torch.optim.Optimizer, sched: Any) -> dict[str, Any]:
    from safetensors.torch import load_file

    try:
        tensors = load_file(path / "state.safetensors")
        with open(path / "state.json", encoding="utf-8") as f:
            state = json.load(f)
        ghn.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ghn.")})
        opt_state: dict[int, dict[str, torch.Tensor]] = {}
        for k, v in tensors.items():
            if k.startswith("opt."):
                _, pid, name = k.split(".", 2)
                opt_state.setdefault(int(pid), {})[name] = v
        opt.load_state_dict({"state": opt_state, "param_groups": state.pop("param_groups")})
        sched.load_state_dict(state.pop("scheduler"))
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise HyperNetworkError(f"{path}: cannot resume from this checkpoint: {exc}") from exc
    return dict(state)


def train_ghn(pool: ArchitecturePool, out: str | os.PathLike[str], config: TrainConfig = TrainConfig(), *,
              progress: bool = True, resume: bool = True,
              log: Callable[[str], None] | None = None) -> TrainResult:
    """Train one GHN (one seed) on ``pool``'s ``train`` architectures and write ``out`` (see the module docstring)."""
    from tqdm import tqdm

    out = Path(out)
    torch.manual_seed(config.seed)
    dev = torch.device(config.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise HyperNetworkError("--device cuda: no CUDA device is available")
    train_archs, val_archs = pool.split("train"), pool.split("val")
    if not train_archs or not val_archs:
        raise HyperNetworkError(f"{pool.source}: needs train and val architectures, got {len(train_archs)} and "
                                f"{len(val_archs)}")
    rng_val = np.random.default_rng(derive_seed("hyper-val", config.seed))
    val_archs = [val_archs[i] for i in sorted(rng_val.permutation(len(val_archs))[:config.val_archs])]
    images: ImageSplits = image_splits()
    t_prep = time.perf_counter()
    train_prep = [prepare(a) for a in train_archs]
    val_prep = [prepare(a) for a in val_archs]
    prep_seconds = time.perf_counter() - t_prep
    for p in train_prep:
        p.module.to(dev)
    ghn = GHN(hidden=config.hidden, encoder=config.encoder, layers=config.layers, rank=config.rank,
              residual=config.residual).to(dev)
    steps_per_epoch = math.ceil(len(train_prep) / config.meta_batch)
    opt = torch.optim.AdamW(ghn.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs * steps_per_epoch)
    ckpt = out / "checkpoint"
    state: dict[str, Any] = {"epoch": 0, "best_val_accuracy": -1.0, "best_epoch": -1, "history": [],
                             "seconds": 0.0, "bad_epochs": 0}
    if resume and (ckpt / "state.json").is_file():
        state = _load_state(ckpt, ghn, opt, sched)
    x_tr, y_tr = images.x_train.to(dev), images.y_train.to(dev)
    t0 = time.perf_counter() - float(state["seconds"])
    stopped = "epochs"
    best_state = None
    if (out / "model.safetensors").is_file() and state["best_epoch"] >= 0:
        best_state = GHN.from_pretrained(out).state_dict()
    while state["epoch"] < config.epochs:
        epoch = int(state["epoch"])
        rng = np.random.default_rng(derive_seed("hyper-train", config.seed, epoch))
        order = rng.permutation(len(train_prep))
        gen = torch.Generator().manual_seed(derive_seed("hyper-images", config.seed, epoch))
        ghn.train()
        losses = []
        bar = tqdm(range(steps_per_epoch), desc=f"ghn epoch {epoch + 1}/{config.epochs}", unit="step",
                   disable=not progress or None, leave=False)
        for s in bar:
            batch = [train_prep[i] for i in order[s * config.meta_batch:(s + 1) * config.meta_batch]]
            idx = torch.randint(len(y_tr), (config.batch_size,), generator=gen)
            xb, yb = x_tr[idx], y_tr[idx]
            predicted = predict_prepared(ghn, batch)
            loss = torch.stack([nn.functional.cross_entropy(
                torch.func.functional_call(p.module, params, (xb,), strict=False), yb)
                for p, params in zip(batch, predicted, strict=True)]).mean()
            total = loss + config.reg * ghn.penalty(predicted) if config.reg else loss
            opt.zero_grad(set_to_none=True)
            total.backward()
            nn.utils.clip_grad_norm_(ghn.parameters(), config.clip)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}")
        bar.close()
        val = evaluate_ghn(ghn, val_prep, images.x_calib.to(dev), images.x_val.to(dev), images.y_val.to(dev),
                           bn_batches=config.bn_batches)
        val_acc = float(np.mean(val))
        state["epoch"] = epoch + 1
        state["seconds"] = time.perf_counter() - t0
        state["history"].append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_accuracy": val_acc,
                                 "seconds": round(state["seconds"], 2)})
        if log:
            log(f"epoch {epoch + 1}: loss {np.mean(losses):.4f} val accuracy {val_acc:.4f}")
        if val_acc > state["best_val_accuracy"]:
            state.update(best_val_accuracy=val_acc, best_epoch=epoch + 1, bad_epochs=0)
            best_state = {k: v.detach().clone() for k, v in ghn.state_dict().items()}
            ghn.save_pretrained(out)
        else:
            state["bad_epochs"] = int(state["bad_epochs"]) + 1
        _save_state(ckpt, ghn, opt, sched, state)
        if state["bad_epochs"] >= config.patience:
            stopped = "early-stopping"
            break
        if config.max_minutes is not None and state["seconds"] > 60 * config.max_minutes:
            stopped = "max-minutes"
            break
    if best_state is None:
        ghn.save_pretrained(out)
    result = TrainResult(out, float(state["best_val_accuracy"]), int(state["best_epoch"]), int(state["epoch"]),
                         float(state["seconds"]), stopped, list(state["history"]))
    write_json_atomic(out / "metrics.json", {
        "config": asdict(config), "best_val_accuracy": result.best_val_accuracy, "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run, "wall_seconds": round(result.wall_seconds, 2), "stopped": stopped,
        "prepare_seconds": round(prep_seconds, 2), "history": result.history, "archs": {
            "source": pool.source, "train": [a.name for a in train_archs], "val": [a.name for a in val_archs]},
        "images": images.record(), "ghn_parameters": sum(p.numel() for p in ghn.parameters()),
        "device": config.device, "torch_threads": torch.get_num_threads()})
    return result


def train_runs(pool: ArchitecturePool, out: str | os.PathLike[str], config: TrainConfig = TrainConfig(), *,
               seeds: Sequence[int] = (0,), progress: bool = True, resume: bool = True,
               log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train one GHN per seed into ``out/seed-K/`` and write ``out/summary.json`` (best-validation seed)."""
    out = Path(out)
    results = {}
    for seed in seeds:
        if log:
            log(f"seed {seed}")
        results[seed] = train_ghn(pool, out / f"seed-{seed}", replace(config, seed=seed), progress=progress,
                                  resume=resume, log=log)
    summary_path = out / "summary.json"
    old: dict[str, Any] = {}
    if summary_path.is_file():
        with open(summary_path, encoding="utf-8") as f:
            old = json.load(f)
    runs = dict(old.get("runs", {}))
    runs.update({f"seed-{s}": {"best_val_accuracy": r.best_val_accuracy, "best_epoch": r.best_epoch,
                               "epochs_run": r.epochs_run, "wall_seconds": round(r.wall_seconds, 2),
                               "stopped": r.stopped} for s, r in results.items()})
    best = max(runs, key=lambda k: runs[k]["best_val_accuracy"])
    summary = {"best": best, "runs": runs}
    write_json_atomic(summary_path, summary)
    return summary


def resolve_ghn_path(path: str | os.PathLike[str]) -> Path:
    """A GHN folder: ``path`` itself (it has ``config.json``) or a run's best-validation seed (``summary.json``)."""
    p = Path(path)
    if (p / "summary.json").is_file():
        try:
            with open(p / "summary.json", encoding="utf-8") as f:
                best = json.load(f)["best"]
        except (OSError, ValueError, KeyError) as exc:
            raise HyperNetworkError(f"{p / 'summary.json'}: not a GHN run summary: {exc}") from exc
        p = p / str(best)
    if not (p / "config.json").is_file() or not (p / "model.safetensors").is_file():
        raise HyperNetworkError(f"{path}: not a GHN folder (config.json + model.safetensors) or a run folder "
                                "(summary.json)")
    return p


def load_ghn(path: str | os.PathLike[str], *, device: str = "cpu") -> GHN:
    """Load a GHN from a folder or a run (best-validation seed); a bad folder raises ``HyperNetworkError``."""
    p = resolve_ghn_path(path)
    try:
        ghn = GHN.from_pretrained(p, map_location=device)
    except (OSError, ValueError, RuntimeError, TypeError) as exc:
        raise HyperNetworkError(f"{p}: cannot load the GHN: {exc}") from exc
    return ghn.eval()


def load_metrics(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    """``metrics.json`` of a GHN folder (or of a run's best seed)."""
    with open(resolve_ghn_path(path) / "metrics.json", encoding="utf-8") as f:
        return dict(json.load(f))


__all__ = ["DEVICES", "Prepared", "TrainConfig", "TrainResult", "accuracy_after_calibration", "evaluate_ghn",
           "load_ghn", "load_metrics", "predict_prepared", "prepare", "resolve_ghn_path", "train_ghn", "train_runs"]
