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

SCHEMA_VERSION = 3  # 2: small blobs in byte segments (blobs.dataset, blobs.offset); 3: lineage.source, .confidence
#: The oldest released schema that :func:`migrate` upgrades in place (older ones came from pre-releases).
OLDEST_MIGRATABLE = 2

#: Where a lineage edge comes from: written by a card, a builder or a user (``declared``), or recovered
#: from the weights (``inferred``). Both kinds of the same edge live side by side; neither overwrites the other.
LINEAGE_SOURCES = ("declared", "inferred")

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
    evidence TEXT, created_at REAL NOT NULL,
    source TEXT NOT NULL DEFAULT 'declared', confidence REAL,
    PRIMARY KEY (child, parent, relation, source));
CREATE INDEX IF NOT EXISTS lineage_parent ON lineage(parent);
CREATE TABLE IF NOT EXISTS crawl_state (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at REAL NOT NULL);
"""


# v2 → v3: the lineage table gains ``source`` (every v2 edge was declared: a card, a builder or a user
# wrote it) and ``confidence``, and the source joins the primary key so an inferred edge can sit beside
# the declared one. SQLite cannot change a primary key in place, so the table is copied.
_V2_TO_V3 = """
CREATE TABLE lineage_v3 (
    child TEXT NOT NULL, parent TEXT NOT NULL, relation TEXT NOT NULL,
    evidence TEXT, created_at REAL NOT NULL,
    source TEXT NOT NULL DEFAULT 'declared', confidence REAL,
    PRIMARY KEY (child, parent, relation, source));
INSERT INTO lineage_v3 (child, parent, relation, evidence, created_at, source, confidence)
    SELECT child, parent, relation, evidence, created_at, 'declared', NULL FROM lineage;
DROP TABLE lineage;
ALTER TABLE lineage_v3 RENAME TO lineage;
CREATE INDEX IF NOT EXISTS lineage_parent ON lineage(parent);
"""

_MIGRATIONS = {2: _V2_TO_V3}  # from version → script to the next version


# A zoo this user may only read cannot be upgraded in place; its v2 lineage table is read through a
# temporary view of the v3 shape instead (SQLite resolves an unqualified name in ``temp`` first).
_V2_READ_VIEW = """
CREATE TEMP VIEW IF NOT EXISTS lineage AS
    SELECT child, parent, relation, evidence, created_at, 'declared' AS source, NULL AS confidence FROM main.lineage;
"""


def read_as_current(conn: sqlite3.Connection, version: int) -> None:
    """Make a read-only catalogue of an older released schema readable as the current one (no write)."""
    if version == 2:
        conn.executescript(_V2_READ_VIEW)


def migrate(conn: sqlite3.Connection, version: int) -> int:
    """Upgrade a catalogue from schema ``version`` to :data:`SCHEMA_VERSION` in one transaction.

    Every row is kept. The caller holds the writer lock. Returns the number of steps applied; raises
    ``KeyError`` for a version no step starts from (pre-releases, which :class:`Zoo` refuses first).
    """
    steps = [_MIGRATIONS[v] for v in range(version, SCHEMA_VERSION)]
    if not steps:
        return 0
    # executescript commits any open transaction first, so the script carries its own.
    try:
        conn.executescript("BEGIN IMMEDIATE;" + "".join(steps) +
                           f"UPDATE info SET value='{SCHEMA_VERSION}' WHERE key='schema';COMMIT;")
    except sqlite3.Error:
        if conn.in_transaction:  # a failed step leaves the v2 catalogue exactly as it was
            conn.execute("ROLLBACK")
        raise
    return len(steps)


def connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, foreign keys on.

    ``read_only`` opens the catalogue with ``mode=ro`` (a zoo this user may read but not write): queries
    work, and any write fails in SQLite rather than half-way through our own bookkeeping.
    """
    if read_only:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=60.0, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=60000")
        return conn
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


def check_text(value: str, what: str) -> str:
    """Refuse a string that is not valid Unicode (a lone surrogate, e.g. from an argument or file name in
    an invalid encoding, which Python keeps as ``\\udcXX``): SQLite and the file system cannot encode it."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidNameError(f"{what} {value!r} is not valid Unicode (a lone surrogate: invalid UTF-8 "
                                   "in an argument or a file name?)") from None
    return value


def check_name(name: str) -> str:
    """Validate a model name (a Hub repo id, a file stem, or a user's choice)."""
    if not isinstance(name, str) or not name or name != name.strip():
        raise InvalidNameError(f"invalid model name {name!r}: empty or padded with spaces")
    if len(name) > 512:
        raise InvalidNameError(f"invalid model name {name[:40]!r}...: longer than 512 characters")
    if _BAD_NAME.search(name):
        raise InvalidNameError(f"invalid model name {name!r}: control characters")
    check_text(name, "model name")
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


_SHAPES: dict[str, tuple[int, ...]] = {}


def shape_from_text(text: str) -> tuple[int, ...]:
    """A stored shape (JSON text) as a tuple; memoised, since a model of a million tensors has few shapes."""
    shape = _SHAPES.get(text)
    if shape is None:
        if len(_SHAPES) > 100_000:
            _SHAPES.clear()
        shape = _SHAPES[text] = tuple(json.loads(text))
    return shape


def shape_text(shape: tuple[int, ...]) -> str:
    """A shape as the JSON text the catalogue stores (``[2, 3]``), without a ``json.dumps`` per tensor."""
    return "[" + ", ".join(map(str, shape)) + "]"


def tensor_from_row(row: tuple[Any, ...]) -> TensorRecord:
    name, dtype, shape, numel, h, nan, inf = row
    return TensorRecord(name=name, dtype=dtype, shape=shape_from_text(shape), numel=int(numel), hash=h,
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
                  [(mid, k, i.name, i.dtype, shape_text(i.shape), i.numel, h, n, f)
                   for k, (i, h, n, f) in enumerate(tensors)])
    c.executemany("INSERT INTO metadata VALUES (?, ?, ?)",
                  [(mid, k, json.dumps(v, sort_keys=True)) for k, v in metadata.items()])


__all__ = ["LINEAGE_SOURCES", "ModelRecord", "SCHEMA_VERSION", "TensorRecord", "check_name", "check_text", "connect",
           "insert_model", "migrate", "shape_from_text", "shape_text", "split_ref"]
