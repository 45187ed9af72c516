r"""Graph metanetwork: edge-featured message passing over ParameterGraphs of any architecture.

.. math::
    h^{(0)}, e^{(0)} = \mathrm{Embed}(G);\quad (h^{(t+1)}, e^{(t+1)}) = \mathrm{EdgeUpdateConv}_t(h^{(t)}, e^{(t)});
    \quad y = \mathrm{Readout}(h^{(T)}, e^{(T)})

(Lim et al., 2024, graph metanetworks; Kofinas et al., 2024, neural graphs — PNA with edge updates).
Layers from :mod:`weightzoo.metanets.layers`; sparse, so memory is linear in the number of weights and graphs
of different architectures share a batch.

Symmetry: the prediction is invariant to every hidden-neuron permutation of :mod:`weightzoo.zoo.symmetry`
(the per-node and per-edge outputs of :meth:`GraphMetanetwork.encode` are equivariant); input and output
neurons are told apart by positional embeddings (``positional=False`` is the ablation, and is then invariant
to input permutations too).
"""

from __future__ import annotations

from typing import Any

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from weightzoo.metanets.layers.edge_update_conv import EdgeUpdateConv
from weightzoo.metanets.layers.heads import EdgeHead, NodeHead
from weightzoo.metanets.layers.readout import InvariantReadout
from weightzoo.metanets.layers.type_embedding import EdgeEmbedding, NodeEmbedding


class GraphMetanetwork(nn.Module, PyTorchModelHubMixin):  # type: ignore[misc]
    """Predict a property of a network from its ParameterGraph.

    Args:
        out_dim (int): prediction width (1 for regression, the class count for classification).
        hidden (int): node/edge state width (default 64).
        layers (int): message-passing rounds (default 4).
        window (int): edge values per edge (``kh·kw`` of the graphs' ``max_kernel``; default 49).
        positional (bool): neuron positional embeddings (default ``True``).
        edge_update (bool): edge updates in every layer (default ``True``).
        avg_log_degree (float): PNA's degree normaliser (the harness sets it from the training graphs).
        dropout (float): dropout inside the MLPs (default 0).
        node_out (int), edge_out (int): widths of optional equivariant node/edge heads (default 0: none).
        vocab_sizes (dict | None): embedding table sizes (default: the current vocabulary).
    """

    input_kind = "graph"

    def __init__(self, out_dim: int = 1, hidden: int = 64, layers: int = 4, window: int = 49, positional: bool = True,
                 edge_update: bool = True, avg_log_degree: float = 1.0, dropout: float = 0.0, node_out: int = 0,
                 edge_out: int = 0, vocab_sizes: dict[str, int] | None = None) -> None:
        super().__init__()
        if layers < 1 or hidden < 1 or out_dim < 1:
            raise ValueError(f"GraphMetanetwork: out_dim, hidden and layers must be >= 1, got {out_dim}, {hidden}, {layers}")
        self.nodes = NodeEmbedding(hidden, positional=positional, vocab_sizes=vocab_sizes)
        self.edges = EdgeEmbedding(hidden, window=window, positional=positional, vocab_sizes=vocab_sizes)
        self.convs = nn.ModuleList([EdgeUpdateConv(hidden, avg_log_degree=avg_log_degree, edge_update=edge_update,
                                                   dropout=dropout) for _ in range(layers)])
        self.readout = InvariantReadout(hidden, out_dim)
        self.node_head = NodeHead(hidden, node_out) if node_out else None
        self.edge_head = EdgeHead(hidden, edge_out) if edge_out else None

    def encode(self, data: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Final node ``[N, hidden]`` and edge ``[E, hidden]`` states (equivariant)."""
        x = self.nodes(data.x)
        e = self.edges(data.edge_attr, data.edge_type, data.edge_layer)
        for conv in self.convs:
            x, e = conv(x, data.edge_index, e)
        return x, e

    def forward(self, data: Any) -> torch.Tensor:
        """``[B, out_dim]`` graph-level predictions for a PyG ``Batch`` (or one ``Data``)."""
        x, e = self.encode(data)
        return self.readout(x, e, data.edge_index, getattr(data, "batch", None), getattr(data, "num_graphs", None))

    def node_edge_outputs(self, data: Any) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Equivariant per-node and per-edge outputs (``None`` where the head is off)."""
        x, e = self.encode(data)
        return (self.node_head(x) if self.node_head is not None else None,
                self.edge_head(x, data.edge_index, e) if self.edge_head is not None else None)


__all__ = ["GraphMetanetwork"]
