"""Zoo-wide analyses on an executor equal the serial run: stats rows and filter tables, in input order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from weightzoo.analysis.filters import scan_filters
from weightzoo.analysis.stats import model_stats, stats_many
from weightzoo.zoo.store import Zoo
from weightzoo.zoo.store.executors import SerialExecutor


class _Reversed(SerialExecutor):
    """Finishes items in reverse order (as a pool might): the results must still come back in input order."""

    def map_unordered(self, fn, items):  # type: ignore[no-untyped-def]
        return iter(reversed(list(super().map_unordered(fn, items))))


def _cnn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.Flatten(), nn.Linear(6 * 4 * 4, 3))


def _zoo(tmp_path: Path) -> Path:
    path = tmp_path / "z"
    with Zoo.open(path) as z:
        for i in range(3):
            m = _cnn(i)
            z.ingest(m.state_dict(), name=f"cnn{i}", metadata={"task": "ab"[i % 2]})
    return path


def test_stats_many_equals_serial_model_stats(tmp_path: Path) -> None:
    path = _zoo(tmp_path)
    ckpt = tmp_path / "extra.pt"
    torch.save(_cnn(9).state_dict(), ckpt)
    with Zoo.open(path) as z:
        expected = [r for n in ("cnn0", "cnn1", "cnn2") for r in model_stats(n, zoo=z, model_name=n)]
    expected += list(model_stats(str(ckpt), model_name="extra"))
    jobs = [("cnn0", "cnn0"), ("cnn1", "cnn1"), ("cnn2", "cnn2"), ("extra", str(ckpt))]
    got = stats_many(jobs, zoo=path, executor=_Reversed())
    assert [r.as_dict() for r in got] == [r.as_dict() for r in expected]


def test_scan_filters_on_an_executor_equals_serial(tmp_path: Path) -> None:
    path = _zoo(tmp_path)
    with Zoo.open(path) as z:
        a = scan_filters(["cnn0", "cnn1", "cnn2"], zoo=z)
        b = scan_filters(["cnn0", "cnn1", "cnn2"], zoo=z, executor=_Reversed())
    assert a.table.layers == b.table.layers and len(a.table.layers) == 6
    assert {r["task"] for r in b.table.layers} == {"a", "b"}  # catalogue metadata joined by the driver
    assert np.array_equal(np.asarray(a.table.filters), np.asarray(b.table.filters))
