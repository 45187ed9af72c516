"""Bounded views of big graphs (seeded edge samples, per-block views) and the max_edges guard."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from weightzoo.errors import GraphTooLargeError
from weightzoo.zoo.arch import spec_from_module
from weightzoo.zoo.graphs import ParameterGraph, layer_views, sampled_view

_spec = importlib.util.spec_from_file_location("_hf_checkpoints", Path(__file__).with_name("_hf_checkpoints.py"))
HF = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(HF)  # type: ignore[union-attr]


@pytest.mark.parametrize("family", ["bert", "gpt2", "mistral", "vit"])
def test_sampled_view_matches_the_full_graph(family: str) -> None:
    spec, sd = HF.CHECKPOINTS[family](0)
    for mk in (None, (1, 4)):
        g = ParameterGraph.from_spec(spec, sd, max_kernel=mk)
        v = sampled_view(spec, sd, 300, seed=5, max_kernel=mk)
        assert v.num_edges == 300 and len(set(v.edge_id.tolist())) == 300 and v.total_edges == g.num_edges
        assert torch.equal(v.edge_index, g.edge_index[:, v.edge_id])
        assert torch.equal(v.edge_attr, g.edge_attr[v.edge_id])
        assert torch.equal(v.edge_type, g.edge_type[v.edge_id]) and torch.equal(v.x, g.node_features())
    assert torch.equal(sampled_view(spec, sd, 300, seed=5, max_kernel=mk).edge_id, v.edge_id)  # seeded
    assert not torch.equal(sampled_view(spec, sd, 300, seed=6, max_kernel=mk).edge_id, v.edge_id)
    assert sampled_view(spec, sd, 10**9, max_kernel=mk).num_edges == g.num_edges  # a budget above the size: all


def test_layer_views_partition_the_graph() -> None:
    spec, sd = HF.llama(0)
    g = ParameterGraph.from_spec(spec, sd)
    views = list(layer_views(spec, sd))
    assert [v.label for v in views] == ["embeddings", "block 0", "block 1", "head"]
    assert torch.equal(torch.sort(torch.cat([v.edge_id for v in views])).values, torch.arange(g.num_edges))
    for v in views:
        assert torch.equal(v.node_id[v.edge_index], g.edge_index[:, v.edge_id])
        assert torch.equal(v.edge_attr, g.edge_attr[v.edge_id]) and torch.equal(v.x, g.node_features()[v.node_id])
    biggest = max(v.num_edges for v in views)
    with pytest.raises(GraphTooLargeError, match="sampled_view"):
        list(layer_views(spec, sd, max_edges=biggest - 1))


def test_layer_views_of_an_mlp_spec() -> None:
    m = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    spec, sd = spec_from_module(m), m.state_dict()
    views = list(layer_views(spec, sd))
    assert [v.num_edges for v in views] == [15, 10]


def test_max_edges_refuses_before_allocating_and_views_batch_with_graphs() -> None:
    from torch_geometric.data import Batch

    spec, sd = HF.gpt2(0)
    n = ParameterGraph.from_spec(spec, sd).num_edges
    with pytest.raises(GraphTooLargeError, match="sampled_view"):
        ParameterGraph.from_spec(spec, sd, max_edges=n - 1)
    v = sampled_view(spec, sd, 100, seed=0)
    g = ParameterGraph.from_spec(*HF.bert(0))
    batch = Batch.from_data_list([v.to_pyg(), g.to_pyg()])
    assert batch.num_graphs == 2 and batch.edge_attr.shape[0] == 100 + g.num_edges
    assert torch.equal(v.to_pyg(ids=True).edge_id, v.edge_id)


def test_views_read_only_the_tensors_they_need() -> None:
    spec, sd = HF.llama(0)
    reads: list[str] = []

    class Lazy(dict):
        def __getitem__(self, k):  # type: ignore[override]
            reads.append(k)
            return super().__getitem__(k)

    sampled_view(spec, Lazy(sd), 3, seed=0)
    weights = [k for k in set(reads) if sd[k].dim() == 2]
    assert len(weights) <= 3  # only the tables the 3 drawn edges belong to
