"""PyTorch pickles, read only through ``torch.load(weights_only=True)`` and only after our own checks.

``weights_only=True`` keeps code in a pickle from running (a ``__reduce__`` that calls ``os.system`` is
refused), but two things happen before its unpickler refuses anything:

* In the zip format (``torch.save`` since 1.6) torch inflates members as it reads them: a 4 MB zip whose
  member declares gigabytes costs gigabytes of RAM before the refusal, and with ``mmap=True`` torch maps
  a *deflated* member's compressed bytes as if they were the tensor (garbage, silently). ``torch.save``
  writes every member STORED, so :func:`inspect_torch_zip` reads the central directory with
  :mod:`zipfile` and refuses compressed members, sizes that do not add up, and absurd member counts —
  then ``torch.load(path, weights_only=True, mmap=True, map_location="cpu")`` maps the tensors.
* The legacy format (``_use_new_zipfile_serialization=False``) cannot be mapped; it is read whole into
  RAM, so its file size is bounded first (``max_legacy_bytes``).

What the pickle holds is then reduced to one flat ``name → tensor`` dict by :func:`select_tensors`
(the policy is written there and in ``docs/formats.md``).
"""

from __future__ import annotations

import functools
import io
import os
import pickle
import pickletools
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import torch

from weightzoo.errors import CheckpointError, NoWeightsError, UnsafeCheckpointError, UnsupportedFormatError

from ._json import json_problem
from .memory import TensorDictCheckpoint
from .sniff import PICKLE, TORCH_LEGACY, TORCH_TAR, TORCH_ZIP

#: At most this many members in a torch zip (torch writes ~6 plus one per storage).
MAX_ZIP_MEMBERS = 200_000
#: Legacy checkpoints are read whole into memory; refuse files larger than this (bytes).
MAX_LEGACY_BYTES = 8 * 2**30
#: The members' declared (uncompressed) sizes may add up to at most this multiple of the archive size;
#: torch.save output is STORED, so its sum is below 1x, while bombs reach 100x-1000x.
MAX_DECLARED_RATIO = 4.0

#: Keys that wrap a state dict in training checkpoints, most specific first.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network", "weights")

_SCALARS = (bool, int, float, str)


# --- the zip container ---------------------------------------------------------------------------------


def inspect_torch_zip(path: str | os.PathLike[str], *, max_members: int = MAX_ZIP_MEMBERS) -> list[str]:
    """Check a torch zip's central directory before torch reads any member; return the member names.

    Refuses (:class:`~weightzoo.errors.UnsafeCheckpointError`): more than ``max_members`` members; two
    members with one name (``zipfile`` and torch's reader could pick different ones); members whose
    declared sizes add up to more than the archive (a zip bomb: highly compressed content or a lying
    size field); any member that is not STORED (torch ``mmap=True`` returns the compressed bytes as
    the tensor, and compression is what makes bombs possible). :class:`~weightzoo.errors.CheckpointError`
    for a broken or truncated archive, :class:`~weightzoo.errors.UnsupportedFormatError` for a zip that
    is no torch checkpoint (no ``data.pkl``).
    """
    p = Path(path)
    size = p.stat().st_size
    try:
        with zipfile.ZipFile(p) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as e:
        raise CheckpointError(p, f"not a readable zip archive (truncated or corrupt?): {e}") from None
    if len(infos) > max_members:
        raise UnsafeCheckpointError(p, f"zip has {len(infos)} members (limit {max_members})")
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise UnsafeCheckpointError(p, f"zip names member {dup!r} twice")
    declared = sum(i.file_size for i in infos)
    if declared > MAX_DECLARED_RATIO * size:
        worst = max(infos, key=lambda i: i.file_size / max(i.compress_size, 1))
        raise UnsafeCheckpointError(
            p, f"zip members declare {declared} bytes uncompressed in a {size}-byte archive (member "
            f"{worst.filename!r}: {worst.compress_size} → {worst.file_size} bytes): a zip bomb; nothing was inflated")
    for i in infos:
        if i.compress_type != zipfile.ZIP_STORED:
            raise UnsafeCheckpointError(
                p, f"zip member {i.filename!r} is compressed (method {i.compress_type}); torch.save stores "
                "members uncompressed, torch.load(mmap=True) would return the compressed bytes as the tensor, "
                "and compression is what zip bombs are made of — re-save it with torch.save")
        if i.file_size != i.compress_size or i.header_offset + i.compress_size > size:
            raise CheckpointError(p, f"zip member {i.filename!r} has inconsistent sizes (truncated or corrupt?)")
    if not any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        raise UnsupportedFormatError(p, "zip archive without data.pkl: not a torch.save checkpoint")
    return names


# --- the pickle, before torch reads it -----------------------------------------------------------------

#: Multiple of the file size that all tensors of a pickle together may declare (plus
#: :data:`EXPANSION_ALLOWANCE`): tied weights and a module reused a few times alias one storage, but 100
#: overlapping views of one storage would make a 4 MB file store 400 MB.
MAX_EXPANSION = 16.0
EXPANSION_ALLOWANCE = 64 * 2**20

#: The globals ``torch.save`` writes for state dicts (and training checkpoints of plain values). Anything
#: else is refused before ``torch.load`` runs: ``weights_only`` allows constructors such as
#: ``torch.Tensor(2**28)`` (a 1 GiB tensor of uninitialised heap memory from a 1 kB file) and
#: ``bytearray(2**32)``, which allocate before any check of ours could see them.
_ALLOWED_GLOBALS = frozenset({
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor_v3"),  # transformers' save_pretrained
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    # layouts we refuse by name later (a clearer message than "unknown object")
    ("torch._utils", "_rebuild_sparse_tensor"),
    ("torch._utils", "_rebuild_qtensor"),
    ("torch._utils", "_rebuild_meta_tensor_no_storage"),
    ("torch._utils", "_rebuild_nested_tensor"),
    ("torch.serialization", "_get_layout"),
    ("torch.storage", "UntypedStorage"),  # the storage type of transformers' persistent ids
    ("torch", "Size"),
    ("torch", "device"),
    ("collections", "Counter"),
    ("__builtin__", "set"),
    ("builtins", "set"),
    ("__builtin__", "complex"),
    ("builtins", "complex"),
    ("_codecs", "encode"),  # how protocol 2 writes a bytes value (bounded by the pickle's own size)
})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})


def _allowed_global(module: str, name: str) -> bool:
    if (module, name) in _ALLOWED_GLOBALS:
        return True
    if module != "torch":
        return False
    if name.endswith("Storage") and name != "Storage":  # FloatStorage, BFloat16Storage, ... (typed storages)
        return isinstance(getattr(torch, name, None), type)
    obj = getattr(torch, name, None)
    return isinstance(obj, torch.dtype | torch.qscheme | torch.layout)


@functools.lru_cache(maxsize=64)
def _storage_itemsize(name: str) -> int:
    cls = getattr(torch, name, None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TypedStorage is deprecated; its dtype is what we need
            return int(torch.empty((), dtype=cls.dtype).element_size())  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - an exotic storage class: count it as bytes
        return 1


def scan_pickle(stream: IO[bytes], path: Path, *, pickles: int = 1) -> int:
    """Read the opcodes of the next ``pickles`` pickles in ``stream`` without running any, refusing globals
    outside what ``torch.save`` writes; return the bytes the storages it references declare.

    Raises:
        UnsafeCheckpointError: a global outside the allowlist (a constructor, ``bytearray``, code).
        CheckpointError: the stream is no valid pickle (truncated, unknown opcode).
    """
    declared: dict[str, int] = {}
    for _ in range(pickles):
        memo: dict[Any, Any] = {}
        recent: list[Any] = []  # literal values pushed since the last persistent id
        last: Any = None
        strings: list[str] = []
        try:
            for op, arg, _pos in pickletools.genops(stream):
                name = op.name
                if name == "GLOBAL":
                    module, _, attr = str(arg).partition(" ")
                    last = ("global", module, attr)
                elif name == "STACK_GLOBAL":
                    module, attr = (strings[-2], strings[-1]) if len(strings) >= 2 else ("?", "?")
                    last = ("global", module, attr)
                elif name in _PUT_OPS or name == "MEMOIZE":
                    memo[arg if name != "MEMOIZE" else len(memo)] = last
                    continue
                elif name in _GET_OPS:
                    last = memo.get(arg)
                elif name == "BINPERSID" or name == "PERSID":
                    _note_storage(recent, declared)
                    recent = []
                    continue
                else:
                    last = arg if isinstance(arg, str | int) and not isinstance(arg, bool) else None
                if isinstance(last, tuple) and last[:1] == ("global",):
                    if not _allowed_global(last[1], last[2]):
                        raise UnsafeCheckpointError(
                            path, f"the pickle calls {last[1]}.{last[2]}, which torch.save never writes for "
                            "weights (a constructor or code); refused before torch.load could run or allocate it")
                    recent.append(last)
                elif last is not None:
                    recent.append(last)
                    if isinstance(last, str):
                        strings.append(last)
                        del strings[:-2]
        except UnsafeCheckpointError:
            raise
        except Exception as exc:  # noqa: BLE001 - pickletools raises ValueError, EOFError ... on garbage
            raise CheckpointError(path, f"corrupt pickle ({type(exc).__name__}: {str(exc)[:120]})") from None
    return sum(declared.values())


def _note_storage(recent: list[Any], declared: dict[str, int]) -> None:
    """Record the storage a persistent id ``('storage', <Type>Storage, key, location, numel)`` declares."""
    at = [i for i, v in enumerate(recent) if isinstance(v, tuple) and v[2].endswith("Storage")]
    if not at:
        return
    after = recent[at[-1] + 1:]
    ints = [v for v in after if isinstance(v, int)]
    keys = [v for v in after if isinstance(v, str)]
    if not ints or not keys:
        return
    itemsize = _storage_itemsize(recent[at[-1]][2])
    declared[keys[0]] = max(declared.get(keys[0], 0), ints[-1] * itemsize)


def _check_declared(path: Path, declared: int, size: int) -> None:
    limit = MAX_EXPANSION * size + EXPANSION_ALLOWANCE
    if declared > limit:
        raise UnsafeCheckpointError(
            path, f"declares {declared} bytes of tensors in a {size}-byte file (more than {MAX_EXPANSION:g}x its "
            f"size + {EXPANSION_ALLOWANCE >> 20} MiB): a memory bomb; refused before materialising it")


def _scan_file(p: Path, fmt: str) -> None:
    size = p.stat().st_size
    if fmt == TORCH_ZIP:
        with zipfile.ZipFile(p) as zf:
            member = next(n for n in zf.namelist() if n == "data.pkl" or n.endswith("/data.pkl"))
            with zf.open(member) as f:  # STORED (checked): reading it costs its size, bounded by the file
                data = f.read()
        declared = scan_pickle(io.BytesIO(data), p)
    else:
        with open(p, "rb") as f:
            # legacy: magic number, protocol, system info, the object, the storage keys; a plain pickle: one
            declared = scan_pickle(f, p, pickles=5 if fmt == TORCH_LEGACY else 1)
    _check_declared(p, declared, size)


# --- loading ---------------------------------------------------------------------------------------------


def _refusal_detail(msg: str) -> str:
    """The line of torch's long refusal that says what was refused (``GLOBAL posix.system`` ...)."""
    for line in msg.splitlines():
        line = line.strip()
        if "GLOBAL" in line or line.startswith("Unsupported"):
            return f"({line.split('. ')[0].rstrip('.')[:200]})"
    return ""


def _torch_load(p: Path, *, mmap: bool) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # TypedStorage / protocol notices, not ours to show
            return torch.load(p, weights_only=True, mmap=mmap, map_location="cpu")
    except pickle.UnpicklingError as e:
        msg = str(e)
        if "Weights only load failed" in msg or "Unsupported" in msg:
            detail = _refusal_detail(msg)
            raise UnsafeCheckpointError(
                p, "torch.load(weights_only=True) refused it: the pickle holds more than tensors "
                f"(code or unknown objects); it was not executed. {detail}".rstrip()) from None
        raise CheckpointError(p, f"corrupt pickle: {msg.splitlines()[0] if msg else type(e).__name__}") from None
    except Exception as e:  # torch raises RuntimeError, EOFError, AttributeError ... on corrupt input
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "Invalid magic number" in first:
            raise UnsupportedFormatError(p, "a plain pickle, not a torch.save checkpoint") from None
        raise CheckpointError(p, f"torch.load failed ({type(e).__name__}): {first}") from None


def load_torch_file(path: str | os.PathLike[str], fmt: str, *, max_legacy_bytes: int = MAX_LEGACY_BYTES,
                    max_members: int = MAX_ZIP_MEMBERS) -> TensorDictCheckpoint:
    """Open a torch checkpoint whose sniffed format is ``fmt`` (``torch-zip``, ``torch-legacy`` or ``pickle``).

    Raises:
        UnsupportedFormatError: ``torch-tar`` (torch's pre-0.4 format: ``weights_only`` cannot read it).
        UnsafeCheckpointError: the zip checks fail, or ``weights_only`` refuses the pickle.
        CheckpointError: a corrupt or truncated file, or a legacy file above ``max_legacy_bytes``.
    """
    p = Path(path)
    if fmt == TORCH_TAR:
        raise UnsupportedFormatError(
            p, "legacy tar checkpoint (torch < 0.4): torch can only read it by unpickling without "
            "weights_only, which could run code; load and re-save it in a trusted sandbox")
    if fmt == TORCH_ZIP:
        inspect_torch_zip(p, max_members=max_members)
        _scan_file(p, fmt)
        obj = _torch_load(p, mmap=True)
    elif fmt in (TORCH_LEGACY, PICKLE):
        size = p.stat().st_size
        if size > max_legacy_bytes:
            raise CheckpointError(p, f"legacy checkpoint of {size} bytes exceeds max_legacy_bytes="
                                  f"{max_legacy_bytes} (it must be read whole into memory)")
        _scan_file(p, fmt)
        obj = _torch_load(p, mmap=False)
    else:
        raise UnsupportedFormatError(p, f"not a torch checkpoint format: {fmt}")
    tensors, metadata = select_tensors(obj, p)
    ckpt = TensorDictCheckpoint(tensors, path=p, format=TORCH_ZIP if fmt == TORCH_ZIP else TORCH_LEGACY,
                                metadata=metadata)  # refuses sparse, nested, quantized and meta tensors first
    total = 0
    for name, t in tensors.items():
        _check_not_expanded(p, name, t)
        total += t.numel() * t.element_size()
    if fmt == TORCH_ZIP:
        _check_from_file(p, tensors)
    _check_declared(p, total, p.stat().st_size)  # views that each fit their storage, but overlap many times
    return ckpt


def _check_not_expanded(path: Path, name: str, t: torch.Tensor) -> None:
    """Refuse a tensor that declares more bytes than its storage holds.

    ``weights_only`` rebuilds tensors with whatever size and strides the pickle declares: a 1.5 KB file can
    declare a stride-0 view of 2^40 elements over a one-element storage, which storing (making it
    contiguous) would allocate in full. A real checkpoint never needs that (tied weights and views such as
    ``position_ids`` stay within their storage).
    """
    declared = t.numel() * t.element_size()
    available = t.untyped_storage().nbytes() - t.storage_offset() * t.element_size()
    if declared > max(available, 0):
        raise UnsafeCheckpointError(path, f"declares {declared} bytes over a storage of {available} bytes "
                                    "(an expanded view: materialising it could exhaust memory)", tensor=name)


def _mapped_ranges(path: Path) -> list[tuple[int, int]] | None:
    """Address ranges where ``path`` is memory-mapped in this process (``None`` where ``/proc`` is absent)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
    except OSError:
        return None
    real = os.path.realpath(path)
    ranges = []
    for line in lines:
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5].rstrip("\n") == real:
            lo, hi = parts[0].split("-")
            ranges.append((int(lo, 16), int(hi, 16)))
    return ranges


def _check_from_file(path: Path, tensors: Mapping[str, torch.Tensor]) -> None:
    """Refuse a tensor of a zip checkpoint whose storage is not mapped from the file (``mmap=True`` maps
    every storage the file holds): it was *constructed* by the pickle (``torch.FloatStorage(n)`` is
    callable under ``weights_only``), and its bytes are whatever the heap held — process memory that must
    not end up in a zoo and in exports."""
    ranges = _mapped_ranges(path)
    if ranges is None:  # no /proc (not Linux): the pickle scan's refusal of constructors still applies
        return
    for name, t in tensors.items():
        storage = t.untyped_storage()
        start, n = storage.data_ptr(), storage.nbytes()
        if n and not any(lo <= start and start + n <= hi for lo, hi in ranges):
            raise UnsafeCheckpointError(path, "its storage is not in the file: a tensor constructed by the pickle "
                                        "holds uninitialised memory, not weights", tensor=name)


# --- what the pickle holds -------------------------------------------------------------------------------


def _storable(key: str, value: Any) -> bool:
    """Whether a scalar entry can become metadata: key and text valid Unicode (no lone surrogate)."""
    return json_problem({key: value if not isinstance(value, float) else 0.0}) is None


def _scalar_text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


#: Deepest nesting of mappings (wrappers plus the state dict's own nesting) read from a pickle.
MAX_NESTING = 64


def _flatten(obj: Mapping[Any, Any], prefix: str, out: dict[str, torch.Tensor], metadata: dict[str, str],
             p: Path, depth: int = 0) -> None:
    if depth > MAX_NESTING:
        raise CheckpointError(p, f"mappings nested deeper than {MAX_NESTING} levels (at {prefix[:80]!r}...): "
                              "not a state dict")
    for key, value in obj.items():
        if not isinstance(key, str):
            raise CheckpointError(p, f"key {key!r} under {prefix.rstrip('.') or 'the top level'} is a "
                                  f"{type(key).__name__}, not a string: not a state dict")
        name = prefix + key
        if isinstance(value, torch.Tensor):
            if name in out:
                raise CheckpointError(p, "two entries flatten to the same dotted name", tensor=name)
            out[name] = value
        elif isinstance(value, Mapping):
            _flatten(value, name + ".", out, metadata, p, depth + 1)
        elif not prefix and (value is None or isinstance(value, _SCALARS)):
            if not _storable(key, value):
                raise CheckpointError(p, f"entry {name[:40]!r}: a key or string value that is not valid Unicode "
                                      "(a lone surrogate)")
            metadata[key] = _scalar_text(value)
        else:
            raise CheckpointError(
                p, f"entry {name!r} is a {type(value).__name__}: cannot tell which tensors are the model; "
                "save the model's state_dict() alone (or under 'state_dict'/'model')")


def _has_tensor(obj: Any) -> bool:
    """Whether ``obj`` is, or holds within :data:`MAX_NESTING` levels of mappings, a tensor (iterative)."""
    stack = [(obj, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, torch.Tensor):
            return True
        if isinstance(value, Mapping) and depth < MAX_NESTING:
            stack.extend((v, depth + 1) for v in value.values())
    return False


def select_tensors(obj: Any, path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Reduce what ``torch.load`` returned to one flat ``name → tensor`` dict plus string metadata.

    Policy:

    1. A top level with no tensors of its own but a key in :data:`WRAPPER_KEYS` (``state_dict``,
       ``model_state_dict``, ``model``, ``module``, ``net``, ``network``, ``weights``; first match wins)
       whose value is a mapping holding tensors: that value is the state dict (nested wrappers such as
       ``{"model": {"state_dict": ...}}`` unwrap again). Top-level scalars (``epoch``, ``step``, ``loss``)
       become metadata strings; everything else there (optimizer and scheduler state, other models
       such as ``ema``) is left out and its keys are listed in ``metadata["dropped_keys"]``.
    2. Otherwise the mapping itself is the state dict. Nested mappings of tensors are flattened with
       dotted names (``{"encoder": {"w": t}}`` → ``"encoder.w"``); scalars at its top level become
       metadata; any other value (a list, an optimizer's integer-keyed state) is refused with a
       :class:`~weightzoo.errors.CheckpointError` naming it, rather than guessing.

    Raises:
        CheckpointError: the object is no mapping, or holds values rule 2 refuses.
        NoWeightsError: it holds no tensors.
    """
    p = Path(path)
    if isinstance(obj, torch.Tensor):
        raise CheckpointError(p, "holds a single tensor, not a state dict (save {'name': tensor} instead)")
    if not isinstance(obj, Mapping):
        raise CheckpointError(p, f"holds a {type(obj).__name__}, not a state dict (a mapping of names to tensors)")
    metadata: dict[str, str] = {}
    unwrapped = 0
    while not any(isinstance(v, torch.Tensor) for v in obj.values()):
        unwrapped += 1
        if unwrapped > MAX_NESTING:
            raise CheckpointError(p, f"wrappers nested deeper than {MAX_NESTING} levels: not a training checkpoint")
        key = next((k for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping) and _has_tensor(obj[k])), None)
        if key is None:
            break
        dropped = []
        for k, v in obj.items():
            if k == key:
                continue
            if isinstance(k, str) and (v is None or isinstance(v, _SCALARS)) and _storable(k, v):
                metadata.setdefault(k, _scalar_text(v))
            else:
                dropped.append(str(k))
        if dropped:
            previous = metadata.get("dropped_keys")
            metadata["dropped_keys"] = ",".join(([previous] if previous else []) + sorted(dropped))
        obj = obj[key]
    tensors: dict[str, torch.Tensor] = {}
    inner_meta: dict[str, str] = {}
    _flatten(obj, "", tensors, inner_meta, p)
    for k, v in inner_meta.items():
        metadata.setdefault(k, v)
    if not tensors:
        raise NoWeightsError(p, "the pickle holds no tensors")
    return tensors, metadata


__all__ = ["MAX_LEGACY_BYTES", "MAX_ZIP_MEMBERS", "WRAPPER_KEYS", "inspect_torch_zip", "load_torch_file",
           "select_tensors"]
