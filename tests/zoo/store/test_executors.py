"""Executors: ordered and unordered maps, typed task errors, worker loss retried, backend selection."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from weightzoo.errors import ExecutorUnavailableError, InvalidOptionError, TaskFailedError
from weightzoo.zoo.store.executors import (
    RAY_ADDRESS_ENV,
    ProcessExecutor,
    SerialExecutor,
    make_executor,
    resolve_ray,
)

HERE = Path(__file__).resolve().parent


@pytest.fixture()
def helpers() -> Iterator[object]:
    """The job functions, importable by spawned workers (they inherit sys.path)."""
    sys.path.insert(0, str(HERE))
    try:
        import _executor_helpers

        yield _executor_helpers
    finally:
        sys.path.remove(str(HERE))


def test_serial_map_keeps_order_and_reraises_task_errors(helpers: object) -> None:
    ex = SerialExecutor()
    assert list(ex.map(helpers.Square(), [3, 1, 2])) == [9, 1, 4]  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="negative: -1"):
        list(ex.map(helpers.Square(), [2, -1]))  # type: ignore[attr-defined]
    assert ex.name == "serial" and ex.retries == 0


@pytest.mark.slow
def test_process_pool_recovers_a_killed_worker_without_losing_or_duplicating(helpers: object, tmp_path: Path) -> None:
    items = list(range(12))
    with ProcessExecutor(2) as ex:
        out = list(ex.map(helpers.KillOnce(str(tmp_path / "m"), target=5), items))  # type: ignore[attr-defined]
        assert out == [x * x for x in items]  # every item once, in order
        assert ex.retries >= 1 and (tmp_path / "m").exists()
        # the pool was rebuilt and keeps working; task errors keep their type
        with pytest.raises(ValueError, match="negative"):
            list(ex.map_unordered(helpers.Square(), [1, -2]))  # type: ignore[attr-defined]
    with ProcessExecutor(2, max_retries=1) as ex, pytest.raises(TaskFailedError) as info:
        list(ex.map(helpers.KillOnce(str(tmp_path / "m2"), target=3, always=True), [3]))  # type: ignore[attr-defined]
    assert info.value.item == 3 and info.value.attempts == 2


def test_make_executor_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RAY_ADDRESS_ENV, raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert isinstance(make_executor(1), SerialExecutor)
    assert resolve_ray(None) is None and resolve_ray(False) is None
    assert resolve_ray(True) == "local" and resolve_ray("") == "local"
    assert resolve_ray("ray://head:10001") == "ray://head:10001"
    monkeypatch.setenv(RAY_ADDRESS_ENV, "auto")
    assert resolve_ray(None) == "auto" and resolve_ray(True) == "auto"
    assert resolve_ray(False) is None and resolve_ray("local") == "local"
    with pytest.raises(InvalidOptionError, match="workers must be >= 1"):
        make_executor(0)


def test_missing_ray_is_a_clear_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(ExecutorUnavailableError, match=r"pip install 'weightzoo\[ray\]'") as info:
        make_executor(2, ray=True)
    assert isinstance(info.value, ImportError) and info.value.backend == "ray"
