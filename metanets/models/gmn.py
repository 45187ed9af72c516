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

Options for networks with odd activations and for INRs:

* ``sign_invariant=True`` (ScaleGMN-style) embeds every value a sign flip of a hidden tanh/sine neuron can
  negate — its bias, the weights of the edges touching it, its probe activations — with the even map
  :math:`\rho(v) + \rho(-v)` (:class:`~weightzoo.metanets.layers.sign_invariant.SignInvariantValues`), so the
  prediction is also invariant to :func:`weightzoo.zoo.symmetry.flip_signs`.
* ``probes=K`` adds each neuron's activations on :math:`K` learned input points
  (:class:`~weightzoo.metanets.layers.probe_features.ProbeFeatures`) to its node embedding: a *probing*
  model (it runs the network), reported apart from weights-only ones.
"""

from __future__ import annotations

from typing import Any

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from weightzoo.metanets.layers._mlp import mlp
from weightzoo.metanets.layers.edge_update_conv import EdgeUpdateConv
from weightzoo.metanets.layers.heads import EdgeHead, NodeHead
from weightzoo.metanets.layers.probe_features import ProbeFeatures
from weightzoo.metanets.layers.readout import InvariantReadout
from weightzoo.metanets.layers.sign_invariant import SignInvariantValues, sign_flippable
from weightzoo.metanets.layers.type_embedding import EdgeEmbedding, NodeEmbedding
from weightzoo.zoo.graphs.vocab import NODE_FEATURE_COLUMNS

_BIAS = NODE_FEATURE_COLUMNS.index("bias")


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
        sign_invariant (bool): invariance to sign flips of odd-activation neurons (default ``False``).
        probes (int): learned probe points whose activations become node features (default 0: weights only).
        probe_dim (int): input features of the probed networks (the harness sets it; default 2).
    """

    input_kind = "graph"

    def __init__(self, out_dim: int = 1, hidden: int = 64, layers: int = 4, window: int = 49, positional: bool = True,
                 edge_update: bool = True, avg_log_degree: float = 1.0, dropout: float = 0.0, node_out: int = 0,
                 edge_out: int = 0, vocab_sizes: dict[str, int] | None = None, sign_invariant: bool = False,
                 probes: int = 0, probe_dim: int = 2) -> None:
        super().__init__()
        if layers < 1 or hidden < 1 or out_dim < 1:
            raise ValueError(f"GraphMetanetwork: out_dim, hidden and layers must be >= 1, got {out_dim}, {hidden}, {layers}")
        if probes < 0:
            raise ValueError(f"GraphMetanetwork: probes must be >= 0, got {probes}")
        self.sign_invariant, self.hidden = bool(sign_invariant), hidden
        self.nodes = NodeEmbedding(hidden, positional=positional, vocab_sizes=vocab_sizes)
        self.edges = EdgeEmbedding(hidden, window=window, positional=positional, vocab_sizes=vocab_sizes)
        self.convs = nn.ModuleList([EdgeUpdateConv(hidden, avg_log_degree=avg_log_degree, edge_update=edge_update,
                                                   dropout=dropout) for _ in range(layers)])
        self.readout = InvariantReadout(hidden, out_dim)
        self.node_head = NodeHead(hidden, node_out) if node_out else None
        self.edge_head = EdgeHead(hidden, edge_out) if edge_out else None
        self.sign_nodes = SignInvariantValues(1, hidden) if sign_invariant else None
        self.sign_edges = SignInvariantValues(window, hidden) if sign_invariant else None
        self.probe = ProbeFeatures(probes, probe_dim) if probes else None
        self.probe_embed = mlp(probes, hidden, hidden) if probes else None
        self.sign_probes = SignInvariantValues(probes, hidden) if probes and sign_invariant else None

    def embed(self, data: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Input node ``[N, hidden]`` and edge ``[E, hidden]`` embeddings (values, types, positions, probes)."""
        if self.sign_nodes is None or self.sign_edges is None:
            x = self.nodes(data.x)
            e = self.edges(data.edge_attr, data.edge_type, data.edge_layer)
            flip = None
        else:
            # values a flip can negate go through rho(v) + rho(-v); everything else as usual (those rows
            # keep their type and position embeddings, their sign-carrying inputs are zeroed)
            flip, eflip = sign_flippable(data.x, data.edge_index)
            xv, ev = data.x.clone(), data.edge_attr.clone()
            xv[flip, _BIAS] = 0.0
            ev[eflip] = 0.0
            zeros_n = torch.zeros(xv.shape[0], self.hidden, device=xv.device, dtype=xv.dtype)
            x = self.nodes(xv) + self.sign_nodes(data.x[:, _BIAS:_BIAS + 1], flip, zeros_n)
            zeros_e = torch.zeros(ev.shape[0], zeros_n.shape[1], device=ev.device, dtype=ev.dtype)
            e = self.edges(ev, data.edge_type, data.edge_layer) + self.sign_edges(data.edge_attr, eflip, zeros_e)
        if self.probe is not None and self.probe_embed is not None:
            acts = self.probe(data)
            if flip is not None and self.sign_probes is not None:
                x = x + self.sign_probes(acts, flip, self.probe_embed(torch.where(flip[:, None], 0.0, acts)))
            else:
                x = x + self.probe_embed(acts)
        return x, e

    def encode(self, data: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Final node ``[N, hidden]`` and edge ``[E, hidden]`` states (equivariant)."""
        x, e = self.embed(data)
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
