"""INR editing: parameter placement in graphs, batched renders, edits, equivariance of the graph and NP
editors (with the flat MLP as the negative control), the harness and the CLI on a tiny digits-inr zoo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from weightzoo.errors import InvalidOptionError, UnsupportedLayerError
from weightzoo.metanets.data import GraphDataset, GraphNormalizer
from weightzoo.metanets.editing import EditConfig, EditSpace, EditTask, Renderer, apply_edit, edit_train
from weightzoo.metanets.features import render_features
from weightzoo.zoo.arch import build_module
from weightzoo.zoo.graphs import ParameterGraph
from weightzoo.zoo.symmetry import permute_hidden

SIREN = {"format": "weightzoo.arch/1", "input_shape": [2], "layers": [
    {"type": "linear", "in": 2, "out": 6}, {"type": "sine", "w0": 30.0}, {"type": "linear", "in": 6, "out": 5},
    {"type": "sine", "w0": 30.0}, {"type": "linear", "in": 5, "out": 1}]}
CNN = {"format": "weightzoo.arch/1", "input_shape": [1, 6, 6], "layers": [
    {"type": "conv2d", "in": 1, "out": 3, "kernel": [3, 3], "padding": [1, 1]}, {"type": "relu"},
    {"type": "global_avg_pool", "dims": 2}, {"type": "flatten"}, {"type": "linear", "in": 3, "out": 2}]}


def _graph(spec: dict, seed: int) -> ParameterGraph:
    torch.manual_seed(seed)
    return ParameterGraph.from_spec(spec, {k: v.detach() for k, v in build_module(spec).state_dict().items()})


@pytest.fixture(scope="module")
def inr_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from weightzoo.datasets import build

    path = tmp_path_factory.mktemp("inr-edit") / "zoo"
    build("digits-inr", path, size=30, seed=0, workers=1, fits=2, target_psnr=10, max_steps=30, progress=False)
    return path


@pytest.mark.parametrize("spec", [SIREN, CNN], ids=["siren", "cnn"])
def test_edit_space_locates_every_parameter_and_its_scale(spec: dict) -> None:
    graphs = [_graph(spec, s) for s in range(3)]
    norm = GraphNormalizer.fit([g.to_pyg() for g in graphs])
    space = EditSpace(graphs[0], norm)
    assert space.num_params == sum(p.numel() for p in build_module(spec).parameters())
    for g in graphs:
        theta = space.theta(g)
        assert torch.equal(space._flat(g.to_pyg())[space.position], theta)  # raw values sit where we write
        assert torch.allclose(space._flat(norm(g.to_pyg()))[space.position] * space.scale, theta, atol=1e-6)
        assert torch.equal(space.join(space.split(theta[None]))[0], theta)
    other = _graph({**SIREN, "layers": [*SIREN["layers"][:2], {"type": "linear", "in": 6, "out": 1}]}, 0)
    with pytest.raises(UnsupportedLayerError):
        space.theta(other)  # another architecture


def test_renderer_matches_the_module_and_is_differentiable() -> None:
    from weightzoo.datasets.inr import grid_coordinates

    graphs = [_graph(SIREN, s) for s in range(3)]
    space = EditSpace(graphs[0], GraphNormalizer.fit([g.to_pyg() for g in graphs]))
    r = Renderer(space, graphs[0], grid_coordinates(8))
    theta = torch.stack([space.theta(g) for g in graphs]).requires_grad_()
    out = r(theta)
    for k, g in enumerate(graphs):
        assert torch.allclose(out[k], render_features(g, 8), atol=1e-5)
    out.sum().backward()
    assert theta.grad is not None and bool(theta.grad.abs().sum() > 0)
    with pytest.raises(UnsupportedLayerError, match="coordinate"):
        Renderer(EditSpace(_graph(CNN, 0), GraphNormalizer.fit([_graph(CNN, 0).to_pyg()])), _graph(CNN, 0),
                 grid_coordinates(8))


def test_edits() -> None:
    img = torch.zeros(2, 25)
    img[:, 12] = 0.6  # one pixel in the middle of a 5 × 5 image
    d, e, c = (apply_edit(n, img, 5) for n in ("dilate", "erode", "contrast"))
    assert d.shape == img.shape and int((d > 0).sum()) == 2 * 9 and bool((d >= img).all())
    assert bool((e <= img).all()) and float(e.sum()) == 0.0
    assert torch.allclose(c[:, 12], torch.tensor([0.7, 0.7])) and float(c[:, 0].sum()) == 0.0
    with pytest.raises(InvalidOptionError, match="dilate"):
        apply_edit("blur", img, 5)


def test_config_rejects_sign_invariance_and_unknown_names() -> None:
    with pytest.raises(InvalidOptionError, match="equivariance"):
        EditConfig(model="gmn", model_options={"sign_invariant": True})
    with pytest.raises(InvalidOptionError, match="identity"):
        EditConfig(model="nfn-hnp")
    with pytest.raises(InvalidOptionError, match="contrast"):
        EditConfig(model="gmn", edit="rotate")


def _randomise_heads(model: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            if not p.abs().sum():
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


@pytest.mark.parametrize("model", ["gmn", "np", "mlp"])
def test_editors_are_equivariant_to_hidden_permutations(inr_zoo: Path, model: str) -> None:
    ds = GraphDataset.from_zoo(inr_zoo, target=None, dataset="digits-inr", fits=1)
    task = EditTask(ds, EditConfig(model=model, fits=1))
    editor = task.build(0)
    assert editor is not None
    i = ds.indices("test")[0]
    assert torch.equal(task.edited(editor, [i], "cpu")[0], task.theta[i])  # zero-initialised output: identity
    _randomise_heads(editor)
    editor.eval()
    sd = ds.graphs[i].to_state_dict()
    perm = permute_hidden(sd, torch.Generator().manual_seed(3), ds.records[i].spec)
    g_perm = ParameterGraph.from_spec(ds.records[i].spec, perm, max_kernel=ds.graphs[i].max_kernel)
    ds.graphs.append(g_perm)
    ds.records.append(ds.records[i])
    j = len(ds.graphs) - 1
    task.theta = torch.cat([task.theta, task.space.theta(g_perm)[None]])
    with torch.no_grad():
        a, b = task.renderer(task.edited(editor, [i, j], "cpu"))
        assert torch.allclose(task.renderer(task.theta[[i]])[0], task.renderer(task.theta[[j]])[0], atol=1e-4)
        assert float((a - task.renderer(task.theta[[i]])[0]).abs().max()) > 1e-3  # the edit changes the render
    if model == "mlp":  # negative control: the flat MLP edits a permuted INR differently
        assert float((a - b).abs().max()) > 1e-3
    else:
        assert torch.allclose(a, b, atol=1e-4)


def test_harness_trains_saves_and_reports(inr_zoo: Path, tmp_path: Path) -> None:
    from weightzoo.metanets.report import compare

    cfg = EditConfig(model="np", epochs=3, fits=2, model_options={"hidden": 8, "layers": 1})
    res = edit_train(inr_zoo, cfg, [0], tmp_path / "np")[0]
    ident = edit_train(inr_zoo, EditConfig(model="identity", fits=2), [0], tmp_path / "identity")[0]
    assert res["epochs_run"] == 3 and res["test"]["n"] == ident["test"]["n"] > 0
    assert res["test"]["identity_render_mse"] == pytest.approx(ident["test"]["render_mse"])
    assert res["val"]["render_mse"] < ident["val"]["render_mse"]  # 3 epochs of NP beat no edit
    lo, hi = res["test"]["render_mse_ci95"]
    assert lo <= res["test"]["render_mse"] <= hi
    seed = tmp_path / "np" / "seed-0"
    assert {"model.safetensors", "config.json", "metrics.json", "predictions.json", "renders.safetensors"} <= {
        p.name for p in seed.iterdir()}
    assert not (seed / "last").exists()
    from safetensors.torch import load_file

    r = load_file(str(seed / "renders.safetensors"))
    assert r["input"].shape == r["target"].shape == r["prediction"].shape and r["input"].shape[1:] == (16, 16)
    again = edit_train(inr_zoo, cfg, [0], tmp_path / "np")[0]  # finished seeds are not retrained
    assert again["wall_seconds"] == res["wall_seconds"]
    table = compare([tmp_path / "np", tmp_path / "identity"])
    assert table["reference"] == "np" and table["rows"][0]["metric"] == "render_mse"
    d = table["rows"][1]["diff_vs_reference"]
    assert d["diff"] > 0 and d["ci95"][0] <= d["diff"] <= d["ci95"][1]


def test_resume_continues_from_the_last_epoch(inr_zoo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    def cfg(epochs: int) -> EditConfig:
        return EditConfig(model="mlp", epochs=epochs, fits=1, model_options={"hidden": 16})

    full = edit_train(inr_zoo, cfg(2), [1], tmp_path / "full")[0]
    with monkeypatch.context() as m:  # as if killed after epoch 1: last/ stays, no metrics
        m.setattr(shutil, "rmtree", lambda *a, **k: None)
        edit_train(inr_zoo, cfg(1), [1], tmp_path / "resumed")
    seed = tmp_path / "resumed" / "seed-1"
    (seed / "metrics.json").unlink()
    assert json.loads((seed / "last" / "trainer_state.json").read_text())["epoch"] == 1
    res = edit_train(inr_zoo, cfg(2), [1], tmp_path / "resumed")[0]
    assert res["epochs_run"] == 2 and not (seed / "last").exists()
    assert res["val"]["render_mse"] == pytest.approx(full["val"]["render_mse"], rel=1e-5)


def test_cli_edit_and_report(inr_zoo: Path, tmp_path: Path) -> None:
    from weightzoo.cli import main

    out = tmp_path / "gmn"
    assert main(["metanet", "edit", "--zoo", str(inr_zoo), "--model", "gmn", "--edit", "contrast", "--epochs", "1",
                 "--out", str(out), "--option", "hidden=8", "layers=1", "fits=1", "--no-progress", "--json"]) == 0
    m = json.loads((out / "seed-0" / "metrics.json").read_text())
    assert m["data"]["task"] == "edit" and m["config"]["edit"] == "contrast" and m["epochs_run"] == 1
    assert main(["metanet", "report", str(out), "--json"]) == 0
    with pytest.raises(SystemExit):
        main(["metanet", "edit", "--zoo", str(inr_zoo), "--model", "statnn", "--out", str(tmp_path / "x")])
