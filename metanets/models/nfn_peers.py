"""The ``nfn`` package's NP and HNP layers (Zhou et al., 2023; PyPI ``nfn``) as peers in our harness.

``pip install nfn`` (the ``nfn`` extra). Three NFN layers with ReLU, the package's pooling (``NPPool`` /
``HNPPool``) and an MLP head, on the same weight-space inputs as :mod:`.np_hnp`. Without the package,
constructing one raises :class:`~weightzoo.errors.InvalidOptionError` saying how to install it.
"""

from __future__ import annotations

from typing import Any

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from weightzoo.errors import InvalidOptionError
from weightzoo.metanets.layers._mlp import mlp


def _nfn() -> Any:
    try:
        import nfn.common
        import nfn.layers
    except ImportError as exc:
        raise InvalidOptionError("the nfn-np/nfn-hnp models need the `nfn` package: pip install nfn "
                                 "(or pip install 'weightzoo[nfn]')") from exc
    return nfn


class NFNNPMetanet(nn.Module, PyTorchModelHubMixin):  # type: ignore[misc]
    """``nfn.layers.NPLinear`` × ``layers`` → ``NPPool`` → MLP. Invariant to all neuron permutations."""

    input_kind = "weightspace"
    hnp = False

    def __init__(self, weight_shapes: list[list[int]], out_dim: int = 1, hidden: int = 16, layers: int = 3) -> None:
        super().__init__()
        nfn = _nfn()
        from nfn.common import ArraySpec, NetworkSpec

        self.spec = NetworkSpec([ArraySpec(tuple(s)) for s in weight_shapes], [ArraySpec((s[0],)) for s in weight_shapes])
        lin = nfn.layers.HNPLinear if self.hnp else nfn.layers.NPLinear
        self.layers_ = nn.ModuleList([lin(self.spec, 1 if i == 0 else hidden, hidden) for i in range(layers)])
        self.pool = (nfn.layers.HNPPool if self.hnp else nfn.layers.NPPool)(self.spec)
        with torch.no_grad():
            width = self._pooled(self._features([torch.zeros(1, *s) for s in weight_shapes],
                                                [torch.zeros(1, s[0]) for s in weight_shapes])).shape[-1]
        self.head = mlp(width, 2 * hidden, out_dim)

    @staticmethod
    def _features(weights: list[torch.Tensor], biases: list[torch.Tensor]) -> Any:
        from nfn.common import WeightSpaceFeatures

        return WeightSpaceFeatures([w.unsqueeze(1) for w in weights], [b.unsqueeze(1) for b in biases])

    def _pooled(self, ws: Any) -> torch.Tensor:
        for layer in self.layers_:
            ws = layer(ws).map(torch.relu)
        return self.pool(ws).flatten(1)

    def forward(self, inputs: Any) -> torch.Tensor:
        weights, biases = inputs
        return self.head(self._pooled(self._features(list(weights), list(biases))))


class NFNHNPMetanet(NFNNPMetanet):
    """``nfn.layers.HNPLinear`` × ``layers`` → ``HNPPool`` → MLP. Invariant to hidden-neuron permutations."""

    hnp = True


__all__ = ["NFNHNPMetanet", "NFNNPMetanet"]
