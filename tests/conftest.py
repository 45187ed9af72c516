"""Shared fixtures: the real all-MiniLM-L6-v2 snapshot and small networks trained on scikit-learn digits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def minilm_dir(pytestconfig: pytest.Config) -> Path:
    """The real all-MiniLM-L6-v2 Hugging Face snapshot (config.json + model.safetensors), read-only use."""
    env = os.environ.get("WEIGHTZOO_MINILM_DIR")
    if env:
        return Path(env)
    from weightzoo.datasets.minilm import fetch_minilm

    return fetch_minilm(Path(pytestconfig.cache.mkdir("minilm")))


@pytest.fixture(scope="session")
def digits_data():
    """scikit-learn digits as float tensors: (x_train, y_train, x_test, y_test), images 1×8×8 in [0, 1]."""
    import numpy as np
    import torch
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target, dtype=torch.long)
    rng = np.random.default_rng(0)
    idx = torch.tensor(rng.permutation(len(y)))
    x, y = x[idx], y[idx]
    n = 1400
    return x[:n], y[:n], x[n:], y[n:]


def _train(model, data, epochs: int, seed: int):
    import torch

    torch.manual_seed(seed)
    x, y, _, _ = data
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(epochs):
        perm = torch.randperm(len(y))
        for i in range(0, len(y), 128):
            b = perm[i : i + 128]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[b]), y[b])
            loss.backward()
            opt.step()
    model.eval()
    return model


@pytest.fixture(scope="session")
def digits_cnn(digits_data):
    """A small CNN (3 convs, BN, global pooling, linear) trained on digits for a few epochs."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )
    return _train(model, digits_data, epochs=4, seed=0)


@pytest.fixture(scope="session")
def digits_mlp(digits_data):
    """A small MLP (64-32-32-10, tanh) trained on digits for a few epochs."""
    import torch
    from torch import nn

    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 10))
    return _train(model, digits_data, epochs=6, seed=1)


def accuracy(model, x, y) -> float:
    import torch

    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())
