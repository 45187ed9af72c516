r"""Input embeddings of ParameterGraph nodes and edges: values, vocabulary types and positions.

Node :math:`i` with values :math:`v_i` (bias, norm weight/bias, running mean/var, activation parameter) and
vocabulary ids (node type, activation, pooling, normalization from :mod:`weightzoo.zoo.graphs.vocab`):

.. math::
    h_i = W_v v_i + T_{\mathrm{type}}[t_i] + T_{\mathrm{act}}[a_i] + T_{\mathrm{pool}}[p_i]
          + T_{\mathrm{norm}}[n_i] + \mathrm{PE}(\ell_i, \mathrm{pos}_i, t_i)

Edge :math:`ij` with its kernel window :math:`w_{ij}` (``kh·kw`` values) and edge type :math:`u_{ij}`:
:math:`e_{ij} = W_w w_{ij} + T_{\mathrm{edge}}[u_{ij}] + L[\ell_{ij}]`.

Graphs of different architectures share every table, so they batch together. Vocabulary sizes default to
the current :data:`~weightzoo.zoo.graphs.vocab.VOCAB_VERSION` (ids are append-only, so a model trained on
an older vocabulary keeps working on graphs that only use its ids; a larger id raises ``ValueError``).

Symmetry: per node / per edge, hence permutation equivariant; with ``positional=True`` node embeddings
are invariant only under hidden-neuron permutations (see :mod:`.positional`), which is the point.
"""

from __future__ import annotations

import torch
from torch import nn

from weightzoo.zoo.graphs.vocab import NODE_FEATURE_COLUMNS, Activation, EdgeType, NodeType, Norm, Pool

from .positional import EdgeLayerEmbedding, NeuronPositionalEmbedding

#: Columns of ``Data.x`` read as numeric values.
NODE_VALUE_INPUTS: tuple[str, ...] = ("bias", "norm_weight", "norm_bias", "running_mean", "running_var", "act_param")
_COL = {c: i for i, c in enumerate(NODE_FEATURE_COLUMNS)}
_VALUE_IDX = [_COL[c] for c in NODE_VALUE_INPUTS]


def default_vocab_sizes() -> dict[str, int]:
    """Table sizes of the current vocabulary (saved with a model's config)."""
    return {"node_type": len(NodeType), "activation": len(Activation), "pool": len(Pool), "norm": len(Norm),
            "edge_type": len(EdgeType)}


def _ids(col: torch.Tensor, size: int, what: str) -> torch.Tensor:
    ids = col.long()
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= size):
        raise ValueError(f"{what} id {int(ids.max())} is outside this model's vocabulary (size {size}); the graph "
                         "was built with a newer vocabulary than the model was trained on")
    return ids


class NodeEmbedding(nn.Module):
    r"""Embed ParameterGraph nodes (``Data.x``, columns :data:`~weightzoo.zoo.graphs.vocab.NODE_FEATURE_COLUMNS`).

    Args:
        dim (int): output width.
        positional (bool): add :class:`~.positional.NeuronPositionalEmbedding` (default ``True``;
            ``False`` is the ablation).
        vocab_sizes (dict[str, int] | None): table sizes (default :func:`default_vocab_sizes`).
        max_layers (int), max_positions (int): positional table sizes (defaults 64, 128).

    Shapes:
        ``x`` ``[N, 12]`` → ``[N, dim]``.
    """

    def __init__(self, dim: int, *, positional: bool = True, vocab_sizes: dict[str, int] | None = None,
                 max_layers: int = 64, max_positions: int = 128) -> None:
        super().__init__()
        self.sizes = dict(vocab_sizes or default_vocab_sizes())
        self.values = nn.Linear(len(NODE_VALUE_INPUTS), dim)
        self.types = nn.ModuleDict({k: nn.Embedding(self.sizes[k], dim) for k in ("node_type", "activation", "pool", "norm")})
        self.positional = (NeuronPositionalEmbedding(dim, max_layers=max_layers, max_positions=max_positions)
                           if positional else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        node_type = _ids(x[:, _COL["node_type"]], self.sizes["node_type"], "node type")
        h = self.values(x[:, _VALUE_IDX])
        h = h + self.types["node_type"](node_type)
        for key, col in (("activation", "activation"), ("pool", "pool"), ("norm", "norm")):
            h = h + self.types[key](_ids(x[:, _COL[col]], self.sizes[key], key))
        if self.positional is not None:
            h = h + self.positional(x[:, _COL["layer"]].long(), x[:, _COL["position"]].long(), node_type)
        return h


class EdgeEmbedding(nn.Module):
    r"""Embed ParameterGraph edges: kernel window values, edge type and (optionally) layer index.

    Args:
        dim (int): output width.
        window (int): values per edge, ``kh·kw`` of the graphs' ``max_kernel`` (default 49 = 7×7).
        positional (bool): add the edge's layer embedding (default ``True``).
        vocab_sizes (dict[str, int] | None), max_layers (int): as for :class:`NodeEmbedding`.

    Shapes:
        ``edge_attr`` ``[E, window]``, ``edge_type``, ``edge_layer`` ``[E]`` → ``[E, dim]``.
    """

    def __init__(self, dim: int, *, window: int = 49, positional: bool = True,
                 vocab_sizes: dict[str, int] | None = None, max_layers: int = 64) -> None:
        super().__init__()
        self.sizes = dict(vocab_sizes or default_vocab_sizes())
        self.window = window
        self.values = nn.Linear(window, dim)
        self.edge_type = nn.Embedding(self.sizes["edge_type"], dim)
        self.layer = EdgeLayerEmbedding(dim, max_layers=max_layers) if positional else None

    def forward(self, edge_attr: torch.Tensor, edge_type: torch.Tensor, edge_layer: torch.Tensor) -> torch.Tensor:
        if edge_attr.shape[-1] != self.window:
            raise ValueError(f"EdgeEmbedding: edges carry {edge_attr.shape[-1]} values, this model reads {self.window} "
                             "(build the graphs with the max_kernel the model was trained on)")
        e = self.values(edge_attr) + self.edge_type(_ids(edge_type, self.sizes["edge_type"], "edge type"))
        if self.layer is not None:
            e = e + self.layer(edge_layer)
        return e


__all__ = ["EdgeEmbedding", "NODE_VALUE_INPUTS", "NodeEmbedding", "default_vocab_sizes"]
