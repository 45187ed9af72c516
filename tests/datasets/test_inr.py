"""digits-inr: SIRENs reach the stated PSNR (re-measured from the zoo), splits by image, batched = single."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from weightzoo.datasets import build, read_manifest
from weightzoo.datasets.builder import DatasetError
from weightzoo.datasets.digits import digits_images
from weightzoo.datasets.inr import (
    grid_coordinates,
    psnr,
    siren_forward,
    siren_init,
    siren_spec,
    upsampled_images,
)
from weightzoo.zoo.arch import build_module
from weightzoo.zoo.store import Zoo


@pytest.fixture(scope="module")
def inr_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("inr") / "zoo"
    build("digits-inr", path, size=12, seed=0, workers=1, fits=2, progress=False)
    return path


def test_fits_reach_the_stated_psnr_when_rebuilt(inr_zoo: Path) -> None:
    coords = grid_coordinates(16)
    _, labels = digits_images()
    with Zoo.open(inr_zoo) as z:
        models = z.models(name="digits-inr/*")
        assert len(models) == 24
        for m in models:
            md = m.metadata
            target = upsampled_images([md["image"]], 16)[0]
            with torch.no_grad():
                out = z.module(m.name)(coords).squeeze(-1)
            measured = float(psnr(((out - target) ** 2).mean()))
            assert measured == pytest.approx(md["psnr"], abs=1e-3)
            assert measured >= md["target_psnr"] == 40.0 and md["reached"]
            assert md["label"] == int(labels[md["image"]])


def test_splits_are_by_image(inr_zoo: Path) -> None:
    man = read_manifest(inr_zoo, "digits-inr")
    with Zoo.open(inr_zoo) as z:
        for group, entry in man["groups"].items():
            assert len(entry["models"]) == 2
            assert {z.model(n).metadata["split"] for n in entry["models"]} == {entry["split"]}
            assert {z.model(n).metadata["image"] for n in entry["models"]} == {int(group[1:])}
    assert sum(man["labels"]["label"].values()) == 24


def test_independent_inits_differ_and_shared_inits_coincide(tmp_path: Path, inr_zoo: Path) -> None:
    build("digits-inr", tmp_path, size=3, seed=0, workers=1, fits=2, shared_init=True, progress=False)
    with Zoo.open(tmp_path) as z:
        seeds = [[z.model(f"digits-inr/i{i:04d}-f{f}").metadata["seed"] for f in range(2)] for i in range(3)]
    assert seeds[0] == seeds[1] == seeds[2] and seeds[0][0] != seeds[0][1]
    with Zoo.open(inr_zoo) as z:
        own = {z.model(f"digits-inr/i{i:04d}-f{f}").metadata["seed"] for i in range(3) for f in range(2)}
    assert len(own) == 6


def test_batched_forward_equals_one_module_per_network() -> None:
    params = siren_init([1, 2, 3])
    coords = grid_coordinates(16)
    batched = siren_forward(params, coords)
    keys = ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    for b in range(3):
        m = build_module(siren_spec())
        m.load_state_dict({k: p[b] for k, p in zip(keys, params)})
        with torch.no_grad():
            assert torch.allclose(m(coords).squeeze(-1), batched[b], atol=1e-5)


def test_bad_options() -> None:
    with pytest.raises(DatasetError):
        build("digits-inr", "/nonexistent-never-created", size=1, resolution=20)


def test_oversized_build_is_a_typed_one_line_cli_error(tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("weightzoo")
    res = subprocess.run([str(exe), "datasets", "build", "digits-inr", "--zoo", str(tmp_path / "z"), "--size", "5000"],
                         capture_output=True, text=True, cwd="/")
    assert res.returncode == 1 and "Traceback" not in res.stderr and "at most 1797" in res.stderr
