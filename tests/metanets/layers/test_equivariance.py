"""The graph layers stacked as a metanetwork: invariant readout and equivariant node/edge outputs under
zoo.symmetry permutations, on random and trained networks, with negative controls."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from weightzoo.metanets.layers.edge_update_conv import EdgeUpdateConv
from weightzoo.metanets.layers.heads import EdgeHead, NodeHead
from weightzoo.metanets.layers.readout import InvariantReadout
from weightzoo.metanets.layers.type_embedding import EdgeEmbedding, NodeEmbedding
from weightzoo.zoo.arch import Residual
from weightzoo.zoo.graphs import ParameterGraph
from weightzoo.zoo.symmetry import node_permutation, permute_hidden

KINDS = ["mlp_bn", "cnn_residual", "cnn_flatten"]


def make(kind: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    if kind == "mlp_bn":
        m = nn.Sequential(nn.Linear(6, 7), nn.BatchNorm1d(7), nn.ReLU(), nn.Linear(7, 5), nn.Tanh(), nn.Linear(5, 3))
    elif kind == "cnn_residual":
        m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
                          Residual(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                                 nn.Conv2d(4, 4, 3, padding=1))), nn.ReLU(),
                          nn.Conv2d(4, 6, 5, stride=2, padding=2), nn.GELU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4))
    else:
        m = nn.Sequential(nn.Conv2d(1, 3, 3), nn.SiLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 5), nn.ReLU(), nn.Linear(5, 2))
    g = torch.Generator().manual_seed(seed + 1)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm1d | nn.BatchNorm2d):
            mod.weight.data.normal_(generator=g)
            mod.bias.data.normal_(generator=g)
            mod.running_mean.normal_(generator=g)
            mod.running_var.uniform_(0.5, 2.0, generator=g)
        if isinstance(mod, nn.Linear | nn.Conv2d):
            mod.bias.data.normal_(generator=g)  # PyTorch's init is fine too; nonzero biases make node values differ
    return m.eval()


def trained_mlp(seed: int) -> nn.Module:
    """A small MLP trained for a few steps on real data (sklearn digits)."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x[:256], dtype=torch.float32) / 16
    y = torch.tensor(y[:256])
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(64, 12), nn.ReLU(), nn.Linear(12, 10))
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(30):
        opt.zero_grad()
        nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
    return m.eval()


class Stack(nn.Module):
    """Embeddings → two EdgeUpdateConvs → readout, node head and edge head."""

    def __init__(self, positional: bool = True, edge_update: bool = True, dim: int = 16) -> None:
        super().__init__()
        self.nodes = NodeEmbedding(dim, positional=positional)
        self.edges = EdgeEmbedding(dim, positional=positional)
        self.convs = nn.ModuleList([EdgeUpdateConv(dim, edge_update=edge_update, avg_log_degree=1.5) for _ in range(2)])
        self.readout = InvariantReadout(dim, 2)
        self.node_head, self.edge_head = NodeHead(dim, 3), EdgeHead(dim, 2)

    def forward(self, d):  # type: ignore[no-untyped-def]
        x, e = self.nodes(d.x), self.edges(d.edge_attr, d.edge_type, d.edge_layer)
        for conv in self.convs:
            x, e = conv(x, d.edge_index, e)
        return (self.readout(x, e, d.edge_index, getattr(d, "batch", None)), self.node_head(x),
                self.edge_head(x, d.edge_index, e))


def _edge_keys(d, relabel: torch.Tensor | None = None) -> list[tuple[int, int, int, int]]:  # type: ignore[no-untyped-def]
    s, t = d.edge_index
    if relabel is not None:
        s, t = relabel[s], relabel[t]
    return list(zip(s.tolist(), t.tolist(), d.edge_type.tolist(), d.edge_layer.tolist()))


def _check_equivariant(model: nn.Module, net: nn.Module, seed: int) -> None:
    g0 = ParameterGraph.from_module(net)
    net_p, perms = permute_hidden(net, torch.Generator().manual_seed(seed), return_perms=True)
    g1 = ParameterGraph.from_module(net_p)
    m = node_permutation(g0.layout, perms)  # m[old] = new
    assert not torch.equal(m, torch.arange(len(m))), "the permutation should move something"
    d0, d1 = g0.to_pyg(), g1.to_pyg()
    with torch.no_grad():
        y0, n0, e0 = model(d0)
        y1, n1, e1 = model(d1)
    torch.testing.assert_close(y1, y0, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(n1[m], n0, atol=1e-4, rtol=1e-4)
    where = {k: i for i, k in enumerate(_edge_keys(d1))}
    assert len(where) == d1.num_edges
    idx = torch.tensor([where[k] for k in _edge_keys(d0, m)])
    torch.testing.assert_close(e1[idx], e0, atol=1e-4, rtol=1e-4)


@settings(deadline=None, max_examples=6, derandomize=True)
@given(kind=st.sampled_from(KINDS), seed=st.integers(0, 10_000), edge_update=st.booleans())
def test_stack_invariant_and_equivariant_under_hidden_permutations(kind: str, seed: int, edge_update: bool) -> None:
    torch.manual_seed(seed)
    _check_equivariant(Stack(edge_update=edge_update), make(kind, seed), seed)


def test_stack_equivariant_on_a_trained_network() -> None:
    torch.manual_seed(0)
    _check_equivariant(Stack(), trained_mlp(0), 3)


def _swap_inputs(net: nn.Sequential) -> nn.Sequential:
    """Permute the input features (not a symmetry: the network now reads its inputs in another order)."""
    import copy

    new = copy.deepcopy(net)
    first = new[0]
    first.weight.data = first.weight.data[:, torch.roll(torch.arange(first.weight.shape[1]), 1)].clone()
    return new


def test_negative_control_input_permutation_changes_the_prediction() -> None:
    torch.manual_seed(0)
    net = trained_mlp(1)
    other = _swap_inputs(net)
    model = Stack()
    with torch.no_grad():
        y0 = model(ParameterGraph.from_module(net).to_pyg())[0]
        y1 = model(ParameterGraph.from_module(other).to_pyg())[0]
    assert (y0 - y1).abs().max() > 2e-5
    # ... and it is the positional embedding that tells input neurons apart: without it, permuting the
    # inputs is a mere relabelling of the graph and the readout cannot see it
    torch.manual_seed(0)
    plain = Stack(positional=False)
    with torch.no_grad():
        z0 = plain(ParameterGraph.from_module(net).to_pyg())[0]
        z1 = plain(ParameterGraph.from_module(other).to_pyg())[0]
    assert (z0 - z1).abs().max() < 2e-6


def test_negative_control_half_permutation_changes_the_prediction() -> None:
    """Permuting a hidden layer's incoming weights but not its outgoing ones is not a symmetry."""
    net = make("mlp_bn", 2)
    bad = make("mlp_bn", 2)
    p = torch.tensor([1, 0, 2, 3, 4])
    bad[3].weight.data = bad[3].weight.data[p].clone()
    bad[3].bias.data = bad[3].bias.data[p].clone()
    torch.manual_seed(0)
    model = Stack()
    with torch.no_grad():
        y0 = model(ParameterGraph.from_module(net).to_pyg())[0]
        y1 = model(ParameterGraph.from_module(bad).to_pyg())[0]
    assert (y0 - y1).abs().max() > 1e-5  # float32 noise of a true symmetry is ~1e-7 here


def test_prediction_does_not_depend_on_the_batch() -> None:
    from torch_geometric.data import Batch

    torch.manual_seed(0)
    model = Stack()
    ds = [ParameterGraph.from_module(make(k, 5)).to_pyg() for k in KINDS]
    with torch.no_grad():
        alone = torch.cat([model(d)[0] for d in ds])
        together = model(Batch.from_data_list(ds))[0]
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
