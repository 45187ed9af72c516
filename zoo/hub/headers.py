"""Tensor tables of Hub repositories from safetensors *headers*, fetched with HTTP range requests.

A safetensors file starts with ``u64 n`` (little-endian) and ``n`` bytes of JSON header. We GET bytes
``0–99,999`` (one request covers ~97 % of headers on the Hub), and a second range when the header is
longer; headers announcing more than ``max_header_bytes`` (100 MB) are refused before anything is
fetched. The bytes are validated by the store's own parser
(:func:`weightzoo.zoo.formats.safetensors.parse_header`) against the file's true size (from
``Content-Range``), so a lying header (offsets past the end, holes, overlaps) is caught without the data.

Layouts (:func:`select_weights`), in order of preference: a sharded index at the root; ``model.safetensors``;
``adapter_model.safetensors``; other root ``*.safetensors`` (one, or several as components); diffusers-style
subfolders (``unet/diffusion_pytorch_model.safetensors``, ``text_encoder/model.safetensors``, shards
included) whose tensors are named ``<folder>/<tensor>``; pickles only; nothing. ``get_safetensors_metadata``
refuses the last three safetensors layouts; we read them all.
"""

from __future__ import annotations

import fnmatch
import io
import posixpath
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from weightzoo.errors import CheckpointError, HeaderTooLargeError, TruncatedResponseError
from weightzoo.zoo.formats._json import loads_strict
from weightzoo.zoo.formats.base import TensorInfo
from weightzoo.zoo.formats.safetensors import MAX_HEADER_BYTES, parse_header
from weightzoo.zoo.formats.snapshot import NOT_WEIGHTS

from .retry import Retrier

#: Bytes of the first range request (the same as huggingface_hub's ``get_safetensors_metadata``).
FIRST_RANGE = 100_000
#: Largest sharded index we fetch.
MAX_INDEX_BYTES = 50 << 20

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
_COMPONENT_FILES = ("diffusion_pytorch_model", "model")


@dataclass(frozen=True)
class WeightPlan:
    """Which files of a repository hold its weights.

    ``layout`` is ``"single"``, ``"sharded"``, ``"adapter"``, ``"components"``, ``"pickle"`` or ``"none"``;
    ``parts`` maps a tensor-name prefix (``""`` at the root, ``"unet"`` for a component) to a
    ``.safetensors`` file or a ``*.safetensors.index.json``; ``pickles`` lists pickled weight files.
    """

    layout: str
    parts: dict[str, str] = field(default_factory=dict)
    pickles: list[str] = field(default_factory=list)

    @property
    def format(self) -> str | None:
        return {"single": "safetensors", "adapter": "safetensors", "sharded": "safetensors-sharded",
                "components": "safetensors-components", "pickle": "torch-pickle"}.get(self.layout)

    def download_patterns(self, files: Iterable[str], include: Iterable[str] | None = None) -> list[str]:
        """Files to fetch for an ingest: the weights (or those matching ``include``) and the configs."""
        files = list(files)
        weights = list(self.parts.values()) if self.parts else list(self.pickles)
        if self.layout == "pickle" and any(p.endswith(".index.json") for p in self.pickles):
            weights = list(self.pickles)
        if include:
            pats = list(include)
            weights = [f for f in files if any(fnmatch.fnmatch(f, p) for p in pats)]
        out = set(weights)  # shards of an index are added by the caller, which reads the index
        configs = {"config.json", "adapter_config.json", "model_index.json"}
        configs |= {f"{prefix}/config.json" for prefix in self.parts if prefix}
        return sorted(out | {c for c in configs if c in files})


def _variant(name: str) -> bool:
    """``model.fp16.safetensors`` and the like: precision variants of a canonical file."""
    stem = posixpath.basename(name).split(".")
    return len(stem) > 2 and stem[-1] in ("safetensors", "json")


def _component(folder: str, names: set[str]) -> str | None:
    for stem in _COMPONENT_FILES:
        for cand in (f"{folder}/{stem}.safetensors.index.json", f"{folder}/{stem}.safetensors"):
            if cand in names:
                return cand
    return None


def select_weights(files: Iterable[str]) -> WeightPlan:
    """The :class:`WeightPlan` of a repository from its file list (see the module doc for the order)."""
    names = set(files)
    root = sorted(n for n in names if "/" not in n)
    if "model.safetensors.index.json" in names:
        return WeightPlan("sharded", {"": "model.safetensors.index.json"})
    idx = [n for n in root if n.endswith(".safetensors.index.json") and not _variant(n[:-len(".index.json")])]
    if len(idx) == 1:
        return WeightPlan("sharded", {"": idx[0]})
    if "model.safetensors" in names:
        return WeightPlan("single", {"": "model.safetensors"})
    if "adapter_model.safetensors" in names:
        return WeightPlan("adapter", {"": "adapter_model.safetensors"})
    st = [n for n in root if n.endswith(".safetensors")]
    plain = [n for n in st if not _variant(n)] or st
    if len(plain) == 1:
        return WeightPlan("single", {"": plain[0]})
    if plain:
        return WeightPlan("components", {n[:-len(".safetensors")]: n for n in plain})
    folders = sorted({n.split("/")[0] for n in names if n.count("/") == 1})
    comps = {f: c for f in folders if (c := _component(f, names)) is not None}
    if comps:
        return WeightPlan("components", comps)
    pickles = [n for n in root if n.endswith(_PICKLE_SUFFIXES + (".bin.index.json",)) and n not in NOT_WEIGHTS
               and not n.startswith("rng_state")]
    if pickles:
        return WeightPlan("pickle", pickles=pickles)
    return WeightPlan("none")


@dataclass
class HeaderTable:
    """What the headers said: tensors (prefixed by component), the files read, their ``__metadata__``."""

    tensors: list[TensorInfo]
    files: list[str]
    metadata: dict[str, str]
    bytes_fetched: int = 0


class HeaderReader:
    """Reads safetensors headers and sharded indexes of Hub files with range GETs, under a :class:`Retrier`.

    Args:
        endpoint: the Hub endpoint (``https://huggingface.co`` or a mirror).
        headers: request headers (``build_hf_headers``: user agent, ``Authorization`` from ``HF_TOKEN``).
        retrier: the retry policy every request runs under.
        max_header_bytes: refuse headers announcing more (default 100 MiB).
    """

    def __init__(self, endpoint: str, headers: dict[str, str], retrier: Retrier, *,
                 max_header_bytes: int = MAX_HEADER_BYTES) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.headers = dict(headers)
        self.retrier = retrier
        self.max_header_bytes = max_header_bytes

    def url(self, repo_id: str, revision: str, path: str) -> str:
        from huggingface_hub import hf_hub_url

        return hf_hub_url(repo_id, path, revision=revision, endpoint=self.endpoint)

    def _get(self, url: str, start: int, end: int | None, cap: int) -> tuple[bytes, int]:
        """Bytes ``[start, end]`` (inclusive; ``end=None``: to the end, at most ``cap``) and the file size."""
        from huggingface_hub.utils import get_session, hf_raise_for_status

        rng = f"bytes={start}-" + ("" if end is None else str(end))
        with get_session().stream("GET", url, headers={**self.headers, "Range": rng},
                                  timeout=self.retrier.policy.timeout) as r:
            if r.status_code >= 400:
                r.read()
                hf_raise_for_status(r)
            if r.status_code == 206:
                cr = r.headers.get("Content-Range", "")
                try:
                    span, _, total_s = cr.removeprefix("bytes ").partition("/")
                    first = int(span.partition("-")[0])
                    total = int(total_s)
                except ValueError:
                    raise CheckpointError(url, f"unreadable Content-Range {cr!r}") from None
                if first != start:
                    raise CheckpointError(url, f"asked for bytes from {start}, the server sent from {first}")
                skip = 0
            else:  # the server ignored Range: read what we need of the whole file, then hang up
                total = int(r.headers.get("X-Linked-Size") or r.headers.get("Content-Length") or -1)
                skip = start
            want = (total if end is None else min(end + 1, total if total >= 0 else end + 1)) - start
            if end is None and want > cap:
                raise CheckpointError(url, f"{want} bytes exceed the limit of {cap}")
            buf = bytearray()
            for chunk in r.iter_bytes():
                if skip:
                    drop = min(skip, len(chunk))
                    chunk, skip = chunk[drop:], skip - drop
                buf += chunk
                if len(buf) >= want:
                    break
            if len(buf) < want:
                raise TruncatedResponseError(f"{url}: got {len(buf)} of {want} bytes")
            return bytes(buf[:want]), total

    def fetch(self, url: str, start: int, end: int | None, cap: int = MAX_INDEX_BYTES) -> tuple[bytes, int]:
        """:meth:`_get` under the retrier."""
        return self.retrier.call(lambda: self._get(url, start, end, cap))

    def safetensors_header(self, repo_id: str, revision: str, path: str) -> tuple[list[TensorInfo], dict[str, str], int]:
        """``(tensors, __metadata__, bytes fetched)`` of one safetensors file, validated."""
        url = self.url(repo_id, revision, path)
        where = f"{repo_id}/{path}"
        head, total = self.fetch(url, 0, FIRST_RANGE - 1)
        fetched = len(head)
        if len(head) < 8:
            raise CheckpointError(where, f"truncated: {total} bytes, shorter than the 8-byte header length")
        (n,) = struct.unpack("<Q", head[:8])
        if n > self.max_header_bytes:
            raise HeaderTooLargeError(where, f"header length {n} exceeds the limit of {self.max_header_bytes} bytes")
        if n > total - 8:
            raise CheckpointError(where, f"header length {n} exceeds the {total - 8} bytes after it")
        if 8 + n > len(head):
            rest, _ = self.fetch(url, len(head), 8 + n - 1)
            head += rest
            fetched += len(rest)
        parsed = parse_header(io.BytesIO(head[:8 + n]), total, where, self.max_header_bytes)
        return parsed.tensors, parsed.metadata, fetched

    def index(self, repo_id: str, revision: str, path: str, files: set[str]) -> dict[str, list[str]]:
        """A sharded index: shard path (repo-relative) → the tensor names it maps there, checked."""
        where = f"{repo_id}/{path}"
        data, _ = self.fetch(self.url(repo_id, revision, path), 0, None)
        doc = loads_strict(data, where, "index")
        wm = doc.get("weight_map") if isinstance(doc, dict) else None
        if not isinstance(wm, dict) or not wm:
            raise CheckpointError(where, "index has no (or an empty) 'weight_map' object")
        folder = posixpath.dirname(path)
        shards: dict[str, list[str]] = {}
        for name, shard in wm.items():
            if not isinstance(shard, str) or not shard or shard.startswith("/") or ".." in shard.split("/"):
                raise CheckpointError(where, f"shard name {shard!r} escapes the repository", tensor=name)
            full = posixpath.join(folder, shard) if folder else shard
            if full not in files:
                raise CheckpointError(where, f"index names shard {shard!r}, which the repository lacks", tensor=name)
            shards.setdefault(full, []).append(name)
        return shards

    def table(self, repo_id: str, revision: str, plan: WeightPlan, files: Iterable[str]) -> HeaderTable:
        """The whole tensor table of a repository's safetensors weights (every part, every shard)."""
        names = set(files)
        tensors: list[TensorInfo] = []
        read: list[str] = []
        metadata: dict[str, str] = {}
        fetched = 0
        for prefix, path in plan.parts.items():
            if path.endswith(".index.json"):
                shards = self.index(repo_id, revision, path, names)
                read.append(path)
                for shard in sorted(shards):
                    infos, md, n = self.safetensors_header(repo_id, revision, shard)
                    fetched += n
                    got, want = {t.name for t in infos}, set(shards[shard])
                    if got != want:
                        extra, missing = sorted(got - want)[:3], sorted(want - got)[:3]
                        raise CheckpointError(f"{repo_id}/{shard}", "shard disagrees with the index "
                                              f"(unmapped tensors {extra}, missing tensors {missing})")
                    tensors += _prefixed(infos, prefix)
                    metadata = metadata or md
                    read.append(shard)
            else:
                infos, md, n = self.safetensors_header(repo_id, revision, path)
                fetched += n
                tensors += _prefixed(infos, prefix)
                metadata = metadata or md
                read.append(path)
        seen: set[str] = set()
        for t in tensors:
            if t.name in seen:
                raise CheckpointError(repo_id, "two weight files hold a tensor of the same name", tensor=t.name)
            seen.add(t.name)
        return HeaderTable(tensors, read, metadata, fetched)


def _prefixed(infos: list[TensorInfo], prefix: str) -> list[TensorInfo]:
    return infos if not prefix else [TensorInfo(f"{prefix}/{t.name}", t.dtype, t.shape) for t in infos]


def plan_summary(plan: WeightPlan) -> dict[str, Any]:
    """A JSON-able description of a plan (kept in the catalogue's metadata)."""
    return {"layout": plan.layout, "parts": dict(plan.parts), "pickles": list(plan.pickles)}


__all__ = ["FIRST_RANGE", "HeaderReader", "HeaderTable", "HeaderTooLargeError", "WeightPlan", "plan_summary",
           "select_weights"]
