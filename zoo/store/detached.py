"""Detached models: where a model's tensors sit in the packs, so a worker can read them without the catalogue.

On a cluster only the driver opens the catalogue (SQLite WAL needs a local disk). For a zoo-wide analysis
the driver looks each model up once (:meth:`Zoo.detach <weightzoo.zoo.store.Zoo.detach>`) and hands the
worker a :class:`DetachedModel`: the packs folder and, per tensor, its dtype, shape, pack and place in the
pack. The worker's :meth:`DetachedModel.state_dict` is the same lazy mapping a ``Zoo`` gives — one tensor
read per access, the same bytes — reading the immutable packs directly (on a shared file system on a
cluster).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from weightzoo.errors import TensorNotFoundError, ZooCorruptError
from weightzoo.zoo.formats.base import LazyStateDict, TensorInfo

from .packs import BlobLocation, PackReader


@dataclass(frozen=True)
class DetachedTensor:
    """One tensor of a detached model: its table row and where its bytes are (``dataset`` None: a
    metadata-only model, no bytes; ``pack`` None with a ``dataset``: bytes recorded but in no pack)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    pack: str | None
    dataset: str | None
    offset: int | None


@dataclass(frozen=True)
class DetachedModel:
    """A model's tensor locations and catalogue fields, picklable and readable without the catalogue."""

    ref: str
    packs_dir: str
    tensors: tuple[DetachedTensor, ...]
    fields: dict[str, Any] = field(default_factory=dict)

    def state_dict(self) -> LazyStateDict:
        """The lazy name → tensor mapping, read from the packs (one tensor per access)."""
        return _DetachedStateDict(self)


class _DetachedStateDict(LazyStateDict):
    def __init__(self, model: DetachedModel) -> None:
        super().__init__(t.name for t in model.tensors)
        self._model = model
        self._by_name = {t.name: t for t in model.tensors}
        self._reader = PackReader(Path(model.packs_dir), max_open=4)

    def _load(self, name: str) -> torch.Tensor:
        t = self._by_name[name]
        if t.pack is None or t.dataset is None:
            if t.dataset is None:
                raise TensorNotFoundError(self._model.ref, name, "metadata-only model: no tensor bytes are stored")
            raise ZooCorruptError(f"model {self._model.ref!r}, tensor {name!r}: its blob is in no pack "
                                  "(run `weightzoo verify`)")
        return self._reader.read_tensor(t.pack, BlobLocation(t.dataset, t.offset), t.dtype, t.shape)

    def tensor_infos(self) -> list[TensorInfo]:
        return [TensorInfo(t.name, t.dtype, t.shape) for t in self._model.tensors]

    def __del__(self) -> None:
        self._reader.close()

    def __repr__(self) -> str:
        return f"<lazy state dict of {self._model.ref!r} (detached): {len(self._names)} tensors>"


__all__ = ["DetachedModel", "DetachedTensor"]
