"""Hugging Face snapshot folders: find the weights, read ``config.json``, ignore everything else.

Which weights, in order of preference (the first kind present wins; safetensors before pickles because
they need no unpickling and map without copies):

1. ``model.safetensors.index.json`` (or the only ``*.safetensors.index.json``)
2. ``model.safetensors`` (or the only ``*.safetensors``)
3. ``pytorch_model.bin.index.json`` (or the only ``*.bin.index.json``)
4. ``pytorch_model.bin`` (or the only ``*.bin``/``*.pt``/``*.pth``, training leftovers such as
   ``training_args.bin`` and ``optimizer.pt`` excluded)

Two candidates of one kind and no canonical name among them is ambiguous and refused. Tokenizers, cards,
ONNX/TF/Flax exports and subfolders are ignored. Only top-level files are considered; each is checked
with :func:`~weightzoo.zoo.formats.paths.safe_member` (a symlink escaping the snapshot is refused; in a
Hugging Face cache, links into the repository's ``blobs/`` are what snapshots are made of and are fine).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from weightzoo.errors import CheckpointError, NoWeightsError, UnsupportedFormatError

from ._json import loads_strict
from .base import Checkpoint
from .paths import allowed_root, safe_member

#: Pickled files that sit next to weights in training outputs but are not weights.
NOT_WEIGHTS = frozenset({"training_args.bin", "optimizer.pt", "optimizer.bin", "scheduler.pt", "scaler.pt",
                         "trainer_state.bin"})

_KINDS: list[tuple[str, str, tuple[str, ...], bool]] = [
    # (what, canonical name, suffixes, is a pickle format)
    ("safetensors index", "model.safetensors.index.json", (".safetensors.index.json",), False),
    ("safetensors file", "model.safetensors", (".safetensors",), False),
    ("pytorch index", "pytorch_model.bin.index.json", (".bin.index.json",), True),
    ("pytorch file", "pytorch_model.bin", (".bin", ".pt", ".pth"), True),
]


def _candidates(names: list[str], canonical: str, suffixes: tuple[str, ...]) -> list[str]:
    if canonical in names:
        return [canonical]
    return sorted(n for n in names if n.endswith(suffixes) and n not in NOT_WEIGHTS
                  and not n.startswith("rng_state"))


def find_weights(folder: Path, *, allow_pickle: bool = True) -> Path:
    """The weights file (or index) of a snapshot folder, by the preference order above.

    Raises:
        NoWeightsError: no weights file of any kind.
        UnsupportedFormatError: only pickled weights, and ``allow_pickle`` is off.
        CheckpointError: several candidates of the preferred kind, none canonical.
        UnsafeCheckpointError: the chosen file is a symlink out of the snapshot.
    """
    names = sorted(e.name for e in os.scandir(folder) if e.is_file())  # follows symlinks, checked below
    root = allowed_root(folder)
    skipped_pickles: list[str] = []
    for what, canonical, suffixes, is_pickle in _KINDS:
        found = _candidates(names, canonical, suffixes)
        if not found:
            continue
        if is_pickle and not allow_pickle:
            skipped_pickles += found
            continue
        if len(found) > 1:
            raise CheckpointError(folder, f"ambiguous: several {what}s {found} and no {canonical}")
        return safe_member(folder, found[0], root=root, what="weights file")
    if skipped_pickles:
        raise UnsupportedFormatError(folder, f"only pickled weights {skipped_pickles}, and allow_pickle=False")
    raise NoWeightsError(folder, "no weights in this folder (looked for *.safetensors[.index.json], "
                         "pytorch_model.bin[.index.json], *.bin/*.pt/*.pth)")


def read_config(folder: Path, *, max_bytes: int = 100 * 2**20) -> dict[str, Any] | None:
    """The folder's ``config.json`` as a dict (``None`` when there is none), strictly parsed."""
    if not (folder / "config.json").is_file():
        return None
    p = safe_member(folder, "config.json", what="config file")
    size = p.stat().st_size
    if size > max_bytes:
        raise CheckpointError(p, f"config.json of {size} bytes exceeds the limit of {max_bytes}")
    config = loads_strict(p.read_bytes(), p, "config.json")
    if not isinstance(config, dict):
        raise CheckpointError(p, f"config.json holds a JSON {type(config).__name__}, not an object")
    return config


def open_snapshot(folder: str | os.PathLike[str], open_weights: Callable[[Path, Path], Checkpoint], *,
                  allow_pickle: bool = True, max_config_bytes: int = 100 * 2**20) -> Checkpoint:
    """Open a snapshot folder: its weights (via ``open_weights(file, root)``) with ``config`` set.

    The returned checkpoint reports the format of its weight files and has ``path`` = the folder.
    """
    f = Path(folder)
    weights = find_weights(f, allow_pickle=allow_pickle)
    config = read_config(f, max_bytes=max_config_bytes)
    ckpt = open_weights(weights, allowed_root(f))
    ckpt.config = config
    ckpt.path = f
    return ckpt


__all__ = ["NOT_WEIGHTS", "find_weights", "open_snapshot", "read_config"]
