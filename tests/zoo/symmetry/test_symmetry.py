"""Weight-space symmetries: function preservation, graph relabelling, negative controls, alignment."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from weightzoo.errors import SpecError
from weightzoo.zoo.arch import Residual, Sine, spec_from_module
from weightzoo.zoo.graphs import ParameterGraph, layout_of
from weightzoo.zoo.symmetry import (
    align,
    apply_permutation,
    apply_scaling,
    eligible_groups,
    flip_signs,
    node_permutation,
    permute_hidden,
    scale,
)

ACTS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
        "leaky_relu": lambda: nn.LeakyReLU(0.1), "sine": lambda: Sine(2.0), "identity": nn.Identity}
KINDS = ["mlp_bn", "mlp_ln", "conv2d", "conv2d_grouped", "depthwise", "conv1d", "residual", "flatten", "gn"]


def make(kind: str, act: str, w: int, seed: int) -> tuple[nn.Module, torch.Tensor]:
    """A small network of ``kind`` with activation ``act``, random weights and BN statistics, eval mode."""
    torch.manual_seed(seed)
    a = ACTS[act]
    if kind == "mlp_bn":
        m = nn.Sequential(nn.Linear(5, w), nn.BatchNorm1d(w), a(), nn.Dropout(0.3), nn.Linear(w, w), a(), nn.Linear(w, 3))
        x = torch.randn(4, 5)
    elif kind == "mlp_ln":
        m = nn.Sequential(nn.Linear(5, w), nn.LayerNorm(w), a(), nn.Linear(w, w), a(), nn.Linear(w, 3))
        x = torch.randn(4, 5)
    elif kind == "conv2d":
        m = nn.Sequential(nn.Conv2d(2, w, 3, stride=2, padding=1), a(), nn.Conv2d(w, w, 3, dilation=2, padding=2),
                          nn.BatchNorm2d(w), a(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(w, 3))
        x = torch.randn(4, 2, 8, 8)
    elif kind == "conv2d_grouped":
        m = nn.Sequential(nn.Conv2d(2, 2 * w, 3, padding=1), a(), nn.Conv2d(2 * w, 2 * w, 3, padding=1, groups=2), a(),
                          nn.Conv2d(2 * w, 2 * w, 1, groups=2), a(), nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(2 * w, 3))
        x = torch.randn(4, 2, 6, 6)
    elif kind == "depthwise":
        m = nn.Sequential(nn.Conv2d(2, w, 3, padding=1), a(), nn.Conv2d(w, w, 3, padding=1, groups=w), a(),
                          nn.Conv2d(w, w, 1), a(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(w, 3))
        x = torch.randn(4, 2, 6, 6)
    elif kind == "conv1d":
        m = nn.Sequential(nn.Conv1d(2, w, 5, padding=2), nn.BatchNorm1d(w), a(), nn.Conv1d(w, w, 3, stride=2), a(),
                          nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Linear(w, 2))
        x = torch.randn(4, 2, 12)
    elif kind == "residual":
        m = nn.Sequential(nn.Conv2d(2, w, 3, padding=1), a(),
                          Residual(nn.Sequential(nn.Conv2d(w, w, 3, padding=1), nn.BatchNorm2d(w), a(),
                                                 nn.Conv2d(w, w, 3, padding=1))), a(),
                          Residual(nn.Sequential(nn.Conv2d(w, 2 * w, 3, padding=1), a(), nn.Conv2d(2 * w, 2 * w, 1)),
                                   nn.Sequential(nn.Conv2d(w, 2 * w, 1), nn.BatchNorm2d(2 * w))), a(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * w, 3))
        x = torch.randn(4, 2, 6, 6)
    elif kind == "flatten":
        m = nn.Sequential(nn.Conv2d(1, w, 3), a(), nn.Conv2d(w, w, 3), a(), nn.Flatten(), nn.Linear(w * 4, w), a(),
                          nn.Linear(w, 2))
        x = torch.randn(4, 1, 6, 6)
    else:  # gn
        m = nn.Sequential(nn.Conv2d(2, 2 * w, 3, padding=1), nn.GroupNorm(2, 2 * w), a(),
                          nn.Conv2d(2 * w, w, 3, padding=1), a(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(w, 3))
        x = torch.randn(4, 2, 6, 6)
    g = torch.Generator().manual_seed(seed + 1)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm1d | nn.BatchNorm2d | nn.GroupNorm | nn.LayerNorm):
            mod.weight.data.normal_(generator=g)
            mod.bias.data.normal_(generator=g)
        if isinstance(mod, nn.BatchNorm1d | nn.BatchNorm2d):
            mod.running_mean.normal_(generator=g)
            mod.running_var.uniform_(0.5, 2.0, generator=g)
    return m.eval(), x


def _moved(perms: dict[int, torch.Tensor]) -> int:
    return sum(int(not torch.equal(p, torch.arange(len(p)))) for p in perms.values())


def _edge_set(src: torch.Tensor, dst: torch.Tensor, etype: torch.Tensor, attr: torch.Tensor) -> torch.Tensor:
    """Edges as rows sorted by (src, dst, type), so two graphs compare independently of edge order."""
    rows = torch.cat([src[:, None].double(), dst[:, None].double(), etype[:, None].double(), attr.double()], 1)
    key = (src * (dst.max() + 1) + dst) * 8 + etype
    return rows[torch.argsort(key)]


@settings(deadline=None, max_examples=15, derandomize=True)
@given(kind=st.sampled_from(KINDS), act=st.sampled_from(sorted(ACTS)), w=st.integers(2, 6), seed=st.integers(0, 10_000))
def test_permute_hidden_preserves_function_and_relabels_graph(kind: str, act: str, w: int, seed: int) -> None:
    m, x = make(kind, act, w, seed)
    p, perms = permute_hidden(m, torch.Generator().manual_seed(seed), return_perms=True)
    assert torch.allclose(p(x), m(x), atol=1e-5)
    # the permuted network's graph is the original's with nodes relabelled by the permutation itself
    g0, g1 = ParameterGraph.from_module(m), ParameterGraph.from_module(p)
    node_map = node_permutation(g0.layout, perms)
    assert torch.equal(g1.node_values[node_map], g0.node_values)
    assert torch.equal(g1.node_type[node_map], g0.node_type)
    e0 = _edge_set(node_map[g0.edge_index[0]], node_map[g0.edge_index[1]], g0.edge_type, g0.edge_attr)
    e1 = _edge_set(g1.edge_index[0], g1.edge_index[1], g1.edge_type, g1.edge_attr)
    assert torch.equal(e0, e1)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_a_nontrivial_permutation(kind: str) -> None:
    m, x = make(kind, "relu", 4, 0)
    p, perms = permute_hidden(m, torch.Generator().manual_seed(0), return_perms=True)
    assert _moved(perms) >= 1
    assert not all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), p.state_dict().values()))
    assert torch.allclose(p(x), m(x), atol=1e-5)


def test_grouped_conv_permutes_whole_groups_consistently() -> None:
    m, x = make("depthwise", "relu", 6, 1)
    layout = layout_of(spec_from_module(m))
    _, perms = permute_hidden(m, torch.Generator().manual_seed(5), return_perms=True)
    # depthwise conv: its input and output channels must move together
    assert torch.equal(perms[1], perms[2]) and _moved({1: perms[1]}) == 1
    assert layout.grouped == ((1, 2, 6),)


@settings(deadline=None, max_examples=20, derandomize=True)
@given(kind=st.sampled_from(KINDS), act=st.sampled_from(["tanh", "sine", "identity"]), seed=st.integers(0, 10_000))
def test_flip_signs_preserves_function_for_odd_activations(kind: str, act: str, seed: int) -> None:
    m, x = make(kind, act, 4, seed)
    f, signs = flip_signs(m, torch.Generator().manual_seed(seed), return_signs=True)
    assert torch.allclose(f(x), m(x), atol=1e-5)
    if kind in ("mlp_bn", "mlp_ln", "conv2d", "flatten"):
        assert signs and any(bool((s < 0).any()) for s in signs.values())


@settings(deadline=None, max_examples=20, derandomize=True)
@given(kind=st.sampled_from(KINDS), act=st.sampled_from(["relu", "leaky_relu"]), seed=st.integers(0, 10_000))
def test_scale_preserves_function_for_relu_family(kind: str, act: str, seed: int) -> None:
    m, x = make(kind, act, 4, seed)
    s, factors = scale(m, torch.Generator().manual_seed(seed), return_scales=True)
    assert torch.allclose(s(x), m(x), atol=1e-5)
    if kind in ("mlp_bn", "conv2d", "flatten", "gn"):
        assert factors
        changed = [k for k in m.state_dict() if not torch.equal(m.state_dict()[k], s.state_dict()[k])]
        assert changed


def test_no_sign_flips_for_relu_or_scaling_for_tanh() -> None:
    m, _ = make("mlp_bn", "relu", 4, 0)
    layout = layout_of(spec_from_module(m))
    assert eligible_groups(layout, "flip") == [] and eligible_groups(layout, "scale") == [1, 2]
    m, _ = make("mlp_bn", "tanh", 4, 0)
    assert eligible_groups(layout_of(spec_from_module(m)), "scale") == []


def test_negative_controls_change_the_output() -> None:
    m, x = make("conv2d", "relu", 5, 0)
    layout = layout_of(spec_from_module(m))
    sd = m.state_dict()
    # inconsistent permutation: permute the first conv's output channels but not the next conv's inputs
    bad = dict(sd)
    perm = torch.tensor([1, 0, 2, 3, 4])
    bad["0.weight"], bad["0.bias"] = sd["0.weight"][perm], sd["0.bias"][perm]
    m2 = make("conv2d", "relu", 5, 0)[0]
    m2.load_state_dict(bad)
    assert not torch.allclose(m2(x), m(x), atol=1e-3)
    # the consistent one (same permutation through the layout) does not
    good = apply_permutation(layout, sd, {1: perm})
    m2.load_state_dict(good)
    assert torch.allclose(m2(x), m(x), atol=1e-5)
    # a sign flip through ReLU is not a symmetry
    flipped = apply_scaling(layout, sd, {1: -torch.ones(5, dtype=torch.float64)})
    m2.load_state_dict(flipped)
    assert not torch.allclose(m2(x), m(x), atol=1e-3)


@pytest.mark.parametrize("kind", KINDS)
def test_align_recovers_a_permuted_copy(kind: str) -> None:
    m, x = make(kind, "relu", 5, 2)
    p = permute_hidden(m, torch.Generator().manual_seed(9))
    aligned, perms = align(m, p)
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), aligned.state_dict().values())), kind
    assert torch.allclose(aligned(x), m(x), atol=1e-5)
    # aligning a model with itself: identity permutations
    _, same = align(m, m)
    assert _moved(same) == 0


def test_align_state_dicts_and_trained_models(digits_cnn, digits_mlp, digits_data) -> None:
    x = digits_data[2]
    for model in (digits_cnn, digits_mlp):
        spec = spec_from_module(model)
        sd = model.state_dict()
        p = permute_hidden(sd, torch.Generator().manual_seed(3), spec=spec)
        assert isinstance(p, dict) and set(p) == set(sd)
        aligned, _ = align(sd, p, spec=spec)
        assert isinstance(aligned, dict)
        assert all(torch.equal(aligned[k], sd[k]) for k in sd)
        pm = permute_hidden(model, torch.Generator().manual_seed(4))
        assert torch.allclose(pm(x), model(x), atol=1e-5)
        assert torch.equal(pm(x).argmax(1), model(x).argmax(1))


def test_state_dict_needs_a_spec() -> None:
    m, _ = make("mlp_bn", "relu", 3, 0)
    with pytest.raises(SpecError, match="spec="):
        permute_hidden(m.state_dict(), torch.Generator().manual_seed(0))
    with pytest.raises(TypeError):
        permute_hidden([1, 2], torch.Generator())
