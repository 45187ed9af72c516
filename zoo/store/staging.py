"""Staging: writing a new pack for a batch of checkpoints without the catalogue, so workers can do it.

An ingest has two halves. The heavy one — open the checkpoints, hash and scan every tensor, write the
bytes into a new pack, fsync, rename it into place — needs only the ``packs/`` folder: :func:`write_pack`
does it for :meth:`Zoo.ingest_many <weightzoo.zoo.store.Zoo.ingest_many>` in the driver, and
:func:`stage_pack` does it in a worker (a process or a Ray task) and returns a :class:`StagedPack`: the
pack's name and blob table and each model's catalogue row. The light half — one catalogue transaction
pointing at the pack — is done by the driver alone, the one process that opens the catalogue
(:meth:`Zoo.commit_staged <weightzoo.zoo.store.Zoo.commit_staged>`).

A staged pack is an orphan until its rows are committed: a worker killed mid-write leaves a temporary
file, a driver that dies before committing leaves an orphan pack; neither is ever pointed at. Staged packs
carry their job's prefix in their name, so the driver removes what its job left behind
(:meth:`Zoo.discard_staged <weightzoo.zoo.store.Zoo.discard_staged>`) and ``verify --repair`` removes
anything older. A worker cannot see which blobs the zoo already holds, so a staged pack may repeat bytes
stored elsewhere: the commit points each blob at its first copy, and a staged pack none of whose blobs is
new is deleted at once.

:func:`ingest_parallel` is the driver loop: many checkpoints staged on an
:class:`~weightzoo.zoo.store.executors.Executor`, committed in input order, so the catalogue ends exactly as
a local run would leave it (same names, same order, bit-identical tensors).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from weightzoo.errors import ModelExistsError
from weightzoo.zoo.formats.base import TensorInfo

from .packs import SMALL_BLOB, BlobLocation, PackWriter, digest_tensor
from .sources import IngestItem, catalog_fields, open_item

if TYPE_CHECKING:
    from .catalog import ModelRecord
    from .executors import Executor
    from .zoo import Zoo

#: ``hash -> (dtype code, shape, nbytes, location in the pack)``
BlobTable = dict[str, tuple[str, tuple[int, ...], int, BlobLocation]]
#: One tensor row: ``(info, hash, nan count, inf count)``
TensorRow = tuple[TensorInfo, str, int, int]


@dataclass(frozen=True)
class StagedModel:
    """One model's catalogue row, ready to commit: identity, catalogue fields, metadata, tensor table."""

    name: str
    revision: str | None
    replace: bool
    fields: dict[str, Any]
    metadata: dict[str, Any]
    tensors: list[TensorRow]

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.revision}" if self.revision else self.name


@dataclass(frozen=True)
class StagedPack:
    """What a worker hands the driver: a new pack (``None`` when the batch held no bytes) and its rows."""

    pack: str | None
    nbytes: int
    blobs: BlobTable
    models: list[StagedModel]


def check_unique(items: Sequence[IngestItem]) -> None:
    """Refuse a batch that names one model twice (``ModelExistsError``)."""
    names = [(i.name, i.revision or "") for i in items]
    if len(set(names)) != len(names):
        raise ModelExistsError(next(n for n in names if names.count(n) > 1)[0])


def write_pack(items: Sequence[IngestItem], writer: PackWriter, *,
               known: Callable[[Sequence[str]], set[str]] = lambda hashes: set(),
               on_bytes: Callable[[int], None] | None = None) -> tuple[list[StagedModel], BlobTable]:
    """Hash, scan and write every tensor of ``items`` into ``writer`` (not committed); blobs that
    ``known(hashes)`` reports as stored, or seen earlier in the batch, are not written again.

    Tensor i+1 is read and hashed in a helper thread while tensor i is written (both release the GIL), so
    the time approaches that of the write alone. Small blobs wait (as views, no copies) so that one ``known``
    call answers for up to 4,096 of them: a million tiny tensors must not cost a million catalogue queries.
    """
    new_blobs: BlobTable = {}
    stream = [(k, info) for k, it in enumerate(items) for info in it.ckpt.tensors]
    rows: list[list[TensorRow]] = [[] for _ in items]
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="weightzoo-digest")
    pending: list[tuple[TensorInfo, str, memoryview]] = []

    def fetch(i: int) -> tuple[memoryview, Future[tuple[str, int, int]] | tuple[str, int, int]]:
        k, info = stream[i]
        data = items[k].ckpt.read_bytes(info.name)
        if len(data) < SMALL_BLOB:  # a thread hand-off costs more than hashing a small tensor here
            return data, digest_tensor(items[k].name, info, data)
        return data, pool.submit(digest_tensor, items[k].name, info, data)

    def store(batch: list[tuple[TensorInfo, str, memoryview]]) -> None:
        fresh = [h for _, h, _ in batch if h not in new_blobs]
        stored = known(fresh) if fresh else set()
        for info, h, data in batch:
            if h not in new_blobs and h not in stored:
                new_blobs[h] = (info.dtype, info.shape, info.nbytes, writer.add(h, info.dtype, info.shape, data))

    try:
        ahead = fetch(0) if stream else None
        for i, (k, info) in enumerate(stream):
            if ahead is None:  # fetch(i) ran for every i < len(stream)
                raise RuntimeError("write_pack: stream out of step")
            data, fut = ahead
            ahead = fetch(i + 1) if i + 1 < len(stream) else None
            h, nan, inf = fut if isinstance(fut, tuple) else fut.result()
            if len(data) < SMALL_BLOB:
                pending.append((info, h, data))
                if len(pending) >= 4096:
                    store(pending)
                    pending = []
            else:
                store([(info, h, data)])
            rows[k].append((info, h, nan, inf))
            del data, fut
            if on_bytes is not None:
                on_bytes(info.nbytes)
        store(pending)
        pending = []
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    models = [StagedModel(it.name, it.revision, it.replace, catalog_fields(it), it.metadata, r)
              for it, r in zip(items, rows)]
    return models, new_blobs


def stage_pack(packs_dir: str | Path, sources: Sequence[Mapping[str, Any]], *, prefix: str = "") -> StagedPack:
    """Worker side of an ingest: open ``sources`` (the keyword arguments of ``Zoo.ingest``), write their
    tensors into one new pack under ``packs_dir`` (durably: fsync, rename, fsync of the folder) and return
    the rows for the driver to commit. Never opens the catalogue."""
    opened: list[IngestItem] = []
    try:
        for s in sources:
            opened.append(open_item(dict(s)))
        check_unique(opened)
        writer = PackWriter(Path(packs_dir), prefix=prefix)
        try:
            models, blobs = write_pack(opened, writer)
            wrote = writer.commit()
        except BaseException:
            writer.abort()
            raise
        return StagedPack(writer.name if wrote else None, writer.nbytes, blobs, models)
    finally:
        for it in opened:
            it.ckpt.close()


class StageTask:
    """``batch -> StagedPack`` for an executor: picklable, holds only the packs folder and the job prefix."""

    def __init__(self, packs_dir: str | Path, prefix: str) -> None:
        self.packs_dir = str(packs_dir)
        self.prefix = prefix

    def __call__(self, batch: Sequence[Mapping[str, Any]]) -> StagedPack:
        return stage_pack(self.packs_dir, batch, prefix=self.prefix)


def new_job_prefix() -> str:
    """A prefix that marks the packs of one distributed job (``job<12 hex>-``)."""
    return f"job{uuid.uuid4().hex[:12]}-"


def _chunks(items: Sequence[Mapping[str, Any]], size: int) -> Iterator[list[Mapping[str, Any]]]:
    for i in range(0, len(items), size):
        yield list(items[i:i + size])


def ingest_parallel(zoo: Zoo, items: Sequence[Mapping[str, Any]], executor: Executor | None = None, *,
                    workers: int | None = None, ray: bool | str | None = None, per_task: int = 1,
                    atomic: bool = False, progress: bool | None = None,
                    task: Callable[[str, str], Callable[[list[Mapping[str, Any]]], StagedPack]] = StageTask,
                    ) -> list[ModelRecord]:
    """Ingest many checkpoints on workers: they stage packs, this process commits them in input order.

    Args:
        items: keyword arguments of :meth:`Zoo.ingest` (``source`` a path the workers can read).
        executor: where to stage; default ``make_executor(workers, ray=ray)``, closed before returning
            (a caller's own executor is left open: close it before relying on the zoo being tidy).
        per_task: checkpoints per task (one pack each); more means fewer, larger packs.
        atomic: one catalogue transaction for everything (all or nothing, like ``ingest_many``); otherwise
            each task's models are committed as it comes back, in input order, and an error stops the job
            with every earlier model committed — as a local one-by-one ingest would.
        progress: a tqdm bar over checkpoints (default: more than 20).
        task: builds the worker function from ``(packs folder, job prefix)``; default :class:`StageTask`.

    Whatever the job's workers staged but this process did not commit (an error, an interrupt, a worker
    killed mid-write) is removed before returning.
    """
    from tqdm import tqdm

    from .executors import make_executor

    if per_task < 1:
        raise ValueError(f"per_task must be >= 1, got {per_task}")
    own = executor is None
    ex = make_executor(workers, ray=ray) if executor is None else executor
    prefix = new_job_prefix()
    stage = task(str(zoo.packs_dir), prefix)
    show = progress if progress is not None else len(items) > 20
    bar = tqdm(total=len(items), unit="model", desc=f"ingest ({ex.name})", disable=not show or None,
               leave=False)
    records: list[ModelRecord] = []
    staged: list[StagedPack] = []
    try:
        for sp in ex.map(stage, _chunks(items, per_task)):
            if atomic:
                staged.append(sp)
            else:
                records += zoo.commit_staged([sp])
            bar.update(len(sp.models))
        if atomic:
            records = zoo.commit_staged(staged)
    finally:
        bar.close()
        if own:  # no task of this job is still running once its executor is closed
            ex.close()
        zoo.discard_staged(prefix)
    return records


__all__ = ["StageTask", "StagedModel", "StagedPack", "check_unique", "ingest_parallel", "new_job_prefix",
           "stage_pack", "write_pack"]
