"""``weightzoo graph``: zoo models, checkpoint paths with --spec, and the error without a spec."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from weightzoo.cli import main
from weightzoo.zoo.arch import spec_from_module
from weightzoo.zoo.graphs import ParameterGraph


@pytest.fixture()
def tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))


def test_graph_of_zoo_model(tmp_path, tiny, capsys) -> None:
    from weightzoo.zoo.store import Zoo

    with Zoo.open(tmp_path / "zoo") as z:
        z.ingest(tiny, name="tiny", spec=spec_from_module(tiny))
    out = tmp_path / "g.safetensors"
    assert main(["graph", "tiny", "--zoo", str(tmp_path / "zoo"), "--kind", "parameter", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"tiny: 7 nodes, 12 edges, 50 parameters covered → {out}"
    g = ParameterGraph.load(out)
    assert all(torch.equal(g.to_state_dict()[k], v) for k, v in tiny.state_dict().items())


def test_graph_of_checkpoint_needs_spec(tmp_path, tiny, capsys) -> None:
    from safetensors.torch import save_file

    ckpt = tmp_path / "tiny.safetensors"
    save_file(dict(tiny.state_dict()), str(ckpt))
    assert main(["graph", str(ckpt)]) == 1
    assert "--spec" in capsys.readouterr().err
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(spec_from_module(tiny)))
    assert main(["graph", str(ckpt), "--spec", str(spec), "--max-kernel", "3", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["nodes"], summary["edges"], summary["parameters"]) == (7, 12, 50)
    assert summary["max_kernel"] == [3, 3] and summary["edge_types"]["conv2d"] == 4
