"""The zoo store: a folder with a SQLite catalogue and content-addressed HDF5 tensor packs.

    >>> zoo = Zoo.open("my-zoo")                                  # doctest: +SKIP
    >>> zoo.ingest("path/to/snapshot", metadata={"seed": 0})      # doctest: +SKIP
    >>> zoo.tensor("snapshot", "embeddings.word_embeddings.weight")  # doctest: +SKIP

Guarantees: a tensor's bytes are stored once (addressed by BLAKE3 of dtype, shape and bytes); an ingest
writes one new pack durably before one catalogue transaction points at it, so a crash at any moment leaves
the zoo as it was (at most an orphan pack); one writer at a time (``ZooBusyError`` after ``lock_timeout``),
readers never block; tensors come back bit-exactly with their true dtype; reads are lazy.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeAlias

import torch

from weightzoo.errors import (
    AmbiguousRevisionError,
    IncompatibleZooError,
    InvalidNameError,
    LineageError,
    ModelExistsError,
    ModelNotFoundError,
    SpecError,
    StorageError,
    TensorCorruptError,
    TensorNotFoundError,
    WeightzooError,
    ZooCorruptError,
    ZooNotFoundError,
    ZooReadOnlyError,
)
from weightzoo.zoo.formats._json import MAX_DEPTH
from weightzoo.zoo.formats.base import LazyStateDict, TensorInfo
from weightzoo.zoo.formats.dtypes import dtype_from_code, tensor_bytes
from weightzoo.zoo.formats.snapshot import MAX_CONFIG_BYTES

from .catalog import (
    LINEAGE_SOURCES,
    MODEL_COLUMNS,
    OLDEST_MIGRATABLE,
    SCHEMA,
    SCHEMA_VERSION,
    ModelRecord,
    TensorRecord,
    check_name,
    connect,
    insert_model,
    migrate,
    model_from_row,
    read_as_current,
    shape_from_text,
    shape_text,
    split_ref,
    tensor_from_row,
)
from .detached import DetachedModel, DetachedTensor
from .lock import WriterLock
from .maintenance import PACK_NAME, TEMP_NAME, StoreAccess, VerifyReport, collect_garbage, verify_zoo
from .packs import JOB_PREFIX, TMP_PREFIX, BlobLocation, PackReader, PackWriter, blob_hash
from .sources import IngestItem as _Item
from .sources import check_json as _check_json
from .sources import open_item as _open_item
from .staging import BlobTable, StagedModel, StagedPack, check_unique, write_pack

CATALOG = "catalog.sqlite"
PACKS = "packs"

# Catalogue columns that `models(**filters)` matches directly; any other keyword matches metadata.
_COLUMN_FILTERS = {"name", "revision", "source", "format", "repo_id", "library", "model_type", "architecture",
                   "license"}


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open: SQLite ends it by itself on some errors (a full disk),
    and a second ROLLBACK would raise "no transaction is active" over the real error."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass


def _storage_error(path: Path, what: str, exc: sqlite3.Error) -> StorageError:
    text = str(exc)
    if "readonly" in text or "read-only" in text:
        return ZooReadOnlyError(f"{path}: zoo is read-only for this user ({what}: {text})")
    return StorageError(f"{path}: {what}: {text}")


def _check_new_zoo_folder(p: Path) -> None:
    """A zoo is created only in a missing or empty folder (an empty ``packs/`` and a plain ``.lock`` allowed):
    files there would be taken for the zoo's own — ``verify --repair`` deletes packs it does not know."""
    if not os.path.lexists(p):
        return
    if not p.is_dir():
        raise ZooNotFoundError(p, "exists and is not a folder")
    for x in p.iterdir():
        if x.name == PACKS and x.is_dir() and not x.is_symlink() and not any(x.iterdir()):
            continue
        if x.name == ".lock" and x.is_file() and not x.is_symlink():
            continue
        raise ZooNotFoundError(p, f"folder is not empty ({x.name!r}) and holds no zoo; refusing to create one in it")


class Zoo:
    """A local model zoo. Open with :meth:`Zoo.open`; use as a context manager to close it."""

    def __init__(self, path: Path, *, lock_timeout: float = 30.0, read_only: bool = False) -> None:
        self.path = path
        self.packs_dir = path / PACKS
        self.read_only = read_only
        self._conn = connect(path / CATALOG, read_only=read_only)
        self._db_lock = threading.RLock()
        self._writer = WriterLock(path, lock_timeout, read_only=read_only)
        self._reader = PackReader(self.packs_dir)

    # --- opening -----------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike[str], *, create: bool = True, lock_timeout: float = 30.0) -> Zoo:
        """Open the zoo at ``path``, creating it (an empty or missing folder) unless ``create=False``."""
        p = Path(path)
        catalog = p / CATALOG
        try:
            exists = catalog.exists()
            if not exists:
                if not create:
                    raise ZooNotFoundError(p, "no zoo here (no catalog.sqlite)")
                _check_new_zoo_folder(p)
                (p / PACKS).mkdir(parents=True, exist_ok=True)
            elif not catalog.is_file():
                raise ZooCorruptError(f"{catalog} is not a file: not a zoo catalogue")
            packs = p / PACKS
            if os.path.lexists(packs) and not packs.is_dir():
                raise ZooCorruptError(f"{packs} is not a folder: this zoo's packs folder is missing or replaced")
            # A zoo this user may read but not write (another user's, a read-only mount) opens read-only.
            read_only = exists and not (os.access(catalog, os.W_OK) and os.access(p, os.W_OK))
        except WeightzooError:
            raise
        except OSError as exc:
            raise ZooNotFoundError(p, f"cannot open a zoo here: {exc.strerror or exc}") from None
        try:
            zoo = cls(p, lock_timeout=lock_timeout, read_only=read_only)
        except sqlite3.DatabaseError as exc:
            raise ZooCorruptError(f"{catalog}: not a readable zoo catalogue: {exc}") from exc
        try:
            zoo._init_schema()
        except sqlite3.DatabaseError as exc:
            zoo.close()
            raise ZooCorruptError(f"{catalog}: not a readable zoo catalogue: {exc}") from exc
        except BaseException:
            zoo.close()
            raise
        return zoo

    def _init_schema(self) -> None:
        if self.read_only:
            row = self._conn.execute("SELECT value FROM info WHERE key='schema'").fetchone()
            if row is not None and OLDEST_MIGRATABLE <= int(row[0]) < SCHEMA_VERSION:
                read_as_current(self._conn, int(row[0]))  # cannot upgrade what we may not write: read it as is
                return
            if row is None or int(row[0]) != SCHEMA_VERSION:
                raise IncompatibleZooError(f"{self.path}: catalogue schema {row[0] if row else 'missing'} is not the "
                                           f"one this weightzoo reads ({SCHEMA_VERSION})")
            return
        with self._db_lock:
            row = None
            try:
                row = self._conn.execute("SELECT value FROM info WHERE key='schema'").fetchone()
            except sqlite3.OperationalError:
                pass
            if row is not None:
                if int(row[0]) > SCHEMA_VERSION:
                    raise IncompatibleZooError(f"{self.path}: catalogue schema {row[0]} is newer than this weightzoo ({SCHEMA_VERSION})")
                if int(row[0]) < OLDEST_MIGRATABLE:
                    raise IncompatibleZooError(f"{self.path}: catalogue schema {row[0]} was written by a pre-release weightzoo "
                                   f"(this one reads {SCHEMA_VERSION}); export its models and re-ingest them")
                if int(row[0]) < SCHEMA_VERSION:
                    self._migrate()
                return
            with self._writer:
                # executescript commits any open transaction first, so the script carries its own.
                self._conn.executescript(f"BEGIN IMMEDIATE;{SCHEMA}"
                                         f"INSERT OR IGNORE INTO info VALUES ('schema', '{SCHEMA_VERSION}');COMMIT;")
            self.packs_dir.mkdir(exist_ok=True)

    def _migrate(self) -> None:
        """Upgrade an older released catalogue in place (one transaction under the writer lock; no row lost)."""
        with self._writer:
            (version,), = self._conn.execute("SELECT value FROM info WHERE key='schema'").fetchall()
            try:
                migrate(self._conn, int(version))  # re-read under the lock: another process may have migrated
            except sqlite3.OperationalError as exc:
                raise StorageError(f"{self.path}: cannot upgrade catalogue schema {version} to {SCHEMA_VERSION}: {exc}") from exc

    def close(self) -> None:
        self._reader.close()
        with self._db_lock:
            self._conn.close()

    def __enter__(self) -> Zoo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Zoo({str(self.path)!r})"

    # --- transactions ------------------------------------------------------------------------------
    class _Tx:
        def __init__(self, zoo: Zoo) -> None:
            self.zoo = zoo

        def __enter__(self) -> sqlite3.Connection:
            self.zoo._db_lock.acquire()
            try:
                self.zoo._check_writable()
                self.zoo._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                self.zoo._db_lock.release()
                raise _storage_error(self.zoo.path, "cannot start a catalogue transaction", exc) from None
            except BaseException:
                self.zoo._db_lock.release()
                raise
            return self.zoo._conn

        def __exit__(self, exc_type: Any, exc: BaseException | None, tb: object) -> None:
            conn = self.zoo._conn
            try:
                if exc_type is None:
                    try:
                        conn.execute("COMMIT")
                    except sqlite3.Error as err:
                        _rollback(conn)
                        raise _storage_error(self.zoo.path, "catalogue commit failed", err) from None
                else:
                    _rollback(conn)
                    # A write inside the transaction that failed (a full disk, a lone surrogate) is ours to type.
                    if isinstance(exc, sqlite3.Error):
                        raise _storage_error(self.zoo.path, "catalogue write failed", exc) from None
                    if isinstance(exc, UnicodeEncodeError):
                        raise InvalidNameError(f"a name or value is not valid Unicode (a lone surrogate): "
                                               f"{exc.object[exc.start:exc.end]!r}") from None
            finally:
                self.zoo._db_lock.release()

    def _transaction(self) -> Zoo._Tx:
        return Zoo._Tx(self)

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._db_lock:
            try:
                return self._conn.execute(sql, args).fetchall()
            except UnicodeEncodeError as exc:  # a name from argv or a file name in an invalid encoding
                raise InvalidNameError(f"{exc.object[exc.start:exc.end]!r} in {exc.object[:60]!r} is not valid "
                                       "Unicode (a lone surrogate)") from None
            except sqlite3.DatabaseError as exc:
                raise ZooCorruptError(f"{self.path / CATALOG}: catalogue query failed: {exc}") from None

    def _check_writable(self) -> None:
        if self.read_only:
            raise ZooReadOnlyError(f"{self.path}: zoo is read-only for this user (reads work; writing needs write "
                                   "permission on the folder and its catalogue)")

    # --- lookups -----------------------------------------------------------------------------------
    def _model_row(self, ref: str) -> tuple[Any, ...]:
        name, rev = split_ref(ref)
        if rev is None:
            rows = self._query(f"SELECT {MODEL_COLUMNS} FROM models WHERE name=? ORDER BY created_at DESC, id DESC LIMIT 1", (name,))
        else:  # an exact revision first; else a unique, case-sensitive prefix (no LIKE wildcards)
            rows = self._query(f"SELECT {MODEL_COLUMNS} FROM models WHERE name=? AND revision=?", (name, rev))
            if not rows:
                rows = self._query(f"SELECT {MODEL_COLUMNS} FROM models WHERE name=? AND "
                                   "substr(revision, 1, length(?)) = ? LIMIT 2", (name, rev, rev))
                if len(rows) > 1:
                    raise AmbiguousRevisionError(f"revision prefix {rev!r} of {name!r} is ambiguous")
        if not rows:
            raise ModelNotFoundError(ref, self.path)
        return rows[0]

    def _model_id(self, ref: str) -> int:
        return int(self._model_row(ref)[0])

    def has_model(self, ref: str) -> bool:
        """Whether ``ref`` (a name, or ``name@revision``) is in the zoo."""
        try:
            self._model_row(ref)
        except ModelNotFoundError:
            return False
        return True

    def _metadata(self, model_id: int) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self._query("SELECT key, value FROM metadata WHERE model_id=? ORDER BY key", (model_id,))}

    def model(self, ref: str) -> ModelRecord:
        """The catalogue record of one model (``ModelNotFoundError`` if absent)."""
        row = self._model_row(ref)
        return model_from_row(row, self._metadata(int(row[0])))

    def models(self, **filters: Any) -> list[ModelRecord]:
        """Models matching every filter, oldest first.

        Catalogue columns match exactly (``library="transformers"``, ``model_type="bert"``), ``name`` may be
        a glob (``name="org/*"``), ``ingested=True/False``, ``tag="x"``; any other keyword matches a
        free-form metadata value (``epoch=20``, ``seed=0``).
        """
        where: list[str] = []
        args: list[Any] = []
        for key, value in filters.items():
            if key == "name" and isinstance(value, str) and any(ch in value for ch in "*?["):
                where.append("name GLOB ?")
                args.append(value)
            elif key in _COLUMN_FILTERS:
                where.append(f"{key} IS ?")
                args.append(value)
            elif key == "ingested":
                where.append("ingested = ?")
                args.append(int(bool(value)))
            elif key == "tag":
                where.append("EXISTS (SELECT 1 FROM json_each(models.tags) WHERE json_each.value = ?)")
                args.append(value)
            else:  # an index range on metadata(key, value), not a probe per model (docs/scale.md)
                _check_json({key: value}, "metadata filter")
                where.append("id IN (SELECT model_id FROM metadata WHERE key = ? AND value = ?)")
                args.extend([key, json.dumps(value, sort_keys=True)])
        sql = f"SELECT {MODEL_COLUMNS} FROM models" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self._query(sql + " ORDER BY created_at, id", tuple(args))
        meta = self._metadata_of([int(r[0]) for r in rows])
        return [model_from_row(r, meta.get(int(r[0]), {})) for r in rows]

    def _metadata_of(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        """Metadata of many models, a few hundred per query (not one query per model)."""
        out: dict[int, dict[str, Any]] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            for mid, k, v in self._query(f"SELECT model_id, key, value FROM metadata WHERE model_id IN "
                                         f"({','.join('?' * len(chunk))}) ORDER BY model_id, key", tuple(chunk)):
                out.setdefault(mid, {})[k] = json.loads(v)
        return out

    def __len__(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM models")[0][0])

    def __contains__(self, ref: object) -> bool:
        return isinstance(ref, str) and self.has_model(ref)

    def tensors(self, ref: str) -> list[TensorRecord]:
        """The tensor table of a model, in checkpoint order."""
        return self._tensors_of(self._model_id(ref))

    def _tensors_of(self, mid: int) -> list[TensorRecord]:
        rows = self._query("SELECT name, dtype, shape, numel, hash, nan_count, inf_count FROM tensors "
                           "WHERE model_id=? ORDER BY idx", (mid,))
        return [tensor_from_row(r) for r in rows]

    # --- reads -------------------------------------------------------------------------------------
    def tensor(self, ref: str, name: str, *, verify: bool = True) -> torch.Tensor:
        """One tensor of a model, read from its pack (touches one dataset), with its true dtype.

        ``verify=True`` (the default) re-hashes the bytes read and raises
        :class:`~weightzoo.errors.TensorCorruptError` when they do not match (a damaged pack), so damaged
        bytes never leave the zoo silently; it costs one BLAKE3 pass over the tensor (see docs/store.md).
        """
        return self._tensor_of(self._model_id(ref), ref, name, verify=verify)

    def _tensor_of(self, mid: int, ref: str, name: str, *, verify: bool = True) -> torch.Tensor:
        rows = self._query("SELECT t.dtype, t.shape, t.hash, b.pack, b.dataset, b.offset FROM tensors t "
                           "LEFT JOIN blobs b ON b.hash = t.hash WHERE t.model_id=? AND t.name=?", (mid, name))
        if not rows:
            raise TensorNotFoundError(ref, name)
        return self._read_row(ref, name, rows[0], verify=verify)

    def _read_row(self, ref: str, name: str, row: tuple[Any, ...], *, verify: bool) -> torch.Tensor:
        code, shape_json, h, pack, dataset, offset = row
        if h is None:
            raise TensorNotFoundError(ref, name, "metadata-only model: no tensor bytes are stored")
        if pack is None:
            raise ZooCorruptError(f"model {ref!r}, tensor {name!r}: blob {h} is not in any pack (run `weightzoo verify`)")
        shape = shape_from_text(shape_json)
        try:
            t = self._reader.read_tensor(pack, BlobLocation(dataset, offset), code, shape)
        except ZooCorruptError as exc:
            raise TensorCorruptError(ref, name, pack, f"cannot be read ({exc})") from None
        if verify and blob_hash(code, shape, tensor_bytes(t)) != h:
            raise TensorCorruptError(ref, name, pack)
        return t

    def _read_row_bytes(self, ref: str, name: str, row: tuple[Any, ...], *, verify: bool) -> memoryview:
        """The raw bytes of one stored tensor (no tensor built: what an export writes), hash-checked."""
        code, shape_json, h, pack, dataset, offset = row
        if h is None:
            raise TensorNotFoundError(ref, name, "metadata-only model: no tensor bytes are stored")
        if pack is None:
            raise ZooCorruptError(f"model {ref!r}, tensor {name!r}: blob {h} is not in any pack (run `weightzoo verify`)")
        shape = shape_from_text(shape_json)
        nbytes = dtype_from_code(code).itemsize * math.prod(shape)
        try:
            raw = self._reader.read_raw(pack, BlobLocation(dataset, offset), nbytes)
        except ZooCorruptError as exc:
            raise TensorCorruptError(ref, name, pack, f"cannot be read ({exc})") from None
        if raw.size != nbytes or (verify and blob_hash(code, shape, raw) != h):
            raise TensorCorruptError(ref, name, pack)
        return memoryview(raw).cast("B") if raw.size else memoryview(b"")  # type: ignore[arg-type]  # numpy arrays are buffers

    def state_dict(self, ref: str, *, verify: bool = True) -> Mapping[str, torch.Tensor]:
        """A lazy mapping name → tensor over a model; each access reads one tensor. ``dict(...)`` loads all.

        ``verify`` as in :meth:`tensor` (default ``True``: each tensor is checked against its hash).
        """
        rec = self.model(ref)
        # Pinned to the catalogue row, not the name: a later revision of the same name (which the bare
        # name would then mean) must not change what this mapping reads.
        mid = self._model_id(rec.ref)
        names = [r[0] for r in self._query("SELECT name FROM tensors WHERE model_id=? ORDER BY idx", (mid,))]
        return _ZooStateDict(self, mid, rec.ref, names, verify=verify)

    @contextmanager
    def read_snapshot(self) -> Iterator[Zoo]:
        """Pin every read of this ``Zoo`` inside the block to one catalogue snapshot.

        SQLite (WAL) gives a read transaction a consistent view: an export running while another process
        re-ingests the same model with ``replace=True`` then reads the old revision whole, never a mix of
        the two (nor "no such tensor" half-way). Writes through this ``Zoo`` inside the block are refused.
        """
        with self._db_lock:
            self._conn.execute("BEGIN")
            self._conn.execute("SELECT COUNT(*) FROM models").fetchone()  # the snapshot starts at the first read
        try:
            yield self
        finally:
            with self._db_lock:
                _rollback(self._conn)

    def detach(self, ref: str) -> DetachedModel:
        """Where ``ref``'s tensors sit in the packs, with its catalogue fields: what a worker needs to read
        the model without opening the catalogue (see :mod:`weightzoo.zoo.store.detached`)."""
        rec = self.model(ref)
        rows = self._query("SELECT t.name, t.dtype, t.shape, b.pack, b.dataset, b.offset, t.hash FROM tensors t "
                           "LEFT JOIN blobs b ON b.hash = t.hash WHERE t.model_id=? ORDER BY t.idx",
                           (self._model_id(rec.ref),))
        tensors = []
        for name, code, shape, pack, dataset, offset, h in rows:
            if h is not None and pack is None:  # bytes were stored once: say so on read, not silently
                pack, dataset, offset = None, "", None
            tensors.append(DetachedTensor(name, code, tuple(json.loads(shape)), pack, dataset, offset))
        fields = {k: v for k, v in rec.to_dict().items() if k not in ("spec", "config")}
        return DetachedModel(rec.ref, str(self.packs_dir), tuple(tensors), fields)

    def module(self, ref: str) -> torch.nn.Module:
        """The stored model rebuilt as an ``nn.Module`` from its architecture spec, with its weights."""
        rec = self.model(ref)
        if rec.spec is None:
            raise SpecError(f"model {ref!r} has no architecture spec; only tensor-level operations are possible")
        from weightzoo.zoo.arch import build_module

        module = build_module(rec.spec)
        sd = dict(self.state_dict(rec.ref))
        try:
            module.load_state_dict(sd, strict=True)
        except RuntimeError as exc:
            raise SpecError(f"model {ref!r}: stored weights do not fit its spec: {exc}") from exc
        return module.eval()

    # --- writes: ingest ----------------------------------------------------------------------------
    def ingest(self, source: Any, *, name: str | None = None, revision: str | None = None,
               metadata: Mapping[str, Any] | None = None, spec: Mapping[str, Any] | None = None,
               replace: bool = False, **fields: Any) -> ModelRecord:
        """Ingest one checkpoint (path, snapshot folder, ``nn.Module``, state dict or opened Checkpoint).

        Args:
            name: the model's name; defaults to the file or folder stem (``"module"`` for objects).
            revision: a revision id (``name@revision`` designates it; the bare name means the latest).
            metadata: free-form JSON-able metadata (hyperparameters, metrics, epoch, seed ...).
            spec: an architecture spec (see :mod:`weightzoo.zoo.arch`); HF snapshots get theirs from config.
            replace: replace an existing model of that name (metadata-only entries are always upgraded).
            fields: catalogue fields (``repo_id``, ``license``, ``tags``, ``library``).
        """
        return self.ingest_many([dict(source=source, name=name, revision=revision, metadata=metadata,
                                      spec=spec, replace=replace, **fields)], progress=None)[0]

    def ingest_many(self, items: Iterable[Mapping[str, Any]], *, progress: bool | None = None) -> list[ModelRecord]:
        """Ingest many models into one new pack and one catalogue transaction.

        Each item is a mapping with the keyword arguments of :meth:`ingest` (``source`` required). A zoo of
        10,000 small networks is then a handful of packs, not 10,000 files and fsyncs. All or nothing:
        an error in any item leaves the zoo unchanged.
        """
        opened: list[_Item] = []
        try:
            for it in items:
                opened.append(_open_item(dict(it)))
            check_unique(opened)
            with self._writer:
                return self._write(opened, progress)
        finally:
            for i in opened:
                i.ckpt.close()

    def _write(self, items: list[_Item], progress: bool | None) -> list[ModelRecord]:
        from tqdm import tqdm

        for it in items:  # fail before writing a byte when a name is taken
            self._check_free(it.name, it.revision, it.replace)
        total = sum(t.nbytes for it in items for t in it.ckpt.tensors)
        show = progress if progress is not None else (total > (256 << 20) or len(items) > 200)
        bar = tqdm(total=total, unit="B", unit_scale=True, desc="ingest", disable=not show or None, leave=False)
        writer = PackWriter(self.packs_dir)
        # Deduplicate only against blobs whose pack is still there: a lost pack is healed by ingesting the
        # same checkpoint again (its blobs are written anew and re-pointed at the new pack).
        present = set(os.listdir(self.packs_dir))
        healed: set[str] = set()
        try:
            models, new_blobs = write_pack(items, writer, known=lambda hs: self._known_blobs(hs, present, healed),
                                           on_bytes=bar.update)
            wrote = writer.commit()
        except BaseException:
            writer.abort()
            raise
        finally:
            bar.close()
        try:
            return self._commit(models, [(writer.name, writer.nbytes, new_blobs)] if wrote else [], healed)
        except BaseException:
            if wrote:  # the catalogue never pointed at it: remove the (now orphan) pack
                writer.abort()
            raise

    def commit_staged(self, staged: Sequence[StagedPack]) -> list[ModelRecord]:
        """Commit packs staged by workers (:func:`~weightzoo.zoo.store.staging.stage_pack`): one transaction
        for all their models, in order. Only the driver — the one process that opens this catalogue — calls it.

        A blob already in the zoo keeps its first copy; a staged pack none of whose blobs is new is deleted.
        All or nothing: on an error (a name taken, a pack missing) nothing is committed and the staged packs
        stay orphans for :meth:`discard_staged` or ``verify --repair``.
        """
        models = [m for sp in staged for m in sp.models]
        refs = [(m.name, m.revision or "") for m in models]
        if len(set(refs)) != len(refs):
            raise ModelExistsError(next(n for n in refs if refs.count(n) > 1)[0])
        with self._writer:
            for m in models:
                self._check_free(m.name, m.revision, m.replace)
            packs: list[tuple[str, int, BlobTable]] = []
            empty: list[str] = []
            seen: set[str] = set()
            present = set(os.listdir(self.packs_dir))
            healed: set[str] = set()
            for sp in staged:
                if sp.pack is None:
                    continue
                if not (self.packs_dir / sp.pack).is_file():
                    raise StorageError(f"{self.path}: staged pack {sp.pack} is missing; nothing was committed")
                stored = self._known_blobs([h for h in sp.blobs if h not in seen], present, healed)
                fresh = {h: v for h, v in sp.blobs.items() if h not in seen and h not in stored}
                seen.update(fresh)
                if fresh:
                    packs.append((sp.pack, sp.nbytes, fresh))
                else:
                    empty.append(sp.pack)
            records = self._commit(models, packs, healed)
            for name in empty:  # every blob was already stored: the catalogue never points at this pack
                (self.packs_dir / name).unlink(missing_ok=True)
        return records

    def discard_staged(self, prefix: str) -> list[str]:
        """Delete the files a distributed job with this pack ``prefix`` left uncommitted (temporary files of
        workers killed mid-write, packs staged but never committed); returns their names."""
        if not JOB_PREFIX.fullmatch(prefix):
            raise ValueError(f"discard_staged: {prefix!r} is not a job's pack prefix ('job' + 12 hex digits + '-')")
        removed = []
        with self._writer:
            committed = {r[0] for r in self._query(
                "SELECT name FROM packs WHERE substr(name, 1, length(?)) = ?", (prefix, prefix))}
            for p in self.packs_dir.iterdir():
                n = p.name
                ours = PACK_NAME.fullmatch(n) or TEMP_NAME.fullmatch(n)  # never a file weightzoo did not name
                if ours and n.startswith((TMP_PREFIX + prefix, prefix)) and n not in committed and p.is_file():
                    p.unlink(missing_ok=True)
                    removed.append(n)
        return sorted(removed)

    def _known_blobs(self, hashes: Sequence[str], present: set[str], healed: set[str]) -> set[str]:
        """The blobs among ``hashes`` stored in a pack that exists; blobs of lost packs are not known (they
        are written again) and their packs are noted in ``healed``. One query per 500 hashes."""
        known = set()
        for h, pack in self._stored_packs(list(hashes)).items():
            if pack in present:
                known.add(h)
            else:
                healed.add(pack)
        return known

    def _stored_packs(self, hashes: list[str]) -> dict[str, str]:
        """hash → pack for the blobs among ``hashes`` that the catalogue holds (queried 500 at a time).

        A caller deduplicates only against blobs whose pack exists: a blob of a lost pack is written again.
        """
        out: dict[str, str] = {}
        unique = list(dict.fromkeys(hashes))
        for start in range(0, len(unique), 500):
            chunk = unique[start:start + 500]
            out.update(self._query(f"SELECT hash, pack FROM blobs WHERE hash IN ({','.join('?' * len(chunk))})",
                                   tuple(chunk)))
        return out

    def _check_free(self, name: str, revision: str | None, replace: bool) -> None:
        rows = self._query("SELECT ingested FROM models WHERE name=? AND revision=?", (name, revision or ""))
        if rows and rows[0][0] and not replace:
            raise ModelExistsError(name if not revision else f"{name}@{revision}")

    def _commit(self, models: Sequence[StagedModel], packs: Sequence[tuple[str, int, BlobTable]],
                healed: set[str] = frozenset()) -> list[ModelRecord]:  # type: ignore[assignment]
        """One transaction: the new packs and their blobs (re-pointing blobs of lost packs, ``healed``),
        then each model's row, tensor table and metadata."""
        now = time.time()
        refs = []
        try:
            with self._transaction() as c:
                for pack, pack_bytes, new_blobs in packs:
                    c.execute("INSERT INTO packs VALUES (?, ?, ?)", (pack, pack_bytes, now))
                    # REPLACE: a blob whose pack was lost is re-pointed at the new copy.
                    c.executemany("INSERT OR REPLACE INTO blobs VALUES (?, ?, ?, ?, ?, ?, ?)",
                                  [(h, pack, loc.dataset, loc.offset, code, shape_text(shape), nb)
                                   for h, (code, shape, nb, loc) in new_blobs.items()])
                c.executemany("DELETE FROM packs WHERE name=? AND NOT EXISTS (SELECT 1 FROM blobs WHERE pack=?)",
                              [(p, p) for p in sorted(healed)])
                for m in models:
                    self._check_free(m.name, m.revision, m.replace)  # another writer may have raced us
                    c.execute("DELETE FROM models WHERE name=? AND revision=?", (m.name, m.revision or ""))
                    insert_model(
                        c, dict(name=m.name, revision=m.revision or "", **m.fields, ingested=1,
                                nonfinite_tensors=sum(1 for _, _, n, f in m.tensors if n or f), created_at=now),
                        [(i, h, n, f) for i, h, n, f in m.tensors], m.metadata)
                    refs.append(m.ref)
        except sqlite3.Error as exc:
            raise _storage_error(self.path, "catalogue write failed", exc) from None
        return [self.model(r) for r in refs]

    def add_metadata_only(self, name: str, tensors: Iterable[TensorInfo], *, revision: str | None = None,
                          metadata: Mapping[str, Any] | None = None, config: Mapping[str, Any] | None = None,
                          spec: Mapping[str, Any] | None = None, source: str | None = None,
                          format: str | None = None, replace: bool = True, **fields: Any) -> ModelRecord:
        """Record a model's tensor table (from headers) without its bytes, e.g. from a Hub crawl."""
        return self.add_metadata_only_many([dict(name=name, tensors=tensors, revision=revision, metadata=metadata,
                                                 config=config, spec=spec, source=source, format=format,
                                                 replace=replace, **fields)])[0]

    def add_metadata_only_many(self, items: Iterable[Mapping[str, Any]]) -> list[ModelRecord]:
        """Record many metadata-only models in one transaction (one commit, one fsync: a crawl's batch).

        Each item holds the arguments of :meth:`add_metadata_only` (``name`` and ``tensors`` required).
        All or nothing: an error in any item leaves the zoo unchanged.
        """
        rows_in: list[tuple[str, str, list[TensorInfo], dict[str, Any], dict[str, Any] | None, Any, bool, dict[str, Any]]] = []
        for it in items:
            it = dict(it)
            name, infos = check_name(it.pop("name")), list(it.pop("tensors"))
            md = dict(it.pop("metadata", None) or {})
            _check_json(md, "metadata")
            cfg = it.pop("config", None)
            if cfg is not None:
                _check_json(dict(cfg), "config", max_bytes=MAX_CONFIG_BYTES, max_depth=MAX_DEPTH)
            rows_in.append((name, it.pop("revision", None) or "", infos, md, dict(cfg) if cfg is not None else None,
                            it.pop("spec", None), bool(it.pop("replace", True)), it))
        with self._writer:
            for name, rev, _, _, _, _, replace, _ in rows_in:
                rows = self._query("SELECT ingested FROM models WHERE name=? AND revision=?", (name, rev))
                if rows and (rows[0][0] or not replace):
                    raise ModelExistsError(name)
            now = time.time()
            with self._transaction() as c:
                for name, rev, infos, md, cfg, spec, _, fields in rows_in:
                    archs = (cfg or {}).get("architectures")
                    c.execute("DELETE FROM models WHERE name=? AND revision=?", (name, rev))
                    insert_model(
                        c, dict(name=name, revision=rev, source=fields.get("source"), format=fields.get("format"),
                                repo_id=fields.get("repo_id"), spec=spec, config=cfg, library=fields.get("library"),
                                model_type=fields.get("model_type") or (cfg or {}).get("model_type"),
                                architecture=fields.get("architecture") or (
                                    archs[0] if isinstance(archs, list) and archs else None),
                                license=fields.get("license"), tags=fields.get("tags") or [], ingested=0,
                                nonfinite_tensors=0, created_at=now),
                        [(i, None, None, None) for i in infos], md)
        return [self.model(f"{name}@{rev}" if rev else name) for name, rev, *_ in rows_in]

    # --- writes: metadata, lineage, crawl state ----------------------------------------------------
    def set_metadata(self, ref: str, **values: Any) -> None:
        """Set free-form metadata keys of a model (``None`` deletes a key)."""
        _check_json(values, "metadata")
        with self._writer:
            mid = self._model_id(ref)
            with self._transaction() as c:
                for k, v in values.items():
                    if v is None:
                        c.execute("DELETE FROM metadata WHERE model_id=? AND key=?", (mid, k))
                    else:
                        c.execute("INSERT OR REPLACE INTO metadata VALUES (?, ?, ?)", (mid, k, json.dumps(v, sort_keys=True)))

    def metadata(self, ref: str) -> dict[str, Any]:
        return self._metadata(self._model_id(ref))

    def set_spec(self, ref: str, spec: Mapping[str, Any] | None) -> None:
        """Record (or clear) a model's architecture spec."""
        if spec is not None:
            _check_json(dict(spec), "spec")
        with self._writer:
            mid = self._model_id(ref)
            with self._transaction() as c:
                c.execute("UPDATE models SET spec=? WHERE id=?",
                          (json.dumps(dict(spec), sort_keys=True) if spec is not None else None, mid))

    def add_lineage(self, child: str, parent: str, relation: str = "finetune", evidence: Any = None, *,
                    source: str = "declared", confidence: float | None = None) -> None:
        """Record that ``child`` derives from ``parent`` (``finetune``, ``adapter``, ``merge``, ``quantized`` ...).

        Either side may name a model that is not in the zoo (a Hub base model not crawled yet). ``source``
        is ``"declared"`` (a card, a builder, a user) or ``"inferred"`` (recovered from the weights, with a
        ``confidence`` in [0, 1]); a declared and an inferred copy of one edge are kept side by side.
        """
        self.add_lineage_many([(child, parent, relation, evidence)], source=source,
                              confidence=None if confidence is None else [confidence])

    def add_lineage_many(self, edges: Iterable[tuple[str, str, str, Any]], *, source: str = "declared",
                         confidence: Iterable[float | None] | None = None) -> None:
        """Record many ``(child, parent, relation, evidence)`` edges of one ``source`` in one transaction."""
        self._write_lineage(list(edges), source, confidence, replace_inferred=None)

    def replace_inferred_lineage(self, edges: Iterable[tuple[str, str, str, Any]],
                                 confidence: Iterable[float | None] | None = None) -> None:
        """Swap every inferred edge for ``edges`` in one transaction (declared edges are never touched):
        a new inference replaces the last one as a whole, or not at all."""
        self._write_lineage(list(edges), "inferred", confidence, replace_inferred=True)

    def _write_lineage(self, edges: list[tuple[str, str, str, Any]], source: str,
                       confidence: Iterable[float | None] | None, *, replace_inferred: bool | None) -> None:
        if source not in LINEAGE_SOURCES:
            raise LineageError(f"lineage source must be one of {', '.join(LINEAGE_SOURCES)}, not {source!r}")
        conf = list(confidence) if confidence is not None else [None] * len(edges)
        if len(conf) != len(edges):
            raise LineageError(f"{len(edges)} lineage edges but {len(conf)} confidences")
        for (child, parent, relation, _), k in zip(edges, conf):
            check_name(split_ref(child)[0])
            check_name(split_ref(parent)[0])
            if child == parent:
                raise LineageError(f"a model cannot be its own parent: {child!r}")
            if not isinstance(relation, str) or not relation:
                raise LineageError(f"lineage edge {child!r} <- {parent!r}: relation must be a non-empty string")
            if k is not None and not (isinstance(k, int | float) and 0.0 <= float(k) <= 1.0):  # NaN fails too
                raise LineageError(f"lineage edge {child!r} <- {parent!r}: confidence {k!r} is not a number in [0, 1]")
        now = time.time()
        with self._writer, self._transaction() as c:
            if replace_inferred:
                c.execute("DELETE FROM lineage WHERE source='inferred'")
            c.executemany("INSERT OR REPLACE INTO lineage (child, parent, relation, evidence, created_at, source, "
                          "confidence) VALUES (?, ?, ?, ?, ?, ?, ?)",
                          [(child, parent, relation, json.dumps(ev, sort_keys=True) if ev is not None else None, now,
                            source, None if k is None else float(k))
                           for (child, parent, relation, ev), k in zip(edges, conf)])

    def lineage(self, ref: str, *, direction: str = "both", depth: int | None = None,
                source: str | None = None) -> list[dict[str, Any]]:
        """Lineage edges reachable from ``ref``: ancestors (``"up"``), descendants (``"down"``) or both.

        Each edge is ``{child, parent, relation, evidence, source, confidence}``; ``source="declared"`` or
        ``"inferred"`` follows only edges of that kind (default: both).
        """
        if direction not in ("up", "down", "both"):
            raise ValueError(f"direction must be 'up', 'down' or 'both', not {direction!r}")
        if source is not None and source not in LINEAGE_SOURCES:
            raise LineageError(f"lineage source must be one of {', '.join(LINEAGE_SOURCES)}, not {source!r}")
        only = "" if source is None else " AND source = ?"
        edges: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        for d in (["up", "down"] if direction == "both" else [direction]):
            frontier, seen, level = {ref}, {ref}, 0
            while frontier and (depth is None or level < depth):
                col = "child" if d == "up" else "parent"
                marks = ",".join("?" * len(frontier))
                rows = self._query(f"SELECT child, parent, relation, evidence, source, confidence FROM lineage "
                                   f"WHERE {col} IN ({marks}){only} ORDER BY source, child, parent, relation",
                                   tuple(sorted(frontier)) + ((source,) if source else ()))
                nxt = set()
                for child, parent, rel, ev, src, conf in rows:
                    edges[(child, parent, rel, src)] = {"child": child, "parent": parent, "relation": rel,
                                                        "evidence": json.loads(ev) if ev else None,
                                                        "source": src, "confidence": conf}
                    node = parent if d == "up" else child
                    if node not in seen:
                        seen.add(node)
                        nxt.add(node)
                frontier, level = nxt, level + 1
        return list(edges.values())

    def lineage_edges(self, *, source: str | None = None) -> list[dict[str, Any]]:
        """Every lineage edge in the zoo (of one ``source`` if given), in the form :meth:`lineage` returns."""
        if source is not None and source not in LINEAGE_SOURCES:
            raise LineageError(f"lineage source must be one of {', '.join(LINEAGE_SOURCES)}, not {source!r}")
        rows = self._query("SELECT child, parent, relation, evidence, source, confidence FROM lineage"
                           + ("" if source is None else " WHERE source = ?") + " ORDER BY source, child, parent, relation",
                           (() if source is None else (source,)))
        return [{"child": c, "parent": p, "relation": r, "evidence": json.loads(e) if e else None, "source": s,
                 "confidence": k} for c, p, r, e, s, k in rows]

    def crawl_state(self, key: str) -> Any:
        rows = self._query("SELECT value FROM crawl_state WHERE key=?", (key,))
        return json.loads(rows[0][0]) if rows else None

    def set_crawl_state(self, key: str, value: Any) -> None:
        with self._writer, self._transaction() as c:
            c.execute("INSERT OR REPLACE INTO crawl_state VALUES (?, ?, ?)", (key, json.dumps(value), time.time()))

    # --- lifecycle ---------------------------------------------------------------------------------
    def rm(self, ref: str) -> ModelRecord:
        """Remove a model from the catalogue (its bytes stay until :meth:`gc`). Lineage edges are kept."""
        with self._writer:
            rec = self.model(ref)
            with self._transaction() as c:
                c.execute("DELETE FROM models WHERE name=? AND revision=?", (rec.name, rec.revision or ""))
        return rec

    def _maintenance(self) -> StoreAccess:
        return StoreAccess(self.packs_dir, self._writer, self._transaction, self._query, self._reader)

    def gc(self) -> dict[str, int]:
        """Drop blobs no model points at and delete packs that hold no referenced blob."""
        return collect_garbage(self._maintenance())

    def verify(self, *, repair: bool = False, rehash: bool = True) -> VerifyReport:
        """Check that catalogue and packs agree: re-hash every blob, find missing and orphan data.

        ``repair=True`` (under the writer lock) deletes orphan packs and temporary files; it never deletes
        catalogue rows that point at missing data (those are reported; re-ingest the model).
        """
        return verify_zoo(self._maintenance(), repair=repair, rehash=rehash)

    def stats(self) -> dict[str, Any]:
        """Counts and sizes: models, tensors, unique blobs, logical and stored bytes (dedup ratio)."""
        (n_models,), = self._query("SELECT COUNT(*) FROM models")
        (n_ingested,), = self._query("SELECT COUNT(*) FROM models WHERE ingested=1")
        (logical,), = self._query("SELECT COALESCE(SUM(nbytes), 0) FROM models WHERE ingested=1")
        (stored, n_blobs), = self._query("SELECT COALESCE(SUM(nbytes), 0), COUNT(*) FROM blobs")
        (n_packs,), = self._query("SELECT COUNT(*) FROM packs")
        return {"models": n_models, "ingested": n_ingested, "metadata_only": n_models - n_ingested,
                "blobs": n_blobs, "packs": n_packs, "logical_bytes": logical, "stored_bytes": stored}


class _ZooStateDict(LazyStateDict):
    def __init__(self, zoo: Zoo, model_id: int, ref: str, names: list[str], *, verify: bool = True) -> None:
        super().__init__(names)
        self._zoo, self._id, self._ref, self._verify = zoo, model_id, ref, verify
        self._rows: dict[str, tuple[Any, ...]] | None = None

    def _row(self, name: str) -> tuple[Any, ...]:
        # One query for the whole table on first use: a model of a million tiny tensors must not pay a
        # catalogue join per tensor.
        if self._rows is None:
            self._rows = {r[0]: r[1:] for r in self._zoo._query(
                "SELECT t.name, t.dtype, t.shape, t.hash, b.pack, b.dataset, b.offset FROM tensors t "
                "LEFT JOIN blobs b ON b.hash = t.hash WHERE t.model_id=?", (self._id,))}
        row = self._rows.get(name)
        if row is None:
            raise TensorNotFoundError(self._ref, name)
        return row

    def _load(self, name: str) -> torch.Tensor:
        return self._zoo._read_row(self._ref, name, self._row(name), verify=self._verify)

    def read_bytes(self, name: str) -> memoryview:
        """The raw little-endian bytes of one tensor, hash-checked like a read (what writers stream)."""
        if name not in self._set:
            raise KeyError(name)
        return self._zoo._read_row_bytes(self._ref, name, self._row(name), verify=self._verify)

    def __repr__(self) -> str:
        return f"<lazy state dict of {self._ref!r}: {len(self._names)} tensors>"

    def tensor_infos(self) -> list[TensorInfo]:
        rows = self._zoo._query("SELECT name, dtype, shape FROM tensors WHERE model_id=? ORDER BY idx", (self._id,))
        return [TensorInfo.unchecked(n, d, shape_from_text(sh)) for n, d, sh in rows]  # validated at ingest


#: Anything a function taking a zoo accepts: an open :class:`Zoo` or its folder.
ZooLike: TypeAlias = Zoo | str | os.PathLike[str]


@contextmanager
def using_zoo(zoo: ZooLike, *, create: bool = False) -> Iterator[Zoo]:
    """``zoo`` itself when it is an open :class:`Zoo` (left open); else the zoo in that folder, opened now
    (created if ``create``) and closed on exit — the one way functions that take a zoo get one."""
    if isinstance(zoo, Zoo):
        yield zoo
        return
    with Zoo.open(zoo, create=create) as opened:
        yield opened


__all__ = ["ModelRecord", "TensorRecord", "VerifyReport", "Zoo", "ZooLike", "using_zoo"]
