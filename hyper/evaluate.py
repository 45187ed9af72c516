"""The harness every initialisation is measured in: zero-shot accuracy and accuracy after fine-tuning.

One protocol for every method (the GHN and each baseline of :mod:`.baselines`): the network gets its
parameters, BatchNorm statistics are recalibrated on ``bn_batches`` batches of calibration images
(:mod:`.bn`), and accuracy is measured in eval mode on the evaluation images. Fine-tuning runs Adam on
the GHN-training images for a budget of steps from each initialisation, with the same batches for every
method (one generator seed per architecture), then applies the same protocol.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .archs import ImageSplits
from .train import accuracy_after_calibration


@torch.no_grad()
def zero_shot(module: nn.Module, images: ImageSplits, *, bn_batches: int = 4) -> float:
    """Accuracy of ``module`` as it is, under the BatchNorm protocol (on a copy)."""
    return accuracy_after_calibration(copy.deepcopy(module), images.x_calib, images.x_test, images.y_test,
                                      bn_batches=bn_batches)


def finetune(module: nn.Module, images: ImageSplits, budgets: Sequence[int], *, lr: float = 1e-3,
             batch_size: int = 64, seed: int = 0, bn_batches: int = 4) -> dict[int, float]:
    """Accuracy after each budget of Adam steps from ``module``'s parameters (a copy is trained)."""
    model = copy.deepcopy(module)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    out: dict[int, float] = {}
    step = 0
    for budget in sorted(budgets):
        model.train()
        while step < budget:
            idx = torch.randint(len(images.y_train), (batch_size,), generator=gen)
            loss = nn.functional.cross_entropy(model(images.x_train[idx]), images.y_train[idx])
            opt.zero_grad(set_to_none=True)
            if torch.isfinite(loss):
                loss.backward()
                opt.step()
            step += 1
        out[budget] = zero_shot(model, images, bn_batches=bn_batches)
    return out


def summary(values: Sequence[float]) -> dict[str, float]:
    """Mean, std, median, min and max (population std; NaN-free input)."""
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        return {"n": 0}
    return {"n": int(a.size), "mean": float(a.mean()), "std": float(a.std()), "median": float(np.median(a)),
            "min": float(a.min()), "max": float(a.max())}


def bootstrap_difference(a: Sequence[float], b: Sequence[float], *, resamples: int = 2000,
                         seed: int = 0) -> dict[str, float]:
    """Paired bootstrap of ``mean(a - b)`` over items: the mean and a 95 % percentile interval."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.size == 0:
        return {"mean": math.nan, "lo": math.nan, "hi": math.nan}
    d = x - y
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(1)
    return {"mean": float(d.mean()), "lo": float(np.percentile(means, 2.5)), "hi": float(np.percentile(means, 97.5))}


def win_rate(a: Sequence[float], b: Sequence[float]) -> dict[str, int]:
    """Wins, ties and losses of ``a`` against ``b``, item by item."""
    wins = sum(1 for x, y in zip(a, b, strict=True) if x > y)
    losses = sum(1 for x, y in zip(a, b, strict=True) if x < y)
    return {"wins": wins, "ties": len(a) - wins - losses, "losses": losses}


def compare(results: Mapping[str, Sequence[float]], reference: str) -> dict[str, Any]:
    """Per method: summary, and against ``reference``'s best rival the bootstrap and win rate."""
    out: dict[str, Any] = {m: summary(v) for m, v in results.items()}
    rivals = [m for m in results if m != reference and results[m]]
    if reference in results and rivals:
        best = max(rivals, key=lambda m: float(np.mean(results[m])))
        out["best_baseline"] = best
        out["difference_to_best"] = bootstrap_difference(results[reference], results[best])
        out["wins_against_best"] = win_rate(results[reference], results[best])
    return out


Init = Callable[[nn.Module], nn.Module]

__all__ = ["Init", "bootstrap_difference", "compare", "finetune", "summary", "win_rate", "zero_shot"]
