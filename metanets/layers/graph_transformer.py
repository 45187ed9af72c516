r"""GHN-3's graph transformer: Graphormer-style attention with degree and shortest-path-distance biases.

Knyazev et al., *Can We Scale Transformers to Predict Parameters of Diverse ImageNet Models?* (ICML
2023), after Ying et al., *Do Transformers Really Perform Bad for Graph Representation?* (2021). The
input gains in- and out-degree embeddings; every layer is pre-norm attention plus an MLP,

.. math::
    a_{vu} = \frac{(W_q h_v)^\top (W_k h_u)}{\sqrt{d}} + b_{\phi(v,u)} + b^{dir}_{v \to u},\qquad
    h_v \leftarrow h_v + W_o \sum_u \mathrm{softmax}_u(a_{vu})\, W_v h_u,\qquad
    h \leftarrow h + \mathrm{MLP}(\mathrm{LN}(h))

with a learned bias per head for the shortest-path distance :math:`\phi(v, u)` (clipped to
``max_dist``) and for the direction (self, along the data flow, against it). Attention runs over the
sparse set of pairs within the distance cutoff (the virtual edges of a
:class:`~weightzoo.zoo.graphs.ComputeGraph`, both directions, plus self-pairs) — memory linear in pairs,
never an N×N matrix; pairs beyond the cutoff do not attend (GHN-3 gives them one shared bias).

Symmetry: equivariant to relabelling the nodes (permuting node features and both edge lists alike
permutes the output); not invariant to changing the edges.

Shapes: ``x`` (N, hidden), ``edge_index`` (2, E) data flow, ``virtual_index`` (2, V), ``virtual_dist``
(V,) → (N, hidden).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _segment_softmax(logits: torch.Tensor, segment: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Softmax of ``logits`` (P, H) within groups of rows sharing ``segment`` (P,)."""
    idx = segment.unsqueeze(1).expand_as(logits)
    peak = torch.full((num_segments, logits.shape[1]), -torch.inf, dtype=logits.dtype, device=logits.device)
    peak = peak.scatter_reduce(0, idx, logits, reduce="amax", include_self=True)
    e = (logits - peak.gather(0, idx)).exp()
    total = torch.zeros_like(peak).scatter_add(0, idx, e)
    return e / total.gather(0, idx)


class GraphTransformer(nn.Module):
    r"""GHN-3 graph transformer over a compute graph (see the module docstring).

    Args:
        hidden (int): node feature size (divisible by ``heads``).
        layers (int): transformer layers (default 3).
        heads (int): attention heads (default 4).
        max_dist (int): distances above are clipped into one bucket (default 50).
        max_degree (int): degrees above are clipped (default 32).
        mlp_ratio (int): MLP width over ``hidden`` (default 2).
    """

    def __init__(self, hidden: int, *, layers: int = 3, heads: int = 4, max_dist: int = 50, max_degree: int = 32,
                 mlp_ratio: int = 2) -> None:
        super().__init__()
        if hidden < 1 or heads < 1 or hidden % heads or layers < 1 or max_dist < 1 or max_degree < 1:
            raise ValueError(f"GraphTransformer: hidden ({hidden}) must be divisible by heads ({heads}); layers, "
                             f"max_dist and max_degree must be >= 1, got {layers}, {max_dist}, {max_degree}")
        self.hidden, self.heads, self.max_dist, self.max_degree = hidden, heads, max_dist, max_degree
        self.in_degree = nn.Embedding(max_degree + 1, hidden)
        self.out_degree = nn.Embedding(max_degree + 1, hidden)
        nn.init.zeros_(self.in_degree.weight)
        nn.init.zeros_(self.out_degree.weight)
        self.blocks = nn.ModuleList(_Block(hidden, heads, max_dist, mlp_ratio) for _ in range(layers))
        self.norm = nn.LayerNorm(hidden)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, virtual_index: torch.Tensor,
                virtual_dist: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        ones = torch.ones(edge_index.shape[1], dtype=torch.long, device=x.device)
        deg_in = torch.zeros(n, dtype=torch.long, device=x.device).index_add(0, edge_index[1], ones)
        deg_out = torch.zeros(n, dtype=torch.long, device=x.device).index_add(0, edge_index[0], ones)
        h = x + self.in_degree(deg_in.clamp(max=self.max_degree)) + self.out_degree(deg_out.clamp(max=self.max_degree))
        keep = (virtual_index[0] != virtual_index[1]) & (virtual_dist >= 1)
        vi, vd = virtual_index[:, keep], virtual_dist[keep].clamp(max=self.max_dist)
        loops = torch.arange(n, device=x.device)
        # pairs (query v, key u): u before v along the flow (dir 1), after it (dir 2), itself (dir 0)
        query = torch.cat([vi[1], vi[0], loops])
        key = torch.cat([vi[0], vi[1], loops])
        dist = torch.cat([vd, vd, torch.zeros(n, dtype=torch.long, device=x.device)])
        direction = torch.cat([torch.ones_like(vd), torch.full_like(vd, 2), torch.zeros(n, dtype=torch.long,
                                                                                        device=x.device)])
        for block in self.blocks:
            h = block(h, query, key, dist, direction)
        return self.norm(h)

    def extra_repr(self) -> str:
        return f"hidden={self.hidden}, heads={self.heads}, max_dist={self.max_dist}, max_degree={self.max_degree}"


class _Block(nn.Module):
    def __init__(self, hidden: int, heads: int, max_dist: int, mlp_ratio: int) -> None:
        super().__init__()
        self.heads, self.dh = heads, hidden // heads
        self.norm1, self.norm2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.dist_bias = nn.Embedding(max_dist + 1, heads)
        self.dir_bias = nn.Embedding(3, heads)
        nn.init.zeros_(self.dist_bias.weight)
        nn.init.zeros_(self.dir_bias.weight)
        self.mlp = nn.Sequential(nn.Linear(hidden, mlp_ratio * hidden), nn.GELU(), nn.Linear(mlp_ratio * hidden, hidden))

    def forward(self, h: torch.Tensor, query: torch.Tensor, key: torch.Tensor, dist: torch.Tensor,
                direction: torch.Tensor) -> torch.Tensor:
        n = h.shape[0]
        q, k, v = self.qkv(self.norm1(h)).view(n, 3, self.heads, self.dh).unbind(1)
        logits = (q[query] * k[key]).sum(-1) / math.sqrt(self.dh) + self.dist_bias(dist) + self.dir_bias(direction)
        attn = _segment_softmax(logits, query, n)  # (P, heads)
        mixed = torch.zeros(n, self.heads, self.dh, dtype=h.dtype, device=h.device)
        mixed = mixed.index_add(0, query, attn.unsqueeze(-1) * v[key])
        h = h + self.out(mixed.reshape(n, -1))
        return h + self.mlp(self.norm2(h))


__all__ = ["GraphTransformer"]
