r"""Sign-invariant input embeddings for neurons with odd activations (ScaleGMN-style).

A hidden neuron with an odd activation (tanh, sine) can be negated — its incoming weights, bias and its
outgoing weights all change sign — without changing the network's function
(:func:`weightzoo.zoo.symmetry.flip_signs`). A metanetwork that should not care embeds the values such a
flip can negate with an even function:

.. math:: \phi(v) = \rho(v) + \rho(-v)

on the node values of flippable neurons and on the weights of every edge that touches one, and its
usual linear embedding everywhere else. The model is then invariant to every sign flip of those neurons
(it also forgets the relative sign of two weights into one neuron: the price of the simple, exact
construction; ScaleGMN's equivariant variant keeps it).

Symmetry: invariant to sign flips of hidden tanh/sine neurons; equivariant to node permutations (per row).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from weightzoo.zoo.graphs.vocab import NODE_FEATURE_COLUMNS, Activation, NodeType

from ._mlp import mlp

_COL = {c: i for i, c in enumerate(NODE_FEATURE_COLUMNS)}
#: Activations whose neurons a sign flip may negate (odd functions; identity is left out on purpose:
#: linear hidden neurons are rare and usually sit before a normalisation).
ODD_ACTIVATIONS: tuple[Activation, ...] = (Activation.TANH, Activation.SINE)


def sign_flippable(x: torch.Tensor, edge_index: torch.Tensor,
                   activations: Iterable[Activation] = ODD_ACTIVATIONS) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks of hidden nodes with an odd activation (``[N]``) and of the edges touching one (``[E]``).

    ``x`` has the ParameterGraph node columns (:data:`~weightzoo.zoo.graphs.vocab.NODE_FEATURE_COLUMNS`).
    """
    act = x[:, _COL["activation"]].long()
    hidden = x[:, _COL["node_type"]].long() == int(NodeType.HIDDEN)
    odd = torch.zeros_like(hidden)
    for a in activations:
        odd |= act == int(a)
    nodes = hidden & odd
    edges = nodes[edge_index[0]] | nodes[edge_index[1]]
    return nodes, edges


class SignInvariantValues(nn.Module):
    r"""Embed value rows: :math:`\rho(v) + \rho(-v)` where ``mask`` is set, ``plain(v)`` elsewhere.

    Args:
        d_in (int): values per row; dim (int): output width.

    Shapes: ``values`` ``[R, d_in]``, ``mask`` ``[R]`` (bool), ``plain`` ``[R, dim]`` → ``[R, dim]``.
    """

    def __init__(self, d_in: int, dim: int) -> None:
        super().__init__()
        self.rho = mlp(d_in, dim, dim)

    def forward(self, values: torch.Tensor, mask: torch.Tensor, plain: torch.Tensor) -> torch.Tensor:
        if not bool(mask.any()):
            return plain
        out = plain.clone()
        v = values[mask]
        out[mask] = self.rho(v) + self.rho(-v)
        return out


__all__ = ["ODD_ACTIVATIONS", "SignInvariantValues", "sign_flippable"]
