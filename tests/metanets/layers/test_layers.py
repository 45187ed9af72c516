"""Unit tests of the graph layers: PNA against a hand computation, sparse == dense, reprs, bad options."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from weightzoo.metanets.layers.dense_edge_update_conv import DenseEdgeUpdateConv, to_dense
from weightzoo.metanets.layers.edge_update_conv import EdgeUpdateConv
from weightzoo.metanets.layers.pna import PNAAggregation, average_log_degree
from weightzoo.metanets.layers.positional import NeuronPositionalEmbedding
from weightzoo.metanets.layers.readout import InvariantReadout
from weightzoo.metanets.layers.type_embedding import EdgeEmbedding, NodeEmbedding
from weightzoo.zoo.graphs import ParameterGraph, vocab


def test_pna_matches_a_hand_computation() -> None:
    x = torch.tensor([[1.0], [3.0], [-2.0]])
    index = torch.tensor([0, 0, 2])
    aggr = PNAAggregation(("mean", "min", "max", "std"), ("identity", "amplification"), avg_log_degree=2.0)
    out = aggr(x, index, dim_size=3)
    assert out.shape == (3, 8)
    s = math.sqrt(1.0 + 1e-5)
    amp = math.log(3) / 2.0
    torch.testing.assert_close(out[0], torch.tensor([2.0, 1.0, 3.0, s, 2 * amp, amp, 3 * amp, s * amp]))
    torch.testing.assert_close(out[1], torch.zeros(8))  # no messages
    amp1 = math.log(2) / 2.0
    torch.testing.assert_close(out[2], torch.tensor([-2.0, -2.0, -2.0, math.sqrt(1e-5), -2 * amp1, -2 * amp1, -2 * amp1,
                                                     math.sqrt(1e-5) * amp1]))
    assert repr(aggr) == ("PNAAggregation(aggregators=['mean', 'min', 'max', 'std'], scalers=['identity', "
                          "'amplification'], avg_log_degree=2)")


def test_pna_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="PNAAggregation"):
        PNAAggregation(("median",))
    with pytest.raises(ValueError, match="avg_log_degree"):
        PNAAggregation(avg_log_degree=0.0)
    with pytest.raises(ValueError, match="InvariantReadout"):
        InvariantReadout(4, 1, pools=("median",))
    with pytest.raises(ValueError, match="EdgeUpdateConv"):
        EdgeUpdateConv(0)


def test_average_log_degree() -> None:
    ei = torch.tensor([[0, 0], [1, 2]])  # node 0 has out-degree 2, nodes 1 and 2 in-degree 1
    want = (math.log(3) + 2 * math.log(2)) / 6
    assert average_log_degree([ei], [3]) == pytest.approx(want)


def _graphs() -> list:  # type: ignore[type-arg]
    torch.manual_seed(0)
    nets = [nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)),
            nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))]
    return [ParameterGraph.from_module(n).to_pyg() for n in nets]


@pytest.mark.parametrize("edge_update", [True, False])
def test_sparse_and_dense_layers_agree(edge_update: bool) -> None:
    from torch_geometric.data import Batch

    torch.manual_seed(0)
    b = Batch.from_data_list(_graphs())
    dim = 8
    conv = EdgeUpdateConv(dim, edge_update=edge_update, avg_log_degree=1.3)
    x, e = torch.randn(b.num_nodes, dim), torch.randn(b.num_edges, dim)
    xs, es = conv(x, b.edge_index, e)
    xd, ed, mask, node_mask = to_dense(x, b.edge_index, e, b.batch)
    xd2, ed2 = DenseEdgeUpdateConv(conv)(xd, ed, mask)
    xs2, es2, _, _ = to_dense(xs, b.edge_index, es, b.batch)
    torch.testing.assert_close(xd2[node_mask], xs2[node_mask], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ed2[mask], es2[mask], atol=1e-5, rtol=1e-5)


def test_to_dense_refuses_parallel_edges() -> None:
    ei = torch.tensor([[0, 0], [1, 1]])
    with pytest.raises(ValueError, match="parallel"):
        to_dense(torch.zeros(2, 1), ei, torch.zeros(2, 1))


def test_positional_embedding_shares_hidden_and_separates_inputs_from_outputs() -> None:
    pe = NeuronPositionalEmbedding(4)
    layer = torch.tensor([0, 0, 1, 1, 2, 2])
    pos = torch.tensor([0, 1, -1, -1, 0, 1])
    typ = torch.tensor([vocab.NodeType.INPUT] * 2 + [vocab.NodeType.HIDDEN] * 2 + [vocab.NodeType.OUTPUT] * 2)
    out = pe(layer, pos, typ)
    torch.testing.assert_close(out[2], out[3])  # hidden neurons of one layer share their embedding
    assert not torch.allclose(out[0], out[1])  # inputs differ from each other
    # input 0 and output 0 use different tables even on the same layer index
    same_layer = pe(torch.tensor([0, 0]), torch.tensor([0, 0]), torch.tensor([vocab.NodeType.INPUT, vocab.NodeType.OUTPUT]))
    assert not torch.allclose(same_layer[0], same_layer[1])
    assert repr(pe) == "NeuronPositionalEmbedding(4, max_layers=64, max_positions=128)"


def test_embeddings_reject_unknown_vocabulary_and_window() -> None:
    d = _graphs()[0]
    ne = NodeEmbedding(4, vocab_sizes={"node_type": 2, "activation": 10, "pool": 3, "norm": 5, "edge_type": 15})
    with pytest.raises(ValueError, match="node type id 2"):
        ne(d.x)
    ee = EdgeEmbedding(4, window=9)
    with pytest.raises(ValueError, match="49 values"):
        ee(d.edge_attr, d.edge_type, d.edge_layer)
    assert EdgeEmbedding(4)(d.edge_attr, d.edge_type, d.edge_layer).shape == (d.num_edges, 4)
