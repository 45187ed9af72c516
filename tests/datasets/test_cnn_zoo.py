"""digits-cnn / digits-cnn-wild: labels are real measurements, checkpoints rebuild, architectures vary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from weightzoo.datasets import build, read_manifest
from weightzoo.datasets.cnn_zoo import DigitsCNNWildBuilder, sample_hyperparameters, sample_wild_arch
from weightzoo.datasets.digits import N_TEST, digits_split, measure
from weightzoo.zoo.store import Zoo

KEYS = {"epoch", "seed", "train_accuracy", "test_accuracy", "train_loss", "test_loss", "activation", "w_init",
        "init_std", "dropout", "l2reg", "learning_rate", "optimizer", "train_fraction", "split", "network"}


def test_image_split_is_fixed_and_disjoint() -> None:
    d = digits_split()
    assert len(d.test_index) == N_TEST and len(d.train_index) == 1797 - N_TEST
    assert not set(d.train_index) & set(d.test_index)
    assert float(d.x_train.min()) == -1.0 and float(d.x_train.max()) == 1.0


def test_every_checkpoint_has_its_measured_labels(cnn_zoo: Path) -> None:
    with Zoo.open(cnn_zoo) as z:
        models = z.models(name="digits-cnn/*")
        assert sorted(m.name for m in models) == [f"digits-cnn/n{i:05d}-e{e:02d}" for i in range(3) for e in (0, 1)]
        for m in models:
            assert KEYS <= set(m.metadata)
            assert all(0.0 <= m.metadata[k] <= 1.0 for k in ("train_accuracy", "test_accuracy"))
            assert m.metadata["final"] == (m.metadata["epoch"] == 1)
            assert m.spec is not None and m.spec["format"] == "weightzoo.arch/1"


def test_rebuilt_network_reproduces_its_stored_accuracy(cnn_zoo: Path) -> None:
    d = digits_split()
    with Zoo.open(cnn_zoo) as z:
        for m in z.models(name="digits-cnn/*"):
            module = z.module(m.name)
            te, tr = measure(module, d.x_test, d.y_test), measure(module, d.x_train, d.y_train)
            assert te["accuracy"] == m.metadata["test_accuracy"]
            assert tr["accuracy"] == m.metadata["train_accuracy"]
            assert te["loss"] == pytest.approx(m.metadata["test_loss"], rel=1e-5)
            assert (te["accuracy_a"] + te["accuracy_b"]) / 2 == pytest.approx(te["accuracy"])


def test_training_changes_weights_and_hyperparameters_differ(cnn_zoo: Path) -> None:
    with Zoo.open(cnn_zoo) as z:
        e0, e1 = z.state_dict("digits-cnn/n00000-e00"), z.state_dict("digits-cnn/n00000-e01")
        assert not all(bool((e0[k] == e1[k]).all()) for k in e0)
        hps = [z.model(f"digits-cnn/n{i:05d}-e01").metadata["learning_rate"] for i in range(3)]
        assert len(set(hps)) == 3
    m = read_manifest(cnn_zoo, "digits-cnn")
    assert m["labels"]["test_accuracy"]["count"] == 3 and "split_half_kendall_tau" in m["labels"]


def test_hyperparameter_sampler_covers_the_recipe() -> None:
    rng = np.random.default_rng(0)
    hps = [sample_hyperparameters(rng) for _ in range(300)]
    assert {h["optimizer"] for h in hps} == {"adam", "sgd", "rmsprop"}
    assert len({h["activation"] for h in hps}) == 5 and len({h["w_init"] for h in hps}) == 6
    adam = [h["learning_rate"] for h in hps if h["optimizer"] == "adam"]
    assert 3e-4 <= min(adam) and max(adam) <= 1e-2
    assert all((h["init_std"] is None) == (h["w_init"] not in ("normal", "trunc_normal")) for h in hps)
    assert all(0.1 <= h["train_fraction"] <= 1.0 for h in hps)


def test_wild_architectures_vary_and_build() -> None:
    import torch

    from weightzoo.zoo.arch import build_module

    rng = np.random.default_rng(1)
    descs = []
    for _ in range(40):
        spec, desc = sample_wild_arch(rng, "relu", 0.1)
        descs.append(desc)
    assert {d["depth"] for d in descs} == {2, 3, 4, 5} and {d["kernel"] for d in descs} == {3, 5, 7}
    assert any(d["residual_blocks"] for d in descs) and {d["norm"] for d in descs} == {"bn", "none"}
    assert build_module(spec)(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    units = DigitsCNNWildBuilder().units(5, 0)
    assert len({str(u.params["spec"]) for u in units}) == 5


@pytest.mark.slow
def test_wild_zoo_rebuilds_and_reproduces(tmp_path: Path) -> None:
    build("digits-cnn-wild", tmp_path, size=2, seed=0, workers=1, epochs=(0, 1), progress=False)
    d = digits_split()
    with Zoo.open(tmp_path) as z:
        for m in z.models():
            assert measure(z.module(m.name), d.x_test, d.y_test)["accuracy"] == m.metadata["test_accuracy"]
            assert {"depth", "widths", "kernel", "residual_blocks", "norm"} <= set(m.metadata)
