r"""Equivariant node and edge outputs (for editing tasks: one prediction per neuron or per weight).

.. math::
    y_i = \rho(h_i), \qquad y_{ij} = \sigma([h_j, h_i, e_{ij}])

Symmetry: equivariant — relabelling nodes/edges of the input relabels the outputs the same way
(per-element MLPs).
"""

from __future__ import annotations

import torch
from torch import nn

from ._mlp import mlp


class NodeHead(nn.Module):
    """Per-node prediction. Shapes: ``x`` ``[N, dim]`` → ``[N, out_dim]``."""

    def __init__(self, dim: int, out_dim: int, *, hidden: int | None = None) -> None:
        super().__init__()
        self.mlp = mlp(dim, hidden or dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


class EdgeHead(nn.Module):
    """Per-edge prediction from the edge state and its two nodes.

    Shapes: ``x`` ``[N, dim]``, ``edge_index`` ``[2, E]``, ``edge_attr`` ``[E, dim]`` → ``[E, out_dim]``.
    """

    def __init__(self, dim: int, out_dim: int, *, hidden: int | None = None) -> None:
        super().__init__()
        self.mlp = mlp(3 * dim, hidden or dim, out_dim)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([x[edge_index[0]], x[edge_index[1]], edge_attr], dim=-1))


__all__ = ["EdgeHead", "NodeHead"]
