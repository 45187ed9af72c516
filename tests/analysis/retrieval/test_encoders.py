"""Encoders: invariance to isomorphic relabelling of the graph's nodes, with negative controls."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from weightzoo.analysis.retrieval import OpHistogramEncoder, WLEncoder, resolve_encoder
from weightzoo.datasets.archs import sample_cells_spec
from weightzoo.errors import InvalidOptionError
from weightzoo.zoo.graphs import ComputeGraph, OpNode, OpType

_SPEC = sample_cells_spec(np.random.default_rng(3), "mixed")
_GRAPH = ComputeGraph.from_spec(_SPEC, cutoff=1)


def relabel(graph: ComputeGraph, perm: list[int]) -> ComputeGraph:
    """The same graph with node ``i`` moved to position ``perm[i]``."""
    nodes: list[OpNode | None] = [None] * graph.num_nodes
    for i, n in enumerate(graph.nodes):
        nodes[perm[i]] = n
    p = torch.tensor(perm)
    ei = p[graph.edge_index]
    return ComputeGraph([n for n in nodes if n is not None], ei, graph.coverage, cutoff=1)


def rewire(graph: ComputeGraph) -> ComputeGraph:
    """Move one data-flow edge to a different target: same nodes, not isomorphic in general."""
    ei = graph.edge_index.clone()
    ei[1, 3] = (int(ei[1, 3]) + 7) % graph.num_nodes
    return ComputeGraph(graph.nodes, ei, graph.coverage, cutoff=1)


@settings(max_examples=8, deadline=None)
@given(st.permutations(list(range(_GRAPH.num_nodes))))
def test_wl_and_ops_are_invariant_to_relabelling(perm: list[int]) -> None:
    g2 = relabel(_GRAPH, perm)
    assert WLEncoder().tokens(g2) == WLEncoder().tokens(_GRAPH)
    ops = OpHistogramEncoder()
    np.testing.assert_allclose(ops.encode([g2]), ops.encode([_GRAPH]), atol=1e-7)


def test_negative_controls_a_rewired_edge_or_a_swapped_op_changes_the_encoding() -> None:
    wl = WLEncoder()
    assert wl.tokens(rewire(_GRAPH)) != wl.tokens(_GRAPH)
    i = next(i for i, n in enumerate(_GRAPH.nodes) if n.op is OpType.RELU)
    nodes = list(_GRAPH.nodes)
    nodes[i] = OpNode(OpType.GELU, "GELU", nodes[i].path, (), nodes[i].out_shape)
    swapped = ComputeGraph(nodes, _GRAPH.edge_index, _GRAPH.coverage, cutoff=1)
    ops = OpHistogramEncoder()
    assert not np.allclose(ops.encode([swapped]), ops.encode([_GRAPH]))
    assert wl.tokens(swapped) != wl.tokens(_GRAPH)


def test_wl_tokens_are_readable_and_fingerprint_records_networkx() -> None:
    import networkx as nx

    wl = WLEncoder(iterations=2)
    toks = wl.tokens(_GRAPH)
    assert "op0:CONV_POINTWISE:k1x1" in toks
    assert any(t.startswith("shape0:CONV_POINTWISE:k1x1|c") for t in toks)
    deep = next(t for t in toks if t.startswith("opf2:"))
    assert "2-hop subtree of outputs rooted at" in wl.describe(deep)
    assert wl.fingerprint()["settings"]["networkx"] == nx.__version__
    assert WLEncoder(iterations=3).fingerprint()["hash"] != wl.fingerprint()["hash"]


def test_bad_options_raise() -> None:
    with pytest.raises(ValueError, match="WLEncoder"):
        WLEncoder(iterations=-1)
    with pytest.raises(ValueError, match="scheme"):
        WLEncoder(schemes=("colour",))
    with pytest.raises(ValueError, match="OpHistogramEncoder"):
        OpHistogramEncoder(size_weight=-1.0)
    with pytest.raises(InvalidOptionError, match="valid: ops, wl, learned"):
        resolve_encoder("bag")
    with pytest.raises(InvalidOptionError, match="encoder-run"):
        resolve_encoder("learned")
