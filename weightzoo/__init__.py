"""weightzoo: trained neural networks as data.

The public API is re-exported lazily (PEP 562): ``import weightzoo`` is cheap, and each name below imports
its module only when first used, so the store never drags in torch_geometric, matplotlib or transformers.

    >>> import weightzoo
    >>> zoo = weightzoo.Zoo.open("my-zoo")          # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    "Zoo": "weightzoo.zoo.store",
    "ModelRecord": "weightzoo.zoo.store",
    "open_checkpoint": "weightzoo.zoo.formats",
    "load_state_dict": "weightzoo.zoo.resolve",
    "build_module": "weightzoo.zoo.arch",
    "spec_from_module": "weightzoo.zoo.arch",
    "ParameterGraph": "weightzoo.zoo.graphs.parameter_graph",
    "ComputeGraph": "weightzoo.zoo.graphs.compute_graph",
    "permute_hidden": "weightzoo.zoo.symmetry",
    "align": "weightzoo.zoo.symmetry",
    "crawl": "weightzoo.zoo.hub",
    "TaskVector": "weightzoo.analysis.task_vectors",
    "merge": "weightzoo.analysis.merging",
    "errors": "weightzoo.errors",
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from . import errors
    from .analysis.merging import merge
    from .analysis.task_vectors import TaskVector
    from .zoo.arch import build_module, spec_from_module
    from .zoo.formats import open_checkpoint
    from .zoo.graphs.compute_graph import ComputeGraph
    from .zoo.graphs.parameter_graph import ParameterGraph
    from .zoo.hub import crawl
    from .zoo.resolve import load_state_dict
    from .zoo.store import ModelRecord, Zoo
    from .zoo.symmetry import align, permute_hidden


def register_lazy(name: str, module: str) -> None:
    """Declare a lazily imported public name (used by subpackages as they grow)."""
    _LAZY[name] = module


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'weightzoo' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if module.endswith("." + name) else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["ComputeGraph", "ModelRecord", "ParameterGraph", "TaskVector", "Zoo", "__version__", "align",
           "build_module", "crawl", "errors", "load_state_dict", "merge", "open_checkpoint", "permute_hidden",
           "spec_from_module"]
