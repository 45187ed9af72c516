"""One way to get weights from anything a user may hand us: a zoo model, a checkpoint path, a module or a
state dict. Every analysis takes its inputs through :func:`load_state_dict`, so it works on any model the
readers understand, lazily (one tensor read per access)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from weightzoo.errors import AmbiguousModelError, ModelNotFoundError, NoWeightsError, SpecError

if TYPE_CHECKING:
    from .zoo import Zoo

ModelSource = "str | os.PathLike[str] | Mapping[str, torch.Tensor] | torch.nn.Module"


def _as_zoo(zoo: Zoo | str | os.PathLike[str] | None) -> Zoo | None:
    if zoo is None:
        return None
    from .zoo import Zoo

    return zoo if isinstance(zoo, Zoo) else Zoo.open(zoo, create=False)


def classify_ref(ref: str, zoo: Zoo | None, *, explicit_path: bool = False) -> str:
    """The one rule for a MODEL reference: ``"path"`` (a checkpoint on disk), ``"zoo"`` (a model name) or
    ``"class"`` (``pkg.module:Class``, an importable ``nn.Module`` class built without arguments — when it is
    neither a path nor a zoo model).

    A reference starting with ``./``, ``../`` or ``/`` (or ``explicit_path``) is always a path. A string that
    is both an existing path and a model in ``zoo`` raises :class:`~weightzoo.errors.AmbiguousModelError`;
    a name found nowhere raises :class:`~weightzoo.errors.ModelNotFoundError` (with a zoo) or
    :class:`~weightzoo.errors.NoWeightsError` (a ``FileNotFoundError``, without one).
    """
    from weightzoo.zoo.arch import is_class_reference

    explicit = explicit_path or ref.startswith(("./", "../", "/"))
    is_path = os.path.exists(ref)
    in_zoo = not explicit and zoo is not None and zoo.has_model(ref)
    if in_zoo and is_path:
        raise AmbiguousModelError(ref)
    if in_zoo:
        return "zoo"
    if is_path:
        return "path"
    if not explicit and is_class_reference(ref):
        return "class"
    if zoo is not None and not explicit:
        raise ModelNotFoundError(ref, zoo.path)
    hint = "" if zoo is not None or explicit else " (pass --zoo DIR for a zoo model)"
    raise NoWeightsError(ref, "no such file or folder" + hint)


def load_state_dict(source: Any, *, zoo: Zoo | str | os.PathLike[str] | None = None) -> Mapping[str, torch.Tensor]:
    """A lazy name → tensor mapping for ``source``.

    Args:
        source: a zoo model name (needs ``zoo``), a checkpoint path (file or snapshot folder), an
            ``nn.Module``, a :class:`~weightzoo.zoo.formats.Checkpoint`, or a mapping of tensors (returned as is).
        zoo: a :class:`~weightzoo.zoo.store.Zoo` or its folder, to look names up in.

    A string that is both an existing path and a model in ``zoo`` raises
    :class:`~weightzoo.errors.AmbiguousModelError`; prefix ``./`` to mean the path.
    """
    from weightzoo.zoo.formats import Checkpoint, open_checkpoint

    if isinstance(source, Mapping):
        return source
    if isinstance(source, torch.nn.Module):
        return source.state_dict()
    if isinstance(source, Checkpoint):
        return source.state_dict()
    if not isinstance(source, str | os.PathLike):
        raise TypeError(f"cannot read weights from a {type(source).__name__}")
    ref = os.fspath(source)
    explicit = isinstance(source, Path) or ref.startswith(("./", "../", "/"))
    z = None if explicit else _as_zoo(zoo)  # an explicit path never needs the catalogue
    kind = classify_ref(ref, z, explicit_path=explicit)
    if kind == "zoo" and z is not None:
        return z.state_dict(ref)
    if kind == "class":
        from weightzoo.zoo.arch import build_from_reference

        return build_from_reference(ref).state_dict()
    return open_checkpoint(ref).state_dict()


def resolve_spec(ref: str | os.PathLike[str], *, zoo: Zoo | str | os.PathLike[str] | None = None,
                 spec: str | os.PathLike[str] | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The architecture spec of a MODEL reference — the one rule every command that needs one follows.

    In order: ``spec`` (a mapping, or a JSON file holding a spec or a Hugging Face ``config.json``); the
    zoo entry's stored spec, else its stored config; a JSON file given as ``ref`` (a spec, or a
    ``config.json``); the ``config.json`` of a checkpoint folder. Hugging Face configs become ``hf`` specs
    (class = ``architectures[0]``). Raises :class:`~weightzoo.errors.SpecError` naming what to pass.
    """
    from weightzoo.zoo.arch import hf_spec, load_spec_file

    def from_json(obj: Mapping[str, Any], where: str) -> dict[str, Any]:
        if "format" in obj:
            return dict(obj)
        if obj.get("architectures"):
            return hf_spec(obj)
        raise SpecError(f"{where}: neither an architecture spec (no 'format') nor a config.json (no 'architectures')")

    if spec is not None:
        return from_json(spec, "spec") if isinstance(spec, Mapping) else from_json(load_spec_file(spec), os.fspath(spec))
    name = os.fspath(ref)
    explicit = isinstance(ref, Path) or name.startswith(("./", "../", "/"))
    z = None if explicit else _as_zoo(zoo)
    kind = classify_ref(name, z, explicit_path=explicit)
    if kind == "class":
        from weightzoo.zoo.arch import class_spec

        return class_spec(name)
    if kind == "zoo" and z is not None:
        record = z.model(name)
        if record.spec is not None:
            return dict(record.spec)
        if record.config:
            return hf_spec(record.config)
        raise SpecError(f"model {name!r} has neither an architecture spec nor a config in the zoo; pass a spec "
                        "(--spec SPEC.json)")
    path = Path(name)
    if path.is_file() and path.suffix == ".json":
        return from_json(load_spec_file(path), name)
    from weightzoo.zoo.formats import open_checkpoint

    with open_checkpoint(name) as ckpt:
        config = ckpt.config
    if config:
        return hf_spec(config)
    raise SpecError(f"{name} has no architecture (no config.json): pass a spec (--spec SPEC.json, see "
                    "docs/graphs.md), or ingest it into a zoo with its spec")


__all__ = ["classify_ref", "load_state_dict", "resolve_spec"]
