"""``weightzoo datasets`` end to end through weightzoo.cli.main."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from weightzoo.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.slow
def test_build_list_and_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    zoo = str(tmp_path / "z")
    rc, out, _ = run(capsys, "datasets", "build", "digits-cnn", "--zoo", zoo, "--size", "3", "--seed", "1",
                     "--workers", "1", "--epochs", "0", "--no-progress", "--json")
    assert rc == 0
    rep = json.loads(out)
    assert rep["units_built"] == 3 and rep["models_ingested"] == 3
    rc, out, _ = run(capsys, "datasets", "build", "digits-cnn", "--zoo", zoo, "--size", "4", "--seed", "1",
                     "--workers", "1", "--epochs", "0", "--no-progress")
    assert rc == 0 and "1 units built, 3 already present" in out
    rc, out, _ = run(capsys, "datasets", "list", "--zoo", zoo, "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) >= {"digits-cnn", "digits-cnn-wild", "digits-mlp", "digits-inr", "digits-lineage", "archs"}
    assert rows["digits-cnn"]["built"]["models"] == 4 and "built" not in rows["digits-inr"]
    rc, out, _ = run(capsys, "ls", "--zoo", zoo, "--json")
    assert len(json.loads(out)) == 4


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    zoo = str(tmp_path / "z")
    rc, _, err = run(capsys, "datasets", "build", "mnist-cnn", "--zoo", zoo, "--size", "1")
    assert rc == 1 and "unknown dataset" in err and len(err.strip().splitlines()) == 1
    rc, _, err = run(capsys, "datasets", "build", "digits-cnn", "--zoo", zoo, "--size", "1", "--epochs", "a,b")
    assert rc == 1 and "--epochs" in err
    rc, _, err = run(capsys, "datasets", "import", "small-cnn-zoo", str(tmp_path), "--zoo", zoo)
    assert rc == 1 and "weights.npy" in err


def test_import_inr_through_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    root = tmp_path / "inrs"
    (root / "a" / "checkpoints").mkdir(parents=True)
    torch.save({"w": torch.from_numpy(np.ones((2, 2), np.float32))}, root / "a" / "checkpoints" / "model_final.pth")
    (root / "splits.json").write_text(json.dumps({"train": {"path": ["a"], "label": [3]}}))
    rc, out, _ = run(capsys, "datasets", "import", "inr", str(root / "splits.json"), "--zoo", str(tmp_path / "z"),
                     "--prefix", "mnist-inr", "--json")
    assert rc == 0 and json.loads(out)["models"] == ["mnist-inr/train-000000"]
