"""Metanetwork models and baselines, one name each (the ``--model`` choices of ``weightzoo metanet train``).

``MODELS`` maps a name to ``(module, class)``; :func:`model_class` resolves it lazily (so listing the
choices imports no model code). Every class is an ``nn.Module`` with ``PyTorchModelHubMixin`` (safetensors +
JSON config, ``save_pretrained``/``from_pretrained``) and an ``input_kind`` class attribute saying which
input the training harness feeds it (``graph``, ``stats``, ``flat``, ``hparams``, ``probe``, ``render``,
``weightspace``). ``inr_only = True`` marks models that need an implicit neural representation (``pixels``).
"""

from __future__ import annotations

import importlib
from typing import Any

from weightzoo.errors import InvalidOptionError

MODELS: dict[str, tuple[str, str]] = {
    "gmn": ("gmn", "GraphMetanetwork"),
    "np": ("np_hnp", "NPMetanet"),
    "hnp": ("np_hnp", "HNPMetanet"),
    "nfn-np": ("nfn_peers", "NFNNPMetanet"),
    "nfn-hnp": ("nfn_peers", "NFNHNPMetanet"),
    "statnn": ("baselines", "StatNNTrees"),
    "statnn-mlp": ("baselines", "StatNNMLP"),
    "hparams": ("baselines", "HParamsTrees"),
    "mlp": ("baselines", "FlatMLP"),
    "probe": ("baselines", "ProbeMLP"),
    "pixels": ("baselines", "PixelMLP"),
}

#: Models that read weights only (the others read training settings or run the network).
WEIGHTS_ONLY = ("gmn", "np", "hnp", "nfn-np", "nfn-hnp", "statnn", "statnn-mlp", "mlp")


def model_class(name: str) -> Any:
    """The class of model ``name`` (``InvalidOptionError`` listing the choices otherwise)."""
    if name not in MODELS:
        raise InvalidOptionError(f"unknown metanetwork model {name!r}; valid: {', '.join(MODELS)}")
    module, cls = MODELS[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


__all__ = ["MODELS", "WEIGHTS_ONLY", "model_class"]
