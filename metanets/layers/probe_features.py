r"""Probe features: every neuron's activation on learned input points, as node features.

Neural graphs (Kofinas et al., 2024) feed each neuron's activations on a few *learned* inputs to the
metanetwork beside the weights. For a plain MLP chain stored as a ParameterGraph, the input network runs
on the graph itself, layer by layer:

.. math::
    a_i = p_{k,\mathrm{pos}(i)} \;(i \text{ an input node}),\qquad
    a_j = \sigma_j\Big(\sum_{i \to j} w_{ij}\, a_i + b_j\Big)

for :math:`K` probe points :math:`p \in \mathbb{R}^{K \times D}` (an ``nn.Parameter``, initialised
uniformly in :math:`[-1, 1]^D` — the coordinate box of an INR — and trained with the metanetwork through
the network it probes). The raw (un-normalised) weights, biases and activation parameters come from the
``raw_weight``/``raw_bias``/``raw_act_param`` attributes that
:class:`~weightzoo.metanets.data.GraphNormalizer` attaches. Covered: Linear edges and element-wise
activations (identity, ReLU, leaky ReLU, GELU, SiLU, tanh, sigmoid, sine); anything else raises
:class:`~weightzoo.errors.UnsupportedLayerError` (run CNNs through ``probe`` instead).

Symmetry: equivariant to hidden-neuron permutations (a permuted network computes the same activations,
permuted); a sign flip of a neuron with an odd activation negates that neuron's row only.

Shapes: a PyG ``Batch`` of ``N`` nodes → ``[N, K]``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from weightzoo.errors import UnsupportedLayerError
from weightzoo.zoo.graphs.vocab import Activation, EdgeType, NodeType


def _activate(z: torch.Tensor, act: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """Apply each row's activation (``act`` ids ``[N]``, parameters ``[N]``) to ``z`` ``[N, K]``."""
    out = z
    p = param[:, None]
    for a in torch.unique(act).tolist():
        a = Activation(int(a))
        if a == Activation.NONE:
            continue
        if a == Activation.RELU:
            f = torch.relu(z)
        elif a == Activation.LEAKY_RELU:
            f = torch.where(z >= 0, z, p * z)
        elif a == Activation.GELU:
            f = nn.functional.gelu(z)
        elif a == Activation.GELU_TANH:
            f = nn.functional.gelu(z, approximate="tanh")
        elif a == Activation.SILU:
            f = nn.functional.silu(z)
        elif a == Activation.TANH:
            f = torch.tanh(z)
        elif a == Activation.SIGMOID:
            f = torch.sigmoid(z)
        elif a == Activation.SINE:
            f = torch.sin(p * z)
        else:
            raise UnsupportedLayerError("<graph>", a.name.lower(), "probe features cover element-wise activations")
        out = torch.where((act == int(a))[:, None], f, out)
    return out


class ProbeFeatures(nn.Module):
    r"""Activations of every neuron of the input networks on ``n_probes`` learned input points.

    Args:
        n_probes (int): :math:`K`, the number of probe points.
        in_dim (int): :math:`D`, input features of the probed networks (2 for an image INR).

    Shapes: ``data`` (PyG ``Data``/``Batch`` with ``raw_*`` attributes) → ``[N, K]``.
    """

    def __init__(self, n_probes: int, in_dim: int) -> None:
        super().__init__()
        if n_probes < 1 or in_dim < 1:
            raise ValueError(f"ProbeFeatures: n_probes and in_dim must be >= 1, got {n_probes}, {in_dim}")
        self.points = nn.Parameter(torch.rand(n_probes, in_dim) * 2 - 1)

    def forward(self, data: Any) -> torch.Tensor:
        for need in ("raw_weight", "raw_bias", "raw_act_param"):
            if not hasattr(data, need):
                raise ValueError(f"ProbeFeatures: the graph has no {need!r}; normalise it with GraphNormalizer")
        bad = data.edge_type != int(EdgeType.LINEAR)
        if bool(bad.any()):
            raise UnsupportedLayerError("<graph>", EdgeType(int(data.edge_type[bad][0])).name.lower(),
                                        "probe features run plain Linear chains (MLPs, INRs); use the probe model for CNNs")
        n, k = data.x.shape[0], self.points.shape[0]
        src, dst = data.edge_index
        layer = data.node_layer
        inputs = data.node_type == int(NodeType.INPUT)
        pos = data.node_pos[inputs]
        if pos.numel() and int(pos.max()) >= self.points.shape[1]:
            raise UnsupportedLayerError("<graph>", "input", f"the network has {int(pos.max()) + 1} inputs, the probes "
                                        f"{self.points.shape[1]} coordinates")
        h = torch.zeros(n, k, dtype=self.points.dtype, device=self.points.device)
        h = h.index_put((inputs.nonzero().reshape(-1),), self.points[:, pos].T)
        w = data.raw_weight.to(h.dtype)
        bias, param = data.raw_bias.to(h.dtype), data.raw_act_param.to(h.dtype)
        for lay in torch.unique(layer[~inputs]).tolist():  # in depth order: a chain's layer L reads layer L-1
            sel = layer[dst] == lay
            pre = torch.zeros_like(h).index_add(0, dst[sel], w[sel, None] * h[src[sel]]) + bias[:, None]
            rows = (layer == lay) & ~inputs
            h = torch.where(rows[:, None], _activate(pre, data.node_act, param), h)
        return h

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(n_probes={self.points.shape[0]}, in_dim={self.points.shape[1]})"


__all__ = ["ProbeFeatures"]
