"""Baseline initialisations: their defining property on each, and the comparison statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from weightzoo.errors import HyperNetworkError
from weightzoo.hyper.baselines import (
    FanInStats,
    baseline_init,
    kaiming_init,
    mimetic_init,
    nearest_init,
    orthogonal_init,
)
from weightzoo.hyper.evaluate import bootstrap_difference, compare, win_rate
from weightzoo.zoo.graphs import ComputeGraph


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 64, 3), nn.BatchNorm2d(64), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))


def test_kaiming_and_orthogonal_have_their_defining_statistics() -> None:
    gen = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(64, 128, 3)
    kaiming_init(conv, gen)
    assert abs(float(conv.weight.std()) - math.sqrt(2 / (64 * 9))) < 0.005 and float(conv.bias.abs().max()) == 0
    lin = nn.Linear(32, 16)
    orthogonal_init(lin, gen)
    assert torch.allclose(lin.weight @ lin.weight.t(), 2.0 * torch.eye(16), atol=1e-4)
    bn = nn.BatchNorm1d(4)
    bn.weight.data.fill_(3.0)
    kaiming_init(bn)
    assert torch.equal(bn.weight, torch.ones(4))


def test_mimetic_sets_qk_near_identity_and_vo_near_minus_identity() -> None:
    torch.manual_seed(1)
    mha = nn.MultiheadAttention(32, 4)
    assert mimetic_init(mha, torch.Generator().manual_seed(0)) == 1
    e = 32
    wq, wk, wv = mha.in_proj_weight[:e], mha.in_proj_weight[e:2 * e], mha.in_proj_weight[2 * e:]
    assert torch.allclose(wq, wk)
    assert torch.allclose(mha.out_proj.weight @ wv, -0.7 * torch.eye(e), atol=1e-3)
    assert mimetic_init(nn.Linear(3, 3)) == 0  # no attention: unchanged, counted as none


def test_fanin_stats_and_nearest_copy_from_trained_networks() -> None:
    torch.manual_seed(2)
    trained = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3))
    with torch.no_grad():
        for p in trained.parameters():
            p.mul_(5.0)
    graph = ComputeGraph.record(trained, torch.randn(1, 1, 8, 8))
    stats = FanInStats.fit([(trained, graph)])
    fresh = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3))
    stats.apply(fresh, graph, torch.Generator().manual_seed(0))
    ratio = float(fresh[2].weight.std() / trained[2].weight.std())
    assert 0.6 < ratio < 1.6
    target = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3))
    frac = nearest_init(target, [dict(trained.state_dict())])
    assert frac == 0.5 and torch.equal(target[0].weight, trained[0].weight)
    with pytest.raises(HyperNetworkError, match="nearest"):
        baseline_init("nearest")


def test_comparison_statistics() -> None:
    a, b = [0.5, 0.6, 0.7, 0.8], [0.4, 0.6, 0.5, 0.9]
    assert win_rate(a, b) == {"wins": 2, "ties": 1, "losses": 1}
    d = bootstrap_difference(a, b)
    assert d["mean"] == pytest.approx(0.05) and d["lo"] <= d["mean"] <= d["hi"]
    c = compare({"ghn": a, "default": b, "kaiming": [0.1] * 4}, "ghn")
    assert c["best_baseline"] == "default" and c["ghn"]["mean"] == pytest.approx(np.mean(a))
