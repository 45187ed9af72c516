r"""Neuron-permutation equivariant linear layers on weight spaces of plain MLPs/CNNs (the NFN/DWSNets family).

A network is a list of layers with weights :math:`W_l \in \mathbb{R}^{n_l \times n_{l-1} \times c_l}`
(a conv kernel's ``k`` values folded into the channels) and biases :math:`b_l \in \mathbb{R}^{n_l \times d_l}`,
stored channel-last. :class:`NPLinear` maps them to ``out_channels`` channels with every linear map that
commutes with independent permutations of each layer's neurons built from means (Zhou et al., 2023, NP
layer; a subset of its basis):

.. math::
    W'_l &= A W_l + B\,\overline{W_l}^{\,\mathrm{in}} + C\,\overline{W_l}^{\,\mathrm{out}} + D\,\overline{W_l}
            + E\, b_l + F\,\overline{W_{l+1}}^{\,\mathrm{out}} + G\,\overline{W_{l-1}}^{\,\mathrm{in}} + H\, b_{l-1} \\
    b'_l &= P\, b_l + Q\,\overline{W_l}^{\,\mathrm{in}} + R\,\overline{W_{l+1}}^{\,\mathrm{out}} + S\,\overline{b_l}

(bars: means over the named axis, broadcast back; every letter is a per-layer channel map).

Symmetry: equivariant to permutations of every layer's neurons, input and output neurons included (the NP
group). The HNP model (:class:`~weightzoo.metanets.models.np_hnp.NPMetanet` with ``hnp=True``) adds learned
input/output-neuron embeddings before these layers, which leaves exactly the hidden-neuron permutations.

Shapes:
    weights ``[B, n_l, n_{l-1}, c_l]``, biases ``[B, n_l, d_l]`` → the same with ``out_channels`` channels.
"""

from __future__ import annotations

import torch
from torch import nn

WS = tuple[list[torch.Tensor], list[torch.Tensor]]


class NPLinear(nn.Module):
    """One NP-equivariant linear layer (see the module docstring).

    Args:
        w_channels (list[int]): channels of each layer's weight features.
        b_channels (list[int]): channels of each layer's bias features.
        out_channels (int): output channels of every weight and bias.
    """

    def __init__(self, w_channels: list[int], b_channels: list[int], out_channels: int) -> None:
        super().__init__()
        if len(w_channels) != len(b_channels) or not w_channels:
            raise ValueError(f"NPLinear: one weight and one bias channel count per layer, got {w_channels}, {b_channels}")
        n = len(w_channels)
        self.num_layers, self.out_channels = n, out_channels

        def lin(c: int) -> nn.Linear:
            return nn.Linear(c, out_channels, bias=False)

        self.w_self = nn.ModuleList([nn.Linear(c, out_channels) for c in w_channels])
        self.w_in = nn.ModuleList([lin(c) for c in w_channels])
        self.w_out = nn.ModuleList([lin(c) for c in w_channels])
        self.w_all = nn.ModuleList([lin(c) for c in w_channels])
        self.w_bias = nn.ModuleList([lin(c) for c in b_channels])
        self.w_next = nn.ModuleList([lin(w_channels[i + 1]) for i in range(n - 1)])
        self.w_prev = nn.ModuleList([lin(w_channels[i - 1]) for i in range(1, n)])
        self.w_prev_bias = nn.ModuleList([lin(b_channels[i - 1]) for i in range(1, n)])
        self.b_self = nn.ModuleList([nn.Linear(c, out_channels) for c in b_channels])
        self.b_w = nn.ModuleList([lin(c) for c in w_channels])
        self.b_next = nn.ModuleList([lin(w_channels[i + 1]) for i in range(n - 1)])
        self.b_all = nn.ModuleList([lin(c) for c in b_channels])

    def forward(self, weights: list[torch.Tensor], biases: list[torch.Tensor]) -> WS:
        if len(weights) != self.num_layers:
            raise ValueError(f"NPLinear: built for {self.num_layers} layers, got {len(weights)}")
        mean_in = [w.mean(2) for w in weights]  # [B, n_l, c]
        mean_out = [w.mean(1) for w in weights]  # [B, n_{l-1}, c]
        new_w, new_b = [], []
        for i, (w, b) in enumerate(zip(weights, biases)):
            row = self.w_in[i](mean_in[i]) + self.w_bias[i](b)  # indexed by this layer's neurons
            col = self.w_out[i](mean_out[i])  # indexed by the previous layer's neurons
            if i + 1 < self.num_layers:
                row = row + self.w_next[i](mean_out[i + 1])
            if i > 0:
                col = col + self.w_prev[i - 1](mean_in[i - 1]) + self.w_prev_bias[i - 1](biases[i - 1])
            glob = self.w_all[i](w.mean((1, 2)))  # [B, C]
            new_w.append(self.w_self[i](w) + row.unsqueeze(2) + col.unsqueeze(1) + glob[:, None, None, :])
            bb = self.b_self[i](b) + self.b_w[i](mean_in[i]) + self.b_all[i](b.mean(1)).unsqueeze(1)
            if i + 1 < self.num_layers:
                bb = bb + self.b_next[i](mean_out[i + 1])
            new_b.append(bb)
        return new_w, new_b

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(layers={self.num_layers}, out_channels={self.out_channels})"


class NPPool(nn.Module):
    """Invariant pooling: each layer's mean weight and mean bias features, concatenated.

    Shapes: ``L`` layers of ``C`` channels → ``[B, 2·L·C]``.
    """

    def forward(self, weights: list[torch.Tensor], biases: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([w.mean((1, 2)) for w in weights] + [b.mean(1) for b in biases], dim=-1)


__all__ = ["NPLinear", "NPPool"]
