r"""GHN-2's gated graph neural network: forward and backward sweeps over a DAG, with virtual edges.

Knyazev et al., *Parameter Prediction for Unseen Deep Architectures* (NeurIPS 2021). A node is updated
from the nodes before it in topological order; a sweep runs forward (sources first) and then backward
(sinks first, on the reversed graph):

.. math::
    m_v = \sum_{u:\,d(u,v)=1} \mathrm{MLP}_{sp}(h_u)
          + \sum_{u:\,1<d(u,v)\le c} \tfrac{1}{d(u,v)}\,\mathrm{MLP}_{vir}(h_u),
    \qquad h_v \leftarrow \mathrm{GRU}(m_v, h_v)

where :math:`d(u, v)` is the directed shortest-path distance (the virtual edges of a
:class:`~weightzoo.zoo.graphs.ComputeGraph`; distance 1 = a data-flow edge). GHN-2 visits the nodes one
by one; here every node of one *level* (longest-path depth from the sources, or to the sinks on the
backward sweep) is updated at once. No edge joins two nodes of one level, so the result is the same as
the node-by-node sweep, in as many steps as the graph is deep rather than as it has nodes. Graphs of a
PyG batch are disjoint and share the level loop.

Symmetry: equivariant to relabelling the nodes (a permutation of the node order applied to the features
and to both edge lists permutes the output the same way); not invariant to changing the edges.

Shapes: ``x`` (N, hidden), ``virtual_index`` (2, V) source → target, ``virtual_dist`` (V,) → (N, hidden).
"""

from __future__ import annotations

import torch
from torch import nn


def topological_levels(edge_index: torch.Tensor, num_nodes: int, *, reverse: bool = False) -> torch.Tensor:
    """``[N]`` longest-path depth of each node from the sources (``reverse``: to the sinks) of a DAG.

    Raises ``ValueError`` when the edges contain a cycle (depth would grow without bound).
    """
    src, dst = (edge_index[1], edge_index[0]) if reverse else (edge_index[0], edge_index[1])
    keep = src != dst
    src, dst = src[keep], dst[keep]
    level = torch.zeros(num_nodes, dtype=torch.long)
    for _ in range(num_nodes + 1):
        proposed = level.scatter_reduce(0, dst, level[src] + 1, reduce="amax", include_self=True)
        if torch.equal(proposed, level):
            return level
        level = proposed
    raise ValueError(f"topological_levels: the {src.numel()} edges over {num_nodes} nodes contain a cycle")


class GatedGNN(nn.Module):
    r"""GHN-2 gated GNN with virtual edges, batched by topological level (see the module docstring).

    Args:
        hidden (int): node feature size.
        rounds (int): forward+backward sweeps (default 1, as GHN-2).
        backward (bool): run the backward sweep after each forward sweep (default ``True``).
        max_dist (int): virtual edges longer than this are ignored (default 50, GHN-2's cutoff).
    """

    def __init__(self, hidden: int, *, rounds: int = 1, backward: bool = True, max_dist: int = 50) -> None:
        super().__init__()
        if hidden < 1 or rounds < 1 or max_dist < 1:
            raise ValueError(f"GatedGNN: hidden, rounds and max_dist must be >= 1, got {hidden}, {rounds}, {max_dist}")
        self.hidden, self.rounds, self.backward, self.max_dist = hidden, rounds, backward, max_dist
        directions = 2 if backward else 1
        self.mlp_sp = nn.ModuleList(self._mlp(hidden) for _ in range(directions))
        self.mlp_vir = nn.ModuleList(self._mlp(hidden) for _ in range(directions))
        self.gru = nn.ModuleList(nn.GRUCell(hidden, hidden) for _ in range(directions))

    @staticmethod
    def _mlp(h: int) -> nn.Sequential:
        return nn.Sequential(nn.Linear(h, h), nn.ReLU(), nn.Linear(h, h))

    def forward(self, x: torch.Tensor, virtual_index: torch.Tensor, virtual_dist: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        keep = (virtual_dist >= 1) & (virtual_dist <= self.max_dist) & (virtual_index[0] != virtual_index[1])
        index, dist = virtual_index[:, keep], virtual_dist[keep]
        direct = index[:, dist == 1]
        sweeps = [(0, index, dist, topological_levels(direct, n))]
        if self.backward:
            sweeps.append((1, index.flip(0), dist, topological_levels(direct, n, reverse=True)))
        h = x
        for _ in range(self.rounds):
            for k, idx, d, level in sweeps:
                h = self._sweep(h, idx, d, level, k)
        return h

    def _sweep(self, h: torch.Tensor, index: torch.Tensor, dist: torch.Tensor, level: torch.Tensor,
               k: int) -> torch.Tensor:
        src, dst = index[0], index[1]
        weight = (1.0 / dist.to(h.dtype)).unsqueeze(1)
        is_direct = (dist == 1).unsqueeze(1)
        edge_level = level[dst]
        order = torch.argsort(edge_level, stable=True)
        src, dst, weight, is_direct, edge_level = src[order], dst[order], weight[order], is_direct[order], edge_level[order]
        node_order = torch.argsort(level, stable=True)
        levels, node_counts = torch.unique_consecutive(level[node_order], return_counts=True)
        edge_counts = torch.bincount(edge_level, minlength=int(levels.max()) + 1 if levels.numel() else 0)
        node_start, edge_start = 0, 0
        for lv, nc in zip(levels.tolist(), node_counts.tolist(), strict=True):
            nodes = node_order[node_start:node_start + nc]
            node_start += nc
            ec = int(edge_counts[lv])
            if ec == 0:  # sources: nothing to read (their state is their embedding)
                continue
            sl = slice(edge_start, edge_start + ec)
            edge_start += ec
            hs = h[src[sl]]
            msg = torch.where(is_direct[sl], self.mlp_sp[k](hs), self.mlp_vir[k](hs) * weight[sl])
            m = torch.zeros_like(h).index_add(0, dst[sl], msg)[nodes]
            h = h.index_copy(0, nodes, self.gru[k](m, h[nodes]))
        return h

    def extra_repr(self) -> str:
        return f"hidden={self.hidden}, rounds={self.rounds}, backward={self.backward}, max_dist={self.max_dist}"


__all__ = ["GatedGNN", "topological_levels"]
