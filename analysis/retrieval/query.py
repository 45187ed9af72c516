"""Turn whatever a user hands us into the ComputeGraph retrieval compares: an ``nn.Module``, a spec or a
Hugging Face ``config.json`` (mapping or file), a zoo model name, a checkpoint path (with a spec), or a
``pkg.module:Class`` reference to a class that builds with no arguments.

Specs and configs go through the project's one spec rule (:func:`weightzoo.zoo.store.resolve_spec`,
which uses :func:`~weightzoo.zoo.store.classify_ref` for MODEL-or-path and
:func:`~weightzoo.zoo.arch.load_spec_file` for JSON files). Hugging Face models and class references are
built on the ``meta`` device — a compute graph needs shapes, not weights, so no weight is materialised
however big the model — falling back to the CPU only if a forward pass on ``meta`` tensors fails.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from weightzoo.errors import ComputeGraphError, RetrievalError, SpecError
from weightzoo.zoo.arch import HF_FORMAT, build_module
from weightzoo.zoo.graphs import ComputeGraph
from weightzoo.zoo.store import ZooLike, resolve_spec

_CLASS_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
#: virtual edges are not used by retrieval: the smallest cutoff keeps recording cheap
RETRIEVAL_CUTOFF = 1


def spec_hash(spec: Mapping[str, Any]) -> str:
    """A stable 16-hex-digit hash of a spec's canonical JSON (the graph cache key)."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def is_class_ref(ref: str) -> bool:
    """Whether ``ref`` looks like ``pkg.module:Class`` (and is not an existing path)."""
    return bool(_CLASS_REF.match(ref)) and not os.path.exists(ref)


def _record(module_factory: Any, *, spec: Mapping[str, Any] | None, metadata: dict[str, Any]) -> ComputeGraph:
    """Build on ``meta`` and record; rebuild on the CPU when the meta pass fails."""
    try:
        with torch.device("meta"):
            module = module_factory()
        return ComputeGraph.record(module, spec=spec, cutoff=RETRIEVAL_CUTOFF, metadata=metadata)
    except (RuntimeError, NotImplementedError, ComputeGraphError, TypeError, ValueError):
        module = module_factory()
        return ComputeGraph.record(module, spec=spec, cutoff=RETRIEVAL_CUTOFF, metadata=metadata)


def graph_of_spec(spec: Mapping[str, Any], *, cache: str | os.PathLike[str] | None = None) -> ComputeGraph:
    """The ComputeGraph of an architecture spec, read from / written to ``cache`` (a folder of
    ``<spec hash>.safetensors`` files) when given."""
    path = Path(cache) / f"{spec_hash(spec)}.safetensors" if cache is not None else None
    if path is not None and path.is_file():
        try:
            return ComputeGraph.load(path)
        except Exception:  # noqa: BLE001 - a damaged cache entry is rebuilt, never trusted
            pass
    if spec.get("format") == HF_FORMAT:
        graph = _record(lambda: build_module(spec), spec=spec, metadata={})
    else:
        graph = ComputeGraph.record(build_module(spec), spec=spec, cutoff=RETRIEVAL_CUTOFF)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        graph.save(path)
    return graph


def graph_of_class(ref: str) -> ComputeGraph:
    """Import ``pkg.module:Class``, build it with no arguments (on ``meta``) and record it."""
    module_name, _, class_name = ref.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise SpecError(f"cannot import {ref}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise SpecError(f"{ref} is not an nn.Module class")
    try:
        return _record(cls, spec=None, metadata={"class": ref})
    except TypeError as exc:
        raise SpecError(f"{ref} does not build without arguments ({exc}); build it yourself and pass the "
                        "module to weightzoo.analysis.retrieval from Python") from exc


def query_graph(query: Any, *, zoo: ZooLike | None = None, spec: str | os.PathLike[str] | Mapping[str, Any] | None = None,
                cache: str | os.PathLike[str] | None = None) -> ComputeGraph:
    """The ComputeGraph of a retrieval query.

    Args:
        query: an ``nn.Module``; a ``ComputeGraph`` (returned as is); a spec or ``config.json`` mapping; or a
            string: ``pkg.module:Class``, a zoo model name (with ``zoo``), a spec / ``config.json`` file, a
            checkpoint path (its folder's ``config.json``, or ``spec``).
        zoo: the zoo to look names up in. spec: the architecture of a checkpoint path (file or mapping).
        cache: folder of cached graphs (see :func:`graph_of_spec`).
    """
    if isinstance(query, ComputeGraph):
        return query
    if isinstance(query, nn.Module):
        return ComputeGraph.record(query, cutoff=RETRIEVAL_CUTOFF, metadata={"class": type(query).__name__})
    if isinstance(query, Mapping):
        return graph_of_spec(resolve_spec("", spec=query), cache=cache)
    if not isinstance(query, str | os.PathLike):
        raise RetrievalError(f"cannot retrieve by a {type(query).__name__}: pass an nn.Module, a spec, a "
                             "config.json, a zoo model name or 'pkg.module:Class'")
    ref = os.fspath(query)
    if spec is None and is_class_ref(ref):
        return graph_of_class(ref)
    return graph_of_spec(resolve_spec(ref, zoo=zoo, spec=spec), cache=cache)


__all__ = ["RETRIEVAL_CUTOFF", "graph_of_class", "graph_of_spec", "is_class_ref", "query_graph", "spec_hash"]
