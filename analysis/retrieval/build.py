"""Index a zoo: every model with an architecture (a spec, or a Hugging Face config — metadata-only Hub
records included) is recorded as a ComputeGraph (cached in ``<zoo>/retrieval/graphs/``), encoded and
added; the index is stored in ``<zoo>/retrieval/<encoder>-<hash>/``.

Incremental: an existing index of the same encoder keeps every entry whose spec hash is unchanged,
encodes only new or changed models and drops models no longer in the zoo, so it can be rebuilt as
models arrive.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from weightzoo.errors import ComputeGraphError, RetrievalError, SpecError, UnsupportedLayerError
from weightzoo.zoo.store import ModelRecord, ZooLike, resolve_spec, using_zoo

from .encoder import Encoder
from .index import RetrievalIndex
from .query import graph_of_spec, spec_hash

RETRIEVAL_DIR = "retrieval"


def index_dir(zoo_path: str | os.PathLike[str], encoder: Encoder) -> Path:
    """Where ``encoder``'s index of the zoo lives: ``<zoo>/retrieval/<name>-<hash>``."""
    fp = encoder.fingerprint()
    return Path(zoo_path) / RETRIEVAL_DIR / f"{fp['name']}-{fp['hash']}"


def graph_cache(zoo_path: str | os.PathLike[str]) -> Path:
    return Path(zoo_path) / RETRIEVAL_DIR / "graphs"


def family_of(record: ModelRecord) -> str | None:
    """A model's family: metadata ``family`` (the ``archs`` zoo), else its Hugging Face model type."""
    fam = record.metadata.get("family")
    if isinstance(fam, str):
        return fam
    if record.model_type:
        return record.model_type
    cfg = record.config or (record.spec or {}).get("config")
    mt = cfg.get("model_type") if isinstance(cfg, dict) else None
    return mt if isinstance(mt, str) else None


@dataclass
class BuildReport:
    """What :func:`build_index` did: the index, where it is, names added, kept, removed, and skipped (name → why)."""

    index: RetrievalIndex
    path: Path
    added: list[str] = field(default_factory=list)
    kept: int = 0
    removed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "encoder": self.index.fingerprint, "entries": len(self.index),
                "added": len(self.added), "kept": self.kept, "removed": len(self.removed), "skipped": self.skipped}


def build_index(zoo: ZooLike, encoder: Encoder, *, save: bool = True, progress: bool = False,
                batch_size: int = 64) -> BuildReport:
    """Index every model of ``zoo`` that has an architecture with ``encoder`` (incrementally; see the module
    docstring). Models whose architecture cannot be built or recorded are skipped and reported."""
    from tqdm.auto import tqdm

    with using_zoo(zoo) as z:
        where = index_dir(z.path, encoder)
        try:
            index = RetrievalIndex.load(where, encoder) if where.exists() else RetrievalIndex(encoder)
        except RetrievalError:
            index = RetrievalIndex(encoder)
        records = z.models()
        report = BuildReport(index, where)
        seen: dict[str, int] = {}
        for r in records:
            seen[r.name] = seen.get(r.name, 0) + 1
        present = {r.ref if seen[r.name] > 1 else r.name: r for r in records}
        report.removed = [n for n in index.names if n not in present]
        index.remove(report.removed)
        todo: list[tuple[str, dict[str, Any], ModelRecord]] = []
        for name, record in present.items():
            if record.spec is None and not record.config:
                report.skipped[name] = "no architecture (neither a spec nor a config)"
                continue
            try:
                spec = resolve_spec(name, zoo=z)
            except SpecError as exc:
                report.skipped[name] = str(exc)
                continue
            if name in index and index.spec_hash(name) == spec_hash(spec):
                report.kept += 1
                continue
            todo.append((name, spec, record))
        cache = graph_cache(z.path)
        batch: list[Any] = []
        for name, spec, record in tqdm(todo, desc=f"index ({encoder.name})", disable=not progress or not todo, unit="arch"):
            try:
                graph = graph_of_spec(spec, cache=cache)
            except (SpecError, ComputeGraphError, UnsupportedLayerError, RuntimeError, TypeError, ValueError) as exc:
                report.skipped[name] = f"{type(exc).__name__}: {exc}"
                continue
            batch.append((name, graph, family_of(record), spec_hash(spec)))
            report.added.append(name)
            if len(batch) >= batch_size:
                index.add_many(batch)
                batch = []
        index.add_many(batch)
        if save:
            index.save(where)
    return report


def load_index(zoo: ZooLike, encoder: Encoder) -> RetrievalIndex:
    """The stored index of ``zoo`` for ``encoder`` (:class:`~weightzoo.errors.RetrievalError` if none)."""
    with using_zoo(zoo) as z:
        return RetrievalIndex.load(index_dir(z.path, encoder), encoder)


__all__ = ["BuildReport", "RETRIEVAL_DIR", "build_index", "family_of", "graph_cache", "index_dir", "load_index"]
