"""The zoo store: round trips, dedup, lazy reads, metadata, lineage, lifecycle and verification."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from weightzoo.errors import (
    IncompatibleZooError,
    InvalidNameError,
    LineageError,
    ModelExistsError,
    ModelNotFoundError,
    SpecError,
    TensorNotFoundError,
    ZooBusyError,
    ZooCorruptError,
    ZooNotFoundError,
)
from weightzoo.zoo.formats import TensorInfo
from weightzoo.zoo.store import Zoo

ALL_DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.float8_e4m3fn, torch.float8_e5m2,
              torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64, torch.bool]


def _random(dtype: torch.dtype, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=gen).bool()
    if not dtype.is_floating_point:
        info = torch.iinfo(dtype)
        return torch.randint(max(info.min, -1000), min(info.max, 1000), shape, generator=gen).to(dtype)
    return (torch.randn(shape, generator=gen) * 3).to(dtype)


def _bits(t: torch.Tensor) -> bytes:
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""


def _packs(zoo: Zoo) -> set[str]:
    return {p.name for p in zoo.packs_dir.iterdir()}


def _rows(zoo: Zoo) -> dict[str, list]:
    con = sqlite3.connect(zoo.path / "catalog.sqlite")
    try:
        return {t: sorted(map(repr, con.execute(f"SELECT * FROM {t}").fetchall()))
                for t in ("models", "tensors", "blobs", "packs", "metadata", "lineage")}
    finally:
        con.close()


def test_open_creates_and_reopens(tmp_path: Path) -> None:
    with Zoo.open(tmp_path / "z") as zoo:
        assert len(zoo) == 0
        assert (tmp_path / "z" / "catalog.sqlite").is_file()
    with Zoo.open(tmp_path / "z", create=False) as zoo:
        assert zoo.models() == []
    with pytest.raises(ZooNotFoundError):
        Zoo.open(tmp_path / "nothing", create=False)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "my-notes.txt").write_text("not a zoo")
    with pytest.raises(ZooNotFoundError):
        Zoo.open(tmp_path / "busy")
    mode = sqlite3.connect(tmp_path / "z" / "catalog.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(ALL_DTYPES), st.lists(st.integers(0, 5), max_size=3)), min_size=1, max_size=6),
       st.integers(0, 2**31 - 1))
def test_every_dtype_round_trips_bit_exactly(tmp_path_factory: pytest.TempPathFactory, specs, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    sd = {f"t{i}": _random(dt, tuple(shape), gen) for i, (dt, shape) in enumerate(specs)}
    with Zoo.open(tmp_path_factory.mktemp("zoo")) as zoo:
        zoo.ingest(sd, name="m")
        back = dict(zoo.state_dict("m"))
        assert list(back) == list(sd)
        for k, t in sd.items():
            assert back[k].dtype == t.dtype and back[k].shape == t.shape
            assert _bits(back[k]) == _bits(t)


def test_minilm_snapshot_round_trip_and_catalogue(tmp_path: Path, minilm_dir: Path) -> None:
    ref = load_file(minilm_dir / "model.safetensors")
    with Zoo.open(tmp_path / "z") as zoo:
        rec = zoo.ingest(minilm_dir, name="sentence-transformers/all-MiniLM-L6-v2", metadata={"task": "embedding"})
        assert rec.ingested and rec.model_type == "bert" and rec.architecture == "BertModel"
        assert rec.library == "sentence-transformers"
        assert rec.parameter_count == sum(t.numel() for t in ref.values())
        assert rec.spec == {"format": "hf", "class": "BertModel", "config": rec.config}
        assert rec.metadata == {"task": "embedding"}
        assert len(zoo.tensors(rec.name)) == len(ref)
        name = "embeddings.word_embeddings.weight"
        assert torch.equal(zoo.tensor(rec.name, name), ref[name])
        sd = zoo.state_dict(rec.name)
        assert set(sd) == set(ref)
        for k in ref:
            assert torch.equal(sd[k], ref[k]), k
        assert zoo.verify().clean


def test_dedup_identical_and_shared_tensors(tmp_path: Path, digits_cnn: torch.nn.Module) -> None:
    with Zoo.open(tmp_path / "z") as zoo:
        zoo.ingest(digits_cnn, name="a")
        packs_after_first = _packs(zoo)
        stored = zoo.stats()["stored_bytes"]
        zoo.ingest(digits_cnn, name="b")  # identical: no new bytes, no new pack
        assert _packs(zoo) == packs_after_first
        assert zoo.stats()["stored_bytes"] == stored
        # A fine-tune that changes only the head shares every other tensor.
        sd = {k: v.clone() for k, v in digits_cnn.state_dict().items()}
        sd["9.weight"] += 0.01
        zoo.ingest(sd, name="c")
        added = zoo.stats()["stored_bytes"] - stored
        assert added == sd["9.weight"].numel() * 4
        assert zoo.stats()["logical_bytes"] == 3 * zoo.model("a").nbytes


def test_lazy_reads_touch_one_tensor(tmp_path: Path) -> None:
    sd = {f"layer{i}.weight": torch.randn(64, 64) for i in range(20)}
    with Zoo.open(tmp_path / "z") as zoo:
        zoo.ingest(sd, name="m")
        lazy = zoo.state_dict("m")
        assert len(lazy) == 20 and "layer3.weight" in lazy and "nope" not in lazy
        assert torch.equal(lazy["layer3.weight"], sd["layer3.weight"])
        with pytest.raises(KeyError):
            lazy["nope"]
        with pytest.raises(TensorNotFoundError):
            zoo.tensor("m", "nope")


def test_metadata_filters_and_names(tmp_path: Path) -> None:
    with Zoo.open(tmp_path / "z") as zoo:
        for i in range(4):
            zoo.ingest({"w": torch.full((3,), float(i))}, name=f"org/net-{i}",
                       metadata={"epoch": i % 2, "seed": i, "test_accuracy": 0.5 + i / 10}, tags=["digits"])
        assert [m.name for m in zoo.models(epoch=1)] == ["org/net-1", "org/net-3"]
        assert len(zoo.models(name="org/*")) == 4
        assert len(zoo.models(tag="digits")) == 4 and zoo.models(tag="other") == []
        zoo.set_metadata("org/net-0", test_accuracy=0.9, note="best", epoch=None)
        assert zoo.metadata("org/net-0") == {"seed": 0, "test_accuracy": 0.9, "note": "best"}
        with pytest.raises(ModelExistsError):
            zoo.ingest({"w": torch.zeros(3)}, name="org/net-0")
        zoo.ingest({"w": torch.zeros(3)}, name="org/net-0", replace=True)
        assert torch.equal(zoo.tensor("org/net-0", "w"), torch.zeros(3))
        for bad in ["", " padded", "a\nb", "x@y"]:
            with pytest.raises(InvalidNameError):
                zoo.ingest({"w": torch.zeros(1)}, name=bad)
        with pytest.raises(ModelNotFoundError):
            zoo.model("missing")


def test_revisions(tmp_path: Path) -> None:
    with Zoo.open(tmp_path / "z") as zoo:
        zoo.ingest({"w": torch.zeros(2)}, name="org/m", revision="aaaa1111")
        zoo.ingest({"w": torch.ones(2)}, name="org/m", revision="bbbb2222")
        assert torch.equal(zoo.tensor("org/m", "w"), torch.ones(2))  # bare name = latest
        assert torch.equal(zoo.tensor("org/m@aaaa1111", "w"), torch.zeros(2))
        assert torch.equal(zoo.tensor("org/m@aaaa", "w"), torch.zeros(2))  # unique prefix
        assert zoo.model("org/m@aaaa1111").ref == "org/m@aaaa1111"


def test_lineage_table(tmp_path: Path) -> None:
    with Zoo.open(tmp_path / "z") as zoo:
        zoo.ingest({"w": torch.zeros(2)}, name="base")
        zoo.ingest({"w": torch.ones(2)}, name="ft1")
        zoo.add_lineage("ft1", "base", "finetune")
        zoo.add_lineage("ft1-q", "ft1", "quantized")  # child not in the zoo: allowed
        up = zoo.lineage("ft1-q", direction="up")
        assert {(e["child"], e["parent"]) for e in up} == {("ft1-q", "ft1"), ("ft1", "base")}
        down = zoo.lineage("base", direction="down")
        assert {e["relation"] for e in down} == {"finetune", "quantized"}
        assert "lineage" not in json.dumps(zoo.metadata("ft1"))  # never duplicated into metadata


def test_rm_gc_and_verify(tmp_path: Path) -> None:
    with Zoo.open(tmp_path / "z") as zoo:
        zoo.ingest({"w": torch.randn(100)}, name="a")
        zoo.ingest({"w": torch.randn(100)}, name="b")
        assert len(_packs(zoo)) == 2
        zoo.rm("a")
        assert not zoo.has_model("a") and len(_packs(zoo)) == 2
        res = zoo.gc()
        assert res["packs_removed"] == 1 and res["blobs_removed"] == 1
        assert len(_packs(zoo)) == 1
        assert zoo.verify().clean
        assert zoo.tensor("b", "w").shape == (100,)


def test_verify_finds_corruption_and_repairs_orphans(tmp_path: Path) -> None:
    import h5py

    with Zoo.open(tmp_path / "z") as zoo:
        zoo.ingest({"w": torch.randn(100), "v": torch.randn(10), "big": torch.randn(40_000)}, name="a")
        (pack,) = _packs(zoo)
        orphan, tmp = "deadbeef" * 4 + ".h5", ".tmp-" + "cafe" * 8 + ".h5"  # named as weightzoo names packs
        (zoo.packs_dir / orphan).write_bytes(b"orphan")
        (zoo.packs_dir / tmp).write_bytes(b"tmp")
        (zoo.packs_dir / "my_results.h5").write_bytes(b"a user's file")  # not ours: reported, never deleted
        rep = zoo.verify()
        assert rep.clean and rep.orphan_packs == [orphan] and rep.temp_files == [tmp]
        assert rep.foreign_files == ["my_results.h5"]
        rep = zoo.verify(repair=True)
        assert sorted(rep.repaired) == [tmp, orphan] and _packs(zoo) == {pack, "my_results.h5"}
        assert (zoo.packs_dir / "my_results.h5").read_bytes() == b"a user's file"
        zoo._reader.close()
        # Flip stored bytes of a small blob (in a byte segment) and of a large one (its own dataset):
        # the re-hash must notice each.
        con = sqlite3.connect(zoo.path / "catalog.sqlite")
        loc = {h: (d, o) for h, d, o in con.execute("SELECT hash, dataset, offset FROM blobs")}
        con.close()
        small, big = zoo.tensors("a")[0].hash, zoo.tensors("a")[2].hash
        assert loc[small][1] is not None and loc[big] == (big, None)
        with h5py.File(zoo.packs_dir / pack, "r+") as f:
            seg, off = loc[small]
            f[seg][off] = f[seg][off] ^ 0xFF
            f[big][0] = f[big][0] + 1
        rep = zoo.verify()
        assert not rep.clean and sorted(rep.bad_hashes) == sorted([small, big])


def test_metadata_only_models(tmp_path: Path) -> None:
    with Zoo.open(tmp_path / "z") as zoo:
        rec = zoo.add_metadata_only("org/big", [TensorInfo("w", "BF16", (1024, 1024))], config={"model_type": "llama"},
                                    license="mit", tags=["text-generation"])
        assert not rec.ingested and rec.parameter_count == 1024 * 1024 and rec.model_type == "llama"
        assert zoo.tensors("org/big")[0].hash is None
        with pytest.raises(TensorNotFoundError, match="metadata-only"):
            zoo.tensor("org/big", "w")
        assert zoo.verify().clean
        assert [m.name for m in zoo.models(ingested=False)] == ["org/big"]
        zoo.ingest({"w": torch.zeros(1024, 1024, dtype=torch.bfloat16)}, name="org/big")  # upgrades in place
        assert zoo.model("org/big").ingested


def test_ingest_many_is_one_pack_and_atomic(tmp_path: Path) -> None:
    with Zoo.open(tmp_path / "z") as zoo:
        items = [dict(source={"w": torch.randn(50)}, name=f"n{i}", metadata={"i": i}) for i in range(100)]
        recs = zoo.ingest_many(items)
        assert len(recs) == 100 and len(_packs(zoo)) == 1
        before, packs = _rows(zoo), _packs(zoo)
        bad = [dict(source={"w": torch.randn(5)}, name="ok"), dict(source={"w": torch.randn(5)}, name="n3")]
        with pytest.raises(ModelExistsError):
            zoo.ingest_many(bad)
        assert _rows(zoo) == before and _packs(zoo) == packs
        assert zoo.verify().clean


def test_nonfinite_counted_and_flagged(tmp_path: Path) -> None:
    w = torch.randn(10)
    w[1] = float("nan")
    w[2] = float("inf")
    b = torch.tensor([float("-inf"), 0.0], dtype=torch.bfloat16)
    with Zoo.open(tmp_path / "z") as zoo:
        rec = zoo.ingest({"w": w, "b": b, "ok": torch.ones(2)}, name="m")
        assert rec.nonfinite_tensors == 2
        t = {x.name: x for x in zoo.tensors("m")}
        assert (t["w"].nan_count, t["w"].inf_count) == (1, 1)
        assert (t["b"].nan_count, t["b"].inf_count) == (0, 1) and t["ok"].finite


def test_module_needs_spec(tmp_path: Path) -> None:
    with Zoo.open(tmp_path / "z") as zoo:
        zoo.ingest({"w": torch.zeros(2)}, name="m")
        with pytest.raises(SpecError):
            zoo.module("m")


def test_writer_lock_busy(tmp_path: Path) -> None:
    with Zoo.open(tmp_path / "z") as zoo, Zoo.open(tmp_path / "z", lock_timeout=0.2) as other:
        zoo._writer.acquire()
        try:
            with pytest.raises(ZooBusyError):
                other.ingest({"w": torch.zeros(1)}, name="x")
            assert other.models() == []  # readers are never blocked
        finally:
            zoo._writer.release()
        other.ingest({"w": torch.zeros(1)}, name="x")


def test_export_file_matches(tmp_path: Path) -> None:
    sd = {"a": torch.randn(3, 4), "b": torch.arange(5)}
    save_file(sd, tmp_path / "in.safetensors")
    with Zoo.open(tmp_path / "z") as zoo:
        rec = zoo.ingest(tmp_path / "in.safetensors")
        assert rec.name == "in" and rec.format == "safetensors"
        got = dict(zoo.state_dict("in"))
        assert all(torch.equal(got[k], sd[k]) for k in sd)
        assert np.array_equal(zoo.tensor("in", "b").numpy(), np.arange(5))


def test_metadata_only_and_lineage_batches_are_atomic(tmp_path: Path) -> None:
    with Zoo.open(tmp_path / "z") as zoo:
        recs = zoo.add_metadata_only_many(
            [dict(name=f"org/m{i}", tensors=[TensorInfo("w", "F32", (i + 1, 2))], config={"model_type": "bert"},
                  metadata={"downloads": i}) for i in range(3)])
        assert [r.parameter_count for r in recs] == [2, 4, 6] and all(not r.ingested for r in recs)
        zoo.ingest({"w": torch.zeros(1)}, name="org/ingested")
        before = _rows(zoo)
        with pytest.raises(ModelExistsError):  # an ingested model is never overwritten by headers
            zoo.add_metadata_only_many([dict(name="org/new", tensors=[]), dict(name="org/ingested", tensors=[])])
        assert _rows(zoo) == before
        zoo.add_lineage_many([("org/m1", "org/m0", "finetune", {"source": "card"}),
                              ("org/m2", "org/m1", "adapter", None)])
        assert {(e["child"], e["relation"]) for e in zoo.lineage("org/m0", direction="down")} == {
            ("org/m1", "finetune"), ("org/m2", "adapter")}
        with pytest.raises(LineageError, match="own parent"):
            zoo.add_lineage_many([("org/a", "org/b", "merge", None), ("org/c", "org/c", "finetune", None)])
        assert zoo.lineage("org/a") == []


def test_older_catalogue_schema_is_refused_clearly(tmp_path: Path) -> None:
    Zoo.open(tmp_path / "z").close()
    con = sqlite3.connect(tmp_path / "z" / "catalog.sqlite")
    con.execute("UPDATE info SET value='1' WHERE key='schema'")
    con.commit()
    con.close()
    with pytest.raises(IncompatibleZooError, match="pre-release"):
        Zoo.open(tmp_path / "z")


def test_review_regressions_revisions_names_threads(tmp_path: Path) -> None:
    import threading

    with Zoo.open(tmp_path / "z") as zoo:
        # a lazy state dict stays on its entry when a later revision of the same name arrives
        zoo.ingest({"w": torch.zeros(2)}, name="m")
        sd = zoo.state_dict("m")
        zoo.ingest({"w": torch.ones(2)}, name="m", revision="r2")
        assert torch.equal(sd["w"], torch.zeros(2))
        # an exact revision wins over a longer one it prefixes; prefixes are case-sensitive, no wildcards
        zoo.ingest({"w": torch.full((2,), 3.0)}, name="n", revision="abc")
        zoo.ingest({"w": torch.full((2,), 4.0)}, name="n", revision="abcdef")
        assert torch.equal(zoo.tensor("n@abc", "w"), torch.full((2,), 3.0))
        zoo.ingest({"w": torch.zeros(1)}, name="k", revision="v1_0")
        assert zoo.has_model("k@v1_") and not zoo.has_model("k@V1") and not zoo.has_model("k@v%")
        # default names keep everything but the checkpoint suffix
        for e in (1, 2):
            save_file({"w": torch.full((1,), float(e))}, tmp_path / f"run.epoch{e}.safetensors")
            assert zoo.ingest(tmp_path / f"run.epoch{e}.safetensors").name == f"run.epoch{e}"
        # threads sharing one Zoo take the writer lock in turn
        zoo._writer.acquire()
        got: list[str] = []
        t = threading.Thread(target=lambda: got.append(zoo.ingest({"w": torch.zeros(1)}, name="from-thread").name))
        t.start()
        t.join(0.3)
        assert t.is_alive() and not got  # waits for the lock another thread holds
        zoo._writer.release()
        t.join(10)
        assert got == ["from-thread"]


def test_corrupt_catalogue_is_a_typed_error(tmp_path: Path) -> None:
    (tmp_path / "z" / "packs").mkdir(parents=True)
    (tmp_path / "z" / "catalog.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(ZooCorruptError):
        Zoo.open(tmp_path / "z")
