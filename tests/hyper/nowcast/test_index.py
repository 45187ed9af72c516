"""ParameterIndex: every trainable scalar finds its graph site, exactly."""

from __future__ import annotations

import torch
from torch import nn

from weightzoo.datasets.cnn_zoo import cnn_spec, sample_wild_arch
from weightzoo.hyper.nowcast.index import EDGE, NODE, NONE, ParameterIndex
from weightzoo.zoo.arch import build_module
from weightzoo.zoo.graphs import ParameterGraph


def _check_sites(model: nn.Module, spec: dict) -> ParameterIndex:
    index = ParameterIndex.from_module(model, spec=spec)
    graph = ParameterGraph.from_spec(spec, model.state_dict(), max_kernel=7)
    flat = index.flatten(dict(model.named_parameters()))
    on_edge, on_node = index.site_kind == EDGE, index.site_kind == NODE
    assert bool((on_edge | on_node).all())
    assert torch.equal(graph.edge_attr[index.site_elem[on_edge], index.site_pos[on_edge]], flat[on_edge])
    assert torch.equal(graph.node_values[index.site_elem[on_node], index.site_pos[on_node] - index.window],
                       flat[on_node])
    return index


def test_sites_of_the_digits_cnn_match_its_graph() -> None:
    torch.manual_seed(0)
    spec = cnn_spec("relu", 0.0)
    index = _check_sites(build_module(spec), spec)
    assert index.num_params == 3738 and index.has_graph and index.window == 49


def test_sites_of_wild_architectures_with_residuals_and_norms() -> None:
    import numpy as np

    for s in range(6):
        spec, _ = sample_wild_arch(np.random.default_rng(s), "relu", 0.0)
        torch.manual_seed(s)
        _check_sites(build_module(spec), spec)


def test_flatten_unflatten_round_trip_and_graphless_modules() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 8)
            self.gain = nn.Parameter(torch.ones(8))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.a(x) * self.gain

    net = Net()
    index = ParameterIndex.from_module(net)  # recorded graph: every scalar has a site
    assert index.has_graph and bool((index.site_kind != NONE).all()) and index.num_params == 4 * 8 + 8 + 8
    back = index.unflatten(index.flatten(dict(net.named_parameters())))
    assert all(torch.equal(back[n], p.detach()) for n, p in net.named_parameters())

    class TwoInputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 8)

        def forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
            return self.a(x) * scale

    index = ParameterIndex.from_module(TwoInputs())
    assert not index.has_graph and "TwoInputs" in str(index.graph_reason)
    assert bool((index.site_kind == NONE).all())
