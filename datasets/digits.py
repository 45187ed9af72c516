"""scikit-learn digits as the training data of every builder: a fixed image split and measurement helpers.

The 1,797 8×8 images of :func:`sklearn.datasets.load_digits` need no download, so zoos train anywhere.
Pixels are scaled from 0..16 to [-1, 1] (as the Small CNN Zoo scales its images). The image split is fixed (independent of any zoo seed): a
permutation with ``numpy.random.default_rng(IMAGE_SPLIT_SEED)``; the last :data:`N_TEST` permuted images
are the test images, the rest train. The test images are cut in two fixed halves (even / odd positions
in the permuted order) so every label is measured twice, independently, for split-half reliability.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import nn

IMAGE_SPLIT_SEED = 0
N_TEST = 500
N_IMAGES = 1797


@dataclass(frozen=True)
class DigitsSplit:
    """Train and test images (N×1×8×8 float32 in [-1, 1]) with labels, and their indices in ``load_digits``."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    train_index: np.ndarray
    test_index: np.ndarray


@lru_cache(maxsize=1)
def digits_images() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 images (N×8×8 float32 in [-1, 1]) and labels (int64), in ``load_digits`` order."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 8.0 - 1.0).astype(np.float32), d.target.astype(np.int64)


@lru_cache(maxsize=1)
def digits_split() -> DigitsSplit:
    """The fixed image split used by every builder (1,297 train / 500 test images)."""
    images, labels = digits_images()
    perm = np.random.default_rng(IMAGE_SPLIT_SEED).permutation(len(labels))
    train, test = perm[:-N_TEST], perm[-N_TEST:]
    x = torch.from_numpy(images).unsqueeze(1)
    y = torch.from_numpy(labels)
    return DigitsSplit(x[train], y[train], x[test], y[test], train, test)


def _finite(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


@torch.no_grad()
def measure(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float | None]:
    """Accuracy and mean cross-entropy of ``model`` (in eval mode) on ``(x, y)``, plus the two halves.

    Returns ``accuracy``, ``loss`` (``None`` when not finite: a diverged network), ``accuracy_a`` (even
    positions) and ``accuracy_b`` (odd positions).
    """
    was_training = model.training
    model.eval()
    logits = model(x)
    model.train(was_training)
    correct = (logits.argmax(1) == y).float()
    loss = nn.functional.cross_entropy(logits, y).item()
    return {"accuracy": float(correct.mean()), "loss": _finite(loss),
            "accuracy_a": float(correct[0::2].mean()), "accuracy_b": float(correct[1::2].mean())}


def make_optimizer(name: str, params: list[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """``adam``, ``sgd`` (momentum 0.9) or ``rmsprop`` with L2 as weight decay."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; valid: adam, sgd, rmsprop")


def train_epoch(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, *,
                batch_size: int, generator: torch.Generator, on_step: Callable[[], None] | None = None) -> None:
    """One epoch of minibatch cross-entropy training (shuffled with ``generator``).

    ``on_step`` is called after every optimizer step (trajectory recording).
    """
    model.train()
    perm = torch.randperm(len(y), generator=generator)
    for i in range(0, len(y), batch_size):
        b = perm[i:i + batch_size]
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x[b]), y[b])
        loss.backward()
        opt.step()
        if on_step is not None:
            on_step()


def numpy_state(model: nn.Module) -> dict[str, np.ndarray]:
    """A detached copy of the state dict as numpy arrays (cheap to pickle back from a worker)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


__all__ = ["DigitsSplit", "IMAGE_SPLIT_SEED", "N_IMAGES", "N_TEST", "digits_images", "digits_split",
           "make_optimizer", "measure", "numpy_state", "train_epoch"]
