r"""The :class:`~.edge_update_conv.EdgeUpdateConv` layer on a dense adjacency (the neural-graphs layout).

Same parameters, same math, but node pairs are materialised as a ``[B, N, N, dim]`` tensor (edge states
at ``[b, source, target]`` and a mask), so memory grows with :math:`N^2` per graph and every graph of a
batch is padded to the largest one. It exists as the baseline of ``benchmarks/metanets.py`` and to check
that the sparse layer computes the same thing; do not train with it.

Graphs with parallel edges (two edges between the same ordered pair) cannot be made dense:
:func:`to_dense` raises ``ValueError``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .edge_update_conv import EdgeUpdateConv


def to_dense(x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor,
             batch: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x [B, N, d], e [B, N, N, d], edge_mask [B, N, N], node_mask [B, N])`` from a sparse batch."""
    if batch is None:
        batch = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    b = int(batch.max()) + 1 if batch.numel() else 1
    counts = torch.bincount(batch, minlength=b)
    n = int(counts.max())
    starts = torch.cumsum(counts, 0) - counts
    local = torch.arange(x.shape[0], device=x.device) - starts[batch]
    xd = x.new_zeros(b, n, x.shape[-1])
    xd[batch, local] = x
    node_mask = torch.zeros(b, n, dtype=torch.bool, device=x.device)
    node_mask[batch, local] = True
    eb = batch[edge_index[0]]
    s, t = local[edge_index[0]], local[edge_index[1]]
    ed = edge_attr.new_zeros(b, n, n, edge_attr.shape[-1])
    mask = torch.zeros(b, n, n, dtype=torch.bool, device=x.device)
    mask[eb, s, t] = True
    if int(mask.sum()) != edge_index.shape[1]:
        raise ValueError("to_dense: the graph has parallel edges; a dense adjacency cannot hold them")
    ed[eb, s, t] = edge_attr
    return xd, ed, mask, node_mask


def _masked_aggregate(m: torch.Tensor, mask: torch.Tensor, dim: int, conv: EdgeUpdateConv) -> torch.Tensor:
    """PNA over axis ``dim`` of ``m [B, N, N, d]`` restricted to ``mask [B, N, N]``."""
    mk = mask.unsqueeze(-1).to(m.dtype)
    deg = mk.sum(dim)  # [B, N, 1]
    mean = (m * mk).sum(dim) / deg.clamp(min=1)
    outs = []
    for a in conv.aggr.aggregators:
        if a == "mean":
            outs.append(mean)
        elif a == "sum":
            outs.append(mean * deg)
        elif a == "min":
            v = torch.where(mask.unsqueeze(-1), m, torch.full_like(m, math.inf)).amin(dim)
            outs.append(torch.where(deg > 0, v, torch.zeros_like(v)))
        elif a == "max":
            v = torch.where(mask.unsqueeze(-1), m, torch.full_like(m, -math.inf)).amax(dim)
            outs.append(torch.where(deg > 0, v, torch.zeros_like(v)))
        else:
            sq = (m * m * mk).sum(dim) / deg.clamp(min=1)
            outs.append(torch.sqrt((sq - mean * mean).clamp(min=0) + 1e-5) * (deg > 0))
    agg = torch.cat(outs, dim=-1)
    logd = torch.log(deg + 1)
    delta = conv.aggr.avg_log_degree
    scaled = []
    for s in conv.aggr.scalers:
        if s == "identity":
            scaled.append(agg)
        elif s == "amplification":
            scaled.append(agg * (logd / delta))
        else:
            scaled.append(agg * (delta / logd.clamp(min=math.log(2))))
    return torch.cat(scaled, dim=-1)


class DenseEdgeUpdateConv(nn.Module):
    """:class:`~.edge_update_conv.EdgeUpdateConv` evaluated densely, sharing ``conv``'s parameters.

    Shapes:
        ``x`` ``[B, N, dim]``, ``e`` ``[B, N, N, dim]``, ``edge_mask`` ``[B, N, N]`` → ``([B, N, dim],
        [B, N, N, dim])`` (entries outside the mask are zero).
    """

    def __init__(self, conv: EdgeUpdateConv) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor, e: torch.Tensor, edge_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.conv
        n = x.shape[1]
        h, en = c.norm_x(x), c.norm_e(e)
        hs = h.unsqueeze(2).expand(-1, -1, n, -1)  # [B, source, target, d]
        hd = h.unsqueeze(1).expand(-1, n, -1, -1)
        fwd = _masked_aggregate(c.msg_fwd(torch.cat([hs, hd, en], dim=-1)), edge_mask, 1, c)
        bwd = _masked_aggregate(c.msg_bwd(torch.cat([hd, hs, en], dim=-1)), edge_mask, 2, c)
        x = x + c.node(torch.cat([h, fwd, bwd], dim=-1))
        if c.edge is None:
            return x, e
        h = c.norm_x(x)
        hs, hd = h.unsqueeze(2).expand(-1, -1, n, -1), h.unsqueeze(1).expand(-1, n, -1, -1)
        upd = c.edge(torch.cat([hs, hd, en], dim=-1)) * edge_mask.unsqueeze(-1).to(e.dtype)
        return x, e + upd


__all__ = ["DenseEdgeUpdateConv", "to_dense"]
