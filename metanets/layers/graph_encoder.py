r"""Encoder of operation graphs (ComputeGraphs) into one vector per graph, for architecture retrieval
and accuracy prediction from the architecture.

For a graph with op types :math:`o_i`, numeric node features :math:`x_i` and edge features :math:`a_{ij}`:

.. math::
    h^0_i &= E[o_i] + W_x x_i, \qquad e^0_{ij} = W_a a_{ij} \\
    (h^{l+1}, e^{l+1}) &= \mathrm{EdgeUpdateConv}_l(h^l, e^l) \quad (l = 0 \dots L-1) \\
    z_G &= \mathrm{InvariantReadout}(h^L, e^L)

with :class:`~.edge_update_conv.EdgeUpdateConv` (messages along the data flow and against it, so a
node sees what feeds it and what it feeds) and :class:`~.readout.InvariantReadout` (mean and max over
nodes and edges, then an MLP); GIN/GCN-style encoders of architectures as in the neural predictor
(Wen et al., 2020) and NAR (2024).

Symmetry: invariant to any relabelling of the nodes (graph isomorphism): embeddings are per node,
message passing and readout aggregate multisets. It is not invariant to re-wiring (a different graph).

Shapes:
    ``op`` ``[N]`` long, ``x`` ``[N, node_features]``, ``edge_index`` ``[2, E]``, ``edge_attr``
    ``[E, edge_features]``, ``batch`` ``[N]`` (or ``None``) → ``[B, out_dim]``.
"""

from __future__ import annotations

import torch
from torch import nn

from .edge_update_conv import EdgeUpdateConv
from .readout import InvariantReadout


class GraphEncoder(nn.Module):
    r"""Op-type embedding, :math:`L` rounds of bidirectional message passing, invariant readout.

    Args:
        num_ops (int): size of the op-type vocabulary.
        node_features (int): numeric features per node. edge_features (int): features per edge.
        dim (int): hidden width (default 64). out_dim (int): output width (default 64).
        layers (int): message-passing rounds (default 3).
        edge_update (bool): refresh edge states in every round (default ``False``: edges of a compute
            graph carry little, and it halves the cost).
    """

    def __init__(self, num_ops: int, node_features: int, edge_features: int, *, dim: int = 64, out_dim: int = 64,
                 layers: int = 3, edge_update: bool = False) -> None:
        super().__init__()
        if min(num_ops, dim, out_dim, layers) < 1 or min(node_features, edge_features) < 0:
            raise ValueError(f"GraphEncoder: num_ops, dim, out_dim and layers must be >= 1 and feature counts >= 0, "
                             f"got num_ops={num_ops}, dim={dim}, out_dim={out_dim}, layers={layers}, "
                             f"node_features={node_features}, edge_features={edge_features}")
        self.num_ops, self.dim, self.out_dim = num_ops, dim, out_dim
        self.op_embedding = nn.Embedding(num_ops, dim)
        self.node_proj = nn.Linear(node_features, dim, bias=False) if node_features else None
        self.edge_proj = nn.Linear(edge_features + 1, dim)  # + a constant 1: every edge has a state
        self.convs = nn.ModuleList(EdgeUpdateConv(dim, edge_update=edge_update) for _ in range(layers))
        self.readout = InvariantReadout(dim, out_dim)

    def forward(self, op: torch.Tensor, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor,
                batch: torch.Tensor | None = None, num_graphs: int | None = None) -> torch.Tensor:
        h = self.op_embedding(op)
        if self.node_proj is not None:
            h = h + self.node_proj(x)
        ones = torch.ones(edge_attr.shape[0], 1, dtype=edge_attr.dtype, device=edge_attr.device)
        e = self.edge_proj(torch.cat([edge_attr, ones], dim=-1))
        for conv in self.convs:
            h, e = conv(h, edge_index, e)
        return self.readout(h, e, edge_index, batch, num_graphs)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(num_ops={self.num_ops}, dim={self.dim}, out_dim={self.out_dim}, "
                f"layers={len(self.convs)})")


__all__ = ["GraphEncoder"]
