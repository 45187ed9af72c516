"""Weight-space augmentations: function kept where claimed (property tests), documented deviations
elsewhere, and negative controls that show the tests can fail."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from weightzoo.datasets.inr import grid_coordinates, siren_spec
from weightzoo.errors import InvalidOptionError, ShapeMismatchError
from weightzoo.metanets.augment import (
    Compose,
    Dropout,
    GaussianNoise,
    Permute,
    PositiveScale,
    SignFlip,
    SirenShift,
    augment_graph,
    mixup,
)
from weightzoo.zoo.arch import Sine, build_module
from weightzoo.zoo.graphs import ParameterGraph


def siren(seed: int, hidden: int = 8, w0: float = 30.0) -> nn.Module:
    torch.manual_seed(seed)
    m = build_module(siren_spec(hidden, w0)).double()
    with torch.no_grad():  # SIREN-like scales so sin(w0·x) is far from linear
        for mod in m.modules():
            if isinstance(mod, nn.Linear):
                mod.weight.uniform_(-1 / mod.in_features, 1 / mod.in_features)
                mod.bias.uniform_(-1.0, 1.0)
    return m.eval()


def relu_cnn(seed: int) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 5, 3), nn.ReLU(),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3)).double().eval()
    return m, torch.randn(4, 1, 8, 8, dtype=torch.float64)


def tanh_mlp(seed: int) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(4, 7), nn.Tanh(), nn.Linear(7, 6), nn.Tanh(), nn.Linear(6, 2)).double().eval()
    return m, torch.randn(5, 4, dtype=torch.float64)


COORDS = grid_coordinates(6).double()


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), periods=st.integers(1, 3), half=st.booleans())
def test_siren_shift_keeps_the_function(seed: int, periods: int, half: bool) -> None:
    m = siren(seed % 50)
    g = torch.Generator().manual_seed(seed)
    out = SirenShift(max_periods=periods, half_periods=half)(m, g)
    moved = sum(float((out.state_dict()[k] - m.state_dict()[k]).abs().sum()) for k in ("0.bias", "2.bias"))
    assert moved > 0  # the biases really moved
    torch.testing.assert_close(out(COORDS), m(COORDS), atol=1e-9, rtol=1e-9)


def test_half_period_shift_without_negation_is_not_a_symmetry() -> None:
    """Negative control, and the reference code's defect: b + π/ω₀ alone negates the neuron's output."""
    m = siren(0)
    bad = siren(0)
    with torch.no_grad():
        bad[2].bias += math.pi / 30.0
    assert (bad(COORDS) - m(COORDS)).abs().max() > 1e-2
    good = siren(0)
    with torch.no_grad():
        good[2].bias += 2 * math.pi / 30.0
    torch.testing.assert_close(good(COORDS), m(COORDS), atol=1e-9, rtol=1e-9)


def test_siren_shift_reads_w0_from_the_layer() -> None:
    m = siren(1, w0=7.0)
    out = SirenShift(max_periods=2, half_periods=False)(m, torch.Generator().manual_seed(3))
    shift = (out.state_dict()["0.bias"] - m.state_dict()["0.bias"]) / (2 * math.pi / 7.0)
    torch.testing.assert_close(shift, shift.round(), atol=1e-9, rtol=0)
    torch.testing.assert_close(out(COORDS), m(COORDS), atol=1e-9, rtol=1e-9)


def test_siren_shift_leaves_networks_without_sines_alone() -> None:
    m, x = relu_cnn(0)
    out = SirenShift()(m, torch.Generator().manual_seed(0))
    for k, v in m.state_dict().items():
        assert torch.equal(out.state_dict()[k], v)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_symmetry_augmentations_keep_the_function(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    cnn, x = relu_cnn(seed % 7)
    mlp, y = tanh_mlp(seed % 7)
    for aug, (m, inp) in [(Permute(), (cnn, x)), (PositiveScale(), (cnn, x)), (SignFlip(), (mlp, y)),
                          (Compose([Permute(), SignFlip()]), (mlp, y)),
                          (Compose([Permute(), PositiveScale()]), (cnn, x))]:
        assert aug.preserves_function
        torch.testing.assert_close(aug(m, g)(inp), m(inp), atol=1e-10, rtol=1e-10)


def test_symmetry_augmentations_work_on_state_dicts_with_a_spec() -> None:
    spec = siren_spec(8)
    m = siren(4)
    sd = SirenShift()(m.state_dict(), torch.Generator().manual_seed(1), spec=spec)
    sd = Permute()(sd, torch.Generator().manual_seed(2), spec=spec)
    sd = SignFlip()(sd, torch.Generator().manual_seed(3), spec=spec)
    assert isinstance(sd, dict)
    other = siren(4)
    other.load_state_dict(sd)
    torch.testing.assert_close(other(COORDS), m(COORDS), atol=1e-9, rtol=1e-9)


def test_gaussian_noise_is_real_noise_scaled_per_tensor() -> None:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(64, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256, 8))
    with torch.no_grad():
        m[0].weight.mul_(10.0)  # very different scales per tensor
        m[1].running_mean.normal_()
    out = GaussianNoise(rel_std=0.3)(m, torch.Generator().manual_seed(0))
    for name in ("0.weight", "3.weight"):
        old, new = m.state_dict()[name], out.state_dict()[name]
        delta = new - old
        assert delta.std() / old.std() == pytest.approx(0.3, rel=0.05)
        assert delta.mean().abs() < 0.05 * delta.std()  # not a constant offset (the reference defect)
    assert torch.equal(out.state_dict()["1.running_mean"], m.state_dict()["1.running_mean"])
    again = GaussianNoise(rel_std=0.3)(m, torch.Generator().manual_seed(0))
    assert torch.equal(again.state_dict()["0.weight"], out.state_dict()["0.weight"])  # seeded
    assert not GaussianNoise.preserves_function
    with pytest.raises(InvalidOptionError):
        GaussianNoise(rel_std=-1.0)(m)


def test_dropout_zeroes_the_stated_fraction() -> None:
    sd = {"w": torch.ones(200, 200), "n.num_batches_tracked": torch.tensor(3)}
    out = Dropout(p=0.25)(sd, torch.Generator().manual_seed(0))
    zero = float((out["w"] == 0).float().mean())
    assert zero == pytest.approx(0.25, abs=0.01)
    assert float(out["w"].max()) == pytest.approx(1 / 0.75)
    assert torch.equal(out["n.num_batches_tracked"], torch.tensor(3))
    with pytest.raises(InvalidOptionError):
        Dropout(p=1.0)(sd)


def test_mixup_aligned_recovers_a_permuted_copy_while_plain_mixup_does_not() -> None:
    m, x = relu_cnn(5)
    perm = Permute()(m, torch.Generator().manual_seed(9))
    aligned = mixup(m, perm, 0.5, mode="aligned")
    torch.testing.assert_close(aligned(x), m(x), atol=1e-10, rtol=1e-10)
    plain = mixup(m, perm, 0.5, mode="plain")
    assert (plain(x) - m(x)).abs().max() > 1e-3  # negative control: unaligned neurons get averaged
    permuted = mixup(m, perm, 0.5, mode="permuted", generator=torch.Generator().manual_seed(1))
    assert (permuted(x) - m(x)).abs().max() > 1e-3
    for k, v in mixup(m, perm, 1.0, mode="plain").state_dict().items():
        torch.testing.assert_close(v, m.state_dict()[k])


def test_mixup_refuses_different_architectures_and_bad_options() -> None:
    a, _ = tanh_mlp(0)
    b = nn.Sequential(nn.Linear(4, 9), nn.Tanh(), nn.Linear(9, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    with pytest.raises(ShapeMismatchError):
        mixup(a, b, 0.5, mode="plain")
    with pytest.raises(InvalidOptionError):
        mixup(a, a, 1.5)
    with pytest.raises(InvalidOptionError):
        mixup(a, a, 0.5, mode="sideways")  # type: ignore[arg-type]


def test_augment_graph_keeps_the_layout_and_the_function() -> None:
    m, x = relu_cnn(2)
    graph = ParameterGraph.from_module(m)
    new = augment_graph(graph, Compose([Permute(), PositiveScale()]), torch.Generator().manual_seed(0))
    assert new.num_nodes == graph.num_nodes and new.num_edges == graph.num_edges
    assert not torch.equal(new.edge_attr, graph.edge_attr)
    rebuilt, _ = relu_cnn(2)
    rebuilt.load_state_dict(new.to_state_dict())
    torch.testing.assert_close(rebuilt(x), m(x), atol=1e-10, rtol=1e-10)


def test_compose_with_zero_probability_changes_nothing() -> None:
    m, _ = tanh_mlp(1)
    out = Compose([GaussianNoise(0.5), Dropout(0.5)], p=0.0)(m, torch.Generator().manual_seed(0))
    for k, v in m.state_dict().items():
        assert torch.equal(out.state_dict()[k], v)
    assert not Compose([Permute(), Dropout()]).preserves_function
    assert isinstance(Sine(3.0), nn.Module)
