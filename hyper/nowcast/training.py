"""Fitting nowcasters on trajectory zoos, with run folders (one per seed and kind).

:func:`fit_nowcaster` trains one nowcaster on ``(index, history, future)`` examples: Adam on a Huber
loss between the predicted and the true per-tensor scaled delta (targets clipped to ``±clip``), early
stopping on the validation loss, a wall-clock budget. The linear baseline has one parameter, its gain,
fitted in closed form (least squares on the same targets).

:func:`train_nowcasters` writes ``OUT/seed<k>/<kind>/`` (``model.safetensors``, ``config.json``,
``nowcast.json``, ``metrics.json``) for every seed and kind, and ``OUT/run.json`` (the command's
settings); a kind whose ``metrics.json`` exists is skipped, so an interrupted run resumes.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from weightzoo.errors import ConfigError, DatasetError
from weightzoo.zoo.formats.durable import write_json_atomic

from .index import ParameterIndex
from .models import KINDS, LinearNowcaster, NowcasterBase, make_batch, save_nowcaster
from .trajectories import load_trajectories, samples

if TYPE_CHECKING:
    from weightzoo.zoo.store import ZooLike

Example = tuple[ParameterIndex, torch.Tensor, torch.Tensor]


def make_nowcaster(kind: str, *, history: int = 5, spacing: int = 10, horizon: int = 40, hidden: int = 32,
                   layers: int = 3, layer: str = "edge-update") -> NowcasterBase:
    """A fresh nowcaster of ``kind`` (``graph``, ``mlp`` or ``linear``); ``layer`` is the graph's layer."""
    if kind not in KINDS:
        raise ConfigError(f"unknown nowcaster kind {kind!r}; valid: {', '.join(KINDS)}")
    if kind == "graph":
        return KINDS[kind](history=history, spacing=spacing, horizon=horizon, hidden=hidden, layers=layers,  # type: ignore[call-arg]
                           layer=layer)
    if kind == "mlp":
        return KINDS[kind](history=history, spacing=spacing, horizon=horizon, hidden=hidden)  # type: ignore[call-arg]
    return KINDS[kind](history=history, spacing=spacing, horizon=horizon)


def _huber(pred: torch.Tensor, target: torch.Tensor, clip: float) -> torch.Tensor:
    return torch.nn.functional.huber_loss(pred, target.clamp(-clip, clip))


@torch.no_grad()
def evaluate_examples(model: NowcasterBase, examples: Sequence[Example], *, clip: float = 20.0,
                      batch: int = 16) -> dict[str, float]:
    """Mean Huber loss on the scaled deltas, and the relative error ‖Δ̂ − Δ‖ / ‖Δ‖ in parameter space."""
    model.eval()
    loss = err = norm = 0.0
    n = 0
    for i in range(0, len(examples), batch):
        b = make_batch(examples[i:i + batch])
        assert b.target is not None  # make_batch got futures
        pred = model.forward_scaled(b)
        loss += float(_huber(pred, b.target, clip)) * len(examples[i:i + batch])
        err += float(((pred.clamp(-clip, clip) - b.target) * b.scale).pow(2).sum())
        norm += float((b.target * b.scale).pow(2).sum())
        n += len(examples[i:i + batch])
    return {"loss": loss / max(n, 1), "relative_error": math.sqrt(err / max(norm, 1e-30))}


def fit_gain(model: LinearNowcaster, examples: Sequence[Example], *, clip: float = 20.0) -> float:
    """Least-squares gain of the linear extrapolation on ``examples`` (sets and returns it)."""
    num = den = 0.0
    with torch.no_grad():
        for i in range(0, len(examples), 16):
            b = make_batch(examples[i:i + 16])
            assert b.target is not None
            u = model.unit_forward(b)
            num += float((u * b.target.clamp(-clip, clip)).sum())
            den += float((u * u).sum())
    model.gain = num / den if den > 0 else 1.0
    return model.gain


def fit_nowcaster(model: NowcasterBase, train: Sequence[Example], val: Sequence[Example], *, epochs: int = 30,
                  lr: float = 1e-3, batch: int = 8, seed: int = 0, max_minutes: float | None = None,
                  patience: int = 6, clip: float = 20.0, progress: bool = False) -> dict[str, Any]:
    """Train ``model`` in place on ``train`` (early stopping on ``val``); returns its metrics."""
    from tqdm import tqdm

    if not train or not val:
        raise DatasetError(f"fit_nowcaster needs training and validation examples (got {len(train)} and {len(val)})")
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    if isinstance(model, LinearNowcaster):
        gain = fit_gain(model, train, clip=clip)
        return {"kind": model.kind, "gain": gain, "val": evaluate_examples(model, val, clip=clip),
                "train": evaluate_examples(model, train, clip=clip), "epochs": 0,
                "seconds": time.perf_counter() - t0}
    rng = random.Random(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    best, best_state, bad = math.inf, None, 0
    history: list[dict[str, float]] = []
    order = list(range(len(train)))
    bar = tqdm(range(epochs), desc=f"nowcast-{model.kind}", disable=not progress or None)
    stopped = "epochs"
    for epoch in bar:
        model.train()
        rng.shuffle(order)
        total = 0.0
        for i in range(0, len(order), batch):
            b = make_batch([train[j] for j in order[i:i + batch]])
            assert b.target is not None
            loss = _huber(model.forward_scaled(b), b.target, clip)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total += loss.item() * len(order[i:i + batch])
        v = evaluate_examples(model, val, clip=clip)
        history.append({"epoch": epoch + 1, "train_loss": total / len(order), "val_loss": v["loss"],
                        "val_relative_error": v["relative_error"]})
        bar.set_postfix(val=f"{v['loss']:.4f}")
        if v["loss"] < best - 1e-6:
            best, bad = v["loss"], 0
            best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
        else:
            bad += 1
        if bad >= patience:
            stopped = "early"
            break
        if max_minutes is not None and time.perf_counter() - t0 > 60 * max_minutes:
            stopped = "budget"
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return {"kind": model.kind, "val": evaluate_examples(model, val, clip=clip), "epochs": len(history),
            "stopped": stopped, "history": history, "seconds": time.perf_counter() - t0}


def examples_of(zoo: ZooLike, dataset: str, split: str, *, history: int, spacing: int, horizon: int,
                optimizers: Iterable[str] | None = None, limit: int | None = None) -> list[Example]:
    """Every nowcasting example of the networks of one split of a trajectory zoo."""
    out: list[Example] = []
    for traj in load_trajectories(zoo, dataset, splits=(split,), optimizers=optimizers, limit=limit):
        out.extend(samples(traj, history=history, spacing=spacing, horizon=horizon))
    if not out:
        raise DatasetError(f"{dataset}/{split}: trajectories too short for history {history} × spacing {spacing} "
                           f"+ horizon {horizon}")
    return out


def train_nowcasters(zoo: ZooLike, dataset: str, out: str | os.PathLike[str], *, seeds: Sequence[int] = (0,),
                     kinds: Sequence[str] = ("graph", "mlp", "linear"), history: int = 5, spacing: int = 10,
                     horizon: int = 40, hidden: int = 32, layers: int = 3, layer: str = "edge-update",
                     epochs: int = 30, lr: float = 1e-3,
                     batch: int = 8, max_minutes: float | None = None, optimizers: Iterable[str] | None = None,
                     limit: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Train every kind for every seed on ``dataset``'s train split (validation: its val split).

    ``max_minutes`` bounds each learned model's training. Returns the run summary (also ``OUT/run.json``).
    """
    for k in kinds:
        if k not in KINDS:
            raise ConfigError(f"unknown nowcaster kind {k!r}; valid: {', '.join(KINDS)}")
    root = Path(out)
    t0 = time.perf_counter()
    geometry = {"history": history, "spacing": spacing, "horizon": horizon}
    opts = list(optimizers) if optimizers is not None else None
    train = examples_of(zoo, dataset, "train", optimizers=opts, limit=limit, **geometry)
    val = examples_of(zoo, dataset, "val", optimizers=opts, limit=limit, **geometry)
    settings = {"zoo": os.fspath(zoo) if not hasattr(zoo, "path") else os.fspath(zoo.path), "dataset": dataset,
                "seeds": list(seeds), "kinds": list(kinds), **geometry, "hidden": hidden, "layers": layers, "layer": layer,
                "epochs": epochs, "lr": lr, "batch": batch, "max_minutes": max_minutes, "optimizers": opts,
                "train_examples": len(train), "val_examples": len(val)}
    results: dict[str, Any] = {}
    for seed in seeds:
        for kind in kinds:
            folder = root / f"seed{seed}" / kind
            if (folder / "metrics.json").is_file():
                results[f"seed{seed}/{kind}"] = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
                continue
            torch.manual_seed(seed)
            model = make_nowcaster(kind, hidden=hidden, layers=layers, layer=layer, **geometry)
            metrics = fit_nowcaster(model, train, val, epochs=epochs, lr=lr, batch=batch, seed=seed,
                                    max_minutes=max_minutes, progress=progress)
            metrics["seed"] = seed
            save_nowcaster(model, folder)
            write_json_atomic(folder / "metrics.json", metrics)
            results[f"seed{seed}/{kind}"] = metrics
    summary = {"settings": settings, "wall_seconds": time.perf_counter() - t0,
               "val_loss": {k: {"seed": v.get("seed"), "loss": v["val"]["loss"],
                                "relative_error": v["val"]["relative_error"]} for k, v in results.items()}}
    root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(root / "run.json", summary)
    return summary


__all__ = ["evaluate_examples", "examples_of", "fit_gain", "fit_nowcaster", "make_nowcaster", "train_nowcasters"]
