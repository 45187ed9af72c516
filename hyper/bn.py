"""The BatchNorm protocol of every comparison: recalibrate running statistics on training images.

A network whose parameters were predicted (or freshly initialised) has running statistics that describe
nothing. GHN-2 evaluates such networks in train mode, i.e. with statistics of the *test* batch, which
leaks test data into the prediction. Here every method compared — the GHN and every baseline — gets the
same treatment: reset the statistics, run ``batches`` batches of *training* (calibration) images in
train mode with a cumulative average (``momentum=None``), then evaluate in eval mode. Networks without
BatchNorm are unchanged and reported apart.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def batchnorm_layers(module: nn.Module) -> list[_BatchNorm]:
    """The BatchNorm layers of ``module`` that keep running statistics."""
    return [m for m in module.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recalibrate_bn(module: nn.Module, images: torch.Tensor, *, batches: int = 4, batch_size: int = 64,
                   generator: torch.Generator | None = None) -> int:
    """Reset and re-estimate every BatchNorm's running statistics on ``batches`` batches of ``images``.

    Args:
        module (nn.Module): the network (its train/eval flag is restored).
        images (Tensor): calibration images (training data, never test data), ``(M, ...)``.
        batches (int): how many batches K (default 4); batch_size (int): images per batch (default 64).
        generator (torch.Generator, optional): for the order of the images (default: in order).

    Returns:
        The number of BatchNorm layers recalibrated (0: a BN-free network, left unchanged).
    """
    layers = batchnorm_layers(module)
    if not layers or batches < 1:
        return len(layers) if batches >= 1 else 0
    order = torch.randperm(len(images), generator=generator) if generator is not None else torch.arange(len(images))
    saved = [(m, m.momentum) for m in layers]
    was_training = module.training
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the K batches
    module.train()
    try:
        for b in range(batches):
            idx = order[(b * batch_size) % len(images):][:batch_size]
            if len(idx) == 0:
                idx = order[:batch_size]
            module(images[idx])
    finally:
        for m, momentum in saved:
            m.momentum = momentum
        module.train(was_training)
    return len(layers)


__all__ = ["batchnorm_layers", "recalibrate_bn"]
