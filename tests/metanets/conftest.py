"""A small synthetic zoo for metanetwork tests: random digits-cnn-shaped CNNs (and a few MLPs) with a
target that is a function of their weights, recorded hyperparameters, and a seeded split by network."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


def cnn_spec(act: str = "relu") -> dict:
    layers = []
    for cin, cout, stride in [(1, 4, 1), (4, 6, 2)]:
        layers += [{"type": "conv2d", "in": cin, "out": cout, "kernel": [3, 3], "stride": [stride, stride],
                    "padding": [1, 1]}, {"type": act}]
    layers += [{"type": "global_avg_pool", "dims": 2}, {"type": "flatten"}, {"type": "linear", "in": 6, "out": 3}]
    return {"format": "weightzoo.arch/1", "input_shape": [1, 8, 8], "layers": layers}


def make_zoo(path: Path, n: int = 40, seed: int = 0) -> Path:
    from weightzoo.zoo.arch import build_module
    from weightzoo.zoo.store import Zoo

    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n):
        act = ["relu", "tanh"][i % 2]
        spec = cnn_spec(act)
        torch.manual_seed(seed * 1000 + i)
        m = build_module(spec)
        scale = float(torch.empty(()).uniform_(0.3, 2.0, generator=g))
        sd = {k: v * scale for k, v in m.state_dict().items()}
        score = scale + 0.05 * float(torch.randn((), generator=g))  # a target the weights determine (mostly)
        items.append({"source": sd, "name": f"syn/n{i:03d}", "spec": spec, "library": "torch",
                      "metadata": {"dataset": "syn", "network": i, "final": True, "epoch": 1, "score": score,
                                   "activation": act, "learning_rate": 0.01 * (1 + i % 3), "label": act}})
    with Zoo.open(path) as z:
        z.ingest_many(items, progress=False)
    return path


@pytest.fixture(scope="session")
def syn_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_zoo(tmp_path_factory.mktemp("syn") / "zoo")
