"""The zoo's catalogue: SQLite schema, connection settings and the records read from it.

One SQLite file (WAL mode, so readers never block the writer) holds models, their tensor tables, the
content-addressed blobs and the packs that hold them, free-form metadata, lineage edges and crawl state.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from weightzoo.errors import InvalidNameError

if TYPE_CHECKING:
    from weightzoo.zoo.formats.base import TensorInfo

SCHEMA_VERSION = 2  # 2: small blobs in byte segments (blobs.dataset, blobs.offset)

SCHEMA = """
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS packs (
    name TEXT PRIMARY KEY, nbytes INTEGER NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (
    hash TEXT PRIMARY KEY, pack TEXT NOT NULL REFERENCES packs(name),
    dataset TEXT NOT NULL, offset INTEGER,  -- offset: NULL for a whole dataset, else a slice of a segment
    dtype TEXT NOT NULL, shape TEXT NOT NULL, nbytes INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS blobs_pack ON blobs(pack);
CREATE TABLE IF NOT EXISTS models (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    revision TEXT NOT NULL DEFAULT '',
    source TEXT, format TEXT, repo_id TEXT,
    spec TEXT, config TEXT,
    library TEXT, model_type TEXT, architecture TEXT,
    parameter_count INTEGER NOT NULL DEFAULT 0, nbytes INTEGER NOT NULL DEFAULT 0,
    license TEXT, tags TEXT NOT NULL DEFAULT '[]',
    ingested INTEGER NOT NULL, nonfinite_tensors INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    UNIQUE (name, revision));
CREATE TABLE IF NOT EXISTS tensors (
    model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL, name TEXT NOT NULL, dtype TEXT NOT NULL, shape TEXT NOT NULL,
    numel INTEGER NOT NULL, hash TEXT, nan_count INTEGER, inf_count INTEGER,
    PRIMARY KEY (model_id, name));
CREATE INDEX IF NOT EXISTS tensors_hash ON tensors(hash);
CREATE TABLE IF NOT EXISTS metadata (
    model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (model_id, key));
CREATE INDEX IF NOT EXISTS metadata_key_value ON metadata(key, value);
CREATE INDEX IF NOT EXISTS models_library ON models(library);
CREATE TABLE IF NOT EXISTS lineage (
    child TEXT NOT NULL, parent TEXT NOT NULL, relation TEXT NOT NULL,
    evidence TEXT, created_at REAL NOT NULL, PRIMARY KEY (child, parent, relation));
CREATE INDEX IF NOT EXISTS lineage_parent ON lineage(parent);
CREATE TABLE IF NOT EXISTS crawl_state (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at REAL NOT NULL);
"""


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, foreign keys on."""
    conn = sqlite3.connect(path, timeout=60.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=60000")
    return conn


_BAD_NAME = re.compile(r"[\x00-\x1f\x7f]")


def split_ref(ref: str) -> tuple[str, str | None]:
    """``"org/name@sha"`` → ``("org/name", "sha")``; a bare name → ``(name, None)``."""
    if "@" in ref:
        name, _, rev = ref.rpartition("@")
        if name and rev:
            return name, rev
    return ref, None


def check_name(name: str) -> str:
    """Validate a model name (a Hub repo id, a file stem, or a user's choice)."""
    if not isinstance(name, str) or not name or name != name.strip():
        raise InvalidNameError(f"invalid model name {name!r}: empty or padded with spaces")
    if len(name) > 512:
        raise InvalidNameError(f"invalid model name {name[:40]!r}...: longer than 512 characters")
    if _BAD_NAME.search(name):
        raise InvalidNameError(f"invalid model name {name!r}: control characters")
    if "@" in name:
        raise InvalidNameError(f"invalid model name {name!r}: '@' separates a revision; pass revision= instead")
    return name


@dataclass(frozen=True)
class TensorRecord:
    """One row of a model's tensor table."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    numel: int
    hash: str | None  # None for metadata-only models (no bytes stored)
    nan_count: int | None
    inf_count: int | None

    @property
    def finite(self) -> bool:
        return not (self.nan_count or self.inf_count)


@dataclass(frozen=True)
class ModelRecord:
    """One model in the zoo: identity, provenance, architecture, size and free-form metadata."""

    name: str
    revision: str | None
    source: str | None
    format: str | None
    repo_id: str | None
    spec: dict[str, Any] | None
    config: dict[str, Any] | None
    library: str | None
    model_type: str | None
    architecture: str | None
    parameter_count: int
    nbytes: int
    license: str | None
    tags: tuple[str, ...]
    ingested: bool
    nonfinite_tensors: int
    created_at: float
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """The name that designates exactly this entry (``name@revision`` when it has a revision)."""
        return f"{self.name}@{self.revision}" if self.revision else self.name

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["tags"] = list(self.tags)
        d["ref"] = self.ref
        return d


MODEL_COLUMNS = (
    "id, name, revision, source, format, repo_id, spec, config, library, model_type, architecture, "
    "parameter_count, nbytes, license, tags, ingested, nonfinite_tensors, created_at"
)


def model_from_row(row: tuple[Any, ...], metadata: dict[str, Any]) -> ModelRecord:
    (_, name, revision, source, fmt, repo_id, spec, config, library, model_type, arch,
     n_params, nbytes, lic, tags, ingested, nonfinite, created) = row
    return ModelRecord(
        name=name, revision=revision or None, source=source, format=fmt, repo_id=repo_id,
        spec=json.loads(spec) if spec else None, config=json.loads(config) if config else None,
        library=library, model_type=model_type, architecture=arch, parameter_count=int(n_params),
        nbytes=int(nbytes), license=lic, tags=tuple(json.loads(tags)), ingested=bool(ingested),
        nonfinite_tensors=int(nonfinite), created_at=float(created), metadata=metadata,
    )


def tensor_from_row(row: tuple[Any, ...]) -> TensorRecord:
    name, dtype, shape, numel, h, nan, inf = row
    return TensorRecord(name=name, dtype=dtype, shape=tuple(json.loads(shape)), numel=int(numel), hash=h,
                        nan_count=nan, inf_count=inf)


def insert_model(c: sqlite3.Connection, row: dict[str, Any], tensors: list[tuple[TensorInfo, str | None, int | None,
                  int | None]], metadata: Mapping[str, Any]) -> None:
    """Insert one model row with its tensor table ``(info, hash, nan, inf)`` and metadata (inside a transaction)."""
    spec, config = row.pop("spec"), row.pop("config")
    row.update(spec=json.dumps(dict(spec), sort_keys=True) if spec is not None else None,
               config=json.dumps(dict(config), sort_keys=True) if config is not None else None,
               tags=json.dumps(list(row["tags"])), parameter_count=sum(i.numel for i, *_ in tensors),
               nbytes=sum(i.nbytes for i, *_ in tensors))
    cols = ", ".join(row)
    mid = c.execute(f"INSERT INTO models ({cols}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())).lastrowid
    c.executemany("INSERT INTO tensors VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  [(mid, k, i.name, i.dtype, json.dumps(list(i.shape)), i.numel, h, n, f)
                   for k, (i, h, n, f) in enumerate(tensors)])
    c.executemany("INSERT INTO metadata VALUES (?, ?, ?)",
                  [(mid, k, json.dumps(v, sort_keys=True)) for k, v in metadata.items()])


__all__ = ["ModelRecord", "TensorRecord", "check_name", "connect", "insert_model", "split_ref"]
