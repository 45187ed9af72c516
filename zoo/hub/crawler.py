"""Crawl the Hugging Face Hub into a zoo: list models, read tensor tables from headers, record lineage.

    >>> from weightzoo.zoo.store import Zoo
    >>> with Zoo.open("my-zoo") as zoo:                                   # doctest: +SKIP
    ...     print(crawl(zoo, search="minilm", limit=50))

Per listed model (``HfApi.list_models`` with ``expand=``, so one listing page carries sha, files, card,
config, tags, downloads …) the crawler records a **metadata-only** entry (``Zoo.add_metadata_only``): card
data, config, file list, license, downloads, likes, times, and the tensor table read from safetensors
*headers* with range requests (:mod:`weightzoo.zoo.hub.headers`) — no weight bytes move. Declared lineage
(:mod:`weightzoo.zoo.hub.lineage`) becomes lineage edges. ``download=True`` fetches the weights through the
HF cache and ingests them with the store's validating readers instead.

Robustness: every call runs under :class:`~weightzoo.zoo.hub.retry.Retrier`; a model that fails is counted
by reason and the crawl goes on; repositories already recorded at the same sha are skipped, so rerunning
the same command resumes (progress is kept in the catalogue's crawl state). Workers only do network
work and return rows; the calling thread alone writes to the zoo.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from weightzoo.errors import (
    CheckpointError,
    HeaderTooLargeError,
    HubError,
    InvalidOptionError,
    WeightzooError,
)
from weightzoo.zoo.formats.base import Checkpoint, TensorInfo
from weightzoo.zoo.store.executors import resolve_ray

from .headers import HeaderReader, WeightPlan, plan_summary, select_weights
from .lineage import LineageEdge, declared_lineage
from .retry import Retrier, RetryPolicy, classify

if TYPE_CHECKING:
    from weightzoo.zoo.store import Zoo, ZooLike
    from weightzoo.zoo.store.staging import StagedPack

#: Fields asked of the listing, so one page carries everything a metadata record needs.
EXPAND: list[Any] = ["author", "sha", "siblings", "cardData", "config", "tags", "library_name", "pipeline_tag", "downloads",
          "likes", "createdAt", "lastModified", "gated", "private", "safetensors"]
SORTS = ("downloads", "likes", "created_at", "last_modified", "trending_score")
#: Outcomes that are recorded in the zoo (deterministic at a given sha, so a rerun skips them).
_FINAL = ("ok", "no-weights", "pickle-only", "corrupt-header", "header-too-large")
_SKIPS = ("up-to-date", "gated", "private", "no-weights", "pickle-only", "max-params")


@dataclass
class CrawlSummary:
    """What a crawl did: models listed, recorded, ingested; skips and failures counted by reason."""

    query: dict[str, Any]
    endpoint: str
    listed: int = 0
    recorded: int = 0
    ingested: int = 0
    lineage_edges: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    errors: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    complete: bool = False

    @property
    def models_per_second(self) -> float:
        return self.listed / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "endpoint": self.endpoint, "listed": self.listed, "recorded": self.recorded,
                "ingested": self.ingested, "lineage_edges": self.lineage_edges, "skipped": dict(self.skipped),
                "failed": dict(self.failed), "retries": dict(self.retries), "errors": self.errors,
                "seconds": round(self.seconds, 3), "models_per_second": round(self.models_per_second, 2),
                "complete": self.complete}

    def __str__(self) -> str:
        def fmt(c: Counter[str]) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "none"

        lines = [f"crawl of {self.endpoint}: {self.listed} listed, {self.recorded} recorded, {self.ingested} ingested, "
                 f"{self.lineage_edges} lineage edges in {self.seconds:.1f}s ({self.models_per_second:.1f} models/s)",
                 f"  skipped: {fmt(self.skipped)}", f"  failed: {fmt(self.failed)}", f"  retries: {fmt(self.retries)}"]
        lines += [f"  {e['repo']}: {e['reason']}: {e['message']}" for e in self.errors[:10]]
        if not self.complete:
            lines.append("  incomplete: rerun the same command to resume")
        return "\n".join(lines)


@dataclass
class _Outcome:
    """A worker's result for one repository; the main thread turns it into catalogue rows."""

    repo_id: str
    status: str
    sha: str | None = None
    fields: dict[str, Any] | None = None  # add_metadata_only / ingest keyword arguments
    tensors: list[TensorInfo] = field(default_factory=list)
    edges: list[LineageEdge] = field(default_factory=list)
    plan: WeightPlan | None = None
    folder: Path | None = None
    message: str = ""
    staged: StagedPack | None = None  # on Ray: the worker staged the download into a pack
    ingest_error: str = ""
    retries: dict[str, int] = field(default_factory=dict)  # the worker's retries (a Ray task's own count)


def _plain(value: Any) -> Any:
    """JSON-able copy of card data (YAML cards may hold dates and other objects)."""
    if value is None:
        return None
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    return json.loads(json.dumps(value, default=str))


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE")


def _message(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


class _Crawler:
    def __init__(self, zoo: Zoo | None, *, endpoint: str, token: str | bool | None, revision: str | None, download: bool,
                 include: list[str] | None, allow_pickle: bool, max_params: int | None, policy: RetryPolicy,
                 cache_dir: str | os.PathLike[str] | None) -> None:
        from importlib.metadata import version

        from huggingface_hub import HfApi
        from huggingface_hub.utils import build_hf_headers

        __version__ = version("weightzoo")

        self.zoo, self.endpoint, self.token, self.revision = zoo, endpoint, token, revision
        self.download, self.include, self.allow_pickle, self.max_params = download, include, allow_pickle, max_params
        self.cache_dir = cache_dir
        self.api = HfApi(endpoint=endpoint, token=token, library_name="weightzoo", library_version=__version__)
        headers = build_hf_headers(token=token, library_name="weightzoo", library_version=__version__)
        self.has_token = any(k.lower() == "authorization" for k in headers)
        self.retrier = Retrier(policy)
        self.reader = HeaderReader(endpoint, headers, self.retrier)
        self.pending: list[dict[str, Any]] = []  # metadata-only rows, written in batches by flush()
        self.pending_edges: list[tuple[str, str, str, Any]] = []
        self.recheck_done = False  # outcomes from workers that could not see the zoo (Ray)

    # --- checks --------------------------------------------------------------------------------------
    def probe(self) -> None:
        """One cheap request, so a wrong endpoint fails fast with a clear message."""
        from huggingface_hub.utils import get_session, hf_raise_for_status

        def get() -> None:
            r = get_session().get(f"{self.endpoint}/api/models", params={"limit": 1}, headers=self.reader.headers,
                                  timeout=self.retrier.policy.timeout)
            hf_raise_for_status(r)

        # Connection refused is rarely transient: three tries (~1.5 s), not the full policy, before saying so.
        quick = Retrier(replace(self.retrier.policy, attempts=min(3, self.retrier.policy.attempts)))
        try:
            quick.call(get)
        except Exception as exc:
            if classify(exc)[0] is None and not _is_http(exc):
                raise
            raise HubError(f"cannot reach the Hub at {self.endpoint} ({_message(exc)}); check --endpoint / "
                           "HF_ENDPOINT and the network") from exc

    def is_done(self, repo_id: str, sha: str | None) -> bool:
        """Whether this repository is already in the zoo at ``sha`` with nothing left to do."""
        if not sha or self.zoo is None:  # a Ray worker sees no catalogue: the driver checks again
            return False
        ref = f"{repo_id}@{sha}"
        if not self.zoo.has_model(ref):
            return False
        rec = self.zoo.model(ref)
        if rec.ingested or self.download:
            return bool(rec.ingested)
        status = rec.metadata.get("hub_status")
        return status in _FINAL or (status in ("gated", "private") and not self.has_token)

    # --- worker side: network only -------------------------------------------------------------------
    def inspect(self, info: Any) -> _Outcome:
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

        rid = info.id
        if self.revision is not None or info.sha is None or info.siblings is None:
            try:
                info = self.retrier.call(lambda: self.api.model_info(
                    rid, revision=self.revision, expand=EXPAND, timeout=self.retrier.policy.timeout))
            except RevisionNotFoundError as exc:
                return _Outcome(rid, "revision-not-found", message=_message(exc))
            except RepositoryNotFoundError as exc:
                return _Outcome(rid, "private" if getattr(info, "private", False) else "not-found",
                                message=_message(exc))
            except Exception as exc:
                if _is_http(exc):
                    return _Outcome(rid, "endpoint-error", message=_message(exc))
                raise
        sha = info.sha
        if self.is_done(rid, sha):
            return _Outcome(rid, "up-to-date", sha)
        files = [s.rfilename for s in info.siblings or []]
        plan = select_weights(files)
        fields = self._fields(info, files, plan)
        card = fields["metadata"].get("card_data") or {}
        edges = declared_lineage(rid, card, info.tags, adapter=plan.layout == "adapter"
                                 or "adapter_config.json" in files)
        out = _Outcome(rid, "ok", sha, fields, edges=edges, plan=plan)
        gated, private = bool(info.gated), bool(info.private)
        if (gated or private) and not self.has_token:
            out.status = "gated" if gated else "private"
            return out
        if plan.layout == "none":
            out.status = "no-weights"
            return out
        if plan.layout == "pickle" and not (self.download and self.allow_pickle):
            out.status, out.message = "pickle-only", f"only pickled weights {plan.pickles[:3]}"
            return out
        total = getattr(info.safetensors, "total", None)
        if self.max_params is not None and total is not None and total > self.max_params:
            out.status = "max-params"
            return out
        try:
            if self.download:
                out.folder, out.plan = self._download(rid, sha, plan, files)
                out.status = "ingest" if out.folder is not None else "no-weights"
                return out
            table = self.reader.table(rid, sha, plan, files)
        except GatedRepoError as exc:
            out.status, out.message = "gated", _message(exc)
            return out
        except RepositoryNotFoundError as exc:
            out.status, out.message = "private", _message(exc)
            return out
        except HeaderTooLargeError as exc:
            out.status, out.message = "header-too-large", _message(exc)
            return out
        except CheckpointError as exc:
            out.status, out.message = "corrupt-header", _message(exc)
            return out
        except Exception as exc:
            if _is_http(exc):
                return _Outcome(rid, "endpoint-error", sha, message=_message(exc))
            raise
        out.tensors = table.tensors
        fields["metadata"].update(header_metadata=table.metadata, header_bytes=table.bytes_fetched,
                                  weight_files=table.files)
        if self.max_params is not None and sum(t.numel for t in table.tensors) > self.max_params:
            out.status = "max-params"
        return out

    def _fields(self, info: Any, files: list[str], plan: WeightPlan) -> dict[str, Any]:
        card = _plain(info.card_data) or {}
        tags = list(info.tags or [])
        lic = card.get("license") if isinstance(card.get("license"), str) else None
        lic = lic or next((t.split(":", 1)[1] for t in tags if t.startswith("license:")), None)
        config = info.config if isinstance(info.config, dict) else None
        archs = (config or {}).get("architectures")
        spec = ({"format": "hf", "class": archs[0], "config": config}
                if isinstance(archs, list) and archs and isinstance(archs[0], str) else None)
        st = info.safetensors
        md = {"hub_status": "ok", "endpoint": self.endpoint, "sha": info.sha, "downloads": info.downloads,
              "likes": info.likes, "pipeline_tag": info.pipeline_tag, "author": info.author,
              "created_at": info.created_at.isoformat() if info.created_at else None,
              "last_modified": info.last_modified.isoformat() if info.last_modified else None,
              "gated": info.gated or False, "private": bool(info.private), "card_data": card, "files": files,
              "weights": plan_summary(plan),
              "hub_parameters": {"parameters": dict(st.parameters), "total": st.total} if st else None}
        return {"metadata": {k: v for k, v in md.items() if v is not None}, "config": config, "spec": spec,
                "source": f"{self.endpoint}/{info.id}", "format": plan.format, "repo_id": info.id,
                "license": lic, "tags": tags, "library": info.library_name}

    def _download(self, rid: str, sha: str, plan: WeightPlan, files: list[str]) -> tuple[Path | None, WeightPlan]:
        """Fetch the plan's weights (or those matching ``include``) and configs through the HF cache."""
        from huggingface_hub import snapshot_download

        patterns = plan.download_patterns(files, self.include)
        for part in plan.parts.values():
            if part.endswith(".index.json") and part in patterns:
                patterns += sorted(self.reader.index(rid, sha, part, set(files)))
        if plan.layout == "components":  # only the components the patterns kept
            plan = WeightPlan("components", {k: v for k, v in plan.parts.items() if v in patterns})
            if not plan.parts:
                return None, plan
        elif not any(p.endswith((".safetensors", ".bin", ".pt", ".pth", ".ckpt")) for p in patterns):
            return None, plan
        folder = self.retrier.call(lambda: snapshot_download(
            rid, revision=sha, allow_patterns=patterns, endpoint=self.endpoint, token=self.token,
            cache_dir=None if self.cache_dir is None else Path(self.cache_dir)))
        return Path(folder), plan

    # --- main thread: the only writer ----------------------------------------------------------------
    def apply(self, o: _Outcome, summary: CrawlSummary) -> None:
        for kind, n in o.retries.items():
            self.retrier.retries[kind] += n
        if self.recheck_done and o.status not in ("up-to-date", "max-params") and self.is_done(o.repo_id, o.sha):
            o.status = "up-to-date"
        if o.status in ("up-to-date", "max-params"):
            summary.skipped[o.status] += 1
            return
        if o.fields is None:  # nothing to record: a transient failure, retried by the next run
            summary.failed[o.status] += 1
            _note(summary, o)
            return
        md = o.fields["metadata"]
        md["hub_status"] = o.status if o.status != "ingest" else "ok"
        if o.message:
            md["hub_error"] = o.message
        if o.status == "ingest":
            self.flush()
            try:
                if o.ingest_error:
                    raise HubError(o.ingest_error)
                if o.staged is not None:
                    self.zoo_().commit_staged([o.staged])
                else:
                    self._ingest(o)
                summary.ingested += 1
            except WeightzooError as exc:
                summary.failed["ingest-error"] += 1
                o.message = o.ingest_error or _message(exc)
                _note(summary, o)
                return
        else:
            self.pending.append(dict(o.fields, name=o.repo_id, tensors=o.tensors, revision=o.sha, replace=True))
            if o.status == "ok":
                summary.recorded += 1
            elif o.status in _SKIPS:
                summary.skipped[o.status] += 1
            else:
                summary.failed[o.status] += 1
                _note(summary, o)
        self.pending_edges += [(e.child, e.parent, e.relation, e.evidence) for e in o.edges]
        summary.lineage_edges += len(o.edges)
        if len(self.pending) >= 64 or len(self.pending_edges) >= 64:
            self.flush()

    def zoo_(self) -> Zoo:
        """The zoo (the driver's crawler always has one; a worker's never writes)."""
        if self.zoo is None:
            raise HubError("a worker-side crawler has no zoo to write to")
        return self.zoo

    def flush(self) -> None:
        """Write the buffered edges, then the records: one transaction each per batch, not per model.

        Edges first: writing them again is harmless, while a record marks its repository done, so an edge
        written after it could be lost for good by a crash in between (a rerun skips done repositories).
        """
        if self.pending_edges:
            self.zoo_().add_lineage_many(self.pending_edges)
            self.pending_edges = []
        if self.pending:
            self.zoo_().add_metadata_only_many(self.pending)
            self.pending = []

    def _ingest(self, o: _Outcome) -> None:
        ckpt, item = self._ingest_item(o)
        try:
            self.zoo_().ingest(**item)
        finally:
            ckpt.close()

    def _ingest_item(self, o: _Outcome) -> tuple[Checkpoint, dict[str, Any]]:
        """The downloaded checkpoint of an ``ingest`` outcome, opened, and the ``Zoo.ingest`` arguments."""
        from weightzoo.zoo.formats import open_checkpoint
        from weightzoo.zoo.formats.snapshot import read_config

        if o.folder is None or o.fields is None or o.plan is None:  # inspect() sets all three for "ingest"
            raise HubError(f"{o.repo_id}: nothing downloaded to ingest")
        f = o.fields
        if o.plan.layout == "components":
            ckpt: Checkpoint = _Components(o.folder, o.plan, read_config(o.folder))
        else:
            ckpt = open_checkpoint(o.folder, allow_pickle=self.allow_pickle)
        return ckpt, dict(source=ckpt, name=o.repo_id, revision=o.sha, metadata=f["metadata"], spec=f["spec"],
                          replace=True, repo_id=o.repo_id, license=f["license"], tags=f["tags"], library=f["library"])

    def stage(self, o: _Outcome, packs_dir: str, prefix: str) -> None:
        """Worker side of a download on Ray: write the weights into a new pack for the driver to commit."""
        from weightzoo.zoo.store.staging import stage_pack

        if o.status != "ingest" or o.fields is None:
            return
        o.fields["metadata"]["hub_status"] = "ok"
        if o.message:
            o.fields["metadata"]["hub_error"] = o.message
        try:
            ckpt, item = self._ingest_item(o)
            try:
                o.staged = stage_pack(packs_dir, [item], prefix=prefix)
            finally:
                ckpt.close()
        except WeightzooError as exc:
            o.ingest_error = _message(exc)


class _Components(Checkpoint):
    """Several weight files of one repository (diffusers components) as one table, names ``<part>/<tensor>``."""

    def __init__(self, folder: Path, plan: WeightPlan, config: dict[str, Any] | None) -> None:
        from weightzoo.zoo.formats import open_checkpoint

        self._parts = {}
        self._owner: dict[str, tuple[str, str]] = {}
        tensors: list[TensorInfo] = []
        try:
            for prefix, rel in plan.parts.items():
                part = open_checkpoint(folder / rel, allow_pickle=False)
                self._parts[prefix] = part
                for t in part.tensors:
                    name = f"{prefix}/{t.name}"
                    self._owner[name] = (prefix, t.name)
                    tensors.append(TensorInfo(name, t.dtype, t.shape))
        except BaseException:
            self.close()
            raise
        super().__init__(path=folder, format="safetensors-components", tensors=tensors, config=config)

    def read_bytes(self, name: str) -> memoryview:
        prefix, inner = self._owner[name]
        return self._parts[prefix].read_bytes(inner)

    def close(self) -> None:
        for p in self._parts.values():
            p.close()


def _is_http(exc: BaseException) -> bool:
    """A network or HTTP failure (as opposed to a bug): counted as an endpoint error."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    return classify(exc)[0] is not None or isinstance(exc, HfHubHTTPError | httpx2.HTTPError |
                                                      LocalEntryNotFoundError | HubError)


def _note(summary: CrawlSummary, o: _Outcome) -> None:
    if len(summary.errors) < 100:
        summary.errors.append({"repo": o.repo_id, "reason": o.status, "message": o.message})


class _InspectTask:
    """One repository on a Ray worker: ``ModelInfo -> _Outcome`` with a crawler of its own (no zoo), built
    once per worker process; with ``download`` the weights are staged into a pack of the zoo's folder."""

    _crawlers: dict[str, _Crawler] = {}

    def __init__(self, options: dict[str, Any], stage: tuple[str, str] | None) -> None:
        self.options, self.stage = options, stage
        self.key = json.dumps({k: str(v) for k, v in options.items()}, sort_keys=True)

    def __call__(self, info: Any) -> _Outcome:
        crawler = self._crawlers.get(self.key)
        if crawler is None:
            crawler = self._crawlers[self.key] = _Crawler(None, **self.options)
        before = Counter(crawler.retrier.retries)
        o = crawler.inspect(info)
        if self.stage is not None:
            crawler.stage(o, *self.stage)
        o.retries = dict(Counter(crawler.retrier.retries) - before)
        return o


def _listing(crawler: _Crawler, kwargs: dict[str, Any]) -> Iterator[Any]:
    """``list_models`` that survives a failed page: restart and skip what was already yielded."""
    done, failures = 0, 0
    while True:
        try:
            for k, info in enumerate(crawler.api.list_models(**kwargs)):
                if k < done:
                    continue
                done += 1
                failures = 0
                yield info
            return
        except Exception as exc:
            kind, wait_s = classify(exc)
            failures += 1
            if kind is None or failures >= crawler.retrier.policy.attempts:
                raise HubError(f"listing models from {crawler.endpoint} failed after {done} models "
                               f"({_message(exc)}); rerun the same command to resume") from exc
            crawler.retrier.retries[kind] += 1
            time.sleep(crawler.retrier.delay(failures, wait_s))


@dataclass(frozen=True)
class CrawlQuery:
    """What to crawl and how: the ``list_models`` query plus download and network options.

    Args:
        search, author, library, pipeline_tag, tags, sort, limit: the ``list_models`` query (``library`` and
            ``tags`` are tag filters, e.g. ``tags=("base_model:bert-base-uncased",)``; ``sort`` is one of
            ``downloads``, ``likes``, ``created_at``, ``last_modified``, ``trending_score``).
        revision: crawl this revision of every model instead of its main branch.
        download: fetch the weights (through the HF cache) and ingest them, instead of headers only.
        include: with ``download``, fetch only weight files matching these glob patterns.
        allow_pickle: with ``download``, also ingest pickle-only repositories (read with ``weights_only``).
        workers: concurrent network workers (the zoo is written by the calling thread only).
        endpoint: the Hub endpoint (default ``$HF_ENDPOINT``, read when the crawl starts, else huggingface.co).
        token: a Hub token (default ``$HF_TOKEN`` / the saved login); gated and private repositories are
            recorded and skipped without one.
        max_params: skip models with more parameters (not recorded).
        progress: a tqdm bar with models/s.
        retry: the :class:`~weightzoo.zoo.hub.RetryPolicy` for every request.
        cache_dir: the HF cache for ``download`` (default: the shared cache).
        ray: inspect repositories as Ray tasks (``True``, an address; ``None`` follows
            ``$WEIGHTZOO_RAY_ADDRESS``): workers do the network work (and, with ``download``, write the
            weights into new packs); this process alone writes the catalogue. See
            :func:`~weightzoo.zoo.store.executors.make_executor`.
    """

    search: str | None = None
    author: str | None = None
    library: str | None = None
    pipeline_tag: str | None = None
    tags: tuple[str, ...] = ()
    sort: str | None = None
    limit: int | None = None
    revision: str | None = None
    download: bool = False
    include: tuple[str, ...] | None = None
    allow_pickle: bool = False
    workers: int = 4
    endpoint: str | None = None
    token: str | bool | None = None
    max_params: int | None = None
    progress: bool = True
    retry: RetryPolicy | None = None
    cache_dir: str | os.PathLike[str] | None = None
    ray: bool | str | None = None

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise InvalidOptionError(f"crawl: workers must be >= 1 (got {self.workers})")
        if self.limit is not None and self.limit < 1:
            raise InvalidOptionError(f"crawl: limit must be >= 1 (got {self.limit})")
        if self.sort is not None and self.sort not in SORTS:
            raise InvalidOptionError(f"crawl: sort {self.sort!r} is not one of {', '.join(SORTS)}")
        object.__setattr__(self, "tags", (self.tags,) if isinstance(self.tags, str) else tuple(self.tags))
        if self.include is not None:
            object.__setattr__(self, "include", tuple(self.include))

    def state_key(self, endpoint: str) -> str:
        """The catalogue key of this query's crawl state: what was asked (not how), so reruns resume."""
        asked = {k: getattr(self, k) for k in ("search", "author", "library", "pipeline_tag", "sort", "revision",
                                               "download", "allow_pickle", "max_params")}
        asked["include"] = list(self.include) if self.include else None
        asked["tags"] = sorted(self.tags)
        return "hub:" + json.dumps({"endpoint": endpoint, **asked}, sort_keys=True)


def crawl(zoo: ZooLike, query: CrawlQuery | None = None, **options: Any) -> CrawlSummary:
    """Crawl the Hub (or a mirror) into ``zoo``: metadata-only records by default, ingests with ``download``.

    Args:
        zoo: an open :class:`~weightzoo.zoo.store.Zoo`, or a folder (opened, created if needed, closed).
        query: a :class:`CrawlQuery`; keyword ``options`` (its field names: ``search=``, ``author=``,
            ``limit=``, ``download=`` …) build one, or override fields of ``query``.

    Returns:
        a :class:`CrawlSummary`; skips and failures are counted by reason.

    Raises:
        InvalidOptionError: an unknown option or an invalid value.
        HubError: the endpoint cannot be reached, the listing fails beyond retries, or ``HF_HUB_OFFLINE``.
    """
    from huggingface_hub import constants

    from weightzoo.zoo.store import using_zoo

    unknown = set(options) - {f.name for f in fields(CrawlQuery)}
    if unknown:
        raise InvalidOptionError(f"crawl: unknown option(s) {sorted(unknown)}; valid: "
                                 f"{', '.join(f.name for f in fields(CrawlQuery))}")
    q = replace(query, **options) if query is not None else CrawlQuery(**options)
    if constants.HF_HUB_OFFLINE or _env_true("HF_HUB_OFFLINE"):
        raise HubError("HF_HUB_OFFLINE is set: a crawl needs the Hub (models already crawled stay in the zoo)")
    endpoint = (q.endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")
    with using_zoo(zoo, create=True) as opened:
        return _run(opened, q, endpoint)


def _run(zoo: Zoo, q: CrawlQuery, endpoint: str) -> CrawlSummary:
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from tqdm import tqdm

    key = q.state_key(endpoint)
    asked = json.loads(key[len("hub:"):])
    asked.pop("endpoint")
    summary = CrawlSummary(query={**asked, "limit": q.limit}, endpoint=endpoint)
    options = dict(endpoint=endpoint, token=q.token, revision=q.revision, download=q.download,
                   include=list(q.include) if q.include else None, allow_pickle=q.allow_pickle,
                   max_params=q.max_params, policy=q.retry or RetryPolicy(), cache_dir=q.cache_dir)
    crawler = _Crawler(zoo, **options)  # type: ignore[arg-type]
    previous = zoo.crawl_state(key) or {}
    t0, last_save = time.perf_counter(), time.perf_counter()

    def save(status: str) -> None:
        crawler.flush()
        summary.seconds = time.perf_counter() - t0
        summary.retries = Counter(crawler.retrier.retries)
        zoo.set_crawl_state(key, {"status": status, "runs": int(previous.get("runs", 0)) + 1, "updated": time.time(),
                                  "summary": {k: v for k, v in summary.to_dict().items() if k != "errors"}})

    crawler.probe()
    filters = ([q.library] if q.library else []) + list(q.tags)
    list_kwargs = dict(search=q.search, author=q.author, filter=filters or None, pipeline_tag=q.pipeline_tag,
                       sort=q.sort, limit=q.limit, expand=EXPAND)
    bar = tqdm(total=q.limit, unit="model", desc="crawl", disable=not q.progress or None, leave=False)
    pool = ThreadPoolExecutor(max_workers=q.workers, thread_name_prefix="crawl")
    inflight: set[Future[_Outcome]] = set()

    def drain(block_until: int) -> None:
        nonlocal last_save
        while len(inflight) > block_until:
            finished, _ = wait(inflight, return_when=FIRST_COMPLETED)
            for fut in finished:
                inflight.discard(fut)
                crawler.apply(fut.result(), summary)
                bar.update(1)
            bar.set_postfix(ok=summary.recorded + summary.ingested, skip=sum(summary.skipped.values()),
                            fail=sum(summary.failed.values()), refresh=False)
            if time.perf_counter() - last_save > 2:
                save("running")
                last_save = time.perf_counter()

    status = "interrupted"
    quiet = not q.progress and not are_progress_bars_disabled()
    if quiet:  # snapshot_download's own bars
        disable_progress_bars()
    broken: list[HubError] = []

    def to_inspect() -> Iterator[Any]:
        """The listing, less repositories already done; a broken listing ends it (raised after the drain)."""
        try:
            for info in _listing(crawler, list_kwargs):
                summary.listed += 1
                if (q.revision is None and info.sha and info.siblings is not None
                        and crawler.is_done(info.id, info.sha)):
                    summary.skipped["up-to-date"] += 1
                    bar.update(1)
                    continue
                yield info
        except HubError as exc:  # the listing broke, not the models in flight: keep their work, then stop
            broken.append(exc)

    address = resolve_ray(q.ray)
    try:
        save("running")
        if address is None:
            for info in to_inspect():
                inflight.add(pool.submit(crawler.inspect, info))
                drain(2 * q.workers)
            drain(0)
        else:
            _inspect_on_ray(zoo, crawler, options, address, q, to_inspect(), summary, bar, save)
        if broken:
            raise broken[0]
        summary.complete = True
        status = "complete"
    finally:
        pool.shutdown(wait=status == "complete", cancel_futures=True)
        bar.close()
        save(status)
        if quiet:
            enable_progress_bars()
    return summary


def _inspect_on_ray(zoo: Zoo, crawler: _Crawler, options: dict[str, Any], address: str, q: CrawlQuery,
                    infos: Iterator[Any], summary: CrawlSummary, bar: Any, save: Any) -> None:
    """Inspect (and with ``download`` stage) every listed repository as a Ray task; apply outcomes here."""
    from weightzoo.zoo.store.executors import RayExecutor
    from weightzoo.zoo.store.staging import new_job_prefix

    prefix = new_job_prefix()
    crawler.recheck_done = True
    task = _InspectTask(options, (str(zoo.packs_dir), prefix) if q.download else None)
    # Network-bound tasks: a quarter CPU each, so a 2-CPU worker runs 8 requests at once.
    ex = RayExecutor(address, cpus_per_task=0.25)
    last_save = time.perf_counter()
    try:
        for o in ex.map_unordered(task, infos):
            crawler.apply(o, summary)
            bar.update(1)
            bar.set_postfix(ok=summary.recorded + summary.ingested, skip=sum(summary.skipped.values()),
                            fail=sum(summary.failed.values()), refresh=False)
            if time.perf_counter() - last_save > 2:
                save("running")
                last_save = time.perf_counter()
    finally:
        ex.close()
        if q.download:
            crawler.flush()
            zoo.discard_staged(prefix)


__all__ = ["EXPAND", "SORTS", "CrawlQuery", "CrawlSummary", "RetryPolicy", "crawl"]
