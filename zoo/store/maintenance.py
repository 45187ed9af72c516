"""Zoo maintenance: garbage collection of unreferenced packs and verification of every stored byte.

Both run under the zoo's writer lock when they change anything; ``verify`` without ``repair`` only reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import stat
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from weightzoo.errors import ZooCorruptError

from .lock import WriterLock
from .packs import JOB_PREFIX, PACK_SUFFIX, TMP_PREFIX, BlobLocation, PackReader, blob_hash


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
    """What ``verify`` found. ``clean`` is True when the catalogue and the packs agree byte for byte.

    ``foreign_files`` are entries of ``packs/`` that weightzoo did not write (not named like its packs, or
    not plain files): reported, never touched. ``unrecoverable`` lists the models whose bytes are lost
    (a missing or damaged pack) with how to restore them; ``repair`` forgets the lost blobs, so that
    re-ingesting the same checkpoint writes them again and heals every model that shares them.
    """

    models: int = 0
    tensors: int = 0
    blobs_checked: int = 0
    bad_hashes: list[str] = field(default_factory=list)
    missing_blobs: list[str] = field(default_factory=list)
    missing_packs: list[str] = field(default_factory=list)
    damaged_packs: list[str] = field(default_factory=list)
    rows_without_data: list[str] = field(default_factory=list)
    orphan_packs: list[str] = field(default_factory=list)
    temp_files: list[str] = field(default_factory=list)
    foreign_files: list[str] = field(default_factory=list)
    unreferenced_blobs: int = 0
    unrecoverable: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """No corruption (orphans, temporaries and foreign files are harmless and do not count)."""
        return not (self.bad_hashes or self.missing_blobs or self.missing_packs or self.damaged_packs
                    or self.rows_without_data)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["clean"] = self.clean
        return d


#: Names weightzoo gives its packs and their temporaries; nothing else in ``packs/`` is ever deleted.
#: (Packs staged by a distributed job carry its prefix, ``job<12 hex>-``.)
PACK_NAME = re.compile(f"(?:{JOB_PREFIX.pattern})?" + r"[0-9a-f]{32}" + re.escape(PACK_SUFFIX))
TEMP_NAME = re.compile(re.escape(TMP_PREFIX) + PACK_NAME.pattern)


def _is_plain_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _remove_ours(folder: Path, name: str) -> bool:
    """Delete ``folder/name`` only if it is a plain file named like a pack (or its temporary)."""
    if not (PACK_NAME.fullmatch(name) or TEMP_NAME.fullmatch(name)) or not _is_plain_file(folder / name):
        return False
    try:
        (folder / name).unlink()
    except FileNotFoundError:
        return False
    return True


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
            _remove_ours(zoo.packs_dir, d)
    return {"blobs_removed": n_blobs, "packs_removed": len(dead), "bytes_freed": int(freed)}


def verify_zoo(zoo: StoreAccess, *, repair: bool = False, rehash: bool = True) -> VerifyReport:
    """Check that catalogue and packs agree: re-hash every blob, find missing, damaged and orphan data.

    ``repair=True`` (under the writer lock) deletes orphan packs and temporary files that weightzoo named
    (never a foreign file), and forgets blobs whose bytes are lost (their pack is missing or damaged, or
    their hash does not match) so that a re-ingest writes them again. It never deletes a model or a tensor
    row: the models that lost bytes are listed in ``unrecoverable`` until they are re-ingested.
    """
    rep = VerifyReport()
    with zoo.lock if repair else contextlib.nullcontext():
        rep.models = int(zoo.query("SELECT COUNT(*) FROM models")[0][0])
        rep.tensors = int(zoo.query("SELECT COUNT(*) FROM tensors")[0][0])
        packs = {r[0] for r in zoo.query("SELECT name FROM packs")}
        on_disk: set[str] = set()
        if zoo.packs_dir.is_dir():
            for entry in os.scandir(zoo.packs_dir):
                plain = _is_plain_file(Path(entry.path))
                if plain and TEMP_NAME.fullmatch(entry.name):
                    rep.temp_files.append(entry.name)
                elif plain and (PACK_NAME.fullmatch(entry.name) or entry.name in packs):
                    on_disk.add(entry.name)
                else:
                    rep.foreign_files.append(entry.name)
        rep.temp_files.sort()
        rep.foreign_files.sort()
        rep.orphan_packs = sorted(n for n in on_disk - packs if PACK_NAME.fullmatch(n))
        rep.missing_packs = sorted(packs - on_disk)
        rep.unreferenced_blobs = int(zoo.query(
            "SELECT COUNT(*) FROM blobs WHERE hash NOT IN (SELECT hash FROM tensors WHERE hash IS NOT NULL)")[0][0])
        lost: set[str] = set()  # blob hashes whose bytes are gone or wrong
        for pack in sorted(packs - set(rep.missing_packs)):
            try:
                keys = set(zoo.reader.keys(pack))
            except ZooCorruptError:
                rep.damaged_packs.append(pack)
                continue
            for h, dataset, offset, code, shape, nbytes in zoo.query(
                    "SELECT hash, dataset, offset, dtype, shape, nbytes FROM blobs WHERE pack=?", (pack,)):
                if dataset not in keys:
                    rep.missing_blobs.append(f"{pack}:{h}")
                    lost.add(h)
                    continue
                if rehash:
                    try:
                        raw = zoo.reader.read_raw(pack, BlobLocation(dataset, offset), nbytes)
                        ok = raw.size == nbytes and blob_hash(code, tuple(json.loads(shape)), raw) == h
                    except ZooCorruptError:
                        ok = False
                    if not ok:
                        rep.bad_hashes.append(h)
                        lost.add(h)
                    rep.blobs_checked += 1
        lost_packs = rep.missing_packs + rep.damaged_packs
        for pack in lost_packs:
            lost.update(r[0] for r in zoo.query("SELECT hash FROM blobs WHERE pack=?", (pack,)))
        if repair and (lost or lost_packs):
            with zoo.transaction() as c:
                c.executemany("DELETE FROM blobs WHERE hash=?", [(h,) for h in sorted(lost)])
                c.executemany("DELETE FROM packs WHERE name=? AND name NOT IN (SELECT pack FROM blobs)",
                              [(p,) for p in lost_packs])
            rep.repaired += [f"forgot lost blob {h}" for h in sorted(lost)]
        for (model, tname, _h) in zoo.query(
                "SELECT m.name, t.name, t.hash FROM tensors t JOIN models m ON m.id = t.model_id "
                "LEFT JOIN blobs b ON b.hash = t.hash WHERE t.hash IS NOT NULL AND b.hash IS NULL"):
            rep.rows_without_data.append(f"{model}:{tname}")
        affected = sorted(lost)
        refs = zoo.query(
            "SELECT DISTINCT m.name, m.revision, m.source FROM tensors t JOIN models m ON m.id = t.model_id "
            "LEFT JOIN blobs b ON b.hash = t.hash WHERE t.hash IS NOT NULL AND (b.hash IS NULL OR b.hash IN "
            f"({','.join('?' * len(affected))})) ORDER BY m.name", tuple(affected)) if affected else zoo.query(
            "SELECT DISTINCT m.name, m.revision, m.source FROM tensors t JOIN models m ON m.id = t.model_id "
            "LEFT JOIN blobs b ON b.hash = t.hash WHERE t.hash IS NOT NULL AND b.hash IS NULL ORDER BY m.name")
        for name, revision, source in refs:
            ref = f"{name}@{revision}" if revision else name
            how = (f"weightzoo ingest {source} --name {name}" + (f" --revision {revision}" if revision else "")
                   + " --replace") if source and source.startswith("/") else "re-ingest it from its checkpoint"
            rep.unrecoverable.append(f"{ref} (restore: {'verify --repair, then ' if not repair else ''}{how})")
        if repair:
            zoo.reader.close()
            for n in rep.orphan_packs + rep.temp_files:
                if _remove_ours(zoo.packs_dir, n):
                    rep.repaired.append(n)
    return rep


__all__ = ["PACK_NAME", "TEMP_NAME", "StoreAccess", "VerifyReport", "collect_garbage", "verify_zoo"]
