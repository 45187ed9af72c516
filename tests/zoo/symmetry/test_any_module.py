"""Symmetries of ANY module from its recorded data flow: function-preserving permutations (property tests)
with negative controls, symmetry_groups reports, check_symmetry, and graph relabelling."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from weightzoo.zoo.graphs import ParameterGraph
from weightzoo.zoo.graphs.layout import layout_of
from weightzoo.zoo.symmetry import check_symmetry, node_permutation, permute_hidden, symmetry_groups
from weightzoo.zoo.symmetry.any_module import apply_recorded_permutation, recorded_classes, recorded_layout

sys.path.insert(0, str(Path(__file__).parents[1] / "graphs"))
import testbed  # noqa: E402

HAS_TRANSFORMERS = importlib.util.find_spec("transformers") is not None
_BUILT = {name: testbed.build(name) for name in testbed.HANDWRITTEN}
_LAYOUTS = {name: recorded_layout(m, x) for name, (m, x) in _BUILT.items()}


def _identity(layout) -> dict[int, torch.Tensor]:
    return {gi: torch.arange(layout.groups[gi].size) for gi in range(len(layout.groups))}


def _permuted(m: nn.Module, layout, perms) -> nn.Module:
    new = copy.deepcopy(m)
    new.load_state_dict(apply_recorded_permutation(layout, m.state_dict(), perms))
    return new


@settings(max_examples=8, deadline=None)
@given(name=st.sampled_from(sorted(testbed.HANDWRITTEN)), seed=st.integers(0, 2**31 - 1))
def test_random_permutations_preserve_the_function(name: str, seed: int) -> None:
    m, x = _BUILT[name]
    new, perms = permute_hidden(m, torch.Generator().manual_seed(seed), example_input=x, return_perms=True)
    check = check_symmetry(m, new, x)
    assert check.preserved, (name, check.max_abs_diff)
    assert type(new) is type(m) and new is not m


@pytest.mark.parametrize("name", sorted(testbed.HANDWRITTEN))
def test_every_module_has_a_nontrivial_symmetry(name: str) -> None:
    m, x = _BUILT[name]
    groups = symmetry_groups(_LAYOUTS[name])
    assert any(g.status in ("free", "heads") for g in groups), groups
    new = permute_hidden(m, torch.Generator().manual_seed(1), example_input=x)
    changed = [k for k, v in m.state_dict().items() if not torch.equal(v, new.state_dict()[k])]
    assert changed, name


@pytest.mark.parametrize("name", sorted(testbed.HANDWRITTEN))
def test_negative_controls_change_the_output(name: str) -> None:
    """Permuting a fixed class (the network input or output), or one member of a tied class alone, is
    not a symmetry: the check must fail."""
    m, x = _BUILT[name]
    layout = _LAYOUTS[name]
    classes = recorded_classes(layout)
    g = torch.Generator().manual_seed(0)
    # 1. the output (or input) neurons, fixed: a non-identity permutation changes the output
    outs = [gr for gr in layout.groups if gr.kind.name in ("OUTPUT", "INPUT") and gr.size > 1]
    perms = _identity(layout)
    perms[outs[0].index] = torch.roll(torch.arange(outs[0].size), 1)
    assert not check_symmetry(m, _permuted(m, layout, perms), x).preserved
    # 2. break a tie: permute only one group of a class of several (or one member of a concat)
    tied = [ms for r, ms in classes.members.items() if len(ms) > 1 and classes.status(r)[0] in ("free", "heads")]
    if tied:
        one = tied[0][-1]
        n = layout.groups[one].size
        broken = _identity(layout)
        broken[one] = torch.roll(torch.arange(n), 1)
        assert not check_symmetry(m, _permuted(m, layout, broken), x).preserved
    del g


def test_heads_move_whole_and_qk_dims_together() -> None:
    m, x = _BUILT["vit"]
    layout = _LAYOUTS["vit"]
    classes = recorded_classes(layout)
    heads = [g for g in symmetry_groups(layout) if g.status == "heads"]
    assert heads and all(g.heads == 4 and g.size == 16 for g in heads)
    qk = [g for g in heads if len(g.groups) == 2]
    assert qk, "q and k of one block share a class"
    # negative control: permute dims across heads of v only (not a symmetry)
    v_class = next(g for g in heads if len(g.groups) == 1)
    perms = _identity(layout)
    perms[v_class.groups[0]] = torch.cat([torch.arange(1, 16), torch.arange(1)])
    assert not check_symmetry(m, _permuted(m, layout, perms), x).preserved
    del classes


def test_symmetry_groups_say_why() -> None:
    groups = symmetry_groups(*_BUILT["swin_like"])
    reasons = " ".join(g.reason for g in groups if g.status == "fixed")
    assert "network input" in reasons and "network output" in reasons
    heads = [g for g in groups if g.status == "heads"]
    assert heads and all("varies" in g.reason for g in heads)  # the relative-position bias keeps heads in place
    derived = [g for g in groups if g.status == "derived"]
    assert any("concatenation" in g.reason for g in derived)


@pytest.mark.parametrize("name", sorted(testbed.HANDWRITTEN))
def test_graph_of_a_permuted_module_is_the_relabelled_graph(name: str) -> None:
    m, x = _BUILT[name]
    g1 = ParameterGraph.from_module(m, x)
    layout = layout_of(g1.spec)
    perms = recorded_classes(layout).sample(torch.Generator().manual_seed(3))
    new = _permuted(m, layout, perms)
    g2 = ParameterGraph.from_spec(g1.spec, new.state_dict())
    mp = node_permutation(layout, perms)
    assert torch.equal(g2.node_values[mp], g1.node_values), name
    ei = mp[g1.edge_index]
    n = g1.num_nodes
    k1 = ((ei[0] * n + ei[1]) * 32 + g1.edge_type).numpy()
    k2 = ((g2.edge_index[0] * n + g2.edge_index[1]) * 32 + g2.edge_type).numpy()
    a1, a2 = g1.edge_attr.numpy(), g2.edge_attr.numpy()
    o1 = np.lexsort((*a1.T[::-1], k1))
    o2 = np.lexsort((*a2.T[::-1], k2))
    assert (k1[o1] == k2[o2]).all() and (a1[o1] == a2[o2]).all(), name


def test_state_dict_with_recorded_spec() -> None:
    m, x = _BUILT["convnext"]
    spec = ParameterGraph.from_module(m, x).spec
    sd = permute_hidden(m.state_dict(), torch.Generator().manual_seed(0), spec=spec)
    new = copy.deepcopy(m)
    new.load_state_dict(sd)
    assert check_symmetry(m, new, x).preserved
    assert any(not torch.equal(sd[k], v) for k, v in m.state_dict().items())


def test_check_symmetry_takes_a_transform() -> None:
    m, x = _BUILT["mlp_class"]
    ok = check_symmetry(m, lambda mod: permute_hidden(mod, torch.Generator().manual_seed(0), example_input=x), x)
    assert ok and ok.max_abs_diff < 1e-5
    worse = copy.deepcopy(m)
    with torch.no_grad():
        worse.fc1.weight.mul_(1.5)
    assert not check_symmetry(m, worse, x)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_TRANSFORMERS, reason="transformers not installed")
@pytest.mark.parametrize("family", list(testbed.HF_TINY))
def test_transformers_families_permute_and_preserve(family: str) -> None:
    m, x = testbed.build_hf(family)
    layout = recorded_layout(m, x)
    new = _permuted(m, layout, recorded_classes(layout).sample(torch.Generator().manual_seed(0)))
    assert check_symmetry(m, new, x).preserved
    assert any(not torch.equal(v, new.state_dict()[k]) for k, v in m.state_dict().items())
    outs = [gr for gr in layout.groups if gr.kind.name == "OUTPUT" and gr.size > 1]
    perms = _identity(layout)
    perms[outs[0].index] = torch.roll(torch.arange(outs[0].size), 1)
    assert not check_symmetry(m, _permuted(m, layout, perms), x).preserved  # negative control


@pytest.mark.parametrize("name", ["resnet", "densenet", "convnext", "unet"])
def test_align_recovers_a_permuted_copy(name: str) -> None:
    from weightzoo.zoo.symmetry import align

    m, x = _BUILT[name]
    p = permute_hidden(m, torch.Generator().manual_seed(5), example_input=x)
    assert any(not torch.equal(v, p.state_dict()[k]) for k, v in m.state_dict().items())
    aligned, _ = align(m, p, example_input=x)
    assert all(torch.equal(v, aligned.state_dict()[k]) for k, v in m.state_dict().items()), name
    assert check_symmetry(m, aligned, x).preserved


def test_sign_flips_refuse_and_scaling_applies_on_a_relu_module() -> None:
    # ReLU neurons admit positive scaling but no sign flips (tests/zoo/symmetry/test_recorded_sign_scale.py
    # covers both on more modules); a refusal names the module and why
    from weightzoo.errors import UnsupportedLayerError
    from weightzoo.zoo.symmetry import flip_signs, scale

    m, x = _BUILT["mlp_class"]
    spec = ParameterGraph.from_module(m, x).spec
    with pytest.raises(UnsupportedLayerError, match="read by relu"):
        flip_signs(m)
    with pytest.raises(UnsupportedLayerError, match="sign flips"):
        flip_signs(m.state_dict(), spec=spec)
    new = scale(m, torch.Generator().manual_seed(0), example_input=x)
    assert check_symmetry(m, new, x) and not torch.equal(new.fc1.weight, m.fc1.weight)
    sd = scale(m.state_dict(), torch.Generator().manual_seed(0), spec=spec)
    assert all(torch.equal(sd[k], v) for k, v in new.state_dict().items())
