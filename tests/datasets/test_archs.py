"""archs: family labels, held-out families kept out of train/val/test, trained accuracies re-measured."""

from __future__ import annotations

from pathlib import Path

import pytest

from weightzoo.datasets import build, read_manifest
from weightzoo.datasets.archs import HELDOUT_FAMILIES, ArchsBuilder
from weightzoo.datasets.digits import digits_split, measure
from weightzoo.zoo.store import Zoo


def test_heldout_families_are_their_own_split() -> None:
    b = ArchsBuilder()
    units = b.units(400, 0)
    fams = [u.params["family"] for u in units]
    assert set(fams) == {"plain", "separable", "pooled", "mixed", "attention", *HELDOUT_FAMILIES}
    for u in units:
        assert (u.params["split"] == "heldout") == (u.params["family"] in HELDOUT_FAMILIES)
    share = sum(f in HELDOUT_FAMILIES for f in fams) / len(fams)
    assert 0.08 < share < 0.22
    trained = sum(u.params["trained"] for u in units) / len(units)
    assert 0.18 < trained < 0.32
    assert [u.params["spec"] for u in b.units(5, 0)] == [u.params["spec"] for u in units[:5]]


@pytest.mark.slow
def test_archs_zoo_rebuilds_and_trained_accuracy_is_real(tmp_path: Path) -> None:
    build("archs", tmp_path, size=3, seed=0, workers=1, trained_fraction=0.5, epochs=1, progress=False)
    d = digits_split()
    man = read_manifest(tmp_path, "archs")
    assert set(man["heldout_families"]) == set(HELDOUT_FAMILIES)
    assert sum(len(v) for v in man["families"].values()) == 3
    with Zoo.open(tmp_path) as z:
        models = z.models(name="archs/*")
        assert len(models) == 3
        assert {m.metadata["trained"] for m in models} == {True, False}
        for m in models:
            assert m.spec["format"] == "weightzoo.cells/1" and m.metadata["family"] in man["families"]
            assert m.name.split("/")[1] in man["families"][m.metadata["family"]]
            module = z.module(m.name)
            assert sum(p.numel() for p in module.parameters()) == m.metadata["parameters"]
            if m.metadata["trained"]:
                assert measure(module, d.x_test, d.y_test)["accuracy"] == m.metadata["test_accuracy"]
            else:
                assert "test_accuracy" not in m.metadata
