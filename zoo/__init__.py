"""The zoo: the store, the checkpoint readers, and representations (specs, graphs) of stored models."""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Zoo": "weightzoo.zoo.store",
    "ModelRecord": "weightzoo.zoo.store",
    "TensorRecord": "weightzoo.zoo.store",
    "VerifyReport": "weightzoo.zoo.store",
    "open_checkpoint": "weightzoo.zoo.formats",
    "load_state_dict": "weightzoo.zoo.resolve",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'weightzoo.zoo' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = sorted(_LAZY)
