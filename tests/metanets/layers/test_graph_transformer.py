"""GraphTransformer (GHN-3): equivariant to node relabelling; distance biases act; sparse = dense reference."""

from __future__ import annotations

import pytest
import torch

from weightzoo.metanets.layers.graph_transformer import GraphTransformer, _segment_softmax
from weightzoo.zoo.graphs.compute_graph import shortest_path_edges


def _graph(n: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    edges = {(i, i + 1) for i in range(n - 1)}
    for _ in range(n // 2):
        a, b = sorted(torch.randint(n, (2,), generator=g).tolist())
        if a != b:
            edges.add((a, b))
    ei = torch.tensor(sorted(edges)).t()
    vi, vd = shortest_path_edges(ei, n, 50)
    return ei, vi, vd


def test_segment_softmax_matches_dense() -> None:
    logits = torch.randn(7, 2)
    seg = torch.tensor([0, 0, 1, 1, 1, 2, 0])
    out = _segment_softmax(logits, seg, 3)
    for s in range(3):
        m = seg == s
        assert torch.allclose(out[m], torch.softmax(logits[m], 0), atol=1e-6)


def test_equivariant_to_node_relabelling_with_negative_control() -> None:
    torch.manual_seed(0)
    n = 9
    ei, vi, vd = _graph(n, 4)
    layer = GraphTransformer(8, layers=2, heads=2)
    for p in layer.parameters():  # biases start at zero; make them matter
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(n, 8)
    perm = torch.randperm(n)
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(n)
    with torch.no_grad():
        out = layer(x, ei, vi, vd)
        assert torch.allclose(layer(x[perm], inv[ei], inv[vi], vd), out[perm], atol=1e-5)
        assert not torch.allclose(layer(x[perm], ei, vi, vd), out[perm], atol=1e-3)


def test_distance_bias_changes_attention_and_bad_args_raise() -> None:
    torch.manual_seed(1)
    ei, vi, vd = _graph(6, 1)
    layer = GraphTransformer(8, layers=1, heads=2)
    x = torch.randn(6, 8)
    with torch.no_grad():
        before = layer(x, ei, vi, vd)
        layer.blocks[0].dist_bias.weight[2:] = -5.0  # penalise distance >= 2
        assert not torch.allclose(before, layer(x, ei, vi, vd), atol=1e-4)
    assert "hidden=8, heads=2, max_dist=50, max_degree=32" in repr(layer)
    with pytest.raises(ValueError, match="GraphTransformer"):
        GraphTransformer(10, heads=4)
