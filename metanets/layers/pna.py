r"""PNA aggregation (Corso et al., 2020): several aggregators times degree scalers, for sparse messages.

.. math::
    \mathrm{PNA}(\{m_j\}) = \bigl[\,s(d_i) \cdot a(\{m_j\})\,\bigr]_{a \in A,\ s \in S},\qquad
    A = \{\mathrm{mean}, \min, \max, \mathrm{std}\},\quad
    S = \{1,\ \tfrac{\log(d_i+1)}{\delta},\ \tfrac{\delta}{\log(d_i+1)}\}

where :math:`d_i` is the number of messages node :math:`i` receives and :math:`\delta` the average
:math:`\log(d+1)` of the training graphs (``avg_log_degree``, fixed so that a graph's output never depends
on which other graphs share its batch). Nodes without messages get zeros.

Symmetry: invariant to the order of each node's messages (a multiset function), hence permutation
equivariant as a node-wise operator. Memory is linear in the number of messages (PyG ``scatter``).
"""

from __future__ import annotations

import math

import torch
from torch_geometric.nn.aggr import Aggregation
from torch_geometric.utils import scatter

AGGREGATORS: tuple[str, ...] = ("mean", "min", "max", "std", "sum")
SCALERS: tuple[str, ...] = ("identity", "amplification", "attenuation")


class PNAAggregation(Aggregation):
    r"""Principal neighbourhood aggregation as a PyG :class:`~torch_geometric.nn.aggr.Aggregation`.

    Args:
        aggregators (tuple[str, ...]): any of ``mean, min, max, std, sum`` (default ``mean, min, max, std``).
        scalers (tuple[str, ...]): any of ``identity, amplification, attenuation`` (default all three).
        avg_log_degree (float): :math:`\delta`, the mean of :math:`\log(d+1)` over training nodes (default 1).

    Shapes:
        input ``[M, F]`` messages with ``index`` ``[M]``; output ``[N, F · len(aggregators) · len(scalers)]``.
    """

    def __init__(self, aggregators: tuple[str, ...] = ("mean", "min", "max", "std"),
                 scalers: tuple[str, ...] = SCALERS, avg_log_degree: float = 1.0) -> None:
        super().__init__()
        bad = [a for a in aggregators if a not in AGGREGATORS] + [s for s in scalers if s not in SCALERS]
        if bad or not aggregators or not scalers:
            raise ValueError(f"PNAAggregation: unknown or empty aggregators/scalers {bad or (aggregators, scalers)}; "
                             f"valid aggregators {AGGREGATORS}, scalers {SCALERS}")
        if not (avg_log_degree > 0 and math.isfinite(avg_log_degree)):
            raise ValueError(f"PNAAggregation: avg_log_degree must be a positive number, got {avg_log_degree}")
        self.aggregators = tuple(aggregators)
        self.scalers = tuple(scalers)
        self.avg_log_degree = float(avg_log_degree)

    @property
    def multiplier(self) -> int:
        """Output width over input width."""
        return len(self.aggregators) * len(self.scalers)

    def forward(self, x: torch.Tensor, index: torch.Tensor | None = None, ptr: torch.Tensor | None = None,
                dim_size: int | None = None, dim: int = -2, max_num_elements: int | None = None) -> torch.Tensor:
        if index is None:
            raise ValueError("PNAAggregation needs an index (sparse messages)")
        n = int(index.max()) + 1 if dim_size is None else dim_size
        ones = torch.ones(index.shape[0], 1, dtype=x.dtype, device=x.device)
        deg = scatter(ones, index, dim=0, dim_size=n, reduce="sum")  # [N, 1]
        mean = scatter(x, index, dim=0, dim_size=n, reduce="sum") / deg.clamp(min=1)
        outs = []
        for a in self.aggregators:
            if a == "mean":
                outs.append(mean)
            elif a == "sum":
                outs.append(mean * deg)
            elif a in ("min", "max"):
                v = scatter(x, index, dim=0, dim_size=n, reduce=a)
                outs.append(torch.where(deg > 0, v, torch.zeros_like(v)))
            else:  # std
                sq = scatter(x * x, index, dim=0, dim_size=n, reduce="sum") / deg.clamp(min=1)
                outs.append(torch.sqrt((sq - mean * mean).clamp(min=0) + 1e-5) * (deg > 0))
        agg = torch.cat(outs, dim=-1)
        logd = torch.log(deg + 1)
        scaled = []
        for s in self.scalers:
            if s == "identity":
                scaled.append(agg)
            elif s == "amplification":
                scaled.append(agg * (logd / self.avg_log_degree))
            else:  # attenuation; degree-0 nodes have agg = 0 already
                scaled.append(agg * (self.avg_log_degree / logd.clamp(min=math.log(2))))
        return torch.cat(scaled, dim=-1)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(aggregators={list(self.aggregators)}, scalers={list(self.scalers)}, "
                f"avg_log_degree={self.avg_log_degree:g})")


def average_log_degree(edge_indices: list[torch.Tensor], num_nodes: list[int]) -> float:
    r""":math:`\delta` for :class:`PNAAggregation`: the mean :math:`\log(d+1)` over the nodes of these graphs,
    averaging in- and out-degrees (:class:`~.edge_update_conv.EdgeUpdateConv` aggregates both ways)."""
    total, count = 0.0, 0
    for ei, n in zip(edge_indices, num_nodes):
        for row in (ei[0], ei[1]):  # out-degrees, then in-degrees
            total += float(torch.log(torch.bincount(row, minlength=n).double() + 1).sum())
            count += n
    return total / count if count and total > 0 else 1.0


__all__ = ["AGGREGATORS", "SCALERS", "PNAAggregation", "average_log_degree"]
