"""What a GHN reads of one ComputeGraph: op ids, quantised shapes, edges, virtual edges and targets."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from weightzoo.errors import HyperNetworkError
from weightzoo.zoo.graphs import ComputeGraph

from .targets import ParameterTarget, shape_codes, targets_of


@dataclass(frozen=True)
class GraphInput:
    """What the GHN reads of one ComputeGraph (built once per architecture by :func:`graph_input`)."""

    op: torch.Tensor  # [N] op ids
    shape: torch.Tensor  # [N, 4] quantised shapes
    edge_index: torch.Tensor  # [2, E] data flow
    virtual_index: torch.Tensor  # [2, V]
    virtual_dist: torch.Tensor  # [V]
    targets: tuple[ParameterTarget, ...]

    @property
    def num_nodes(self) -> int:
        return int(self.op.shape[0])


def graph_input(graph: ComputeGraph) -> GraphInput:
    """The tensors and targets a :class:`GHN` reads of ``graph``; needs forward-directed virtual edges."""
    if graph.direction != "forward":
        raise HyperNetworkError("a GHN reads ComputeGraphs with direction='forward' virtual edges (the "
                                "default); re-record the graph")
    return GraphInput(graph.op, shape_codes(graph), graph.edge_index, graph.virtual_edge_index,
                      graph.virtual_edge_dist, tuple(targets_of(graph)))


__all__ = ["GraphInput", "graph_input"]
