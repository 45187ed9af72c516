"""Importers round-trip the published layouts, written here by the tests in those exact layouts."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from weightzoo.datasets.importers import import_inr_folder, import_model_zoo, import_small_cnn_zoo
from weightzoo.datasets.inr import grid_coordinates, siren_forward, siren_init
from weightzoo.errors import CheckpointError, NoWeightsError
from weightzoo.zoo.store import Zoo

LAYOUT = [("sequential/conv2d/kernel:0", (3, 3, 1, 4)), ("sequential/conv2d/bias:0", (4,)),
          ("sequential/dense/kernel:0", (4, 10)), ("sequential/dense/bias:0", (10,))]


def _small_cnn_zoo(root: Path, n: int = 5, gz: bool = True) -> np.ndarray:
    root.mkdir()
    p = sum(int(np.prod(s)) for _, s in LAYOUT)
    w = np.random.default_rng(0).normal(size=(n, p)).astype(np.float32)
    np.save(root / "weights.npy", w)
    with open(root / "layout.csv", "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["varname", "start_idx", "end_idx", "size", "shape"])
        start = 0
        for name, shape in LAYOUT:
            size = int(np.prod(shape))
            wr.writerow([name, start, start + size, size, str(shape)])
            start += size
    rows = [["", "test_accuracy", "train_loss", "config.learning_rate", "config.activation", "config.w_init"]]
    rows += [[f"run/{i}", 0.1 * i, "nan", 1e-3 * (i + 1), "relu", "glorot"] for i in range(n)]
    text = "\n".join(",".join(map(str, r)) for r in rows) + "\n"
    if gz:
        with gzip.open(root / "metrics.csv.gz", "wt") as f:
            f.write(text)
    else:
        (root / "metrics.csv").write_text(text)
    return w


def test_small_cnn_zoo_round_trip(tmp_path: Path) -> None:
    w = _small_cnn_zoo(tmp_path / "scz")
    names = import_small_cnn_zoo(tmp_path / "scz", tmp_path / "zoo")
    assert names == [f"small-cnn-zoo/{i:06d}" for i in range(5)]
    with Zoo.open(tmp_path / "zoo") as z:
        for i, name in enumerate(names):
            sd = dict(z.state_dict(name))
            assert list(sd) == ["sequential.conv2d.kernel", "sequential.conv2d.bias", "sequential.dense.kernel",
                                "sequential.dense.bias"]
            flat = np.concatenate([sd[k].numpy().reshape(-1) for k in sd])
            assert np.array_equal(flat, w[i])
            assert tuple(sd["sequential.conv2d.kernel"].shape) == (3, 3, 1, 4)
            md = z.model(name).metadata
            assert md["test_accuracy"] == pytest.approx(0.1 * i) and md["train_loss"] is None
            assert md["learning_rate"] == pytest.approx(1e-3 * (i + 1)) and md["index"] == f"run/{i}"
    # importing again is a no-op (resumable)
    assert import_small_cnn_zoo(tmp_path / "scz", tmp_path / "zoo") == names


def test_small_cnn_zoo_bad_layout(tmp_path: Path) -> None:
    _small_cnn_zoo(tmp_path / "scz", gz=False)
    text = (tmp_path / "scz" / "layout.csv").read_text().replace("(4, 10)", "(4, 11)")
    (tmp_path / "scz" / "layout.csv").write_text(text)
    with pytest.raises(CheckpointError, match="does not fit"):
        import_small_cnn_zoo(tmp_path / "scz", tmp_path / "zoo")
    with pytest.raises(NoWeightsError):
        import_small_cnn_zoo(tmp_path, tmp_path / "zoo2")


def test_model_zoo_trials_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "tune"
    saved = {}
    for t in range(2):
        trial = root / f"NN_tune_trainable_{t:05d}_seed={t}"
        trial.mkdir(parents=True)
        (trial / "params.json").write_text(json.dumps({"seed": t, "optim": {"lr": 0.01 * (t + 1)}, "model": {"nlin": "tanh"}}))
        lines = [json.dumps({"training_iteration": e, "test_acc": 0.5 + 0.1 * e, "train_loss": 1.0 / (e + 1)}) for e in (1, 2)]
        (trial / "result.json").write_text("\n".join(lines) + "\n")
        for e in (1, 2):
            sd = {"module_list.0.weight": torch.randn(4, 3), "module_list.0.bias": torch.randn(4)}
            (trial / f"checkpoint_{e:06d}").mkdir()
            torch.save(sd, trial / f"checkpoint_{e:06d}" / "checkpoints")
            saved[(t, e)] = sd
    names = import_model_zoo(root, tmp_path / "zoo")
    assert len(names) == 4
    with Zoo.open(tmp_path / "zoo") as z:
        for (t, e), sd in saved.items():
            name = f"model-zoo/NN_tune_trainable_{t:05d}_seed={t}-e{e:03d}"
            got = dict(z.state_dict(name))
            assert list(got) == list(sd) and all(torch.equal(got[k], sd[k]) for k in sd)
            md = z.model(name).metadata
            assert md["epoch"] == e and md["test_acc"] == pytest.approx(0.5 + 0.1 * e)
            assert md["optim.lr"] == pytest.approx(0.01 * (t + 1)) and md["model.nlin"] == "tanh"


def test_inr_folder_round_trip_and_rebuild(tmp_path: Path) -> None:
    root = tmp_path / "mnist-inrs"
    params = siren_init([7, 8, 9])
    keys = ["seq.0.linear.weight", "seq.0.linear.bias", "seq.1.linear.weight", "seq.1.linear.bias",
            "seq.2.weight", "seq.2.bias"]
    splits: dict[str, dict[str, list]] = {"train": {"path": [], "label": []}, "test": {"path": [], "label": []}}
    saved = []
    for k in range(3):
        folder = root / f"mnist_png_training_{k}_{k + 10}" / "checkpoints"
        folder.mkdir(parents=True)
        sd = {name: p[k].clone() for name, p in zip(keys, params)}
        torch.save(sd, folder / "model_final.pth")
        split = "train" if k < 2 else "test"
        splits[split]["path"].append(str(folder.parent.relative_to(root)))
        splits[split]["label"].append(k)
        saved.append(sd)
    (root / "splits.json").write_text(json.dumps(splits))
    names = import_inr_folder(root / "splits.json", tmp_path / "zoo")
    assert names == ["inr/train-000000", "inr/train-000001", "inr/test-000000"]
    coords = grid_coordinates(16)
    expected = siren_forward(params, coords)
    with Zoo.open(tmp_path / "zoo") as z:
        for k, name in enumerate(names):
            m = z.model(name)
            assert m.metadata["original_names"] == keys and m.metadata["label"] == k
            got = dict(z.state_dict(name))
            assert all(torch.equal(got[new], saved[k][old]) for old, new in zip(keys, got))
            with torch.no_grad():
                assert torch.allclose(z.module(name)(coords).squeeze(-1), expected[k], atol=1e-5)
    (root / "splits.json").write_text(json.dumps({"train": {"path": ["missing"], "label": [0]}}))
    with pytest.raises(NoWeightsError):
        import_inr_folder(root / "splits.json", tmp_path / "zoo3")
