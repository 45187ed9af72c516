r"""Invariant graph readout: pool node and edge states per graph, then an MLP.

.. math::
    y_G = \rho\bigl([\mathrm{mean}_{i \in G} h_i,\ \max_{i \in G} h_i,\
                      \mathrm{mean}_{ij \in G} e_{ij},\ \max_{ij \in G} e_{ij}]\bigr)

Symmetry: invariant to any relabelling of nodes and edges within a graph (pooling is a multiset
function). Memory is linear in nodes + edges (PyG ``scatter`` with the batch vector).
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.utils import scatter

from ._mlp import mlp

POOLS: tuple[str, ...] = ("mean", "max", "sum")


class InvariantReadout(nn.Module):
    """Graph-level prediction from node and edge states.

    Args:
        dim (int): width of node and edge states.
        out_dim (int): prediction width.
        hidden (int | None): MLP width (default ``dim``).
        pools (tuple[str, ...]): poolings, any of ``mean, max, sum`` (default ``mean, max``).
        edges (bool): pool edge states too (default ``True``).

    Shapes:
        ``x`` ``[N, dim]``, ``edge_attr`` ``[E, dim]``, ``edge_index`` ``[2, E]``, ``batch`` ``[N]`` (or
        ``None`` for one graph) → ``[B, out_dim]``.
    """

    def __init__(self, dim: int, out_dim: int, *, hidden: int | None = None, pools: tuple[str, ...] = ("mean", "max"),
                 edges: bool = True) -> None:
        super().__init__()
        bad = [p for p in pools if p not in POOLS]
        if bad or not pools:
            raise ValueError(f"InvariantReadout: unknown or empty pools {bad or pools}; valid: {POOLS}")
        self.pools, self.edges = tuple(pools), edges
        self.head = mlp(dim * len(pools) * (2 if edges else 1), hidden or dim, out_dim)

    def forward(self, x: torch.Tensor, edge_attr: torch.Tensor, edge_index: torch.Tensor,
                batch: torch.Tensor | None = None, num_graphs: int | None = None) -> torch.Tensor:
        if batch is None:
            batch = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        b = num_graphs if num_graphs is not None else (int(batch.max()) + 1 if batch.numel() else 1)
        parts = [scatter(x, batch, dim=0, dim_size=b, reduce=p) for p in self.pools]
        if self.edges:
            eb = batch[edge_index[0]]
            parts += [scatter(edge_attr, eb, dim=0, dim_size=b, reduce=p) for p in self.pools]
        return self.head(torch.cat(parts, dim=-1))


__all__ = ["InvariantReadout", "POOLS"]
