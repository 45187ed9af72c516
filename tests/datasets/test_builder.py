"""The shared builder machinery: deterministic disjoint splits, resume after interruption, manifests."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from weightzoo.datasets import build, read_manifest
from weightzoo.datasets.builder import (
    DatasetError,
    Executor,
    SerialExecutor,
    derive_seed,
    hash_split,
    numeric_summary,
    split_half_reliability,
)
from weightzoo.zoo.store import Zoo


class _Interrupting(Executor):
    """Runs units in-process and raises KeyboardInterrupt after ``after`` results (a killed build)."""

    def __init__(self, after: int) -> None:
        self.after = after

    def map_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        for k, r in enumerate(SerialExecutor().map_unordered(fn, items)):
            if k == self.after:
                raise KeyboardInterrupt
            yield r


def test_hash_split_is_deterministic_and_roughly_70_15_15() -> None:
    groups = [f"n{i:05d}" for i in range(3000)]
    a = [hash_split("digits-cnn", 0, g) for g in groups]
    assert a == [hash_split("digits-cnn", 0, g) for g in groups]
    assert a != [hash_split("digits-cnn", 1, g) for g in groups]
    shares = {s: a.count(s) / len(a) for s in ("train", "val", "test")}
    assert abs(shares["train"] - 0.7) < 0.04 and abs(shares["val"] - 0.15) < 0.03 and abs(shares["test"] - 0.15) < 0.03
    assert derive_seed("x", 0, "n1") == derive_seed("x", 0, "n1") != derive_seed("x", 0, "n2")


def test_splits_disjoint_cover_all_and_deterministic(tmp_path: Path) -> None:
    m = []
    for run in ("a", "b"):
        build("digits-cnn", tmp_path / run, size=8, seed=3, workers=1, epochs=(0,), progress=False)
        m.append(read_manifest(tmp_path / run, "digits-cnn"))
    s = m[0]["splits"]
    sets = [set(s[k]) for k in ("train", "val", "test")]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert set().union(*sets) == {f"n{i:05d}" for i in range(8)}
    assert m[0]["splits"] == m[1]["splits"]
    with Zoo.open(tmp_path / "a") as z:  # the split is also in every model's metadata
        for entry in m[0]["groups"].values():
            assert {z.model(n).metadata["split"] for n in entry["models"]} == {entry["split"]}


def test_resume_after_interruption_builds_the_rest_without_duplicates(tmp_path: Path) -> None:
    zoo = tmp_path / "z"
    with pytest.raises(KeyboardInterrupt):
        build("digits-cnn", zoo, size=6, seed=0, executor=_Interrupting(3), epochs=(0,), progress=False,
              batch_models=100)
    with Zoo.open(zoo) as z:
        assert len(z) == 3  # finished units were kept
    partial = read_manifest(zoo, "digits-cnn")
    assert partial["complete"] is False
    report = build("digits-cnn", zoo, size=6, seed=0, workers=1, epochs=(0,), progress=False)
    assert (report.units_skipped, report.units_built) == (3, 3)
    with Zoo.open(zoo) as z:
        names = [m.name for m in z.models()]
    assert sorted(names) == [f"digits-cnn/n{i:05d}-e00" for i in range(6)]
    again = build("digits-cnn", zoo, size=6, seed=0, workers=1, epochs=(0,), progress=False)
    assert (again.units_built, again.models_ingested) == (0, 0)
    m = read_manifest(zoo, "digits-cnn")
    assert m["complete"] is True and len(m["build"]["runs"]) == 3


def test_manifest_records_recipe_and_refuses_another_seed_or_recipe(tmp_path: Path) -> None:
    build("digits-cnn", tmp_path, size=4, seed=5, workers=1, epochs=(0,), progress=False)
    raw = json.loads((tmp_path / "manifests" / "digits-cnn.json").read_text())
    assert raw["format"] == "weightzoo.manifest/1" and raw["seed"] == 5 and raw["size"] == 4
    assert raw["recipe"]["epochs"] == [0] and raw["models"] == 4
    acc = raw["labels"]["test_accuracy"]
    assert acc["count"] == 4 and 0 <= acc["quantiles"]["min"] <= acc["quantiles"]["max"] <= 1
    assert sum(acc["histogram"]["counts"]) == 4
    assert not list((tmp_path / "manifests").glob("*.tmp"))
    with pytest.raises(DatasetError, match="seed 5"):
        build("digits-cnn", tmp_path, size=4, seed=6, workers=1, epochs=(0,), progress=False)
    with pytest.raises(DatasetError, match="another recipe"):
        build("digits-cnn", tmp_path, size=4, seed=5, workers=1, epochs=(0, 1), progress=False)


def test_bad_requests_raise_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unknown dataset"):
        build("cifar-cnn", tmp_path, size=1)
    with pytest.raises(DatasetError, match="size must be"):
        build("digits-cnn", tmp_path, size=0, epochs=(0,))
    with pytest.raises(DatasetError, match="epochs"):
        build("digits-cnn", tmp_path, size=1, epochs=(3, 1))
    with pytest.raises(DatasetError, match="no manifest"):
        read_manifest(tmp_path, "digits-inr")


def test_summaries() -> None:
    s = numeric_summary([0.1, 0.15, 0.5, 0.9, None], chance=0.2)
    assert s["count"] == 4 and s["share_at_chance"] == 0.5 and s["histogram"]["counts"][1] == 2

    class R:
        def __init__(self, a: float, b: float) -> None:
            self.metadata = {"test_accuracy_a": a, "test_accuracy_b": b}

    assert split_half_reliability([R(0.1, 0.2), R(0.5, 0.4), R(0.9, 0.95)]) == pytest.approx(1.0)
    assert split_half_reliability([R(0.1, 0.2)]) is None


@pytest.mark.slow
def test_process_pool_gives_the_same_zoo_as_in_process(tmp_path: Path) -> None:
    build("digits-cnn", tmp_path / "serial", size=3, seed=0, workers=1, epochs=(0,), progress=False)
    build("digits-cnn", tmp_path / "pool", size=3, seed=0, workers=2, epochs=(0,), progress=False)
    with Zoo.open(tmp_path / "serial") as a, Zoo.open(tmp_path / "pool") as b:
        for m in a.models():
            assert [t.hash for t in a.tensors(m.name)] == [t.hash for t in b.tensors(m.name)]
            assert m.metadata == b.model(m.name).metadata


def test_items_keep_zero_dim_tensors_zero_dim() -> None:
    """A BatchNorm counter is a 0-d tensor: the item handed to the store must keep shape [] (not [1])."""
    import numpy as np

    from weightzoo.datasets.builder import ModelItem, _to_item

    state = {"w": np.ones((2, 3), np.float32), "bn.num_batches_tracked": np.array(7, np.int64),
             "w_t": np.ones((3, 2), np.float32).T}
    frozen = {k: v.copy() for k, v in state.items()}
    for v in frozen.values():
        v.flags.writeable = False
    for src in (state, frozen):
        out = _to_item(ModelItem("m", src, None, {}))["source"]
        assert out["bn.num_batches_tracked"].shape == ()
        assert int(out["bn.num_batches_tracked"]) == 7
        assert out["w"].shape == (2, 3) and out["w_t"].shape == (2, 3) and out["w_t"].is_contiguous()
