"""`weightzoo graph MODEL --kind compute`: from a spec file, a zoo entry and a Hugging Face snapshot folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from weightzoo.cli import main
from weightzoo.zoo.arch import build_module
from weightzoo.zoo.graphs import ComputeGraph

SPEC = {"format": "weightzoo.arch/1", "input_shape": [1, 8, 8], "layers": [
    {"type": "conv2d", "in": 1, "out": 4, "kernel": 3, "padding": 1}, {"type": "batchnorm2d", "num_features": 4},
    {"type": "relu"}, {"type": "global_avg_pool", "dims": 2}, {"type": "flatten"}, {"type": "linear", "in": 4, "out": 10}]}
OPS = ["INPUT", "CONV", "BATCH_NORM", "RELU", "GLOBAL_AVG_POOL", "FLATTEN", "LINEAR", "OUTPUT"]


def test_spec_file_to_graph_file(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "cnn.json"
    spec.write_text(json.dumps(SPEC))
    out = tmp_path / "cnn.safetensors"
    rc = main(["graph", str(spec), "--kind", "compute", "--out", str(out), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert rc == 0 and summary["nodes"] == len(OPS) and summary["coverage"] == 1.0 and summary["unowned"] == []
    assert ComputeGraph.load(out).op_names() == OPS


def test_zoo_model_uses_its_stored_spec(tmp_path: Path, capsys) -> None:
    from weightzoo.zoo.store import Zoo

    with Zoo.open(tmp_path / "z", create=True) as zoo:
        zoo.ingest(build_module(SPEC), name="cnn", spec=SPEC)
    rc = main(["graph", "cnn", "--zoo", str(tmp_path / "z"), "--kind", "compute"])
    text = capsys.readouterr().out
    assert rc == 0 and text.startswith(f"cnn: {len(OPS)} operations") and "(100%)" in text


def test_checkpoint_without_architecture_is_refused(tmp_path: Path, capsys) -> None:
    ckpt = tmp_path / "w.safetensors"
    save_file({"w": torch.zeros(2)}, str(ckpt))
    rc = main(["graph", str(ckpt), "--kind", "compute"])
    assert rc == 1 and "no architecture" in capsys.readouterr().err


@pytest.mark.slow  # builds all-MiniLM-L6-v2 from its config with transformers
def test_hf_snapshot_folder(minilm_dir: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("transformers")
    out = tmp_path / "minilm.safetensors"
    rc = main(["graph", str(minilm_dir), "--kind", "compute", "--out", str(out), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert rc == 0 and summary["coverage"] == 1.0
    g = ComputeGraph.load(out)
    assert g.op_names().count("ATTENTION") == 6 and g.spec["class"] == "BertModel"
