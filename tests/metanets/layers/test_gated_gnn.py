"""GatedGNN (GHN-2): level-batched sweeps equal node-by-node sweeps; equivariant to node relabelling."""

from __future__ import annotations

import pytest
import torch

from weightzoo.metanets.layers.gated_gnn import GatedGNN, topological_levels
from weightzoo.zoo.graphs.compute_graph import shortest_path_edges


def _dag(n: int = 9, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    edges = [(i, i + 1) for i in range(n - 1)]
    for _ in range(n):
        a, b = sorted(torch.randint(n, (2,), generator=g).tolist())
        if a != b:
            edges.append((a, b))
    return torch.tensor(sorted(set(edges))).t()


def _reference(layer: GatedGNN, x: torch.Tensor, vi: torch.Tensor, vd: torch.Tensor) -> torch.Tensor:
    """GHN-2's sequential sweep: one node at a time in topological (index) order, then reversed."""
    h = x.clone()
    n = x.shape[0]
    for k, (index, order) in enumerate([(vi, range(n)), (vi.flip(0), range(n - 1, -1, -1))]):
        for v in order:
            incoming = index[1] == v
            if not incoming.any():
                continue
            src, d = index[0][incoming], vd[incoming]
            msg = torch.where((d == 1).unsqueeze(1), layer.mlp_sp[k](h[src]),
                              layer.mlp_vir[k](h[src]) / d.unsqueeze(1).float())
            h[v] = layer.gru[k](msg.sum(0, keepdim=True), h[v:v + 1])[0]
    return h


def test_levels_are_longest_path_depths_and_cycles_raise() -> None:
    ei = torch.tensor([[0, 0, 1, 2], [1, 2, 3, 3]])
    assert topological_levels(ei, 5).tolist() == [0, 1, 1, 2, 0]
    assert topological_levels(ei, 5, reverse=True).tolist() == [2, 1, 1, 0, 0]
    with pytest.raises(ValueError, match="cycle"):
        topological_levels(torch.tensor([[0, 1], [1, 0]]), 2)


def test_level_batched_sweep_equals_node_by_node() -> None:
    torch.manual_seed(0)
    ei = _dag(12)
    vi, vd = shortest_path_edges(ei, 12, 50)
    layer = GatedGNN(8)
    x = torch.randn(12, 8)
    with torch.no_grad():
        assert torch.allclose(layer(x, vi, vd), _reference(layer, x, vi, vd), atol=1e-5)


def test_equivariant_to_node_relabelling_with_negative_control() -> None:
    torch.manual_seed(1)
    n = 10
    ei = _dag(n, seed=3)
    vi, vd = shortest_path_edges(ei, n, 50)
    layer = GatedGNN(6)
    x = torch.randn(n, 6)
    perm = torch.randperm(n)
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(n)
    with torch.no_grad():
        out = layer(x, vi, vd)
        out_p = layer(x[perm], inv[vi], vd)  # node perm[i] is now node i
        assert torch.allclose(out_p, out[perm], atol=1e-5)
        wrong = layer(x[perm], vi, vd)  # features moved, edges not: not a symmetry
        assert not torch.allclose(wrong, out[perm], atol=1e-3)


def test_batched_graphs_are_independent_and_bad_args_raise() -> None:
    torch.manual_seed(2)
    e1, e2 = _dag(6, 1), _dag(7, 2)
    v1, d1 = shortest_path_edges(e1, 6, 50)
    v2, d2 = shortest_path_edges(e2, 7, 50)
    layer = GatedGNN(4, rounds=2)
    x1, x2 = torch.randn(6, 4), torch.randn(7, 4)
    with torch.no_grad():
        both = layer(torch.cat([x1, x2]), torch.cat([v1, v2 + 6], 1), torch.cat([d1, d2]))
        assert torch.allclose(both[:6], layer(x1, v1, d1), atol=1e-5)
        assert torch.allclose(both[6:], layer(x2, v2, d2), atol=1e-5)
    assert repr(layer).startswith("GatedGNN(\n  hidden=4, rounds=2, backward=True, max_dist=50")
    with pytest.raises(ValueError, match="GatedGNN"):
        GatedGNN(0)
