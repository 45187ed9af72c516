"""predict_parameters on any module: coverage report, typed errors, checkpoints, residual GHNs, BN protocol."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from weightzoo.errors import HyperNetworkError
from weightzoo.hyper import GHN, predict_parameters, recalibrate_bn
from weightzoo.hyper.targets import targets_of
from weightzoo.zoo.graphs import ComputeGraph


class ResidualCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 7, padding=3)
        self.bn = nn.BatchNorm2d(8)
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.head = nn.Linear(16, 10)
        self.unused = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.stem(x)))
        h = h + self.block(h)
        h = torch.cat([h, self.dw(h)], 1)
        return self.head(h.mean((2, 3)))


class TinyViT(nn.Module):
    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.patch = nn.Conv2d(1, d, 4, 4)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.pos = nn.Parameter(torch.zeros(1, 5, d))
        self.norm = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, 2, batch_first=True)
        self.head = nn.Linear(d, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(len(t), -1, -1), t], 1) + self.pos
        h = self.norm(t)
        t = t + self.attn(h, h, h, need_weights=False)[0]
        return self.head(t[:, 0])


def test_every_used_parameter_is_predicted_and_the_unused_one_is_reported() -> None:
    torch.manual_seed(0)
    ghn = GHN(hidden=16)
    model = ResidualCNN()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = predict_parameters(ghn, model, example_input=torch.randn(2, 1, 8, 8))
    rep = result.report
    assert set(rep.kept) == {"unused.weight", "unused.bias"}
    assert "forward pass" in rep.kept["unused.weight"]
    assert rep.predicted["stem.weight"] == "weight" and rep.predicted["stem.bias"] == "bias"
    assert rep.predicted["bn.weight"] == "norm_weight" and rep.predicted["bn.bias"] == "norm_bias"
    assert "bn.running_mean" in rep.buffers
    out = result.module.state_dict()
    for name in rep.predicted:
        assert not torch.equal(out[name], before[name]), name
    assert torch.equal(out["unused.weight"], before["unused.weight"])
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # a copy by default
    assert torch.isfinite(result.module(torch.randn(2, 1, 8, 8))).all()


def test_strict_names_the_modules_it_cannot_predict() -> None:
    with pytest.raises(HyperNetworkError, match="unused") as info:
        predict_parameters(GHN(hidden=16), ResidualCNN(), example_input=torch.randn(1, 1, 8, 8), strict=True)
    assert info.value.modules and "unused" in info.value.modules


def test_attention_tokens_and_tables_are_predicted_at_their_scales() -> None:
    torch.manual_seed(1)
    model = TinyViT()
    graph = ComputeGraph.record(model, torch.randn(1, 1, 8, 8))
    kinds = {t.name: t.kind for t in targets_of(graph)}
    assert kinds["cls"] == "table" and kinds["pos"] == "table"
    assert kinds["attn.in_proj_weight"] == "weight" and kinds["norm.weight"] == "norm_weight"
    result = predict_parameters(GHN(hidden=16, encoder="transformer"), model, inplace=True, graph=graph)
    assert result.module is model and result.report.fraction == 1.0
    assert abs(float(model.pos.pow(2).mean().sqrt()) - 0.02) < 0.015
    assert not torch.equal(model.cls, torch.zeros(1, 1, 16))


def test_weight_scale_follows_fan_in_and_the_following_activation() -> None:
    class ConvRelu(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(16, 32, 3, padding=1)
            self.head = nn.Linear(32, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(torch.relu(self.conv(x)).mean((2, 3)))

    torch.manual_seed(2)
    model = ConvRelu()
    graph = ComputeGraph.record(model, torch.randn(1, 16, 8, 8))
    t = {x.name: x for x in targets_of(graph)}
    assert t["conv.weight"].gain == 2.0 and t["conv.weight"].fan_in == 16 * 9
    assert t["head.weight"].gain == 1.0 and t["head.bias"].fan_in == 32
    predict_parameters(GHN(hidden=16), model, inplace=True, graph=graph)
    rms = float(model.conv.weight.pow(2).mean().sqrt())
    expected = math.sqrt(2.0 / (16 * 9))
    assert expected / math.e - 1e-6 <= rms <= expected * math.e + 1e-6  # learned log-scale is clipped to ±1
    assert float(model.head.bias.abs().max()) <= 1 / math.sqrt(32) + 1e-6


def test_save_and_load_pretrained_round_trip(tmp_path) -> None:
    torch.manual_seed(3)
    ghn = GHN(hidden=16, encoder="transformer", layers=1, rank=4)
    ghn.save_pretrained(tmp_path / "ghn")
    assert (tmp_path / "ghn" / "model.safetensors").is_file()
    loaded = GHN.from_pretrained(tmp_path / "ghn")
    x = torch.randn(1, 1, 8, 8)
    a = predict_parameters(ghn, ResidualCNN(), example_input=x).module.state_dict()
    b = predict_parameters(loaded, ResidualCNN(), example_input=x).module.state_dict()
    assert loaded.encoder_name == "transformer"
    for k in a:
        if not k.startswith("unused"):
            assert torch.allclose(a[k], b[k]), k


def test_residual_ghn_adds_to_the_init_and_bad_options_raise() -> None:
    torch.manual_seed(4)
    ghn = GHN(hidden=16, residual=True)
    model = ResidualCNN()
    pred = predict_parameters(ghn, model, example_input=torch.randn(1, 1, 8, 8)).module
    graph = ComputeGraph.record(model, torch.randn(1, 1, 8, 8))
    from weightzoo.hyper.graph_input import graph_input

    delta = ghn([graph_input(graph)], [{k: torch.zeros_like(v) for k, v in model.named_parameters()}])[0]
    assert torch.allclose(pred.stem.weight, model.stem.weight + delta["stem.weight"], atol=1e-6)
    with pytest.raises(HyperNetworkError, match="encoder"):
        GHN(encoder="lstm")
    with pytest.raises(HyperNetworkError, match="nn.Module"):
        predict_parameters(ghn, "not a module")  # type: ignore[arg-type]


def test_recalibrate_bn_uses_only_the_given_images() -> None:
    torch.manual_seed(5)
    model = nn.Sequential(nn.Conv2d(1, 4, 1), nn.BatchNorm2d(4))
    images = torch.randn(64, 1, 4, 4) * 3 + 1
    assert recalibrate_bn(model, images, batches=2, batch_size=32) == 1
    feats = model[0](images).detach()
    assert torch.allclose(model[1].running_mean, feats.mean((0, 2, 3)), atol=1e-5)
    assert model[1].momentum == 0.1 and model.training
    assert recalibrate_bn(nn.Linear(2, 2), torch.randn(4, 2)) == 0


def test_predicted_cell_networks_run_and_are_finite() -> None:
    from weightzoo.datasets.archs import sample_cells_spec
    from weightzoo.zoo.arch.cells import build_cells

    ghn = GHN(hidden=16)
    for fam in ("plain", "separable", "attention-heavy", "deep"):
        spec = sample_cells_spec(np.random.default_rng(7), fam)
        m = ghn.predict(build_cells(spec))
        assert torch.isfinite(m(torch.randn(2, 1, 8, 8))).all()


def test_bad_ghn_checkpoints_raise_typed_errors(tmp_path) -> None:
    from weightzoo.hyper.train import load_ghn

    GHN(hidden=8, rank=4).save_pretrained(tmp_path / "ok")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((tmp_path / "ok" / "config.json").read_text())
    (bad / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(HyperNetworkError):
        load_ghn(bad)
    other = tmp_path / "other"
    GHN(hidden=16, rank=4).save_pretrained(other)
    (other / "config.json").write_text((tmp_path / "ok" / "config.json").read_text())  # shapes disagree
    with pytest.raises(HyperNetworkError, match="not a loadable GHN"):
        load_ghn(other)
    with pytest.raises(HyperNetworkError, match="not a GHN folder"):
        load_ghn(tmp_path)
