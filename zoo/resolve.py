"""One way to get weights from anything a user may hand us: a zoo model, a checkpoint path, a module or a
state dict. Every analysis takes its inputs through :func:`load_state_dict`, so it works on any model the
readers understand, lazily (one tensor read per access)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import AmbiguousModelError, ModelNotFoundError

if TYPE_CHECKING:
    from .store import Zoo

ModelSource = "str | os.PathLike[str] | Mapping[str, torch.Tensor] | torch.nn.Module"


def _as_zoo(zoo: Zoo | str | os.PathLike[str] | None) -> Zoo | None:
    if zoo is None:
        return None
    from .store import Zoo

    return zoo if isinstance(zoo, Zoo) else Zoo.open(zoo, create=False)


def load_state_dict(source: Any, *, zoo: Zoo | str | os.PathLike[str] | None = None) -> Mapping[str, torch.Tensor]:
    """A lazy name → tensor mapping for ``source``.

    Args:
        source: a zoo model name (needs ``zoo``), a checkpoint path (file or snapshot folder), an
            ``nn.Module``, a :class:`~weightzoo.zoo.formats.Checkpoint`, or a mapping of tensors (returned as is).
        zoo: a :class:`~weightzoo.zoo.store.Zoo` or its folder, to look names up in.

    A string that is both an existing path and a model in ``zoo`` raises
    :class:`~weightzoo.errors.AmbiguousModelError`; prefix ``./`` to mean the path.
    """
    from .formats import Checkpoint, open_checkpoint

    if isinstance(source, Mapping):
        return source
    if isinstance(source, torch.nn.Module):
        return source.state_dict()
    if isinstance(source, Checkpoint):
        return source.state_dict()
    if not isinstance(source, str | os.PathLike):
        raise TypeError(f"cannot read weights from a {type(source).__name__}")
    ref = os.fspath(source)
    explicit_path = isinstance(source, Path) or ref.startswith(("./", "../", "/"))
    z = None if explicit_path else _as_zoo(zoo)
    in_zoo = z is not None and z.has_model(ref)
    if in_zoo and os.path.exists(ref):
        raise AmbiguousModelError(ref)
    if in_zoo:
        assert z is not None
        return z.state_dict(ref)
    if os.path.exists(ref):
        return open_checkpoint(ref).state_dict()
    if z is not None:
        raise ModelNotFoundError(ref, z.path)
    raise FileNotFoundError(f"no such checkpoint: {ref}")


__all__ = ["load_state_dict"]
