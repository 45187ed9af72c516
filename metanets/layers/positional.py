r"""Positional embeddings of ParameterGraph neurons that keep hidden-neuron permutation symmetry.

Every node gets the embedding of its layer index; nodes with a position (``node_pos >= 0``: input
features/channels, outputs, the spatial index of flattened features, embedding-table chunks) also get the
embedding of that position, from a separate table per node kind (input, output, other), so input and output
neurons are told apart from each other and from one another. Hidden neurons carry position ``-1`` and so
share one embedding per layer (neural graphs, Kofinas et al., 2024; graph metanetworks, Lim et al., 2024).

.. math::
    p_i = L[\ell_i] + \mathbb{1}[\mathrm{pos}_i \ge 0]\; P_{k(i)}[\mathrm{pos}_i \bmod M]

Symmetry: invariant under the hidden-neuron permutations of :mod:`weightzoo.zoo.symmetry` (they never move
a node with a position: flattened features move with their channel but keep their spatial index); *not*
invariant under permutations of inputs or outputs — by design, those are not symmetries of a network.
Layers beyond ``max_layers - 1`` share the last layer embedding; positions wrap modulo ``max_positions``.
"""

from __future__ import annotations

import torch
from torch import nn

from weightzoo.zoo.graphs.vocab import NodeType

_KINDS = 3  # input, output, other


class NeuronPositionalEmbedding(nn.Module):
    """Layer and position embeddings of nodes (see the module docstring).

    Args:
        dim (int): embedding width.
        max_layers (int): size of the layer table (default 64).
        max_positions (int): size of each position table (default 128).

    Shapes:
        ``node_layer``, ``node_pos``, ``node_type`` ``[N]`` (int) → ``[N, dim]``.
    """

    def __init__(self, dim: int, *, max_layers: int = 64, max_positions: int = 128) -> None:
        super().__init__()
        if dim < 1 or max_layers < 1 or max_positions < 1:
            raise ValueError(f"NeuronPositionalEmbedding: dim, max_layers and max_positions must be >= 1, got "
                             f"{dim}, {max_layers}, {max_positions}")
        self.max_layers, self.max_positions = max_layers, max_positions
        self.layer = nn.Embedding(max_layers, dim)
        self.position = nn.Embedding(_KINDS * max_positions, dim)
        nn.init.normal_(self.layer.weight, std=0.1)
        nn.init.normal_(self.position.weight, std=0.1)

    def forward(self, node_layer: torch.Tensor, node_pos: torch.Tensor, node_type: torch.Tensor) -> torch.Tensor:
        out = self.layer(node_layer.long().clamp(0, self.max_layers - 1))
        kind = torch.full_like(node_type, 2, dtype=torch.long)
        kind[node_type == int(NodeType.INPUT)] = 0
        kind[node_type == int(NodeType.OUTPUT)] = 1
        has = node_pos >= 0
        idx = kind * self.max_positions + node_pos.long().clamp(min=0) % self.max_positions
        return out + self.position(idx) * has.unsqueeze(-1).to(out.dtype)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.layer.embedding_dim}, max_layers={self.max_layers}, " \
               f"max_positions={self.max_positions})"


class EdgeLayerEmbedding(nn.Module):
    """Embedding of an edge's layer index (shared by every edge of a layer, so permutation invariant).

    Shapes:
        ``edge_layer`` ``[E]`` → ``[E, dim]``.
    """

    def __init__(self, dim: int, *, max_layers: int = 64) -> None:
        super().__init__()
        self.max_layers = max_layers
        self.layer = nn.Embedding(max_layers, dim)
        nn.init.normal_(self.layer.weight, std=0.1)

    def forward(self, edge_layer: torch.Tensor) -> torch.Tensor:
        return self.layer(edge_layer.long().clamp(0, self.max_layers - 1))


__all__ = ["EdgeLayerEmbedding", "NeuronPositionalEmbedding"]
