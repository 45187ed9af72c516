"""Steps to a target validation loss with and without nowcasting, on networks no nowcaster saw.

For each evaluation network (architecture, initialisation and Adam learning rate drawn from seeds
disjoint from every zoo's) the same training run — same initial weights, batches and dropout masks —
is repeated with plain Adam and with Adam wrapped in a :class:`~.optimizer.NowcastOptimizer` per
nowcaster. The *target* is plain Adam's validation loss after ``steps`` steps; each run's cost is the
first evaluated step at which its validation loss is at or below the target. A run that never reaches
it within ``steps`` (or diverges: non-finite loss) is a *miss*, counted at ``steps`` (the most it
could save is then 0 %) and reported as a miss.

Tasks (:data:`TASKS`): ``digits-cnn`` (the zoo architecture, held-out seeds/hyperparameters),
``digits-cnn-wild`` (held-out architectures), ``digits-mlp`` (an MLP) and ``digits-subset`` (the CNN
trained on digits 0–4 only: a task the trajectory zoo never had).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from weightzoo.errors import ConfigError

from .models import NowcasterBase
from .optimizer import NowcastOptimizer

TASKS = ("digits-cnn", "digits-cnn-wild", "digits-mlp", "digits-subset")
ADAM_LR = (1e-3, 1e-2)


@dataclass
class EvalNetwork:
    """One evaluation network: its spec, initial state, Adam learning rate and data."""

    task: str
    key: str
    spec: dict[str, Any]
    init: dict[str, torch.Tensor]
    lr: float
    seed: int
    x: torch.Tensor
    y: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor


def eval_networks(task: str, *, seed: int, count: int) -> list[EvalNetwork]:
    """``count`` networks of ``task``, drawn from ``("nowcast-eval", task, seed, i)`` (no zoo uses these seeds)."""
    from weightzoo.datasets.builder import derive_seed
    from weightzoo.datasets.cnn_zoo import cnn_spec, init_weights, sample_hyperparameters, sample_wild_arch
    from weightzoo.datasets.digits import digits_split
    from weightzoo.datasets.mlp_zoo import mlp_spec
    from weightzoo.zoo.arch import build_module

    if task not in TASKS:
        raise ConfigError(f"unknown nowcast task {task!r}; valid: {', '.join(TASKS)}")
    data = digits_split()
    x, y, xv, yv = data.x_train, data.y_train, data.x_test, data.y_test
    if task == "digits-subset":
        keep, keep_v = y < 5, yv < 5
        x, y, xv, yv = x[keep], y[keep], xv[keep_v], yv[keep_v]
    out = []
    for i in range(count):
        s = derive_seed("nowcast-eval", task, seed, i)
        rng = np.random.default_rng(s)
        hp = sample_hyperparameters(rng)
        if task == "digits-cnn-wild":
            spec, _ = sample_wild_arch(rng, hp["activation"], hp["dropout"])
        elif task == "digits-mlp":
            spec = mlp_spec(hp["activation"], hp["dropout"])
        else:
            spec = cnn_spec(hp["activation"], hp["dropout"])
        lr = float(math.exp(rng.uniform(math.log(ADAM_LR[0]), math.log(ADAM_LR[1]))))
        model = build_module(spec)
        init_weights(model, hp["w_init"], hp["init_std"], torch.Generator().manual_seed(s))
        out.append(EvalNetwork(task, f"{task}/{seed}/{i}", spec, {k: v.clone() for k, v in model.state_dict().items()},
                               lr, s, x, y, xv, yv))
    return out


@torch.no_grad()
def _val(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    logits = model(x)
    model.train()
    loss = float(nn.functional.cross_entropy(logits, y))
    return loss, float((logits.argmax(1) == y).float().mean())


def train_curve(net: EvalNetwork, nowcaster: NowcasterBase | None, *, steps: int, eval_every: int,
                batch_size: int = 32, every: int | None = None) -> dict[str, Any]:
    """Train ``net`` with Adam (wrapped by ``nowcaster`` when given); the validation curve and nowcast log."""
    from weightzoo.zoo.arch import build_module

    torch.manual_seed(net.seed)  # dropout masks: the same in every method's run
    model = build_module(net.spec)
    model.load_state_dict(net.init)
    adam = torch.optim.Adam(model.parameters(), lr=net.lr)
    opt: Any = adam if nowcaster is None else NowcastOptimizer(adam, nowcaster, model=model, every=every)
    gen = torch.Generator().manual_seed(net.seed)
    perm = torch.randperm(len(net.y), generator=gen)
    pos = 0
    curve = [(0, *_val(model, net.x_val, net.y_val))]
    t0 = time.perf_counter()
    diverged = False
    for step in range(1, steps + 1):
        if pos + batch_size > len(perm):
            perm, pos = torch.randperm(len(net.y), generator=gen), 0
        b = perm[pos:pos + batch_size]
        pos += batch_size
        xb, yb = net.x[b], net.y[b]

        def closure(xb: torch.Tensor = xb, yb: torch.Tensor = yb) -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            return loss

        opt.step(closure)
        if step % eval_every == 0:
            loss, acc = _val(model, net.x_val, net.y_val)
            curve.append((step, loss, acc))
            if not math.isfinite(loss):
                diverged = True
                break
    seconds = time.perf_counter() - t0
    log = list(opt.log) if nowcaster is not None else []
    return {"curve": curve, "log": log, "seconds": seconds, "diverged": diverged,
            "final_loss": curve[-1][1], "final_accuracy": curve[-1][2]}


def steps_to_target(curve: Sequence[tuple[int, float, float]], target: float) -> int | None:
    """The first evaluated step whose validation loss is ``<= target`` (``None``: never)."""
    for step, loss, _ in curve:
        if math.isfinite(loss) and loss <= target:
            return int(step)
    return None


def speedup(nowcasters: Mapping[str, NowcasterBase], task: str, *, seed: int, networks: int = 6, steps: int = 400,
            eval_every: int = 10, every: int | None = None) -> dict[str, Any]:
    """Per network: steps to Adam's final validation loss for Adam and each nowcaster, and the reduction.

    Returns ``{"networks": [...], "methods": {name: summary}}`` where a method's summary holds the mean
    reduction ``1 - steps_method / steps_adam`` (misses counted at ``steps``), misses, divergences, mean
    final accuracy, training seconds and nowcasts applied / attempted.
    """
    t0 = time.perf_counter()
    rows = []
    for net in eval_networks(task, seed=seed, count=networks):
        base = train_curve(net, None, steps=steps, eval_every=eval_every)
        target = base["final_loss"]
        base_steps = steps_to_target(base["curve"], target) or steps
        row: dict[str, Any] = {"network": net.key, "lr": net.lr, "target_loss": target, "adam_steps": base_steps,
                               "adam_final_accuracy": base["final_accuracy"], "adam_seconds": base["seconds"],
                               "adam_curve": base["curve"], "methods": {}}
        for name, nc in nowcasters.items():
            r = train_curve(net, nc, steps=steps, eval_every=eval_every, every=every)
            reached = None if r["diverged"] else steps_to_target(r["curve"], target)
            cost = reached if reached is not None else steps
            row["methods"][name] = {
                "steps": reached, "miss": reached is None, "diverged": r["diverged"],
                "reduction": 1.0 - cost / base_steps, "final_accuracy": r["final_accuracy"],
                "final_loss": r["final_loss"], "seconds": r["seconds"],
                "applied": sum(1 for e in r["log"] if e["applied"]), "attempted": len(r["log"]), "curve": r["curve"]}
        rows.append(row)
    methods: dict[str, Any] = {}
    for name in nowcasters:
        red = [r["methods"][name]["reduction"] for r in rows]
        methods[name] = {
            "mean_reduction": float(np.mean(red)), "reductions": red,
            "misses": sum(r["methods"][name]["miss"] for r in rows),
            "diverged": sum(r["methods"][name]["diverged"] for r in rows),
            "final_accuracy": float(np.mean([r["methods"][name]["final_accuracy"] for r in rows])),
            "seconds": float(np.sum([r["methods"][name]["seconds"] for r in rows])),
            "applied": sum(r["methods"][name]["applied"] for r in rows),
            "attempted": sum(r["methods"][name]["attempted"] for r in rows)}
    methods["adam"] = {"mean_reduction": 0.0, "final_accuracy": float(np.mean([r["adam_final_accuracy"] for r in rows])),
                       "seconds": float(np.sum([r["adam_seconds"] for r in rows]))}
    return {"task": task, "seed": seed, "steps": steps, "eval_every": eval_every, "networks": rows, "methods": methods,
            "wall_seconds": time.perf_counter() - t0}


def summarize(per_seed: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Combine :func:`speedup` results of several seeds (one task): mean ± std over seeds of each method's
    mean reduction and final accuracy, misses, divergences, nowcasts applied/attempted, seconds, and the
    bootstrap 95 % interval of each learned nowcaster's per-network reduction minus linear extrapolation's."""
    if not per_seed:
        raise ConfigError("summarize: no results")
    names = [m for m in per_seed[0]["methods"] if m != "adam"]
    summary: dict[str, Any] = {"task": per_seed[0]["task"], "seeds": [r["seed"] for r in per_seed],
                               "networks_per_seed": len(per_seed[0]["networks"]), "steps": per_seed[0]["steps"],
                               "methods": {}}
    for m in names + ["adam"]:
        means = [r["methods"][m]["mean_reduction"] for r in per_seed]
        acc = [r["methods"][m]["final_accuracy"] for r in per_seed]
        entry: dict[str, Any] = {"reduction_mean": float(np.mean(means)), "reduction_std": float(np.std(means)),
                                 "final_accuracy_mean": float(np.mean(acc)), "final_accuracy_std": float(np.std(acc)),
                                 "seconds": float(sum(r["methods"][m]["seconds"] for r in per_seed))}
        if m != "adam":
            entry.update(misses=sum(r["methods"][m]["misses"] for r in per_seed),
                         diverged=sum(r["methods"][m]["diverged"] for r in per_seed),
                         applied=sum(r["methods"][m]["applied"] for r in per_seed),
                         attempted=sum(r["methods"][m]["attempted"] for r in per_seed))
        summary["methods"][m] = entry
    if "linear" in names:
        base = [x for r in per_seed for x in r["methods"]["linear"]["reductions"]]
        for m in names:
            if m != "linear":
                own = [x for r in per_seed for x in r["methods"][m]["reductions"]]
                mean, lo, hi = bootstrap_difference(own, base)
                summary["methods"][m]["vs_linear"] = {"mean": mean, "ci95": [lo, hi]}
    summary["wall_seconds"] = float(sum(r.get("wall_seconds", 0.0) for r in per_seed))
    return summary


def bootstrap_difference(a: Sequence[float], b: Sequence[float], *, resamples: int = 2000,
                         seed: int = 0) -> tuple[float, float, float]:
    """Mean of the paired difference ``a - b`` and its bootstrap 95 % interval."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.size == 0:
        raise ConfigError("bootstrap_difference: no pairs")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
    return float(d.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


__all__ = ["ADAM_LR", "EvalNetwork", "TASKS", "bootstrap_difference", "eval_networks", "speedup", "steps_to_target",
           "summarize", "train_curve"]
