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

from weightzoo.errors import InvalidOptionError
from weightzoo.zoo.formats.base import Checkpoint


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
            from weightzoo.zoo.arch import class_reference, class_spec, spec_from_module
        except ImportError:
            return None
        try:
            return spec_from_module(source)
        except WeightzooError:
            ref = class_reference(source)  # a class-based module: rebuilt from its importable class
            return class_spec(ref) if ref is not None else None
    return None


def check_json(value: Any, what: str) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidOptionError(f"{what} must be JSON-serialisable (plain numbers, strings, lists, dicts): {exc}") from exc


__all__ = ["IngestItem", "check_json", "default_name", "library_of", "spec_for"]
