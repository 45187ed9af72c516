r"""Weight-space editors: models that output one value per parameter (a residual edit), not one per network.

Both take a network's parameters in normalised units (each divided by its training-split scale) and
return :math:`\Delta` of the same shapes; the editing harness (:mod:`weightzoo.metanets.editing`) adds
:math:`s \odot \Delta` to the raw parameters. The last layer starts at zero, so an untrained editor is the
identity edit.

* :class:`NPEditor` — NP layers (:class:`~weightzoo.metanets.layers.np_linear.NPLinear`) whose last layer
  has one output channel per kernel value: equivariant to permutations of every layer's neurons (inputs
  and outputs included — NP's assumption), so the edit of a permuted network is the permuted edit.
* :class:`FlatEditor` — an MLP from all :math:`P` parameters to all :math:`P` edits. Not equivariant:
  the baseline that must learn every permutation from data.

The graph metanetwork edits through its equivariant node and edge heads
(:class:`~weightzoo.metanets.models.gmn.GraphMetanetwork` with ``node_out``/``edge_out``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from weightzoo.metanets.layers._mlp import mlp
from weightzoo.metanets.layers.np_linear import NPLinear


def zero_last_linear(module: nn.Module) -> None:
    """Zero the weight and bias of ``module``'s last ``nn.Linear`` (so a residual output starts at 0)."""
    last = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not last:
        raise ValueError(f"zero_last_linear: {type(module).__name__} has no nn.Linear")
    with torch.no_grad():
        last[-1].weight.zero_()
        if last[-1].bias is not None:
            last[-1].bias.zero_()


class NPEditor(nn.Module, PyTorchModelHubMixin):  # type: ignore[misc]
    """NP-equivariant edit of a plain chain's weight space.

    Args:
        weight_shapes (list[list[int]]): each layer's weight shape ``[out, in, k...]``.
        hidden (int): channels (default 32). layers (int): hidden NP layers before the output one (default 3).

    Shapes: ``(weights, biases)`` with weights ``[B, out, in, k...]`` and biases ``[B, out]`` per layer →
    ``(Δweights, Δbiases)`` of the same shapes.
    """

    input_kind = "weightspace"

    def __init__(self, weight_shapes: list[list[int]], hidden: int = 32, layers: int = 3) -> None:
        super().__init__()
        if not weight_shapes or layers < 1 or hidden < 1:
            raise ValueError(f"NPEditor: need weight shapes, layers >= 1 and hidden >= 1; got {weight_shapes}, "
                             f"{layers}, {hidden}")
        self.weight_shapes = [list(s) for s in weight_shapes]
        self.kernel = [math.prod(s[2:]) if len(s) > 2 else 1 for s in weight_shapes]
        n = len(weight_shapes)
        self.np_layers = nn.ModuleList()
        wc, bc = list(self.kernel), [1] * n
        for _ in range(layers):
            self.np_layers.append(NPLinear(wc, bc, hidden))
            wc, bc = [hidden] * n, [hidden] * n
        self.out = NPLinear(wc, bc, max(self.kernel))
        with torch.no_grad():
            for p in self.out.parameters():
                p.zero_()

    def forward(self, inputs: Any) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        weights, biases = inputs
        ws = [w.reshape(w.shape[0], w.shape[1], w.shape[2], -1) for w in weights]
        bs = [b.unsqueeze(-1) for b in biases]
        for layer in self.np_layers:
            ws, bs = layer(ws, bs)
            ws, bs = [torch.relu(w) for w in ws], [torch.relu(b) for b in bs]
        ws, bs = self.out(ws, bs)
        dw = [w[..., :k].reshape(orig.shape) for w, k, orig in zip(ws, self.kernel, weights)]
        return dw, [b[..., 0] for b in bs]


class FlatEditor(nn.Module, PyTorchModelHubMixin):  # type: ignore[misc]
    """MLP edit of all parameters at once: ``[B, P]`` → ``[B, P]`` (not permutation-equivariant).

    Args:
        n_params (int): :math:`P`. hidden (int): width (default 256). layers (int): Linear maps (default 3).
    """

    input_kind = "flat"

    def __init__(self, n_params: int, hidden: int = 256, layers: int = 3) -> None:
        super().__init__()
        if n_params < 1:
            raise ValueError(f"FlatEditor: n_params must be >= 1, got {n_params}")
        self.mlp = mlp(n_params, hidden, n_params, layers=layers)
        zero_last_linear(self.mlp)

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        return self.mlp(theta)


__all__ = ["FlatEditor", "NPEditor", "zero_last_linear"]
