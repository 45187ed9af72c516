"""INR classification: splits by image, probe features, sign-invariant graph metanetwork, augmented and
mixed training (seeded, training networks only), the pixel oracle, and the CLI on a tiny digits-inr zoo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from weightzoo.errors import DatasetError, InvalidOptionError, UnsupportedLayerError
from weightzoo.metanets.augment import parse_augmentations
from weightzoo.metanets.data import GraphDataset, GraphNormalizer
from weightzoo.metanets.features import render_features
from weightzoo.metanets.layers.probe_features import ProbeFeatures
from weightzoo.metanets.models.gmn import GraphMetanetwork
from weightzoo.metanets.train import TrainConfig, _Inputs, train
from weightzoo.zoo.arch import build_module
from weightzoo.zoo.graphs import ParameterGraph
from weightzoo.zoo.symmetry import flip_signs, permute_hidden

SIREN = {"format": "weightzoo.arch/1", "input_shape": [2], "layers": [
    {"type": "linear", "in": 2, "out": 6}, {"type": "sine", "w0": 30.0}, {"type": "linear", "in": 6, "out": 5},
    {"type": "sine", "w0": 30.0}, {"type": "linear", "in": 5, "out": 1}]}
TANH_MLP = {"format": "weightzoo.arch/1", "input_shape": [3], "layers": [
    {"type": "linear", "in": 3, "out": 4}, {"type": "tanh"}, {"type": "linear", "in": 4, "out": 2}]}


@pytest.fixture(scope="module")
def inr_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from weightzoo.datasets import build

    path = tmp_path_factory.mktemp("inr") / "zoo"
    build("digits-inr", path, size=30, seed=0, workers=1, fits=3, target_psnr=10, max_steps=30, progress=False)
    return path


@pytest.fixture(scope="module")
def inr_ds(inr_zoo: Path) -> GraphDataset:
    return GraphDataset.from_zoo(inr_zoo, target="label", dataset="digits-inr", fits=2)


def _data(spec: dict, sd: dict) -> object:
    g = ParameterGraph.from_spec(spec, sd)
    return GraphNormalizer.fit([g.to_pyg()])(g.to_pyg())


def _net(spec: dict, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {k: v.detach() for k, v in build_module(spec).state_dict().items()}


def test_splits_are_by_image_and_fits_select_per_group(inr_ds: GraphDataset) -> None:
    images = {s: {inr_ds.records[i].metadata["image"] for i in inr_ds.indices(s)} for s in ("train", "val", "test")}
    assert not images["train"] & images["val"] and not images["train"] & images["test"] and not images["val"] & images["test"]
    for s in ("train", "val", "test"):
        per_image: dict[int, int] = {}
        for i in inr_ds.indices(s):
            per_image[inr_ds.records[i].metadata["image"]] = per_image.get(inr_ds.records[i].metadata["image"], 0) + 1
        assert set(per_image.values()) == ({2} if s == "train" else {1})  # evaluation sees each image once
    assert inr_ds.task == "classification"  # integer labels are classes, not numbers


def test_fraction_keeps_whole_groups_and_refuses_to_empty_a_split(inr_zoo: Path) -> None:
    ds = GraphDataset.from_zoo(inr_zoo, target="label", dataset="digits-inr", fits=3, fraction=0.5)
    train_images = [ds.records[i].metadata["image"] for i in ds.indices("train")]
    assert all(train_images.count(im) == 3 for im in train_images) and len(set(train_images)) == 9
    full = GraphDataset.from_zoo(inr_zoo, target="label", dataset="digits-inr", fits=3)
    for split in ("val", "test"):  # evaluation splits stay whole
        assert [ds.records[i].name for i in ds.indices(split)] == [full.records[i].name for i in full.indices(split)]
    with pytest.raises(DatasetError, match="fraction"):
        GraphDataset.from_zoo(inr_zoo, target="label", dataset="digits-inr", fraction=0.0)


@pytest.mark.parametrize("spec", [SIREN, TANH_MLP], ids=["siren", "tanh-mlp"])
def test_probe_features_are_the_networks_activations(spec: dict) -> None:
    sd = _net(spec, 0)
    probe = ProbeFeatures(7, spec["input_shape"][0])
    acts = probe(_data(spec, sd))
    m = build_module(spec)
    m.load_state_dict(sd)
    out = m(probe.points)  # the output nodes are the last rows
    torch.testing.assert_close(acts[-out.shape[1]:].T, out, atol=1e-5, rtol=1e-5)
    hidden = torch.sin(30.0 * m[0](probe.points)) if spec is SIREN else torch.tanh(m[0](probe.points))
    n_in = spec["input_shape"][0]
    torch.testing.assert_close(acts[n_in:n_in + hidden.shape[1]].T, hidden, atol=1e-5, rtol=1e-5)
    acts.sum().backward()  # the probe points learn through the network they probe
    assert probe.points.grad is not None and probe.points.grad.abs().sum() > 0


def test_probe_features_refuse_convolutions() -> None:
    spec = {"format": "weightzoo.arch/1", "input_shape": [1, 4, 4], "layers": [
        {"type": "conv2d", "in": 1, "out": 2, "kernel": [3, 3], "padding": [1, 1]}, {"type": "relu"},
        {"type": "global_avg_pool", "dims": 2}, {"type": "flatten"}, {"type": "linear", "in": 2, "out": 2}]}
    with pytest.raises(UnsupportedLayerError, match="conv2d"):
        ProbeFeatures(3, 1)(_data(spec, _net(spec, 0)))


@pytest.mark.parametrize("probes", [0, 4])
def test_sign_invariant_gmn_ignores_sign_flips_and_the_plain_gmn_does_not(probes: int) -> None:
    sd = _net(SIREN, 1)
    d0 = _data(SIREN, sd)
    flipped = flip_signs(sd, torch.Generator().manual_seed(2), SIREN)
    assert any(not torch.equal(flipped[k], sd[k]) for k in sd)  # the flip did negate some neurons
    d1 = _data(SIREN, flipped)
    outs = {}
    for sign in (False, True):
        torch.manual_seed(0)
        model = GraphMetanetwork(out_dim=3, hidden=16, layers=2, sign_invariant=sign, probes=probes).eval()
        with torch.no_grad():
            outs[sign] = (model(d0), model(d1), model(_data(SIREN, permute_hidden(sd, torch.Generator().manual_seed(3), SIREN))))
    torch.testing.assert_close(outs[True][1], outs[True][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(outs[True][2], outs[True][0], atol=1e-5, rtol=1e-5)  # still permutation invariant
    assert (outs[False][1] - outs[False][0]).abs().max() > 1e-4  # negative control: the plain GMN sees signs
    # ... and the sign-aware one still sees the function: another network gives another answer
    torch.manual_seed(0)
    model = GraphMetanetwork(out_dim=3, hidden=16, layers=2, sign_invariant=True, probes=probes).eval()
    with torch.no_grad():
        assert (model(_data(SIREN, _net(SIREN, 5))) - outs[True][0]).abs().max() > 1e-4


def test_parse_augmentations() -> None:
    assert parse_augmentations("") is None and parse_augmentations("none") is None
    comp = parse_augmentations("signflip,shift:2,noise:0.3,dropout,scale,permute")
    assert comp is not None and len(comp.transforms) == 6 and not comp.preserves_function
    assert parse_augmentations("signflip+shift").preserves_function  # type: ignore[union-attr]
    with pytest.raises(InvalidOptionError, match="valid: permute"):
        parse_augmentations("rotate")
    with pytest.raises(InvalidOptionError, match="number"):
        parse_augmentations("noise:abc")
    with pytest.raises(InvalidOptionError, match="graph or weight-space"):
        TrainConfig(model="statnn", augment="noise")
    with pytest.raises(InvalidOptionError, match="mixup"):
        TrainConfig(model="gmn", mixup="sideways")


def test_augmentations_touch_training_batches_only_and_are_seeded(inr_ds: GraphDataset) -> None:
    from weightzoo.metanets.features import Featurizer

    cfg = TrainConfig(model="gmn", target="label", augment="noise:0.5", mixup="aligned", mixup_p=1.0)
    inputs = _Inputs(inr_ds, Featurizer.fit("graph", inr_ds), cfg)
    idx = inr_ds.indices("train")[:4]
    a, mix_a = inputs.train_batch(idx, torch.Generator().manual_seed(0))
    b, mix_b = inputs.train_batch(idx, torch.Generator().manual_seed(0))
    c, _ = inputs.train_batch(idx, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a.edge_attr, b.edge_attr)
    assert mix_a is not None and mix_b is not None and mix_a[0] == mix_b[0]
    assert not torch.equal(a.edge_attr, c.edge_attr)
    plain = inputs.batch(idx)  # what evaluation sees: the stored networks
    assert not torch.equal(a.edge_attr, plain.edge_attr)
    assert torch.equal(plain.edge_attr, inputs.batch(idx).edge_attr)


def test_weight_space_models_train_on_augmented_networks(inr_zoo: Path, inr_ds: GraphDataset, tmp_path: Path) -> None:
    cfg = TrainConfig(model="np", target="label", dataset="digits-inr", epochs=1, batch_size=8, fits=2,
                      augment="permute,signflip,shift", mixup="aligned", model_options={"hidden": 4, "layers": 1})
    [m] = train(inr_zoo, cfg, [0], tmp_path / "np", dataset=inr_ds)
    assert m["epochs_run"] == 1 and 0.0 <= m["test"]["accuracy"] <= 1.0


def test_render_features_are_the_image_and_need_an_inr() -> None:
    from weightzoo.datasets.inr import grid_coordinates

    sd = _net(SIREN, 0)
    m = build_module(SIREN)
    m.load_state_dict(sd)
    px = render_features(ParameterGraph.from_spec(SIREN, sd))
    torch.testing.assert_close(px, m(grid_coordinates(8)).reshape(-1))
    with pytest.raises(UnsupportedLayerError, match="input_shape"):
        render_features(ParameterGraph.from_spec(TANH_MLP, _net(TANH_MLP, 0)))


def test_augmented_sign_aware_probing_training_is_reproducible(inr_zoo: Path, inr_ds: GraphDataset, tmp_path: Path) -> None:
    cfg = TrainConfig(model="gmn", target="label", dataset="digits-inr", epochs=2, batch_size=8, fits=2,
                      augment="signflip,shift,noise:0.1", mixup="permuted",
                      model_options={"hidden": 8, "layers": 1, "sign_invariant": True, "probes": 3})
    [m1] = train(inr_zoo, cfg, [0], tmp_path / "a", dataset=inr_ds)
    [m2] = train(inr_zoo, cfg, [0], tmp_path / "b", dataset=inr_ds)
    assert [h["train_loss"] for h in m1["history"]] == [h["train_loss"] for h in m2["history"]]
    assert m1["config"]["augment"] == "signflip,shift,noise:0.1" and m1["data"]["task"] == "classification"


def test_cli_trains_inr_models(inr_zoo: Path, tmp_path: Path) -> None:
    from weightzoo.cli import main

    for model, opts in (("gmn", ["hidden=8", "layers=1", "probes=2", "sign_invariant=true", "augment=signflip",
                                 "mixup=plain", "fits=2"]), ("pixels", ["fits=1"])):
        rc = main(["metanet", "train", "--zoo", str(inr_zoo), "--dataset", "digits-inr", "--target", "label",
                   "--model", model, "--epochs", "1", "--out", str(tmp_path / model), "--no-progress",
                   "--option", *opts])
        assert rc == 0
        metrics = json.loads((tmp_path / model / "seed-0" / "metrics.json").read_text())
        assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    cfg = json.loads((tmp_path / "gmn" / "seed-0" / "metrics.json").read_text())["config"]
    assert cfg["model_options"] == {"hidden": 8, "layers": 1, "probes": 2, "sign_invariant": True}
    assert (cfg["augment"], cfg["mixup"], cfg["fits"]) == ("signflip", "plain", 2)
