"""What a Hub mirror serves: repositories read from a folder of snapshots, or exported from a zoo.

A **folder** source serves ``<root>/<org>/<name>/`` (and ``<root>/<name>/`` for ids without an org) as
repositories, every file below them included. An optional ``.hub.json`` in a repository holds what a
folder cannot say: ``sha``, ``card_data``, ``tags``, ``gated`` (``"auto"``/``"manual"``), ``private``,
``downloads``, ``likes``, ``license``, ``base_model``, ``base_model_relation``, ``library_name``,
``pipeline_tag``, ``created_at``, ``last_modified``. Card data otherwise comes from the YAML front matter of
``README.md``, as on the Hub.

A **zoo** source serves every ingested model of a zoo as ``<name>`` with ``config.json``, a ``README.md``
whose card names its lineage parents, and a ``model.safetensors`` assembled on the fly from the packs
(header first, then one tensor at a time, so a range request reads only the tensors it overlaps).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from weightzoo.errors import ConfigError, InvalidOptionError, WeightzooError
from weightzoo.zoo.formats.safetensors import parse_header

HUB_JSON = ".hub.json"
_CHUNK = 1 << 16


def _iso(ts: float) -> str:
    """A timestamp in the Hub's format (``2022-08-19T07:19:38.000Z``), which the client parses."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


@dataclass
class RepoFile:
    """One file of a served repository: its size, a stable etag, and a way to read byte ranges."""

    path: str
    size: int
    etag: str
    disk: Path | None = None
    virtual: Any = None  # an object with read(start, end) -> bytes (zoo exports)

    def iter_range(self, start: int, end: int) -> Iterator[bytes]:
        """The bytes ``[start, end)`` in chunks of at most 64 KiB."""
        if self.disk is not None:
            with open(self.disk, "rb") as f:
                f.seek(start)
                left = end - start
                while left > 0:
                    chunk = f.read(min(_CHUNK, left))
                    if not chunk:
                        return
                    left -= len(chunk)
                    yield chunk
        else:
            pos = start
            while pos < end:
                chunk = self.virtual.read(pos, min(end, pos + _CHUNK))
                if not chunk:
                    return
                pos += len(chunk)
                yield chunk

    def read_all(self, limit: int = 10 << 20) -> bytes:
        return b"".join(self.iter_range(0, min(self.size, limit)))


@dataclass
class Repo:
    """One served repository: id, commit sha, files and the Hub-side facts about it."""

    repo_id: str
    sha: str
    files: dict[str, RepoFile]
    meta: dict[str, Any]
    created: float
    modified: float
    _derived: dict[str, Any] = field(default_factory=dict)

    @property
    def gated(self) -> str | bool:
        g = self.meta.get("gated", False)
        return g if g in ("auto", "manual") else (bool(g) and "auto")

    @property
    def private(self) -> bool:
        return bool(self.meta.get("private", False))

    def card_data(self) -> dict[str, Any]:
        """Card metadata: ``.hub.json`` ``card_data``, else README front matter; shortcuts merged in."""
        if "card" not in self._derived:
            card = self.meta.get("card_data")
            if card is None:
                card = _front_matter(self.files["README.md"].read_all()) if "README.md" in self.files else {}
            card = dict(card or {})
            for key in ("license", "base_model", "base_model_relation", "library_name", "pipeline_tag"):
                if key in self.meta and key not in card:
                    card[key] = self.meta[key]
            self._derived["card"] = card
        return dict(self._derived["card"])

    def config(self) -> dict[str, Any] | None:
        if "config" in self.meta:
            return self.meta["config"]
        f = self.files.get("config.json")
        if f is None or f.size > 10 << 20:
            return None
        try:
            doc = json.loads(f.read_all())
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None

    def library_name(self) -> str | None:
        card = self.card_data()
        lib = self.meta.get("library_name") or card.get("library_name")
        if lib:
            return str(lib)
        for marker, name in (("modules.json", "sentence-transformers"), ("adapter_config.json", "peft"),
                             ("model_index.json", "diffusers"), ("config.json", "transformers")):
            if marker in self.files:
                return name
        return None

    def pipeline_tag(self) -> str | None:
        return self.meta.get("pipeline_tag") or self.card_data().get("pipeline_tag")

    def base_models(self) -> list[str]:
        bm = self.card_data().get("base_model")
        return [bm] if isinstance(bm, str) else [b for b in bm if isinstance(b, str)] if isinstance(bm, list) else []

    def tags(self) -> list[str]:
        """Tags as the Hub derives them: explicit and card tags, library, pipeline, license, base models."""
        card = self.card_data()
        tags: list[str] = list(self.meta.get("tags") or [])
        ct = card.get("tags")
        tags += [ct] if isinstance(ct, str) else [t for t in ct if isinstance(t, str)] if isinstance(ct, list) else []
        for extra in (self.library_name(), self.pipeline_tag()):
            if extra:
                tags.append(extra)
        if any(p.endswith(".safetensors") for p in self.files):
            tags.append("safetensors")
        if card.get("license"):
            tags.append(f"license:{card['license']}")
        rel = card.get("base_model_relation")
        for b in self.base_models():
            tags.append(f"base_model:{b}")
            if isinstance(rel, str):
                tags.append(f"base_model:{rel}:{b}")
        seen: set[str] = set()
        return [t for t in tags if not (t in seen or seen.add(t))]  # type: ignore[func-returns-value]

    def safetensors_info(self) -> dict[str, Any] | None:
        """``{"parameters": {dtype: count}, "total": n}`` from the top-level safetensors headers (as the Hub)."""
        if "st" not in self._derived:
            params: dict[str, int] = {}
            names = [p for p in self.files if "/" not in p and p.endswith(".safetensors")]
            if "model.safetensors" in names:
                names = ["model.safetensors"]
            try:
                for n in names:
                    f = self.files[n]
                    head = f.read_all(limit=8 + min(f.size, 100 << 20))
                    for t in parse_header(io.BytesIO(head), f.size, n).tensors:
                        params[t.dtype] = params.get(t.dtype, 0) + t.numel
            except (WeightzooError, ValueError):
                params = {}
            self._derived["st"] = {"parameters": params, "total": sum(params.values())} if params else None
        return self._derived["st"]


def _front_matter(readme: bytes) -> dict[str, Any]:
    """The YAML block between ``---`` lines at the top of a model card (``{}`` if none or invalid)."""
    text = readme.decode("utf-8", errors="replace")
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    if end < 0:
        return {}
    import yaml

    try:
        doc = yaml.safe_load(text[3:end])
    except yaml.YAMLError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _load_hub_json(folder: Path) -> dict[str, Any]:
    p = folder / HUB_JSON
    if not p.is_file():
        return {}
    try:
        doc = json.loads(p.read_text())
    except ValueError as exc:
        raise ConfigError(f"{p}: not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{p}: must hold a JSON object")
    return doc


def _folder_repo(repo_id: str, folder: Path) -> Repo:
    files: dict[str, RepoFile] = {}
    h = hashlib.sha1(repo_id.encode())
    newest, oldest = 0.0, float("inf")
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".git"))
        for fn in sorted(filenames):
            full = Path(dirpath) / fn
            rel = full.relative_to(folder).as_posix()
            if rel == HUB_JSON:
                continue
            st = full.stat()
            tag = f"{rel}\0{st.st_size}\0{st.st_mtime_ns}".encode()
            h.update(tag)
            files[rel] = RepoFile(rel, st.st_size, hashlib.sha256(repo_id.encode() + b"\0" + tag).hexdigest(),
                                  disk=full)
            newest, oldest = max(newest, st.st_mtime), min(oldest, st.st_mtime)
    meta = _load_hub_json(folder)
    h.update(json.dumps(meta, sort_keys=True).encode())
    sha = str(meta.get("sha") or h.hexdigest())
    now = time.time()
    return Repo(repo_id, sha, files, meta, float(meta.get("created_at", oldest if files else now)),
                float(meta.get("last_modified", newest if files else now)))


def scan_folder(root: str | os.PathLike[str]) -> dict[str, Repo]:
    """Every repository under ``root``: ``<org>/<name>/`` folders, and ``<name>/`` folders holding files."""
    base = Path(root)
    if not base.is_dir():
        raise InvalidOptionError(f"{base}: not a folder of repositories")
    repos: dict[str, Repo] = {}
    for top in sorted(base.iterdir()):
        if not top.is_dir() or top.name.startswith("."):
            continue
        if any(e.is_file() for e in top.iterdir()):
            repos[top.name] = _folder_repo(top.name, top)
            continue
        for sub in sorted(top.iterdir()):
            if sub.is_dir() and not sub.name.startswith("."):
                rid = f"{top.name}/{sub.name}"
                repos[rid] = _folder_repo(rid, sub)
    return repos


class _ZooSafetensors:
    """A model of a zoo as a safetensors byte string, assembled on demand (one tensor read at a time)."""

    def __init__(self, zoo: Any, ref: str, lock: threading.Lock) -> None:
        from weightzoo.zoo.formats import TensorInfo
        from weightzoo.zoo.formats.dtypes import tensor_bytes
        from weightzoo.zoo.formats.writer import safetensors_header

        self._zoo, self._ref, self._lock, self._tensor_bytes = zoo, ref, lock, tensor_bytes
        infos = [TensorInfo(t.name, t.dtype, t.shape) for t in zoo.tensors(ref)]
        self._spans: list[tuple[int, int, str]] = []
        offset = 0
        for info in infos:
            self._spans.append((offset, offset + info.nbytes, info.name))
            offset += info.nbytes
        self._head = safetensors_header(infos)
        self.size = len(self._head) + offset
        self._cache: tuple[str, bytes] | None = None

    def read(self, start: int, end: int) -> bytes:
        out = bytearray()
        if start < len(self._head):
            out += self._head[start:min(end, len(self._head))]
        base = len(self._head)
        for b, e, name in self._spans:
            lo, hi = max(start, base + b), min(end, base + e)
            if lo >= hi:
                continue
            if self._cache is None or self._cache[0] != name:
                with self._lock:
                    data = bytes(self._tensor_bytes(self._zoo.tensor(self._ref, name)))
                self._cache = (name, data)
            out += self._cache[1][lo - base - b:hi - base - b]
        return bytes(out)


def _zoo_card(rec: Any, parents: list[tuple[str, str]]) -> bytes:
    import yaml

    card: dict[str, Any] = {}
    if rec.license:
        card["license"] = rec.license
    if rec.library:
        card["library_name"] = rec.library
    if rec.tags:
        card["tags"] = list(rec.tags)
    if parents:
        card["base_model"] = [p for p, _ in parents] if len(parents) > 1 else parents[0][0]
        card["base_model_relation"] = parents[0][1]
    return f"---\n{yaml.safe_dump(card, sort_keys=True)}---\n\n# {rec.name}\n\nExported from a weightzoo zoo.\n".encode()


def scan_zoo(zoo: Any, lock: threading.Lock) -> dict[str, Repo]:
    """Every ingested model of an open zoo as a repository (metadata-only models have no bytes to serve)."""
    repos: dict[str, Repo] = {}
    latest_of: dict[str, Any] = {}
    for rec in zoo.models(ingested=True):  # oldest first: the last one seen is the latest ingested revision
        latest_of[rec.name] = rec
    for latest in latest_of.values():
        ref = latest.ref
        st = _ZooSafetensors(zoo, ref, lock)
        hashes = "".join(t.hash or "" for t in zoo.tensors(ref))
        sha = latest.revision if latest.revision and len(latest.revision) == 40 else \
            hashlib.sha1(f"{ref}\0{hashes}".encode()).hexdigest()
        files: dict[str, RepoFile] = {
            "model.safetensors": RepoFile("model.safetensors", st.size,
                                          hashlib.sha256(hashes.encode()).hexdigest(), virtual=st)}
        declared = zoo.lineage(latest.name, direction="up", depth=1, source="declared")  # a card states no inference
        parents = [(e["parent"], e["relation"]) for e in declared if e["child"] == latest.name]
        docs = {"README.md": _zoo_card(latest, parents)}
        if latest.config is not None:
            docs["config.json"] = json.dumps(latest.config, indent=2, sort_keys=True).encode()
        for path, data in docs.items():
            files[path] = RepoFile(path, len(data), hashlib.sha1(data).hexdigest(), virtual=_Bytes(data))
        meta = {"library_name": latest.library, "license": latest.license}
        repos[latest.name] = Repo(latest.name, sha, files, {k: v for k, v in meta.items() if v},
                                  latest.created_at, latest.created_at)
    return repos


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self, start: int, end: int) -> bytes:
        return self._data[start:end]


def repo_json(repo: Repo, fields: set[str] | Iterable[str] | None, *, blobs: bool) -> dict[str, Any]:
    """The Hub's JSON for a model (all fields, or just ``fields``)."""
    getters = {
        "_id": lambda: repo.sha[:24], "id": lambda: repo.repo_id, "modelId": lambda: repo.repo_id,
        "author": lambda: repo.repo_id.partition("/")[0] if "/" in repo.repo_id else None,
        "sha": lambda: repo.sha, "lastModified": lambda: _iso(repo.modified),
        "createdAt": lambda: _iso(repo.created), "private": lambda: repo.private, "gated": lambda: repo.gated,
        "disabled": lambda: False, "downloads": lambda: int(repo.meta.get("downloads", 0) or 0),
        "downloadsAllTime": lambda: int(repo.meta.get("downloads", 0) or 0),
        "likes": lambda: int(repo.meta.get("likes", 0) or 0), "trendingScore": lambda: 0,
        "library_name": repo.library_name, "tags": repo.tags, "pipeline_tag": repo.pipeline_tag,
        "cardData": repo.card_data, "config": repo.config, "spaces": lambda: [],
        "siblings": lambda: [{"rfilename": p, **({"size": f.size, "blobId": f.etag[:40]} if blobs else {})}
                             for p, f in sorted(repo.files.items())],
        "safetensors": repo.safetensors_info, "usedStorage": lambda: sum(f.size for f in repo.files.values()),
    }
    wanted = getters if fields is None else [k for k in getters if k in set(fields)]
    out = {k: getters[k]() for k in wanted}
    return {k: v for k, v in out.items() if v is not None or k in ("pipeline_tag", "library_name")}


def sort_value(r: Repo, key: str) -> Any:
    """The value a listing sorts ``r`` by (``downloads``, ``likes``, ``createdAt`` ...)."""
    if key in ("downloads", "likes", "trendingScore"):
        return int(r.meta.get(key, 0) or 0)
    return r.created if key == "createdAt" else r.modified


__all__ = ["HUB_JSON", "Repo", "RepoFile", "repo_json", "scan_folder", "scan_zoo", "sort_value"]
