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
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from weightzoo.errors import CheckpointError, NoWeightsError, UnsupportedFormatError

from ._json import loads_strict
from .base import Checkpoint
from .paths import allowed_root, check_input_path, read_error, safe_member

#: Largest ``config.json`` read (and stored in the catalogue): configs are kilobytes, a 99 MB one is an attack.
MAX_CONFIG_BYTES = 4 * 2**20

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
    # Everything that is not a folder is a candidate (a FIFO or a symlink loop named model.safetensors is
    # refused by name when it is opened, rather than skipped in favour of another file).
    names = sorted(e.name for e in os.scandir(folder) if not _is_dir(e))
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


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def read_config(folder: Path, *, max_bytes: int = MAX_CONFIG_BYTES) -> dict[str, Any] | None:
    """The folder's ``config.json`` as a dict (``None`` when there is none), strictly parsed.

    Bounded: at most ``max_bytes`` (default 4 MiB; real configs are kilobytes), checked before reading;
    strict JSON with bounded depth and container count, finite numbers, valid Unicode (see ``_json``).
    """
    if not os.path.lexists(folder / "config.json"):
        return None
    p = safe_member(folder, "config.json", what="config file")
    st = check_input_path(p, "config.json")
    if not stat.S_ISREG(st.st_mode):
        raise CheckpointError(p, "config.json is a folder, not a file")
    if st.st_size > max_bytes:
        raise CheckpointError(p, f"config.json of {st.st_size} bytes exceeds the limit of {max_bytes}")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise read_error(p, exc, "config.json") from None
    config = loads_strict(raw, p, "config.json")
    if not isinstance(config, dict):
        raise CheckpointError(p, f"config.json holds a JSON {type(config).__name__}, not an object")
    return config


def open_snapshot(folder: str | os.PathLike[str], open_weights: Callable[[Path, Path], Checkpoint], *,
                  allow_pickle: bool = True, max_config_bytes: int = MAX_CONFIG_BYTES) -> Checkpoint:
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


__all__ = ["MAX_CONFIG_BYTES", "NOT_WEIGHTS", "find_weights", "open_snapshot", "read_config"]
