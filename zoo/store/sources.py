"""What an ingest source implies for the catalogue: its default name, its library, its architecture spec.

Kept apart from the store so the rules are easy to find: a file or folder is named by its stem, a Hugging
Face snapshot's spec is its config plus class name, a module's spec comes from :mod:`weightzoo.zoo.arch`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from weightzoo.errors import CheckpointError, InvalidOptionError
from weightzoo.zoo.formats._json import json_problem
from weightzoo.zoo.formats.base import Checkpoint

from .catalog import check_name


@dataclass
class IngestItem:
    """One model to ingest: its opened checkpoint and what the catalogue will record."""

    ckpt: Checkpoint
    name: str
    revision: str | None
    metadata: dict[str, Any]
    spec: dict[str, Any] | None
    replace: bool
    source: str
    extra: dict[str, Any]


_CHECKPOINT_SUFFIXES = (".safetensors.index.json", ".bin.index.json", ".pth.index.json", ".safetensors", ".bin",
                        ".pt", ".pth", ".ckpt")


def default_name(source: Any, ckpt: Checkpoint) -> str:
    """A folder's name, or a file's name without its checkpoint suffix (``run.epoch2.pt`` → ``run.epoch2``)."""
    if isinstance(source, str | os.PathLike) or ckpt.path is not None:
        p = Path(source if isinstance(source, str | os.PathLike) else ckpt.path).resolve()  # type: ignore[arg-type]
        if p.is_dir():
            return p.name
        for suffix in _CHECKPOINT_SUFFIXES:
            if p.name.endswith(suffix) and len(p.name) > len(suffix):
                return p.name[: -len(suffix)]
        return p.stem or p.name
    return "module" if isinstance(source, torch.nn.Module) else "state_dict"


def library_of(ckpt: Checkpoint) -> str | None:
    if ckpt.path is not None and Path(ckpt.path).is_dir():
        folder = Path(ckpt.path)
        if (folder / "modules.json").is_file() or (folder / "config_sentence_transformers.json").is_file():
            return "sentence-transformers"
        if (folder / "adapter_config.json").is_file():
            return "peft"
    if ckpt.config is not None:
        return "transformers"
    if ckpt.format in ("module", "state-dict", "torch-zip", "torch-legacy"):
        return "torch"
    return None


def spec_for(source: Any, ckpt: Checkpoint) -> dict[str, Any] | None:
    """The architecture spec implied by the source: HF config + class, or our own spec of a module."""
    if ckpt.config is not None and ckpt.architecture:
        return {"format": "hf", "class": ckpt.architecture, "config": ckpt.config}
    if isinstance(source, torch.nn.Module):
        try:
            from weightzoo.errors import WeightzooError
            from weightzoo.zoo.arch import class_reference, class_spec, hf_module_spec, spec_from_module
        except ImportError:
            return None
        hf = hf_module_spec(source)  # a transformers model object: rebuilt from its config
        if hf is not None:
            return hf
        try:
            return spec_from_module(source)
        except WeightzooError:
            ref = class_reference(source)  # a class-based module: rebuilt from its importable class
            return class_spec(ref) if ref is not None else None
    return None


#: Catalogue fields an ingest item may set besides name, revision, metadata, spec and replace.
EXTRA_FIELDS = frozenset({"repo_id", "license", "tags", "library", "model_type", "architecture"})


def open_item(it: dict[str, Any]) -> IngestItem:
    """Open one ingest item (the keyword arguments of ``Zoo.ingest``, consumed) and validate it."""
    from weightzoo.zoo.formats import open_checkpoint

    source = it.pop("source")
    ckpt = source if isinstance(source, Checkpoint) else open_checkpoint(source)
    try:
        name = it.pop("name", None)
        if name is None:
            name = default_name(source, ckpt)
        check_name(name)
        revision = it.pop("revision", None) or None
        metadata = dict(it.pop("metadata", None) or {})
        check_json(metadata, "metadata")
        spec = it.pop("spec", None)
        if spec is None:
            spec = spec_for(source, ckpt)
        if spec is not None:
            spec = dict(spec)
            check_json(spec, "spec")
        if ckpt.config is not None:  # stored per model and read by every `ls`: bounded, finite, valid Unicode
            from weightzoo.zoo.formats._json import MAX_DEPTH
            from weightzoo.zoo.formats.snapshot import MAX_CONFIG_BYTES

            try:
                check_json(ckpt.config, "config.json", max_bytes=MAX_CONFIG_BYTES, max_depth=MAX_DEPTH)
            except InvalidOptionError as exc:
                raise CheckpointError(ckpt.path, str(exc)) from None
        replace = bool(it.pop("replace", False))
        src = str(Path(ckpt.path).resolve()) if ckpt.path is not None else ckpt.format
        # The source is provenance text: a file name in an invalid encoding is kept, its bad bytes escaped.
        src = os.fsencode(src).decode("utf-8", "backslashreplace")
        unknown = set(it) - EXTRA_FIELDS
        if unknown:
            raise TypeError(f"unknown ingest fields: {sorted(unknown)}")
    except BaseException:
        if not isinstance(source, Checkpoint):
            ckpt.close()
        raise
    return IngestItem(ckpt, name, revision, metadata, spec, replace, src, it)


def catalog_fields(it: IngestItem) -> dict[str, Any]:
    """The catalogue columns of an ingested item (what its checkpoint implies, overridden by the item)."""
    ck = it.ckpt
    return dict(source=it.source, format=ck.format, repo_id=it.extra.get("repo_id"), spec=it.spec, config=ck.config,
                library=it.extra.get("library") or library_of(ck),
                model_type=it.extra.get("model_type") or ck.model_type,
                architecture=it.extra.get("architecture") or ck.architecture,
                license=it.extra.get("license"), tags=list(it.extra.get("tags") or []))


#: Most JSON bytes stored per model for its free-form metadata (and for a spec); a config may take
#: :data:`~weightzoo.zoo.formats.snapshot.MAX_CONFIG_BYTES`. Every later ``ls`` reads them all.
MAX_METADATA_BYTES = 1 * 2**20
#: Deepest nesting of a metadata value (a hyperparameter dict of dicts is 3 or 4 deep).
MAX_METADATA_DEPTH = 32


def check_json(value: Any, what: str, *, max_bytes: int = MAX_METADATA_BYTES, max_depth: int = MAX_METADATA_DEPTH) -> None:
    """Refuse a value the catalogue must not store: not JSON, nested deeper than ``max_depth``, a non-finite
    number (``1e400`` is ``inf``: stored, it would break every later ``ls --json``), a string that is not
    valid Unicode, or more than ``max_bytes`` of JSON. Raises :class:`~weightzoo.errors.InvalidOptionError`."""
    problem = json_problem(value, max_depth=max_depth)
    if problem:
        raise InvalidOptionError(f"{what} cannot be stored: {problem}")
    try:
        size = len(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidOptionError(f"{what} must be JSON-serialisable (plain numbers, strings, lists, dicts): {exc}") from None
    if size > max_bytes:
        raise InvalidOptionError(f"{what} takes {size} bytes of JSON, more than the {max_bytes} stored per model")


__all__ = ["EXTRA_FIELDS", "MAX_METADATA_BYTES", "MAX_METADATA_DEPTH", "IngestItem", "catalog_fields", "check_json",
           "default_name", "library_of", "open_item", "spec_for"]
