r"""Edge-featured message passing with edge updates (neural graphs / graph metanetworks style), sparse.

For a ParameterGraph with node states :math:`h_i` and edge states :math:`e_{ij}` (edge :math:`j \to i`,
one per weight), one layer computes

.. math::
    m^{\rightarrow}_{ij} &= \phi_{\rightarrow}([h_j, h_i, e_{ij}]), \qquad
    m^{\leftarrow}_{ji} = \phi_{\leftarrow}([h_i, h_j, e_{ij}]) \\
    h'_i &= h_i + \psi\bigl([h_i,\ \mathrm{PNA}_{j \to i}\, m^{\rightarrow}_{ij},\
            \mathrm{PNA}_{i \to k}\, m^{\leftarrow}_{ki}]\bigr) \\
    e'_{ij} &= e_{ij} + \chi([h'_j, h'_i, e_{ij}])

so information flows forward (towards the outputs) and backward (towards the inputs) through the
network in every layer, and each weight's state is refreshed from its two neurons (the edge update of
Kofinas et al., 2024; Lim et al., 2024). :math:`\phi, \psi, \chi` are per-element MLPs; LayerNorm is
applied to node and edge states before each layer (pre-norm).

Symmetry: equivariant to any relabelling of nodes that maps edges to edges with the same features
(in particular the hidden-neuron permutations of :mod:`weightzoo.zoo.symmetry`), for node and edge outputs
alike: every operation is per element or a multiset aggregation over a node's edges.

Memory and time are linear in :math:`E` (messages ``[E, d]``); there is no dense :math:`N \times N` tensor.
:class:`~.dense_edge_update_conv.DenseEdgeUpdateConv` is the same layer on a dense adjacency (the
neural-graphs layout), for benchmarks and for checking that both agree.
"""

from __future__ import annotations

import torch
from torch import nn

from ._mlp import mlp
from .pna import PNAAggregation


class EdgeUpdateConv(nn.Module):
    r"""One round of bidirectional edge-featured message passing with an edge update.

    Args:
        dim (int): width of node and edge states.
        aggregators (tuple[str, ...]): PNA aggregators (default ``mean, min, max, std``).
        scalers (tuple[str, ...]): PNA degree scalers (default ``identity, amplification, attenuation``).
        avg_log_degree (float): PNA's :math:`\delta` (default 1; use
            :func:`~.pna.average_log_degree` on the training graphs).
        edge_update (bool): refresh the edge states (default ``True``; ``False`` is the ablation, edges
            are then returned unchanged).
        dropout (float): dropout inside the MLPs (default 0).

    Shapes:
        ``x`` ``[N, dim]``, ``edge_index`` ``[2, E]`` (row 0 source, row 1 target), ``edge_attr``
        ``[E, dim]`` → ``([N, dim], [E, dim])``.
    """

    def __init__(self, dim: int, *, aggregators: tuple[str, ...] = ("mean", "min", "max", "std"),
                 scalers: tuple[str, ...] = ("identity", "amplification", "attenuation"),
                 avg_log_degree: float = 1.0, edge_update: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"EdgeUpdateConv: dim must be >= 1, got {dim}")
        self.dim = dim
        self.edge_update = edge_update
        self.aggr = PNAAggregation(aggregators, scalers, avg_log_degree)
        self.norm_x = nn.LayerNorm(dim)
        self.norm_e = nn.LayerNorm(dim)
        self.msg_fwd = mlp(3 * dim, dim, dim, dropout=dropout)
        self.msg_bwd = mlp(3 * dim, dim, dim, dropout=dropout)
        self.node = mlp(dim + 2 * dim * self.aggr.multiplier, dim, dim, dropout=dropout)
        self.edge = mlp(3 * dim, dim, dim, dropout=dropout) if edge_update else None

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor,
                edge_attr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        src, dst = edge_index[0], edge_index[1]
        n = x.shape[0]
        h, e = self.norm_x(x), self.norm_e(edge_attr)
        hs, hd = h[src], h[dst]
        fwd = self.aggr(self.msg_fwd(torch.cat([hs, hd, e], dim=-1)), dst, dim_size=n)
        bwd = self.aggr(self.msg_bwd(torch.cat([hd, hs, e], dim=-1)), src, dim_size=n)
        x = x + self.node(torch.cat([h, fwd, bwd], dim=-1))
        if self.edge is None:
            return x, edge_attr
        h = self.norm_x(x)
        edge_attr = edge_attr + self.edge(torch.cat([h[src], h[dst], e], dim=-1))
        return x, edge_attr

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.dim}, aggr={self.aggr!r}, edge_update={self.edge_update})"


__all__ = ["EdgeUpdateConv"]
