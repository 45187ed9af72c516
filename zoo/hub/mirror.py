"""A Hugging Face Hub mirror: serves a folder of snapshots (or a zoo) with the Hub's HTTP API on loopback.

Air-gapped clusters point ``HF_ENDPOINT`` (or ``HfApi(endpoint=...)``) at it; the tests and the crawl
benchmark run the real ``huggingface_hub`` client against it. It speaks the calls the client makes:

- ``GET /api/models`` — ``search``, ``author``, ``filter`` (tags, repeated), ``pipeline_tag``, ``library``,
  ``sort`` (+ ``direction``), ``limit``, ``expand``/``expand[]``, ``full``, ``config``, ``cardData``;
  pages linked with ``Link: <…&cursor=…>; rel="next"`` as on the Hub;
- ``GET /api/models/{repo_id}[/revision/{rev}]`` (``expand``, ``blobs``) and ``…/tree/{rev}[/{path}]``;
- ``GET|HEAD /{repo_id}/resolve/{rev}/{path}`` with ``Range`` (206 + ``Content-Range``), ``ETag``,
  ``X-Repo-Commit``, ``X-Linked-Etag``, ``X-Linked-Size``; errors carry ``X-Error-Code``
  (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``, ``GatedRepo``) like the Hub's.

Gated and private repositories are listed (flagged) but their files (private: everything) need a bearer
token from ``tokens``. **Fault injection** (:class:`Fault`, deterministic per path pattern) and a
**request log** with the bytes sent per request make it a test and benchmark server.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from weightzoo.errors import InvalidOptionError, WeightzooError

from .faults import FAULT_KINDS, Fault, FaultPlan
from .mirror_repos import Repo, RepoFile, repo_json, scan_folder, scan_zoo, sort_value

_LIST_FIELDS = ("_id", "id", "likes", "trendingScore", "private", "downloads", "tags", "pipeline_tag",
                "library_name", "createdAt", "modelId")
_FULL_FIELDS = _LIST_FIELDS + ("author", "sha", "lastModified", "gated", "disabled", "siblings")
_SORT_KEYS = {"downloads", "likes", "createdAt", "lastModified", "trendingScore", "id"}


@dataclass(frozen=True)
class RequestRecord:
    """One served request: what was asked, what came back, how many bytes went out (headers included)."""

    method: str
    target: str
    status: int
    bytes_sent: int
    seconds: float
    fault: str | None = None


class _CountingWriter:
    def __init__(self, raw: Any) -> None:
        self.raw, self.count = raw, 0

    def write(self, data: bytes) -> int:
        n = self.raw.write(data)
        self.count += len(data)
        return n

    def flush(self) -> None:
        self.raw.flush()

    def close(self) -> None:
        self.raw.close()

    @property
    def closed(self) -> bool:
        return bool(self.raw.closed)


class _Abort(Exception):
    """The connection was cut on purpose (a fault) or by the peer."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.wfile = _CountingWriter(self.wfile)  # type: ignore[assignment]
        with self.server.conn_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.conn_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # the request log replaces stderr lines
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._handle("HEAD")

    # --- plumbing ----------------------------------------------------------------------------------
    def _handle(self, method: str) -> None:
        mirror = self.server.mirror
        t0, sent0 = time.perf_counter(), self.wfile.count  # type: ignore[attr-defined]
        self._status, self._truncate, fault_names = 0, False, None
        try:
            if mirror.latency:
                time.sleep(mirror.latency)
            faults = mirror.faults.pick(method, self.path)
            fault_names = ",".join(f.kind for f in faults) or None
            for f in faults:
                if f.kind == "slow":
                    time.sleep(f.delay)
            stop = next((f for f in faults if f.kind not in ("slow", "truncate")), None)
            self._truncate = any(f.kind == "truncate" for f in faults)
            if stop is None:
                self._route(method)
            elif stop.kind == "drop":
                self._cut()
            elif stop.kind == "rate-limit":
                self._error(429, None, "Too many requests (injected)",
                            {"Retry-After": f"{max(0, round(stop.retry_after))}"}, method=method)
            else:
                self._error(stop.status, None, f"Internal error (injected {stop.status})", method=method)
        except (_Abort, BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except WeightzooError as exc:  # a damaged zoo (bytes failing their hash): never serve them
            self.close_connection = True
            if not self._status:
                self._error(500, None, f"Internal error: {' '.join(str(exc).split())}", method=method)
            else:  # the body had started: cut it, so the client sees a short read, not wrong bytes
                self._status = 500
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        finally:
            mirror._record(RequestRecord(method, self.path, self._status,
                                         self.wfile.count - sent0,  # type: ignore[attr-defined]
                                         time.perf_counter() - t0, fault_names))

    def _cut(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise _Abort

    def _send(self, status: int, headers: dict[str, str], body: Iterable[bytes] | bytes, length: int,
              method: str) -> None:
        self._status = status
        self.send_response(status)
        headers = {"Content-Length": str(length), **headers}
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if method == "HEAD":
            if self._truncate:
                self._cut()
            return
        chunks = [body] if isinstance(body, bytes) else body
        limit = length // 2 if self._truncate else length
        sent = 0
        for chunk in chunks:
            chunk = chunk[:max(0, limit - sent)]
            if chunk:
                self.wfile.write(chunk)
                sent += len(chunk)
            if sent >= limit:
                break
        if self._truncate:
            self._cut()

    def _json(self, obj: Any, method: str, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj, default=str).encode()  # YAML cards may hold dates
        self._send(200, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, data, len(data),
                   method)

    def _error(self, status: int, code: str | None, message: str, headers: dict[str, str] | None = None, *,
               method: str = "GET") -> None:
        data = json.dumps({"error": message}).encode()
        h = {"Content-Type": "application/json; charset=utf-8", "X-Error-Message": message, **(headers or {})}
        if code:
            h["X-Error-Code"] = code
        self._send(status, h, data, len(data), method)

    def _authorized(self) -> bool:
        auth = self.headers.get("Authorization", "")
        return auth.startswith("Bearer ") and auth[7:].strip() in self.server.mirror.tokens

    # --- routes ------------------------------------------------------------------------------------
    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/")[1:]]
        query = parse_qs(url.query, keep_blank_values=True)
        repos = self.server.mirror.repos
        if parts[:2] == ["api", "models"]:
            rest = parts[2:]
            if not rest or rest == [""]:
                return self._list(query, method)
            n = 2 if len(rest) >= 2 and "/".join(rest[:2]) in repos else 1
            repo = repos.get("/".join(rest[:n]))
            if repo is None:
                return self._error(404, "RepoNotFound", "Repository not found", method=method)
            if repo.private and not self._authorized():
                return self._error(401, "RepoNotFound", "Repository not found", method=method)
            tail = rest[n:]
            if not tail:
                return self._json(self._info(repo, query), method)
            if tail[0] in ("revision", "tree") and len(tail) >= 2:
                if tail[1] not in ("main", "HEAD", repo.sha):
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {tail[1]}", method=method)
                if tail[0] == "revision":
                    return self._json(self._info(repo, query), method)
                return self._tree(repo, "/".join(tail[2:]), query, method)
            return self._error(404, None, "Not found", method=method)
        if "resolve" in parts[1:3]:
            i = parts.index("resolve", 1)
            return self._resolve(repos.get("/".join(parts[:i])), parts[i + 1:], method)
        return self._error(404, None, "Not found", method=method)

    def _list(self, q: dict[str, list[str]], method: str) -> None:
        mirror = self.server.mirror
        one = {k: v[-1] for k, v in q.items()}
        found = list(mirror.repos.values())
        if not mirror.list_private and not self._authorized():
            found = [r for r in found if not r.private]
        if "search" in one:
            found = [r for r in found if one["search"].lower() in r.repo_id.lower()]
        if "author" in one:
            found = [r for r in found if r.repo_id.partition("/")[0] == one["author"]]
        for tag in q.get("filter", []) + q.get("filter[]", []):
            found = [r for r in found if tag in r.tags()]
        if "pipeline_tag" in one:
            found = [r for r in found if r.pipeline_tag() == one["pipeline_tag"]]
        if "library" in one:
            found = [r for r in found if r.library_name() == one["library"]]
        if "gated" in one:
            want = one["gated"].lower() == "true"
            found = [r for r in found if bool(r.gated) == want]
        sort = one.get("sort")
        if sort is not None and sort not in _SORT_KEYS:
            return self._error(400, None, f"Invalid sort {sort!r}; one of {sorted(_SORT_KEYS)}", method=method)
        found.sort(key=lambda r: r.repo_id)
        if sort and sort != "id":
            found.sort(key=lambda r: sort_value(r, sort), reverse=one.get("direction", "-1") != "1")
        try:
            offset = int(json.loads(base64.urlsafe_b64decode(one["cursor"]))["offset"]) if "cursor" in one else 0
            limit = int(one["limit"]) if "limit" in one else mirror.page_size
        except (ValueError, KeyError, TypeError):
            return self._error(400, None, "Invalid cursor or limit", method=method)
        size = max(1, min(limit, mirror.page_size))
        page = found[offset:offset + size]
        expand = q.get("expand", []) + q.get("expand[]", [])
        fields = set(expand) | {"_id", "id"} if expand else set(
            _FULL_FIELDS if one.get("full", "").lower() == "true" else _LIST_FIELDS)
        if one.get("config", "").lower() == "true":
            fields.add("config")
        if one.get("cardData", "").lower() == "true":
            fields.add("cardData")
        headers = {}
        if offset + size < len(found):
            keep = [(k, v) for k, vs in q.items() if k != "cursor" for v in vs]
            cursor = base64.urlsafe_b64encode(json.dumps({"offset": offset + size}).encode()).decode()
            host = self.headers.get("Host") or f"{mirror.host}:{mirror.port}"
            nxt = f"http://{host}/api/models?{urlencode(keep + [('cursor', cursor)])}"
            headers["Link"] = f'<{nxt}>; rel="next"'
        self._json([repo_json(r, fields, blobs=False) for r in page], method, headers)

    def _info(self, repo: Repo, q: dict[str, list[str]]) -> dict[str, Any]:
        expand = q.get("expand", []) + q.get("expand[]", [])
        fields = set(expand) | {"_id", "id"} if expand else None
        return repo_json(repo, fields, blobs=q.get("blobs", [""])[-1].lower() == "true")

    def _tree(self, repo: Repo, prefix: str, q: dict[str, list[str]], method: str) -> None:
        recursive = q.get("recursive", ["false"])[-1].lower() == "true"
        prefix = prefix.strip("/")
        base = prefix + "/" if prefix else ""
        entries: list[dict[str, Any]] = []
        folders: set[str] = set()
        for path in sorted(repo.files):
            if not path.startswith(base):
                continue
            rel = path[len(base):]
            dirs = rel.split("/")[:-1]
            for k in range(1, len(dirs) + 1 if recursive else min(1, len(dirs)) + 1):
                folders.add(base + "/".join(dirs[:k]))
            if recursive or "/" not in rel:
                f = repo.files[path]
                entries.append({"type": "file", "oid": f.etag[:40], "size": f.size, "path": path})
        if prefix and not entries and not folders:
            return self._error(404, "EntryNotFound", f"{prefix} does not exist", method=method)
        entries += [{"type": "directory", "oid": "0" * 40, "size": 0, "path": d} for d in sorted(folders)]
        self._json(entries, method)

    def _resolve(self, repo: Repo | None, rest: list[str], method: str) -> None:
        if repo is None or len(rest) < 2:
            return self._error(404, "RepoNotFound", "Repository not found", method=method)
        rev, path = rest[0], "/".join(rest[1:])
        if repo.private and not self._authorized():
            return self._error(401, "RepoNotFound", "Repository not found", method=method)
        if rev not in ("main", "HEAD", repo.sha):
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", method=method)
        commit = {"X-Repo-Commit": repo.sha}
        if repo.gated and not self._authorized():
            return self._error(401, "GatedRepo", f"Access to model {repo.repo_id} is restricted. You must have "
                               "access to it and be authenticated to access it.", commit, method=method)
        f = repo.files.get(path)
        if f is None:
            return self._error(404, "EntryNotFound", f"{path} does not exist on {rev}", commit, method=method)
        self._serve_file(f, commit, method)

    def _serve_file(self, f: RepoFile, commit: dict[str, str], method: str) -> None:
        headers = {**commit, "ETag": f'"{f.etag}"', "X-Linked-Etag": f'"{f.etag}"', "X-Linked-Size": str(f.size),
                   "Accept-Ranges": "bytes", "Content-Type": _content_type(f.path)}
        rng = _parse_range(self.headers.get("Range"), f.size)
        if rng is None:
            return self._send(200, headers, f.iter_range(0, f.size), f.size, method)
        if rng == _UNSATISFIABLE:
            return self._error(416, None, "Range Not Satisfiable", {**commit, "Content-Range": f"bytes */{f.size}"},
                               method=method)
        start, end = rng
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{f.size}"
        self._send(206, headers, f.iter_range(start, end), end - start, method)


def _content_type(path: str) -> str:
    if path.endswith(".json"):
        return "application/json"
    if path.endswith((".md", ".txt")):
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


_UNSATISFIABLE = (-1, -1)


def _parse_range(value: str | None, size: int) -> tuple[int, int] | None:
    """``bytes=a-b`` / ``a-`` / ``-n`` (the first range only) → ``[start, end)``; None to serve it all."""
    if not value or not value.startswith("bytes="):
        return None
    first = value[6:].split(",")[0].strip()
    a, sep, b = first.partition("-")
    try:
        if not sep:
            return None
        if a == "":
            n = int(b)
            return (max(0, size - n), size) if n > 0 and size else _UNSATISFIABLE
        start = int(a)
        end = min(size, int(b) + 1) if b else size
    except ValueError:
        return None
    if start >= size or end <= start:
        return _UNSATISFIABLE
    return start, end


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    mirror: HubMirror

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()

    def close_connections(self) -> None:
        """Hang up on kept-alive clients, so a stopped mirror really stops answering."""
        with self.conn_lock:
            conns = list(self.connections)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@dataclass
class HubMirror:
    """A Hub-compatible HTTP server over a folder of repositories (``root``) or a zoo (``zoo``).

        >>> with HubMirror("repos/") as hub:                    # doctest: +SKIP
        ...     HfApi(endpoint=hub.url).model_info("org/name")

    Args:
        root: folder of ``<org>/<name>/`` snapshot folders (see :mod:`weightzoo.zoo.hub.mirror_repos`).
        zoo: a zoo folder whose ingested models are served as safetensors (instead of ``root``).
        host, port: where to listen (``port=0`` picks a free port; see :attr:`url`).
        faults: :class:`Fault` s to inject; ``seed`` makes probabilistic ones reproducible.
        latency: seconds added to every request (a far-away Hub).
        tokens: bearer tokens that may read gated and private repositories.
        page_size: models per listing page (the Hub uses up to 1000).
        list_private: list private repositories (flagged) to callers without a token.
    """

    root: str | Path | None = None
    zoo: str | Path | None = None
    host: str = "127.0.0.1"
    port: int = 0
    faults: Any = ()
    seed: int = 0
    latency: float = 0.0
    tokens: Iterable[str] = ()
    page_size: int = 100
    list_private: bool = True
    log: list[RequestRecord] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if (self.root is None) == (self.zoo is None):
            raise InvalidOptionError("HubMirror serves either a folder of repositories (root) or a zoo (zoo=)")
        self.tokens = frozenset(self.tokens)
        self.set_faults(self.faults, self.seed)
        self._log_lock = threading.Lock()
        self._zoo_obj: Any = None
        self._zoo_lock = threading.Lock()
        self.repos: dict[str, Repo] = {}
        self.refresh()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def set_faults(self, faults: Iterable[Fault] | FaultPlan, seed: int = 0) -> None:
        """Replace the injected faults (counters start from zero)."""
        self.faults = faults if isinstance(faults, FaultPlan) else FaultPlan(faults, seed)

    def refresh(self) -> None:
        """Re-scan the served folder or zoo (repositories are indexed once, not on every request)."""
        if self.root is not None:
            self.repos = scan_folder(self.root)
            return
        from weightzoo.zoo.store import Zoo

        if self._zoo_obj is None:
            self._zoo_obj = Zoo.open(self.zoo, create=False)  # type: ignore[arg-type]
        with self._zoo_lock:
            self.repos = scan_zoo(self._zoo_obj, self._zoo_lock)

    # --- lifecycle ---------------------------------------------------------------------------------
    def _bind(self) -> _Server:
        if self._server is None:
            self._server = _Server((self.host, self.port), _Handler)
            self._server.mirror = self
            self.port = self._server.server_address[1]
        return self._server

    def start(self) -> HubMirror:
        """Serve in a background thread; returns self (see :attr:`url`)."""
        server = self._bind()
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="hub-mirror", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted."""
        self._bind().serve_forever()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._zoo_obj is not None:
            self._zoo_obj.close()
            self._zoo_obj = None

    def __enter__(self) -> HubMirror:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The endpoint to give the client (``http://127.0.0.1:PORT``)."""
        self._bind()
        return f"http://{self.host}:{self.port}"

    # --- request log -------------------------------------------------------------------------------
    def _record(self, rec: RequestRecord) -> None:
        with self._log_lock:
            self.log.append(rec)

    def requests(self, match: str = "") -> list[RequestRecord]:
        """Logged requests whose target matches the regex ``match``."""
        with self._log_lock:
            return [r for r in self.log if re.search(match, r.target)]

    def bytes_sent(self, match: str = "") -> int:
        """Bytes sent (status lines, headers and bodies) for requests matching ``match``."""
        return sum(r.bytes_sent for r in self.requests(match))

    def clear_log(self) -> None:
        with self._log_lock:
            self.log.clear()

    def iter_log(self) -> Iterator[RequestRecord]:
        return iter(self.requests())


__all__ = ["FAULT_KINDS", "Fault", "FaultPlan", "HubMirror", "RequestRecord"]
