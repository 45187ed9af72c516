"""Zoo maintenance: garbage collection of unreferenced packs and verification of every stored byte.

Both run under the zoo's writer lock when they change anything; ``verify`` without ``repair`` only reads.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from weightzoo.errors import ZooCorruptError

from .lock import WriterLock
from .packs import PACK_SUFFIX, TMP_PREFIX, BlobLocation, PackReader, blob_hash


@dataclass(frozen=True)
class StoreAccess:
    """What maintenance may touch of a zoo — handed over by :class:`~weightzoo.zoo.store.Zoo` itself, so
    this module needs none of the Zoo's private members: the writer lock, one catalogue transaction or
    read-only query at a time, the pack reader and the packs folder."""

    packs_dir: Path
    lock: WriterLock
    transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]
    query: Callable[..., list[tuple[Any, ...]]]
    reader: PackReader


@dataclass
class VerifyReport:
    """What ``verify`` found. ``clean`` is True when the catalogue and the packs agree byte for byte."""

    models: int = 0
    tensors: int = 0
    blobs_checked: int = 0
    bad_hashes: list[str] = field(default_factory=list)
    missing_blobs: list[str] = field(default_factory=list)
    missing_packs: list[str] = field(default_factory=list)
    rows_without_data: list[str] = field(default_factory=list)
    orphan_packs: list[str] = field(default_factory=list)
    temp_files: list[str] = field(default_factory=list)
    unreferenced_blobs: int = 0
    repaired: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """No corruption (orphans and temporaries are harmless leftovers and do not count)."""
        return not (self.bad_hashes or self.missing_blobs or self.missing_packs or self.rows_without_data)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["clean"] = self.clean
        return d


def collect_garbage(zoo: StoreAccess) -> dict[str, int]:
    """Drop blobs no model points at and delete packs that hold no referenced blob."""
    with zoo.lock:
        with zoo.transaction() as c:
            n_blobs = c.execute("DELETE FROM blobs WHERE hash NOT IN (SELECT hash FROM tensors WHERE hash IS NOT NULL)").rowcount
            dead = [r[0] for r in c.execute("SELECT name FROM packs WHERE name NOT IN (SELECT DISTINCT pack FROM blobs)")]
            freed = sum(r[0] for r in c.execute(
                f"SELECT nbytes FROM packs WHERE name IN ({','.join('?' * len(dead))})", dead)) if dead else 0
            c.executemany("DELETE FROM packs WHERE name=?", [(d,) for d in dead])
        zoo.reader.close()
        for d in dead:  # after the commit: a crash here leaves orphans, never dangling rows
            try:
                (zoo.packs_dir / d).unlink()
            except FileNotFoundError:
                pass
    return {"blobs_removed": n_blobs, "packs_removed": len(dead), "bytes_freed": int(freed)}


def verify_zoo(zoo: StoreAccess, *, repair: bool = False, rehash: bool = True) -> VerifyReport:
    """Check that catalogue and packs agree: re-hash every blob, find missing and orphan data.

    ``repair=True`` (under the writer lock) deletes orphan packs and temporary files; it never deletes
    catalogue rows that point at missing data (those are reported; re-ingest the model).
    """
    rep = VerifyReport()
    with zoo.lock if repair else contextlib.nullcontext():
        rep.models = int(zoo.query("SELECT COUNT(*) FROM models")[0][0])
        rep.tensors = int(zoo.query("SELECT COUNT(*) FROM tensors")[0][0])
        packs = {r[0] for r in zoo.query("SELECT name FROM packs")}
        on_disk = {p.name for p in zoo.packs_dir.iterdir()} if zoo.packs_dir.exists() else set()
        rep.temp_files = sorted(n for n in on_disk if n.startswith(TMP_PREFIX))
        rep.orphan_packs = sorted(n for n in on_disk if n.endswith(PACK_SUFFIX) and not n.startswith(TMP_PREFIX) and n not in packs)
        rep.missing_packs = sorted(packs - on_disk)
        for (model, tname, _h) in zoo.query(
                "SELECT m.name, t.name, t.hash FROM tensors t JOIN models m ON m.id = t.model_id "
                "LEFT JOIN blobs b ON b.hash = t.hash WHERE t.hash IS NOT NULL AND b.hash IS NULL"):
            rep.rows_without_data.append(f"{model}:{tname}")
        rep.unreferenced_blobs = int(zoo.query(
            "SELECT COUNT(*) FROM blobs WHERE hash NOT IN (SELECT hash FROM tensors WHERE hash IS NOT NULL)")[0][0])
        for pack in sorted(packs - set(rep.missing_packs)):
            try:
                keys = set(zoo.reader.keys(pack))
            except ZooCorruptError:
                rep.missing_packs.append(pack)
                continue
            for h, dataset, offset, code, shape, nbytes in zoo.query(
                    "SELECT hash, dataset, offset, dtype, shape, nbytes FROM blobs WHERE pack=?", (pack,)):
                if dataset not in keys:
                    rep.missing_blobs.append(f"{pack}:{h}")
                    continue
                if rehash:
                    try:
                        raw = zoo.reader.read_raw(pack, BlobLocation(dataset, offset), nbytes)
                    except ZooCorruptError:
                        rep.bad_hashes.append(h)
                        continue
                    if raw.size != nbytes or blob_hash(code, tuple(json.loads(shape)), raw) != h:
                        rep.bad_hashes.append(h)
                    rep.blobs_checked += 1
        if repair:
            zoo.reader.close()
            for n in rep.orphan_packs + rep.temp_files:
                try:
                    (zoo.packs_dir / n).unlink()
                    rep.repaired.append(n)
                except FileNotFoundError:
                    pass
    return rep


__all__ = ["StoreAccess", "VerifyReport", "collect_garbage", "verify_zoo"]
