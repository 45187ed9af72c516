r"""Bag-of-operations + parameter-count encoder: the baseline every learned retriever must beat.

.. math::
    z(G) = \operatorname{normalise}\Big(\big[\sqrt{c_o(G) / N(G)}\big]_{o \in \mathcal{O}} \,\|\,
    \alpha \log_{10}(1 + P(G)) \,\|\, \alpha \log_{10} N(G)\Big)

with :math:`c_o` the number of nodes of op type :math:`o` (``OP_VOCAB_VERSION`` 1), :math:`N` the number
of nodes, :math:`P` the parameter count and :math:`\alpha` (default 0.1) the weight of the size terms.
The square root makes cosine similarity the Hellinger affinity of the two op distributions. Invariant to
any relabelling of the nodes (it only counts).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from weightzoo.zoo.graphs import ComputeGraph
from weightzoo.zoo.graphs.ops import OP_VOCAB_VERSION

from .encoder import DenseEncoder, l2_normalise
from .labels import NUM_OPS, parameter_count


class OpHistogramEncoder(DenseEncoder):
    """Op-type histogram (square-rooted shares) plus log parameter and node counts; see the module docstring.

    Args:
        size_weight (float): weight :math:`\\alpha` of the two size features (default 0.1; 0 = ops only).
    """

    name = "ops"
    version = 1

    def __init__(self, size_weight: float = 0.1) -> None:
        if not size_weight >= 0:
            raise ValueError(f"OpHistogramEncoder: size_weight must be >= 0, got {size_weight}")
        self.size_weight = float(size_weight)

    def settings(self) -> dict[str, Any]:
        return {"size_weight": self.size_weight, "op_vocab_version": OP_VOCAB_VERSION}

    @property
    def dim(self) -> int:
        return NUM_OPS + 2

    def encode(self, graphs: Sequence[ComputeGraph]) -> np.ndarray:
        out = np.zeros((len(graphs), self.dim), dtype=np.float32)
        for i, g in enumerate(graphs):
            n = max(g.num_nodes, 1)
            counts = np.bincount([int(node.op) for node in g.nodes], minlength=NUM_OPS)[:NUM_OPS]
            out[i, :NUM_OPS] = np.sqrt(counts / n)
            out[i, NUM_OPS] = self.size_weight * math.log10(1 + parameter_count(g))
            out[i, NUM_OPS + 1] = self.size_weight * math.log10(n)
        return l2_normalise(out)

    def __repr__(self) -> str:
        return f"OpHistogramEncoder(size_weight={self.size_weight})"


__all__ = ["OpHistogramEncoder"]
