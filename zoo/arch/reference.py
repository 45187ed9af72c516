"""``pkg.module:Class`` references: name a model class so a CLI argument or a zoo entry can rebuild it.

A reference is the import path of a module and the qualified name of an ``nn.Module`` subclass in it,
joined by a colon (``torch.nn:Linear`` needs arguments; ``mypkg.nets:TinyResNet`` builds with none). It
names code the user already has installed: resolving imports that module (it runs its import-time code,
as ``import`` would) and never reads a path or downloads anything.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from torch import nn

from weightzoo.errors import SpecError

#: Spec format of a model known by its class: ``{"format": CLASS_FORMAT, "class": "pkg.module:Class"}``
#: (optionally ``"input_shape"``); :func:`~weightzoo.zoo.arch.build_module` builds it without arguments.
CLASS_FORMAT = "weightzoo.class/1"

_REFERENCE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


def is_class_reference(text: str) -> bool:
    """True for strings shaped like ``pkg.module:Class`` (nothing is imported)."""
    return isinstance(text, str) and bool(_REFERENCE.match(text))


def class_reference(obj: Any) -> str | None:
    """``"pkg.module:Class"`` of a module's class when importing that path gives the same class back, else
    ``None`` (classes defined inside functions, in ``__main__`` or in unimportable modules)."""
    cls = obj if isinstance(obj, type) else type(obj)
    mod, qual = getattr(cls, "__module__", None), getattr(cls, "__qualname__", "")
    if not mod or mod == "__main__" or "<" in qual:
        return None
    try:
        found: Any = importlib.import_module(mod)
        for part in qual.split("."):
            found = getattr(found, part)
    except Exception:  # noqa: BLE001 - any import failure just means "no reference"
        return None
    return f"{mod}:{qual}" if found is cls else None


def resolve_class_reference(reference: str) -> type[nn.Module]:
    """The ``nn.Module`` subclass a reference names; :class:`~weightzoo.errors.SpecError` says why not."""
    if not is_class_reference(reference):
        raise SpecError(f"{reference!r} is not a class reference (expected pkg.module:Class)")
    mod, qual = reference.split(":")
    try:
        found: Any = importlib.import_module(mod)
    except ImportError as exc:
        raise SpecError(f"cannot import {mod!r} for {reference!r}: {exc}") from exc
    for part in qual.split("."):
        if not hasattr(found, part):
            raise SpecError(f"{mod!r} has no {qual!r} (from {reference!r})")
        found = getattr(found, part)
    if not (isinstance(found, type) and issubclass(found, nn.Module)):
        raise SpecError(f"{reference!r} is not an nn.Module subclass")
    return found


def class_spec(reference: str, input_shape: list[int] | None = None) -> dict[str, Any]:
    """The spec of a model known by its class reference (validated, nothing imported)."""
    if not is_class_reference(reference):
        raise SpecError(f"{reference!r} is not a class reference (expected pkg.module:Class)")
    spec: dict[str, Any] = {"format": CLASS_FORMAT, "class": reference}
    if input_shape is not None:
        spec["input_shape"] = [int(x) for x in input_shape]
    return spec


def build_from_reference(reference: str) -> nn.Module:
    """Instantiate the class a reference names with no arguments (its defaults)."""
    cls = resolve_class_reference(reference)
    try:
        return cls()
    except TypeError as exc:
        raise SpecError(f"{reference} cannot be built without arguments: {exc}") from exc


__all__ = ["CLASS_FORMAT", "build_from_reference", "class_spec", "class_reference", "is_class_reference", "resolve_class_reference"]
