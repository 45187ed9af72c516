"""``pkg.module:Class`` MODEL references: the CLI, ingesting a class-based module, rebuilding it from the zoo."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch

from weightzoo.cli import main
from weightzoo.errors import SpecError
from weightzoo.zoo.arch import build_module, class_reference, class_spec, is_class_reference, validate_spec
from weightzoo.zoo.graphs import ParameterGraph
from weightzoo.zoo.store import classify_ref

_SOURCE = textwrap.dedent('''
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 6, 3, padding=1)
            self.bn = nn.BatchNorm2d(6)
            self.fc = nn.Linear(6, 2)
            self.scale = nn.Parameter(torch.ones(6))

        def forward(self, x):
            y = torch.relu(self.bn(self.conv(x))) * self.scale[:, None, None]
            return self.fc((x.mean(1, keepdim=True) + y).mean((2, 3)))

    class NeedsArgs(nn.Module):
        def __init__(self, width):
            super().__init__()
''')


@pytest.fixture()
def user_pkg(tmp_path, monkeypatch):
    pkg = tmp_path / "src" / "userpkg_am"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    yield "userpkg_am.nets"
    for name in [m for m in list(__import__("sys").modules) if m.startswith("userpkg_am")]:
        del __import__("sys").modules[name]


def test_references_resolve_and_refuse(user_pkg) -> None:
    from userpkg_am.nets import Net

    assert is_class_reference(f"{user_pkg}:Net") and not is_class_reference("model.safetensors")
    assert class_reference(Net()) == f"{user_pkg}:Net"
    assert classify_ref(f"{user_pkg}:Net", None) == "class"
    m = build_module(class_spec(f"{user_pkg}:Net"))
    assert type(m).__name__ == "Net"
    with pytest.raises(SpecError, match="without arguments"):
        build_module({"format": "weightzoo.class/1", "class": f"{user_pkg}:NeedsArgs"})
    with pytest.raises(SpecError, match="no 'Nope'"):
        build_module({"format": "weightzoo.class/1", "class": f"{user_pkg}:Nope"})
    with pytest.raises(SpecError, match="not a class reference"):
        validate_spec({"format": "weightzoo.class/1", "class": "not a ref"})
    with pytest.raises(SpecError, match="cannot import"):
        build_module({"format": "weightzoo.class/1", "class": "no_such_pkg_am.x:Net"})


def test_graph_cli_takes_a_class_reference(user_pkg, tmp_path, capsys) -> None:
    out = tmp_path / "g.safetensors"
    assert main(["graph", f"{user_pkg}:Net", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["recorded"]["module"] == f"{user_pkg}:Net" and summary["skipped"] == []
    g = ParameterGraph.load(out)
    assert g.num_parameters == summary["parameters"]
    assert main(["graph", f"{user_pkg}:Net", "--kind", "compute", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["coverage"] == 1.0


def test_ingested_class_module_rebuilds_and_graphs(user_pkg, tmp_path, capsys) -> None:
    from userpkg_am.nets import Net

    from weightzoo.zoo.store import Zoo

    torch.manual_seed(0)
    net = Net().eval()
    with Zoo.open(tmp_path / "zoo") as z:
        rec = z.ingest(net, name="net")
        assert rec.spec == {"format": "weightzoo.class/1", "class": f"{user_pkg}:Net"}
        back = z.module("net")
        x = torch.randn(2, 3, 8, 8)
        assert torch.equal(back(x), net(x))
    out = tmp_path / "g.safetensors"
    assert main(["graph", "net", "--zoo", str(tmp_path / "zoo"), "--out", str(out)]) == 0
    assert "net:" in capsys.readouterr().out
    g = ParameterGraph.load(out)
    sd = g.to_state_dict()
    assert all(torch.equal(sd[k], v) for k, v in net.state_dict().items())


def test_merge_align_of_differently_initialised_models(user_pkg, tmp_path, capsys) -> None:
    """Two permuted copies of one class-based model: a plain mean differs from the model, --align recovers it."""
    from safetensors.torch import load_file
    from userpkg_am.nets import Net

    from weightzoo.analysis import merge
    from weightzoo.zoo.store import Zoo
    from weightzoo.zoo.symmetry import permute_hidden

    torch.manual_seed(0)
    net = Net().eval()
    x = torch.randn(2, 3, 8, 8)
    perm = permute_hidden(net, torch.Generator().manual_seed(1), example_input=x)
    with Zoo.open(tmp_path / "zoo") as z:
        z.ingest(net, name="a")
        z.ingest(perm, name="b")
    plain = merge("mean", ["a", "b"], zoo=tmp_path / "zoo")
    assert not all(torch.equal(plain[k], v) for k, v in net.state_dict().items())
    out = tmp_path / "m.safetensors"
    assert main(["merge", "--method", "mean", "--models", "a", "b", "--align", "--zoo", str(tmp_path / "zoo"),
                 "--out", str(out)]) == 0
    merged = load_file(str(out))
    for k, v in net.state_dict().items():
        if v.is_floating_point():
            assert torch.allclose(merged[k], v, atol=1e-6), k


@pytest.mark.slow
def test_zoo_entry_of_a_transformers_model_rebuilds_from_its_config(tmp_path, capsys) -> None:
    pytest.importorskip("transformers")
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    import testbed

    from weightzoo.zoo.store import Zoo

    m, _ = testbed.build_hf("convnext")
    with Zoo.open(tmp_path / "zoo") as z:
        rec = z.ingest(m, name="convnext")
        assert rec.spec["format"] == "hf" and rec.spec["class"] == "ConvNextModel"
        back = z.module("convnext")
        x = torch.randn(1, 3, 32, 32)
        assert torch.equal(back(pixel_values=x).last_hidden_state, m(pixel_values=x).last_hidden_state)
    out = tmp_path / "g.safetensors"
    assert main(["graph", "convnext", "--zoo", str(tmp_path / "zoo"), "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["recorded"]["breaks"] == [] and summary["skipped"] == []
    sd = ParameterGraph.load(out).to_state_dict()
    assert all(torch.equal(sd[k], v) for k, v in m.state_dict().items())
