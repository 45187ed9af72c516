"""weightzoo: trained neural networks as data.

The public API is re-exported lazily (PEP 562): ``import weightzoo`` is cheap, and each name below imports
its module only when first used, so the store never drags in torch_geometric, matplotlib or transformers.

    >>> import weightzoo
    >>> zoo = weightzoo.Zoo.open("my-zoo")          # doctest: +SKIP
"""

from __future__ import annotations

from importlib import metadata as _metadata
from typing import TYPE_CHECKING

from weightzoo.zoo import lazy_exports

try:
    __version__ = _metadata.version("weightzoo")
except _metadata.PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
    __version__ = "0+unknown"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    "Zoo": "weightzoo.zoo.store",
    "ModelRecord": "weightzoo.zoo.store",
    "open_checkpoint": "weightzoo.zoo.formats",
    "load_state_dict": "weightzoo.zoo.store",
    "build_module": "weightzoo.zoo.arch",
    "spec_from_module": "weightzoo.zoo.arch",
    "ParameterGraph": "weightzoo.zoo.graphs",
    "ComputeGraph": "weightzoo.zoo.graphs",
    "permute_hidden": "weightzoo.zoo.symmetry",
    "align": "weightzoo.zoo.symmetry",
    "symmetry_groups": "weightzoo.zoo.symmetry",
    "check_symmetry": "weightzoo.zoo.symmetry",
    "crawl": "weightzoo.zoo.hub",
    "GHN": "weightzoo.hyper",
    "predict_parameters": "weightzoo.hyper",
    "TaskVector": "weightzoo.analysis",
    "merge": "weightzoo.analysis",
    "errors": "weightzoo.errors",
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from weightzoo import errors
    from weightzoo.analysis import TaskVector, merge
    from weightzoo.hyper import GHN, predict_parameters
    from weightzoo.zoo.arch import build_module, spec_from_module
    from weightzoo.zoo.formats import open_checkpoint
    from weightzoo.zoo.graphs import ComputeGraph, ParameterGraph
    from weightzoo.zoo.hub import crawl
    from weightzoo.zoo.store import ModelRecord, Zoo, load_state_dict
    from weightzoo.zoo.symmetry import align, check_symmetry, permute_hidden, symmetry_groups


def register_lazy(name: str, module: str) -> None:
    """Declare a lazily imported public name (used by subpackages as they grow)."""
    _LAZY[name] = module


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = ["ComputeGraph", "GHN", "ModelRecord", "ParameterGraph", "TaskVector", "Zoo", "__version__", "align",
           "build_module", "check_symmetry", "crawl", "errors", "load_state_dict", "merge", "open_checkpoint",
           "permute_hidden", "predict_parameters", "spec_from_module", "symmetry_groups"]
