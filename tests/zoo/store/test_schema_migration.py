"""Catalogue schema v2 → v3: a zoo written by the v2 code upgrades in place, losing nothing.

``fixtures/zoo_v2`` was written by weightzoo at schema 2 (three ingested models, one metadata-only, three
declared lineage edges, crawl state); the test opens a copy with today's code.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
import torch

from weightzoo.errors import IncompatibleZooError, LineageError
from weightzoo.zoo.store import Zoo
from weightzoo.zoo.store.catalog import SCHEMA_VERSION, migrate

FIXTURE = Path(__file__).parent / "fixtures" / "zoo_v2"


def _schema(path: Path) -> int:
    con = sqlite3.connect(path / "catalog.sqlite")
    try:
        return int(con.execute("SELECT value FROM info WHERE key='schema'").fetchone()[0])
    finally:
        con.close()


@pytest.fixture
def v2_zoo(tmp_path: Path) -> Path:
    dst = tmp_path / "zoo_v2"
    shutil.copytree(FIXTURE, dst)
    assert _schema(dst) == 2
    return dst


def test_v2_zoo_upgrades_in_place_without_loss(v2_zoo: Path) -> None:
    with Zoo.open(v2_zoo, create=False) as zoo:
        assert _schema(v2_zoo) == SCHEMA_VERSION == 3
        assert [m.ref for m in zoo.models()] == ["lab/base", "lab/ft", "lab/ft-fp16@r1", "org/hub-base"]
        base = zoo.model("lab/base")
        assert base.metadata == {"accuracy": 0.5, "seed": 0} and base.license == "mit" and base.tags == ("fixture",)
        assert not zoo.model("org/hub-base").ingested
        assert zoo.tensor("lab/ft-fp16", "fc.weight").dtype == torch.float16
        g = torch.Generator().manual_seed(0)  # the fixture's own recipe: the bytes are the bytes written
        assert torch.equal(zoo.tensor("lab/base", "fc.weight"), torch.randn(4, 3, generator=g))
        assert zoo.crawl_state("cursor") == {"page": 2}
        edges = {(e["child"], e["parent"], e["relation"], e["source"], e["confidence"],
                  (e["evidence"] or {}).get("source")) for e in zoo.lineage_edges()}
        assert edges == {("lab/ft", "lab/base", "finetune", "declared", None, "card"),
                         ("lab/ft-fp16", "lab/ft", "quantized", "declared", None, None),
                         ("lab/base", "org/hub-base", "finetune", "declared", None, "tag")}
        assert zoo.verify().clean
        # the upgraded zoo takes inferred edges beside the declared ones
        zoo.add_lineage("lab/ft", "lab/base", "finetune", {"distance": 0.1}, source="inferred", confidence=0.9)
        both = [e for e in zoo.lineage("lab/ft", direction="up", depth=1)]
        assert sorted(e["source"] for e in both) == ["declared", "inferred"]
    with Zoo.open(v2_zoo, create=False) as zoo:  # opening again is a no-op
        assert len(zoo.lineage_edges()) == 4


def test_migration_is_one_transaction(v2_zoo: Path) -> None:
    con = sqlite3.connect(v2_zoo / "catalog.sqlite", isolation_level=None)
    con.execute("CREATE TABLE lineage_v3 (x)")  # a step that must fail half-way
    with pytest.raises(sqlite3.OperationalError):
        migrate(con, 2)
    assert not con.in_transaction
    con.execute("DROP TABLE lineage_v3")
    assert con.execute("SELECT COUNT(*) FROM lineage").fetchone()[0] == 3
    assert con.execute("SELECT value FROM info WHERE key='schema'").fetchone()[0] == "2"
    con.close()
    with Zoo.open(v2_zoo) as zoo:
        assert len(zoo.lineage_edges(source="declared")) == 3


def test_newer_schema_is_refused(v2_zoo: Path) -> None:
    con = sqlite3.connect(v2_zoo / "catalog.sqlite")
    con.execute("UPDATE info SET value='99' WHERE key='schema'")
    con.commit()
    con.close()
    with pytest.raises(IncompatibleZooError, match="newer"):
        Zoo.open(v2_zoo)


def test_inferred_edges_sit_beside_declared_and_are_replaced_as_a_whole(tmp_path: Path) -> None:
    with Zoo.open(tmp_path / "z") as zoo:
        zoo.add_lineage("b", "a", "finetune")
        zoo.replace_inferred_lineage([("b", "a", "finetune", {"d": 1}), ("c", "b", "quantized", None)], [0.8, 1.0])
        assert {(e["child"], e["source"]) for e in zoo.lineage_edges()} == {
            ("b", "declared"), ("b", "inferred"), ("c", "inferred")}
        zoo.replace_inferred_lineage([("a", "b", "finetune", None)])  # the last inference goes as a whole
        assert {(e["child"], e["parent"], e["source"]) for e in zoo.lineage_edges()} == {
            ("b", "a", "declared"), ("a", "b", "inferred")}
        assert [e["child"] for e in zoo.lineage("a", source="declared", direction="down")] == ["b"]
        with pytest.raises(LineageError, match="source"):
            zoo.add_lineage("x", "y", source="guessed")
        with pytest.raises(LineageError, match="confidence"):
            zoo.add_lineage("x", "y", source="inferred", confidence=1.5)
        for bad in (float("nan"), "high", -0.1):
            with pytest.raises(LineageError, match="confidence"):
                zoo.add_lineage("x", "y", source="inferred", confidence=bad)  # type: ignore[arg-type]
        with pytest.raises(LineageError, match="confidences"):
            zoo.replace_inferred_lineage([("x", "y", "finetune", None)], [0.5, 0.5])
        assert len(zoo.lineage_edges()) == 2  # a refused write changes nothing


def test_read_only_v2_zoo_is_read_as_v3_without_writing(v2_zoo: Path) -> None:
    zoo = Zoo(v2_zoo, read_only=True)  # what Zoo.open builds for a catalogue this user cannot write
    try:
        zoo._init_schema()
        assert {(e["child"], e["source"]) for e in zoo.lineage("lab/ft")} == {
            ("lab/ft", "declared"), ("lab/ft-fp16", "declared"), ("lab/base", "declared")}
        assert zoo.model("lab/base").metadata["seed"] == 0
    finally:
        zoo.close()
    assert _schema(v2_zoo) == 2  # nothing was written
