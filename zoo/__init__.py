"""The zoo: the store, the checkpoint readers, and representations (specs, graphs, symmetries) of models.

One subpackage per floor (imports only point down; see DESIGN.md "Layers"):
:mod:`.formats` (readers, writers, dtypes, durable writes) <- :mod:`.arch` (specs) <- :mod:`.store` (the
Zoo) <- :mod:`.hub` (crawler, mirror) and :mod:`.graphs` (parameter and compute graphs) <-
:mod:`.symmetry` (weight-space symmetries).

Names are re-exported lazily, and module paths from before the restructure (``weightzoo.zoo.cells``,
``weightzoo.zoo.hub_mirror``, ...) still import, as aliases of the modules that now hold them.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any


def lazy_exports(module: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """PEP 562 ``__getattr__`` and ``__dir__`` for a package whose public names import on first use.

    ``exports`` maps a public name to the absolute module that defines it; a name the module does not
    define but that is the module's own last component (``"errors": "weightzoo.errors"``) is the module. Used by every
    package facade, so ``import weightzoo`` or ``import weightzoo.zoo`` stays cheap.
    """
    def __getattr__(name: str) -> Any:
        target = exports.get(name)
        if target is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        mod = importlib.import_module(target)
        if hasattr(mod, name) or not target.endswith("." + name):
            value = getattr(mod, name)
        else:
            value = mod
        setattr(sys.modules[module], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[module])) | set(exports))

    return __getattr__, __dir__


_EXPORTS = {
    "Zoo": "weightzoo.zoo.store",
    "ModelRecord": "weightzoo.zoo.store",
    "TensorRecord": "weightzoo.zoo.store",
    "VerifyReport": "weightzoo.zoo.store",
    "open_checkpoint": "weightzoo.zoo.formats",
    "load_state_dict": "weightzoo.zoo.store",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

#: Module paths before the restructure into floors -> the module that holds that code now.
MOVED_MODULES = {
    "weightzoo.zoo.dtypes": "weightzoo.zoo.formats.dtypes",
    "weightzoo.zoo.cells": "weightzoo.zoo.arch.cells",
    "weightzoo.zoo.catalog": "weightzoo.zoo.store.catalog",
    "weightzoo.zoo.packs": "weightzoo.zoo.store.packs",
    "weightzoo.zoo.lock": "weightzoo.zoo.store.lock",
    "weightzoo.zoo.maintenance": "weightzoo.zoo.store.maintenance",
    "weightzoo.zoo.sources": "weightzoo.zoo.store.sources",
    "weightzoo.zoo.resolve": "weightzoo.zoo.store.resolve",
    "weightzoo.zoo.hub_headers": "weightzoo.zoo.hub.headers",
    "weightzoo.zoo.hub_retry": "weightzoo.zoo.hub.retry",
    "weightzoo.zoo.hub_lineage": "weightzoo.zoo.hub.lineage",
    "weightzoo.zoo.hub_mirror": "weightzoo.zoo.hub.mirror",
    "weightzoo.zoo.hub_mirror_repos": "weightzoo.zoo.hub.mirror_repos",
    "weightzoo.zoo.transformer_symmetry": "weightzoo.zoo.symmetry.transformer",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Import an old module path as the module that holds its code now (the same module object)."""

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED_MODULES:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        # the import system returns whatever sys.modules holds under the name after exec_module
        sys.modules[module.__name__] = importlib.import_module(MOVED_MODULES[module.__name__])


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.append(_MovedModules())

__all__ = sorted(_EXPORTS)
