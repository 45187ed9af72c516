r"""NP and HNP metanetworks on weight spaces of plain MLPs/CNNs (the NFN family), our implementation.

Input: per layer the weights ``[B, out, in, k...]`` and biases ``[B, out]``; a conv kernel's ``k`` values
become the channels of its weight features. Then ``layers`` × (:class:`~weightzoo.metanets.layers.np_linear.NPLinear`
→ ReLU), :class:`~weightzoo.metanets.layers.np_linear.NPPool` and an MLP.

* ``NPMetanet`` — equivariant to permutations of every layer's neurons (inputs and outputs included), so
  its prediction is invariant to them.
* ``HNPMetanet`` — adds learned embeddings of the input neurons (on the first layer's input axis) and of
  the output neurons (on the last layer's output axis), so only hidden-neuron permutations are symmetries,
  as in NFN's HNP (whose own layer, a fuller basis, runs as the ``nfn-hnp`` peer). The pooled features
  keep the output-neuron axis.
"""

from __future__ import annotations

from typing import Any

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from weightzoo.metanets.layers._mlp import mlp
from weightzoo.metanets.layers.np_linear import NPLinear, NPPool


def _to_channels_last(weights: list[torch.Tensor], biases: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    ws = [w.reshape(w.shape[0], w.shape[1], w.shape[2], -1) for w in weights]  # [B, out, in, k]
    return ws, [b.unsqueeze(-1) for b in biases]


class NPMetanet(nn.Module, PyTorchModelHubMixin):  # type: ignore[misc]
    """NP metanetwork (see the module docstring).

    Args:
        weight_shapes (list[list[int]]): each layer's weight shape ``[out, in, k...]``.
        out_dim (int): prediction width. hidden (int): channels (default 32). layers (int): NP layers (default 3).
    """

    input_kind = "weightspace"
    hnp = False

    def __init__(self, weight_shapes: list[list[int]], out_dim: int = 1, hidden: int = 32, layers: int = 3) -> None:
        super().__init__()
        if not weight_shapes:
            raise ValueError(f"{type(self).__name__}: weight_shapes is empty")
        self.weight_shapes = [list(s) for s in weight_shapes]
        k = [int(torch.tensor(s[2:]).prod()) if len(s) > 2 else 1 for s in weight_shapes]
        n = len(weight_shapes)
        self.np_layers = nn.ModuleList()
        wc, bc = k, [1] * n
        for _ in range(layers):
            self.np_layers.append(NPLinear(wc, bc, hidden))
            wc, bc = [hidden] * n, [hidden] * n
        self.pool = NPPool()
        n_in, n_out = weight_shapes[0][1], weight_shapes[-1][0]
        extra = 0
        if self.hnp:
            self.in_embed = nn.Parameter(torch.randn(n_in, k[0]) * 0.1)
            self.out_embed = nn.Parameter(torch.randn(n_out, k[-1]) * 0.1)
            self.out_bias_embed = nn.Parameter(torch.randn(n_out, 1) * 0.1)
            extra = 2 * n_out * hidden
        self.head = mlp(2 * n * hidden + extra, 2 * hidden, out_dim)

    def forward(self, inputs: Any) -> torch.Tensor:
        weights, biases = _to_channels_last(*inputs)
        if self.hnp:
            weights = list(weights)
            biases = list(biases)
            weights[0] = weights[0] + self.in_embed[None, None, :, :]
            weights[-1] = weights[-1] + self.out_embed[None, :, None, :]
            biases[-1] = biases[-1] + self.out_bias_embed[None]
        for layer in self.np_layers:
            weights, biases = layer(weights, biases)
            weights, biases = [torch.relu(w) for w in weights], [torch.relu(b) for b in biases]
        feats = [self.pool(weights, biases)]
        if self.hnp:
            feats += [weights[-1].mean(2).flatten(1), biases[-1].flatten(1)]
        return self.head(torch.cat(feats, dim=-1))


class HNPMetanet(NPMetanet):
    """HNP metanetwork: :class:`NPMetanet` with input/output-neuron embeddings (hidden permutations only)."""

    hnp = True


__all__ = ["HNPMetanet", "NPMetanet"]
