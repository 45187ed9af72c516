"""Checkpoint readers: validated safetensors, sharded indexes, HF snapshot folders, safe torch pickles,
``nn.Module`` and state dicts — all behind one :func:`open_checkpoint`.

What is read and what is refused (and why) is written down in ``docs/formats.md``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from weightzoo.errors import UnsupportedFormatError, WeightzooError

from .base import Checkpoint, TensorInfo
from .memory import TensorDictCheckpoint, from_module, from_state_dict
from .paths import check_input_path, read_error
from .safetensors import MAX_HEADER_BYTES, SafetensorsCheckpoint, parse_header
from .sharded import ShardedCheckpoint, open_sharded
from .snapshot import MAX_CONFIG_BYTES, open_snapshot
from .sniff import JSON, SAFETENSORS, sniff_format
from .torch_pickle import (
    MAX_LEGACY_BYTES,
    MAX_ZIP_MEMBERS,
    inspect_torch_zip,
    load_torch_file,
    select_tensors,
)


def open_checkpoint(source: Any, *, allow_pickle: bool = True, max_header_bytes: int = MAX_HEADER_BYTES,
                    max_legacy_bytes: int = MAX_LEGACY_BYTES, max_zip_members: int = MAX_ZIP_MEMBERS) -> Checkpoint:
    """Open any checkpoint weightzoo reads, validating it before trusting it.

    Args:
        source: a ``.safetensors`` file; a ``*.index.json`` of a sharded checkpoint; a Hugging Face
            snapshot folder; a PyTorch ``.bin``/``.pt``/``.pth`` (zip or legacy format); an
            ``nn.Module`` (its ``state_dict()``); a ``Mapping[str, Tensor]``; or a :class:`Checkpoint`
            (returned as is).
        allow_pickle: read PyTorch pickles (always through ``torch.load(weights_only=True)``, after our
            own zip checks). ``False`` refuses them outright. Default ``True``.
        max_header_bytes: largest safetensors header, index or ``config.json`` read (default 100 MiB),
            checked before anything is allocated.
        max_legacy_bytes: largest legacy-format (pre-1.6) torch file, which is read whole (default 8 GiB).
        max_zip_members: most members a torch zip may have (default 200,000).

    Returns:
        a :class:`Checkpoint`; its ``format`` is ``"safetensors"``, ``"<shard format>-sharded"``,
        ``"torch-zip"``, ``"torch-legacy"``, ``"module"`` or ``"state-dict"``; a snapshot folder
        reports the format of its weights and sets ``config``.

    Raises:
        NoWeightsError: no such path, or a folder/file without weights.
        UnsupportedFormatError: an unknown format, content that disagrees with the extension, a legacy
            tar checkpoint, or a pickle while ``allow_pickle=False``.
        UnsafeCheckpointError: code in a pickle, a zip bomb or compressed zip members, a path escaping
            the snapshot.
        CheckpointError: anything corrupt, truncated or inconsistent (see ``docs/formats.md``).
    """
    if isinstance(source, Checkpoint):
        return source
    if isinstance(source, torch.nn.Module):
        return from_module(source)
    if isinstance(source, Mapping):
        return from_state_dict(source)
    if not isinstance(source, str | os.PathLike):
        raise UnsupportedFormatError(None, f"cannot read weights from a {type(source).__name__}")
    path = Path(source)
    st = check_input_path(path, "file or folder")

    def open_file(p: Path, root: Path | None = None, *, allow_index: bool = True) -> Checkpoint:
        if not stat.S_ISREG(check_input_path(p).st_mode):
            raise UnsupportedFormatError(p, "is a folder, not a checkpoint file")
        fmt = sniff_format(p)
        if fmt == JSON:
            if not (allow_index and p.name.endswith(".index.json")):
                raise UnsupportedFormatError(p, "a JSON file that is not a sharded checkpoint's *.index.json")
            return open_sharded(p, lambda shard: open_file(shard, allow_index=False), root=root,
                                max_index_bytes=max_header_bytes)
        if fmt == SAFETENSORS:
            return SafetensorsCheckpoint(p, max_header_bytes=max_header_bytes)
        if not allow_pickle:
            raise UnsupportedFormatError(p, f"{fmt} is a pickle-based format and allow_pickle=False")
        return load_torch_file(p, fmt, max_legacy_bytes=max_legacy_bytes, max_members=max_zip_members)

    try:
        if stat.S_ISDIR(st.st_mode):
            return open_snapshot(path, lambda p, root: open_file(p, root), allow_pickle=allow_pickle,
                                 max_config_bytes=min(max_header_bytes, MAX_CONFIG_BYTES))
        return open_file(path)
    except WeightzooError:
        raise
    except OSError as exc:  # permission denied half-way, a loop inside a snapshot, an I/O error
        raise read_error(getattr(exc, "filename", None) or path, exc) from None


__all__ = [
    "Checkpoint",
    "ShardedCheckpoint",
    "SafetensorsCheckpoint",
    "TensorDictCheckpoint",
    "TensorInfo",
    "inspect_torch_zip",
    "open_checkpoint",
    "parse_header",
    "select_tensors",
    "sniff_format",
]
