"""Sharded checkpoints: a ``*.index.json`` whose ``weight_map`` sends each tensor name to a shard file.

The index is checked like any other untrusted input: strict JSON (no duplicate names), every shard name
contained in the index's folder (no ``..``, no absolute path, no symlink out), every shard present, and
the shards' own tensor tables agreeing with the index exactly — a tensor the index maps to a shard that
lacks it, or a shard holding a tensor the index does not map to it, is an error rather than a silent
hole or an extra weight.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import torch

from weightzoo.errors import CheckpointError, NoWeightsError

from ._json import loads_strict
from .base import Checkpoint, TensorInfo
from .paths import allowed_root, safe_member

#: Most shard files an index may name.
MAX_SHARDS = 10_000


class ShardedCheckpoint(Checkpoint):
    """Several shard checkpoints behind one tensor table (format ``"<shard format>-sharded"``)."""

    def __init__(self, path: Path, shards: dict[str, Checkpoint], owner: dict[str, str],
                 metadata: dict[str, str]) -> None:
        self._shards = shards
        self._owner = owner
        formats = sorted({s.format for s in shards.values()})
        fmt = f"{formats[0]}-sharded" if len(formats) == 1 else "mixed-sharded"
        tensors: list[TensorInfo] = [t for s in shards.values() for t in s.tensors]
        super().__init__(path=path, format=fmt, tensors=tensors, metadata=metadata)

    def _shard(self, name: str) -> Checkpoint:
        return self._shards[self._owner[name]]  # KeyError for unknown names, like info()

    def read_bytes(self, name: str) -> memoryview:
        return self._shard(name).read_bytes(name)

    def read(self, name: str) -> torch.Tensor:
        return self._shard(name).read(name)

    @property
    def shard_files(self) -> list[str]:
        """The shard file names, in index order."""
        return list(self._shards)

    def close(self) -> None:
        for s in self._shards.values():
            s.close()


def open_sharded(index_path: str | os.PathLike[str], open_file: Callable[[Path], Checkpoint], *,
                 root: Path | None = None, max_index_bytes: int = 100 * 2**20) -> ShardedCheckpoint:
    """Open the sharded checkpoint described by ``index_path``.

    Args:
        index_path: a ``*.safetensors.index.json`` or ``pytorch_model.bin.index.json``.
        open_file: opens one shard file (the caller's format dispatch, with its limits).
        root: shard files must resolve inside this folder (default: the index's folder, or the whole
            repository folder of a Hugging Face cache snapshot).
        max_index_bytes: refuse larger index files.

    Raises:
        UnsafeCheckpointError: a shard name escapes the folder.
        CheckpointError: malformed index, a missing shard, or shards that disagree with the index.
        NoWeightsError: an empty ``weight_map``.
    """
    p = Path(index_path)
    folder = p.parent
    root = allowed_root(folder) if root is None else root
    size = p.stat().st_size
    if size > max_index_bytes:
        raise CheckpointError(p, f"index of {size} bytes exceeds the limit of {max_index_bytes}")
    doc = loads_strict(p.read_bytes(), p, "index")
    if not isinstance(doc, dict) or not isinstance(doc.get("weight_map"), dict):
        raise CheckpointError(p, "index has no 'weight_map' object")
    weight_map: dict[str, object] = doc["weight_map"]
    if not weight_map:
        raise NoWeightsError(p, "index maps no tensors")
    by_shard: dict[str, list[str]] = {}
    for name, shard in weight_map.items():
        if not isinstance(shard, str):
            raise CheckpointError(p, f"weight_map entry is a {type(shard).__name__}, not a file name", tensor=name)
        by_shard.setdefault(shard, []).append(name)
    if len(by_shard) > MAX_SHARDS:  # before resolving any name: 1.5 M shard names cost minutes to resolve
        raise CheckpointError(p, f"index names {len(by_shard)} shard files (limit {MAX_SHARDS}); real checkpoints "
                              "have at most a few thousand")
    raw_meta = doc.get("metadata") or {}
    if not isinstance(raw_meta, dict):
        raise CheckpointError(p, "index 'metadata' is not an object")
    metadata = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in raw_meta.items()}

    # Check every name before opening any file: one bad entry refuses the whole index.
    files = {shard: safe_member(folder, shard, root=root, what="weight_map entry") for shard in by_shard}
    for shard, f in files.items():
        if not f.is_file():
            raise CheckpointError(p, f"weight_map names shard {shard!r}, which does not exist")
    shards: dict[str, Checkpoint] = {}
    try:
        for shard, f in files.items():
            ckpt = open_file(f)
            shards[shard] = ckpt
            have = {t.name for t in ckpt.tensors}
            want = set(by_shard[shard])
            if want - have:
                missing = sorted(want - have)[0]
                raise CheckpointError(p, f"index maps it to shard {shard!r}, which does not hold it", tensor=missing)
            if have - want:
                extra = sorted(have - want)[0]
                raise CheckpointError(p, f"shard {shard!r} holds it but the index does not map it there",
                                      tensor=extra)
        owner = {name: shard for shard, names in by_shard.items() for name in names}
        return ShardedCheckpoint(p, shards, owner, metadata)
    except BaseException:
        for s in shards.values():
            s.close()
        raise


__all__ = ["MAX_SHARDS", "ShardedCheckpoint", "open_sharded"]
