"""HDF5 tensor packs: content hashing, durable pack writes, and lazy reads.

A pack is an immutable HDF5 file under ``packs/``. A large tensor blob is one dataset named by its hash,
stored with its numpy dtype and shape (readable with plain h5py); small blobs (under ``SMALL_BLOB``
bytes) are concatenated into byte *segments* (``seg0``, ``seg1`` ...) and located by offset, because an
HDF5 dataset costs about a millisecond to create: a batch of 10,000 small networks would otherwise
spend most of its time in HDF5 bookkeeping. It is written to a temporary name, flushed, fsynced, renamed into place and the folder fsynced;
only then does the catalogue point at it. A crash leaves at most an orphan (or a temporary) file that
``verify --repair`` removes. An existing pack is never opened for writing.
"""

from __future__ import annotations

import math
import os
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import blake3
import h5py
import numpy as np
import torch

from weightzoo.errors import StorageError, ZooCorruptError
from weightzoo.zoo.formats.base import TensorInfo
from weightzoo.zoo.formats.dtypes import count_nonfinite, dtype_from_code, tensor_from_bytes
from weightzoo.zoo.formats.durable import durable_replace

TMP_PREFIX = ".tmp-"
# Start writing dirty pages back after this many bytes, in a background thread, so the final fsync
# (durability before the catalogue points at the pack) finds little left to do.
_WRITEBACK_BYTES = 32 << 20
SMALL_BLOB = 64 << 10  # blobs smaller than this go into segments
_SEGMENT_BYTES = 32 << 20  # a segment is written out once it holds this much
PACK_SUFFIX = ".h5"
#: The prefix that marks the packs of one distributed job (``job`` + 12 hex digits + ``-``), so its driver
#: can find and remove what the job's workers wrote but it never committed.
JOB_PREFIX = re.compile(r"job[0-9a-f]{12}-")
#: HDF5 datasets have at most 32 dimensions; a blob of higher rank (torch allows 64) is stored flat, and its
#: shape, which the catalogue records, is restored on read.
HDF5_MAX_RANK = 32
_READ_WINDOW = 4 << 20

T = TypeVar("T")


def blob_hash(code: str, shape: tuple[int, ...], data: memoryview | bytes | np.ndarray) -> str:
    """Content address of a tensor: BLAKE3 of (dtype code, shape, bytes), hex.

    BLAKE3 is cryptographic (a crafted checkpoint cannot collide with another tensor to alias it) and,
    multithreaded over large buffers, runs near memory bandwidth.
    """
    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    h.update(f"{code}|{','.join(map(str, shape))}|".encode())
    h.update(data)  # type: ignore[arg-type]  # numpy arrays are buffers
    return h.hexdigest()


def digest_tensor(model: str, info: TensorInfo, data: memoryview) -> tuple[str, int, int]:
    """Content hash and NaN/Inf counts of one tensor's bytes (checked against its declared size)."""
    if len(data) != info.nbytes:
        raise StorageError(f"{model}: tensor {info.name!r} read {len(data)} bytes, expected {info.nbytes}")
    return (blob_hash(info.dtype, info.shape, data), *count_nonfinite(data, info.dtype))


@dataclass(frozen=True)
class BlobLocation:
    """Where a blob sits in its pack: a whole dataset (``offset`` None) or a slice of a byte segment."""

    dataset: str
    offset: int | None = None


class PackWriter:
    """Writes one new pack: ``add`` blobs, then ``commit`` (rename into place) or ``abort``."""

    def __init__(self, folder: Path, *, prefix: str = "") -> None:
        self.folder = folder
        # ``prefix`` marks the packs of one distributed job, so its driver can find what the job left behind.
        if prefix and not JOB_PREFIX.fullmatch(prefix):
            raise ValueError(f"PackWriter: a pack prefix is 'job' + 12 hex digits + '-', not {prefix!r}")
        self.name = f"{prefix}{uuid.uuid4().hex}{PACK_SUFFIX}"
        self.tmp = folder / f"{TMP_PREFIX}{self.name}"
        self.path = folder / self.name
        self.count = 0
        self.nbytes = 0
        self._file: h5py.File | None = None
        self._unsynced = 0
        self._sync_thread: threading.Thread | None = None
        self._segment = bytearray()
        self._segment_used = False  # zero-byte blobs still need their segment to exist
        self._segments = 0

    def _open(self) -> h5py.File:
        if self._file is None:
            # "x": fail if it exists; never "w" on a path that could hold data.
            self._file = h5py.File(self.tmp, "x", locking=False)
        return self._file

    def add(self, key: str, code: str, shape: tuple[int, ...], data: memoryview | bytes | np.ndarray) -> BlobLocation:
        """Store one blob (raw little-endian bytes of a ``code`` tensor of ``shape``); say where it went."""
        dt = dtype_from_code(code)
        raw = data if isinstance(data, np.ndarray) else np.frombuffer(data, dtype=np.uint8)
        self.count += 1
        self.nbytes += raw.nbytes
        if raw.nbytes < SMALL_BLOB:
            loc = BlobLocation(f"seg{self._segments}", len(self._segment))
            self._segment += raw.reshape(-1).view(np.uint8).tobytes()
            self._segment_used = True
            if len(self._segment) >= _SEGMENT_BYTES:
                self._flush_segment()
            return loc
        arr = raw.view(dt.storage).reshape(shape if len(shape) <= HDF5_MAX_RANK else (-1,))
        try:
            f = self._open()
            ds = f.create_dataset(key, shape=arr.shape, dtype=dt.storage)
            if arr.size:
                ds.write_direct(np.ascontiguousarray(arr))
            ds.attrs["dtype"] = code
        except Exception as exc:  # noqa: BLE001 - h5py raises OSError, RuntimeError ... on a full disk
            raise StorageError(f"writing pack {self.tmp}: {_reason(exc)}") from None
        self._wrote(arr.nbytes)
        return BlobLocation(key)

    def _flush_segment(self) -> None:
        if not self._segment_used:
            return
        try:
            self._open().create_dataset(f"seg{self._segments}", data=np.frombuffer(bytes(self._segment), dtype=np.uint8))
        except Exception as exc:  # noqa: BLE001 - h5py raises OSError, RuntimeError ... on a full disk
            raise StorageError(f"writing pack {self.tmp}: {_reason(exc)}") from None
        self._wrote(len(self._segment))
        self._segments += 1
        self._segment = bytearray()
        self._segment_used = False

    def _wrote(self, nbytes: int) -> None:
        self._unsynced += nbytes
        if self._unsynced >= _WRITEBACK_BYTES and (self._sync_thread is None or not self._sync_thread.is_alive()):
            self._unsynced = 0
            self._sync_thread = threading.Thread(target=self._writeback, daemon=True)
            self._sync_thread.start()

    def _writeback(self) -> None:
        """fdatasync through a second descriptor: it flushes the file's pages written so far."""
        try:
            fd = os.open(self.tmp, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fdatasync(fd)
        except OSError:
            pass  # the final fsync in commit() reports real failures
        finally:
            os.close(fd)

    def commit(self) -> bool:
        """Flush, fsync and rename the pack into place; ``False`` if nothing was added (no file made)."""
        try:
            self._flush_segment()
        except StorageError:
            self.abort()
            raise
        if self._file is None:
            return False
        if self._sync_thread is not None:
            self._sync_thread.join()
        try:
            self._file.flush()
            self._file.close()
            self._file = None
            durable_replace(self.tmp, self.path)
        except Exception as exc:  # noqa: BLE001 - as in add()
            self.abort()
            raise StorageError(f"finishing pack {self.path}: {_reason(exc)}") from None
        return True

    def abort(self) -> None:
        """Drop the temporary (or renamed but uncommitted) pack."""
        if self._sync_thread is not None:
            self._sync_thread.join()
        if self._file is not None:
            try:
                self._file.close()
            except Exception:  # noqa: BLE001 - closing a failed file must not mask the original error
                pass
            self._file = None
        for p in (self.tmp, self.path):
            try:
                p.unlink()
            except FileNotFoundError:
                pass


def _reason(exc: BaseException) -> str:
    """One line for an OS error: the errno's text when known (HDF5 adds a multi-line trace)."""
    code = getattr(exc, "errno", None)
    if code:
        return f"{os.strerror(code)} (errno {code})"
    text = str(exc)
    for probe, nice in (("File too large", "file too large (EFBIG)"), ("No space left", "no space left on device")):
        if probe in text:
            return nice
    return text.splitlines()[0] if text else type(exc).__name__


class PackReader:
    """Read-only access to packs, with a small cache of open files (packs are immutable).

    A damaged pack (flipped bits in its HDF5 metadata, a truncated file, a folder in its place) makes
    h5py raise anything from ``OSError`` to ``RuntimeError`` or ``KeyError``; every read here turns that
    into one :class:`~weightzoo.errors.ZooCorruptError` naming the pack.
    """

    def __init__(self, folder: Path, max_open: int = 16) -> None:
        self.folder = folder
        self.max_open = max_open
        self._open: OrderedDict[str, h5py.File] = OrderedDict()
        self._lock = threading.Lock()
        self._segment_cache: tuple[tuple[str, str, int], np.ndarray] | None = None

    def _file(self, pack: str) -> h5py.File:
        f = self._open.get(pack)
        if f is not None:
            self._open.move_to_end(pack)
            return f
        path = self.folder / pack
        try:
            f = h5py.File(path, "r", locking=False)
        except FileNotFoundError as exc:
            raise ZooCorruptError(f"pack {path} is missing (run `weightzoo verify`)") from exc
        except Exception as exc:  # noqa: BLE001 - h5py's errors on a damaged file are of many kinds
            raise ZooCorruptError(f"pack {path} cannot be read: {_one_line(exc)}") from None
        self._open[pack] = f
        while len(self._open) > self.max_open:
            _, old = self._open.popitem(last=False)
            old.close()
        return f

    def _guarded(self, pack: str, what: str, fn: Callable[[h5py.File], T]) -> T:
        with self._lock:
            f = self._file(pack)
            try:
                return fn(f)
            except ZooCorruptError:
                raise
            except KeyError:
                raise ZooCorruptError(f"pack {pack} has no {what} (run `weightzoo verify`)") from None
            except Exception as exc:  # noqa: BLE001 - see the class docstring
                raise ZooCorruptError(f"pack {pack}, {what}: {_one_line(exc)} (run `weightzoo verify`)") from None

    def read_array(self, pack: str, key: str) -> np.ndarray:
        """The stored array of one blob (storage dtype, as stored: its true shape, or flat for rank > 32)."""
        def read(f: h5py.File) -> np.ndarray:
            ds = f[key]
            return ds[()] if ds.shape != () else np.asarray(ds[()])
        return self._guarded(pack, f"blob {key}", read)

    def read_slice(self, pack: str, dataset: str, offset: int, nbytes: int) -> np.ndarray:
        """``nbytes`` raw bytes of a segment, from ``offset``.

        A window of 4 MiB from ``offset`` is read and kept: reading a model of many small tensors (stored one
        after another) then costs one HDF5 read per 4 MiB, not one per tensor.
        """
        cached = self._segment_cache
        if cached is not None and cached[0][:2] == (pack, dataset):
            start = cached[0][2]
            window = cached[1]
            if start <= offset and offset + nbytes <= start + window.shape[0]:
                return window[offset - start : offset - start + nbytes]

        def read(f: h5py.File) -> np.ndarray:
            ds = f[dataset]
            if ds.ndim != 1 or ds.dtype != np.uint8:
                raise ZooCorruptError(f"pack {pack}, segment {dataset}: not a byte segment (run `weightzoo verify`)")
            if offset < 0 or offset + nbytes > ds.shape[0]:
                raise ZooCorruptError(f"pack {pack}, segment {dataset}: blob at {offset}+{nbytes} past its end")
            return ds[offset : min(ds.shape[0], offset + max(nbytes, _READ_WINDOW))]

        window = self._guarded(pack, f"segment {dataset}", read)
        self._segment_cache = ((pack, dataset, offset), window)
        return window[:nbytes]

    def read_raw(self, pack: str, loc: BlobLocation, nbytes: int) -> np.ndarray:
        """A blob's bytes as a flat ``uint8`` array, wherever it sits in its pack."""
        if loc.offset is not None:
            return self.read_slice(pack, loc.dataset, loc.offset, nbytes)
        arr = self.read_array(pack, loc.dataset)
        return np.ascontiguousarray(arr).reshape(-1).view(np.uint8)

    def read_tensor(self, pack: str, loc: BlobLocation, code: str, shape: tuple[int, ...]) -> torch.Tensor:
        """One blob as a torch tensor of its true dtype (raw bits reinterpreted, never converted)."""
        dt = dtype_from_code(code)
        nbytes = dt.itemsize * math.prod(shape)
        raw = self.read_raw(pack, loc, nbytes)
        if raw.size != nbytes:
            raise ZooCorruptError(f"pack {pack}, blob {loc.dataset}: {raw.size} bytes stored, {nbytes} expected")
        if loc.offset is not None or nbytes == 0:
            return tensor_from_bytes(raw, code, shape)  # a slice of a shared window: copied
        # A whole dataset was read into a fresh array: wrap it without a second copy.
        t = torch.from_numpy(raw)
        return t.view(torch.bool if dt.torch == torch.bool else dt.torch).reshape(shape)

    def keys(self, pack: str) -> list[str]:
        return self._guarded(pack, "index of datasets", lambda f: list(f.keys()))

    def close(self) -> None:
        with self._lock:
            self._segment_cache = None
            for f in self._open.values():
                try:
                    f.close()
                except Exception:  # noqa: BLE001, S110 - closing a damaged file must not mask anything
                    pass
            self._open.clear()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__


__all__ = ["digest_tensor", "JOB_PREFIX", "PACK_SUFFIX", "SMALL_BLOB", "TMP_PREFIX", "BlobLocation", "PackReader", "PackWriter", "blob_hash"]
