"""Executors: where the heavy jobs of every floor run — in-process, a local process pool, or a Ray cluster.

A heavy job is one function applied to many independent items: a network to train (``datasets build``), a
checkpoint to stage into a pack (``ingest``), a model whose statistics or filters to compute (``stats``,
``filters``), a Hub repository to inspect (``crawl``). Every such job goes through one :class:`Executor`:

* :class:`SerialExecutor`: in the calling process (tests, one core, debugging);
* :class:`ProcessExecutor`: a local ``spawn`` process pool;
* :class:`RayExecutor`: Ray tasks, on a local Ray instance or a cluster (``pip install 'weightzoo[ray]'``).

Executors only *compute*. Every result comes back to the calling process — the *driver* — which alone opens
the catalogue and writes it: SQLite in WAL mode needs a local disk, and the store's writer lock is held by
one process. Workers may write *new* pack files under a job prefix (:mod:`weightzoo.zoo.store.staging`);
the driver commits them or, if it never does, removes them.

Failures are the same on every backend:

* an exception raised by the function is that item's result, re-raised in the driver with its own type
  (a corrupt checkpoint stays a ``CheckpointError``); it is not retried, since the work is deterministic;
* a worker that dies (killed, out of memory, its node lost) is a system failure: its item is submitted
  again, up to ``max_retries`` times, and counted in :attr:`Executor.retries`; beyond that,
  :class:`~weightzoo.errors.TaskFailedError` names the item.

Which backend a command uses is decided once, by :func:`make_executor`: ``ray=`` (the CLI's ``--ray
[ADDRESS]``), else ``$WEIGHTZOO_RAY_ADDRESS``, else ``workers`` (1: serial; more: a process pool).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from weightzoo.errors import ExecutorUnavailableError, InvalidOptionError, TaskFailedError

#: The environment variable that sends every heavy job to Ray (an address such as ``auto`` or
#: ``ray://head:10001``, or ``local`` for a Ray instance started on this machine).
RAY_ADDRESS_ENV = "WEIGHTZOO_RAY_ADDRESS"
#: Worker losses tolerated per item before the job stops with ``TaskFailedError``.
DEFAULT_MAX_RETRIES = 3


def _one_thread() -> None:
    import torch

    # Small networks: one thread per worker beats torch's intra-op threads fighting over the cores.
    torch.set_num_threads(1)


def run_in_worker(fn: Callable[[Any], Any], item: Any) -> Any:
    """What every worker runs: ``fn(item)`` with one torch thread (pickled by reference for workers)."""
    _one_thread()
    return fn(item)


class _Indexed:
    """``(i, item) -> (i, fn(item))``: lets an unordered executor give results back in input order."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, pair: tuple[int, Any]) -> tuple[int, Any]:
        return pair[0], self.fn(pair[1])


class Executor(ABC):
    """Runs ``fn`` over items on some workers and yields the results to the calling process (the driver).

    Attributes:
        workers: how many items run at once.
        retries: items submitted again after their worker died (reported by the jobs that use it).
        max_retries: worker losses tolerated per item.
    """

    workers: int = 1
    retries: int = 0
    max_retries: int = DEFAULT_MAX_RETRIES

    @abstractmethod
    def map_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        """Yield ``fn(item)`` for every item, as each completes. ``fn`` must be picklable by reference
        (a module-level function, or an instance of a module-level class) for the pool and Ray."""

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        """Yield ``fn(item)`` for every item in input order (results that finish early wait in memory)."""
        waiting: dict[int, Any] = {}
        nxt = 0
        try:
            for i, result in self.map_unordered(_Indexed(fn), enumerate(items)):
                waiting[i] = result
                while nxt in waiting:
                    yield waiting.pop(nxt)
                    nxt += 1
        except TaskFailedError as exc:  # name the caller's item, not its (index, item) wrapper
            wrapped: tuple[int, Any] = exc.item  # type: ignore[assignment]
            raise TaskFailedError(wrapped[1], exc.attempts, exc.reason) from exc.__cause__

    @property
    def name(self) -> str:
        """A short description for reports: ``serial``, ``process:2``, ``ray:local``."""
        return type(self).__name__

    def close(self) -> None:  # noqa: B027 - optional hook: in-process executors hold nothing
        """Release the workers."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SerialExecutor(Executor):
    """Runs everything in the calling process, one item after another."""

    @property
    def name(self) -> str:
        return "serial"

    def map_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as in the workers of the other backends: same speed, same numerics
        try:
            for item in items:
                yield fn(item)
        finally:
            torch.set_num_threads(threads)


class ProcessExecutor(Executor):
    """A local ``concurrent.futures.ProcessPoolExecutor`` (``spawn`` by default: safe with torch threads).

    At most ``2 × workers`` items are in flight, so results stream back without piling up in memory. A
    worker that dies breaks the whole pool (``BrokenProcessPool``): the pool is rebuilt and every item that
    was in flight is submitted again (each counts one retry).
    """

    def __init__(self, workers: int | None = None, *, context: str = "spawn",
                 max_retries: int = DEFAULT_MAX_RETRIES) -> None:
        if context not in ("spawn", "forkserver"):
            raise InvalidOptionError(f"ProcessExecutor: context must be 'spawn' or 'forkserver', not {context!r}")
        self.workers = workers or os.cpu_count() or 1
        self.context = context
        self.max_retries = max_retries
        self.retries = 0
        self._pool = self._new_pool()

    def _new_pool(self) -> Any:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context(self.context),
                                   initializer=_one_thread)

    @property
    def name(self) -> str:
        return f"process:{self.workers}"

    def map_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        it = iter(items)
        pending: dict[Any, tuple[Any, int]] = {}  # future -> (item, attempt)
        lost: list[tuple[Any, int]] = []
        try:
            while True:
                while lost:
                    item, attempt = lost.pop()
                    pending[self._pool.submit(fn, item)] = (item, attempt)
                while len(pending) < 2 * self.workers:
                    try:
                        item = next(it)
                    except StopIteration:
                        break
                    pending[self._pool.submit(fn, item)] = (item, 0)
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                broken = False
                for f in done:
                    item, attempt = pending.pop(f)
                    exc = f.exception()
                    if isinstance(exc, BrokenProcessPool):
                        broken = True
                        lost.append((item, self._retry(item, attempt, exc)))
                        continue
                    yield f.result()
                if broken:  # every other item in flight died with the pool: resubmit them too
                    for f, (item, attempt) in list(pending.items()):
                        f.cancel()
                        lost.append((item, self._retry(item, attempt, BrokenProcessPool("pool rebuilt"))))
                    pending.clear()
                    self._pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = self._new_pool()
        finally:
            for f in pending:
                f.cancel()

    def _retry(self, item: Any, attempt: int, exc: BaseException) -> int:
        if attempt >= self.max_retries:
            raise TaskFailedError(item, attempt + 1, f"worker process died ({exc})") from exc
        self.retries += 1
        return attempt + 1

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ExecutorUnavailableError("ray", "Ray is not installed: pip install 'weightzoo[ray]'") from exc
    return ray


class RayExecutor(Executor):
    """Ray tasks (one CPU each), on a local Ray instance or a cluster.

    Args:
        address: ``None`` or ``"local"`` start a Ray instance on this machine (``workers`` CPUs); anything
            else (``"auto"``, ``"ray://head:10001"``, ``"10.0.0.1:6379"``) connects to a cluster. When Ray is
            already initialised in this process, that instance is used (and left running at ``close``).
        workers: CPUs of a local instance, and the number of items in flight (× 2); default: the
            cluster's CPUs.
        max_retries: worker losses tolerated per item (Ray's own retries are off, so every retry is
            counted the same way on every backend).
        runtime_env: handed to ``ray.init`` (e.g. ``{"pip": ["weightzoo[ray]"]}`` for a fresh cluster).
        cpus_per_task: CPUs Ray reserves per task (below 1 for network-bound jobs such as a crawl; more
            tasks are then kept in flight).

    On a cluster, every worker needs weightzoo installed and, for jobs that read or write packs
    (ingest, stats, filters), the zoo folder at the same path on a shared file system; the catalogue is
    only opened by the driver.
    """

    def __init__(self, address: str | None = None, *, workers: int | None = None,
                 max_retries: int = DEFAULT_MAX_RETRIES, runtime_env: dict[str, Any] | None = None,
                 cpus_per_task: float = 1.0) -> None:
        ray = _import_ray()
        self._ray = ray
        self.address = address or "local"
        self.max_retries = max_retries
        self.retries = 0
        self._owns = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
            if runtime_env is not None:
                kwargs["runtime_env"] = runtime_env
            if self.address == "local":
                ray.init(num_cpus=workers or os.cpu_count() or 1, **kwargs)
            else:
                try:
                    ray.init(address=self.address, **kwargs)
                except (ConnectionError, RuntimeError, ValueError) as exc:
                    raise ExecutorUnavailableError("ray", f"cannot connect to the Ray cluster at "
                                                   f"{self.address!r}: {exc}") from exc
            self._owns = True
        if cpus_per_task <= 0:
            raise InvalidOptionError(f"RayExecutor: cpus_per_task must be > 0, got {cpus_per_task}")
        cpus = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.workers = max(1, int(cpus / cpus_per_task))  # tasks that run at once
        self._task = ray.remote(num_cpus=cpus_per_task, max_retries=0)(run_in_worker)

    @property
    def name(self) -> str:
        return f"ray:{self.address}"

    def map_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        ray = self._ray
        fn_ref = ray.put(fn)
        it = iter(items)
        pending: dict[Any, tuple[Any, int]] = {}  # object ref -> (item, attempt)
        try:
            while True:
                while len(pending) < 2 * self.workers:
                    try:
                        item = next(it)
                    except StopIteration:
                        break
                    pending[self._task.remote(fn_ref, item)] = (item, 0)
                if not pending:
                    return
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    item, attempt = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:  # the function raised: re-raise its error
                        cause = getattr(exc, "cause", None)
                        if isinstance(cause, BaseException):
                            raise cause from None
                        raise
                    except ray.exceptions.TaskCancelledError:
                        raise
                    except ray.exceptions.RayError as exc:  # the worker or its node died: run it again
                        if attempt >= self.max_retries:
                            raise TaskFailedError(item, attempt + 1, f"Ray worker lost ({type(exc).__name__})") from exc
                        self.retries += 1
                        pending[self._task.remote(fn_ref, item)] = (item, attempt + 1)
                        continue
                    yield result
        finally:
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - best effort: a finished task cannot be cancelled
                    pass

    def close(self) -> None:
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
            self._owns = False


def ray_address_from_env() -> str | None:
    """``$WEIGHTZOO_RAY_ADDRESS`` (empty or unset: ``None``) — the one place the variable is read."""
    value = os.environ.get(RAY_ADDRESS_ENV, "").strip()
    return value or None


def resolve_ray(ray: bool | str | None) -> str | None:
    """Which Ray address a job uses, or ``None`` for a local executor.

    ``ray`` is ``False`` (never Ray), ``None`` (Ray only when ``$WEIGHTZOO_RAY_ADDRESS`` is set), ``True`` or
    ``""`` (``$WEIGHTZOO_RAY_ADDRESS``, else ``$RAY_ADDRESS``, else a local instance) or an address.
    """
    if ray is False:
        return None
    if ray is None:
        return ray_address_from_env()
    if ray is True or ray == "":
        return ray_address_from_env() or os.environ.get("RAY_ADDRESS", "").strip() or "local"
    if not isinstance(ray, str):
        raise InvalidOptionError(f"ray must be a bool, an address string or None, not {type(ray).__name__}")
    return ray.strip() or "local"


def make_executor(workers: int | None = None, *, ray: bool | str | None = None,
                  max_retries: int = DEFAULT_MAX_RETRIES) -> Executor:
    """The executor a job runs on.

    Args:
        workers: local processes (default: all cores; 1 runs in-process), or a local Ray instance's CPUs.
        ray: see :func:`resolve_ray`: ``None`` follows ``$WEIGHTZOO_RAY_ADDRESS``; ``True``/an address
            chooses Ray; ``False`` never.
        max_retries: worker losses tolerated per item.
    """
    if workers is not None and workers < 1:
        raise InvalidOptionError(f"workers must be >= 1, got {workers}")
    address = resolve_ray(ray)
    if address is not None:
        return RayExecutor(address, workers=workers, max_retries=max_retries)
    n = workers if workers is not None else (os.cpu_count() or 1)
    return SerialExecutor() if n == 1 else ProcessExecutor(n, max_retries=max_retries)


__all__ = ["DEFAULT_MAX_RETRIES", "Executor", "ProcessExecutor", "RAY_ADDRESS_ENV", "RayExecutor", "SerialExecutor",
           "make_executor", "ray_address_from_env", "resolve_ray", "run_in_worker"]
