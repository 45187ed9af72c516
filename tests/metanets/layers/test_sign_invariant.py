"""Sign-invariant embeddings: invariant to sign flips of tanh/sine neurons, with a negative control."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from weightzoo.metanets.layers.sign_invariant import SignInvariantValues, sign_flippable
from weightzoo.zoo.arch import Sine
from weightzoo.zoo.graphs import ParameterGraph
from weightzoo.zoo.graphs.vocab import NODE_FEATURE_COLUMNS
from weightzoo.zoo.symmetry import flip_signs

BIAS = NODE_FEATURE_COLUMNS.index("bias")


def _net(act: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    a = {"tanh": nn.Tanh, "sine": lambda: Sine(3.0), "relu": nn.ReLU}[act]
    return nn.Sequential(nn.Linear(3, 6), a(), nn.Linear(6, 5), a(), nn.Linear(5, 2))


def _embed(model: nn.Module, node_emb: SignInvariantValues, edge_emb: SignInvariantValues,
           lin_n: nn.Linear, lin_e: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    data = ParameterGraph.from_module(model).to_pyg()
    nodes, edges = sign_flippable(data.x, data.edge_index)
    v = data.x[:, BIAS:BIAS + 1]
    return node_emb(v, nodes, lin_n(v)), edge_emb(data.edge_attr, edges, lin_e(data.edge_attr))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 1000), act=st.sampled_from(["tanh", "sine"]))
def test_embeddings_are_invariant_to_sign_flips(seed: int, act: str) -> None:
    torch.manual_seed(seed)
    window = ParameterGraph.from_module(_net(act, 0)).edge_attr.shape[1]
    node_emb, edge_emb = SignInvariantValues(1, 8), SignInvariantValues(window, 8)
    lin_n, lin_e = nn.Linear(1, 8), nn.Linear(window, 8)
    m = _net(act, seed)
    flipped = flip_signs(m, torch.Generator().manual_seed(seed))
    assert any(not torch.equal(a, b) for a, b in zip(m.state_dict().values(), flipped.state_dict().values()))
    h0, e0 = _embed(m, node_emb, edge_emb, lin_n, lin_e)
    h1, e1 = _embed(flipped, node_emb, edge_emb, lin_n, lin_e)
    torch.testing.assert_close(h0, h1)
    torch.testing.assert_close(e0, e1)
    # negative control: the plain embedding sees the flip
    data0, data1 = ParameterGraph.from_module(m).to_pyg(), ParameterGraph.from_module(flipped).to_pyg()
    assert not torch.allclose(lin_e(data0.edge_attr), lin_e(data1.edge_attr))


def test_masks_cover_only_hidden_odd_neurons() -> None:
    data = ParameterGraph.from_module(_net("tanh", 0)).to_pyg()
    nodes, edges = sign_flippable(data.x, data.edge_index)
    assert int(nodes.sum()) == 6 + 5 and int(edges.sum()) == data.edge_index.shape[1]
    relu = ParameterGraph.from_module(_net("relu", 0)).to_pyg()
    nodes, edges = sign_flippable(relu.x, relu.edge_index)
    assert not nodes.any() and not edges.any()
