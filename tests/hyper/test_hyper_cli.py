"""`weightzoo hyper train|predict` end to end: a run folder, then predictions that load strictly."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from weightzoo.cli import main
from weightzoo.hyper import GHN
from weightzoo.zoo.arch import build_module

SPEC = {"format": "weightzoo.arch/1", "input_shape": [1, 8, 8], "layers": [
    {"type": "conv2d", "in": 1, "out": 4, "kernel": 3, "padding": 1}, {"type": "batchnorm2d", "num_features": 4},
    {"type": "relu"}, {"type": "global_avg_pool", "dims": 2}, {"type": "flatten"}, {"type": "linear", "in": 4, "out": 10}]}


@pytest.fixture()
def ghn_dir(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    GHN(hidden=8, rank=4).save_pretrained(tmp_path / "ghn")
    return tmp_path / "ghn"


def test_predict_a_spec_file_and_a_class(tmp_path: Path, ghn_dir: Path, capsys, monkeypatch) -> None:
    spec = tmp_path / "cnn.json"
    spec.write_text(json.dumps(SPEC))
    out = tmp_path / "params.safetensors"
    assert main(["hyper", "predict", "--ghn", str(ghn_dir), "--arch", str(spec), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["fraction"] == 1.0 and report["kept"] == {}
    model = build_module(SPEC)
    model.load_state_dict(load_file(out), strict=True)

    (tmp_path / "hyper_user_nets.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 4, 3)
                self.scale = nn.Parameter(torch.ones(4))
                self.spare = nn.Linear(2, 2)

            def forward(self, x):
                return (self.conv(x) * self.scale.view(1, -1, 1, 1)).mean((2, 3))
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    out2 = tmp_path / "net.safetensors"
    assert main(["hyper", "predict", "--ghn", str(ghn_dir), "--arch", "hyper_user_nets:Net", "--out", str(out2)]) == 0
    text = capsys.readouterr().out
    assert "kept spare.weight" in text and "forward pass" in text
    net = sys.modules["hyper_user_nets"].Net()
    net.load_state_dict(load_file(out2), strict=True)
    assert main(["hyper", "predict", "--ghn", str(ghn_dir), "--arch", "hyper_user_nets:Net", "--out", str(out2),
                 "--strict"]) == 1
    assert "spare" in capsys.readouterr().err


def test_bad_inputs_are_one_line_errors(tmp_path: Path, ghn_dir: Path, capsys) -> None:
    out = tmp_path / "p.safetensors"
    assert main(["hyper", "predict", "--ghn", str(tmp_path), "--arch", "x.json", "--out", str(out)]) == 1
    assert "not a GHN folder" in capsys.readouterr().err
    assert main(["hyper", "predict", "--ghn", str(ghn_dir), "--arch", "nowhere_pkg:Net", "--out", str(out)]) == 1
    assert "nowhere_pkg" in capsys.readouterr().err
    assert not out.exists()
    assert main(["hyper", "train", "--sample", "4", "--out", str(tmp_path / "r"), "--task", "cifar"]) == 1


@pytest.mark.slow
def test_train_a_run_then_predict_with_its_best_seed(tmp_path: Path, capsys) -> None:
    run = tmp_path / "runs" / "ghn"
    rc = main(["hyper", "train", "--sample", "24", "--out", str(run), "--epochs", "1", "--seeds", "0", "1",
               "--hidden", "8", "--meta-batch", "8", "--batch-size", "16", "--no-progress", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["runs"]) == {"seed-0", "seed-1"} and summary["best"] in summary["runs"]
    metrics = json.loads((run / "seed-0" / "metrics.json").read_text())
    parts = metrics["images"]["index"]
    assert not set(parts["train"]) & set(parts["calibration"]) and not set(parts["test"]) & set(parts["validation"])
    assert metrics["epochs_run"] == 1 and metrics["archs"]["train"]
    # resume: a second call with more epochs continues from the checkpoint instead of starting over
    rc = main(["hyper", "train", "--sample", "24", "--out", str(run), "--epochs", "2", "--seeds", "0",
               "--hidden", "8", "--meta-batch", "8", "--batch-size", "16", "--no-progress", "--json"])
    assert rc == 0
    capsys.readouterr()
    history = json.loads((run / "seed-0" / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    spec = tmp_path / "cnn.json"
    spec.write_text(json.dumps(SPEC))
    out = tmp_path / "p.safetensors"
    assert main(["hyper", "predict", "--ghn", str(run), "--arch", str(spec), "--out", str(out)]) == 0
    build_module(SPEC).load_state_dict(load_file(out), strict=True)


@pytest.mark.slow
def test_predict_a_hugging_face_config(tmp_path: Path, ghn_dir: Path) -> None:
    pytest.importorskip("transformers")
    config = {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2,
              "num_attention_heads": 2, "intermediate_size": 64, "vocab_size": 100, "max_position_embeddings": 32}
    (tmp_path / "config.json").write_text(json.dumps(config))
    out = tmp_path / "bert.safetensors"
    assert main(["hyper", "predict", "--ghn", str(ghn_dir), "--arch", str(tmp_path / "config.json"),
                 "--out", str(out)]) == 0
    from weightzoo.zoo.arch import hf_spec

    model = build_module(hf_spec(config))
    state = load_file(out)
    model.load_state_dict(state, strict=True)
    assert not torch.equal(state["embeddings.word_embeddings.weight"], torch.zeros(100, 32))
