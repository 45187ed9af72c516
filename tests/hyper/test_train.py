"""A small GHN trained in the test beats PyTorch's default initialisation zero-shot on held-out architectures."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from weightzoo.hyper.archs import Architecture, ArchitecturePool, image_splits
from weightzoo.hyper.train import (
    TrainConfig,
    accuracy_after_calibration,
    evaluate_ghn,
    load_ghn,
    prepare,
    train_ghn,
)


def _small(a: Architecture) -> Architecture:
    """The same genotype on a 2-cell, 8-channel body with BatchNorm (a test zoo that trains in seconds)."""
    spec = dict(a.spec)
    spec.update(norm="bn", stem={"channels": 8, "kernel": spec["stem"]["kernel"]},
                cells=[{"type": "normal", "channels": 8}, {"type": "reduce", "channels": 16}])
    return replace(a, spec=spec)


def test_image_parts_are_disjoint() -> None:
    parts = image_splits().index
    names = list(parts)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not set(parts[a]) & set(parts[b]), (a, b)
    assert sum(len(v) for v in parts.values()) == 1797


@pytest.mark.slow
def test_trained_ghn_beats_default_init_on_heldout_architectures(tmp_path: Path) -> None:
    pool = ArchitecturePool([_small(a) for a in ArchitecturePool.sample(48, seed=0, families=["plain", "mixed"]).archs])
    # lr 3e-3: at 1e-2 this tiny run is chaotic — on one CPU type seed 0 collapsed to a constant prediction
    # (held-out 0.078; seeds 1, 2: 0.237, 0.115), while 3e-3 gave 0.182 / 0.197 / 0.248 for seeds 0 / 1 / 2
    config = TrainConfig(hidden=16, rank=8, epochs=10, meta_batch=4, batch_size=32, lr=3e-3, val_archs=4,
                         patience=100)
    result = train_ghn(pool, tmp_path / "ghn", config, progress=False)
    assert result.epochs_run == 10 and (tmp_path / "ghn" / "model.safetensors").is_file()
    images = image_splits()
    heldout = [prepare(a) for a in pool.split("test")]
    assert len(heldout) >= 4
    ghn = evaluate_ghn(load_ghn(tmp_path / "ghn"), heldout, images.x_calib, images.x_test, images.y_test)
    default = [accuracy_after_calibration(p.module, images.x_calib, images.x_test, images.y_test) for p in heldout]
    # measured here: 0.18 vs 0.07 (chance 0.10); default init is at chance zero-shot
    assert np.mean(ghn) > np.mean(default) + 0.08, (np.mean(ghn), np.mean(default))


def test_pool_from_an_archs_zoo_keeps_its_splits(tmp_path: Path) -> None:
    from weightzoo.datasets.archs import ArchsBuilder
    from weightzoo.datasets.builder import build_dataset, read_manifest

    build_dataset(ArchsBuilder(trained_fraction=0.0), tmp_path / "zoo", size=6, workers=1, progress=False)
    pool = ArchitecturePool.from_zoo(tmp_path / "zoo")
    manifest = read_manifest(tmp_path / "zoo", "archs")
    assert len(pool) == 6
    for arch in pool.archs:
        key = arch.name.split("/")[1]
        assert arch.split == manifest["groups"][key]["split"] and arch.spec["format"] == "weightzoo.cells/1"
    with pytest.raises(Exception, match="no manifest"):
        ArchitecturePool.from_zoo(tmp_path / "nothing")
