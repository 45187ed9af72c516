"""ParameterGraphs of ANY module, from one recorded forward pass (zoo.graphs.dataflow)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from weightzoo.errors import CheckpointError, SpecError, UnsupportedLayerError
from weightzoo.zoo.arch import Residual
from weightzoo.zoo.graphs import EdgeType, NodeType, ParameterGraph
from weightzoo.zoo.graphs.dataflow import RECORDED_FORMAT, layout_from_plan

sys.path.insert(0, str(Path(__file__).parent))
import testbed  # noqa: E402

HAS_TRANSFORMERS = importlib.util.find_spec("transformers") is not None


def _exact(g: ParameterGraph, m: nn.Module) -> None:
    sd, ref = g.to_state_dict(), m.state_dict()
    assert list(sd) == list(ref)
    for k, v in ref.items():
        assert sd[k].dtype == v.dtype and torch.equal(sd[k], v), k


@pytest.mark.parametrize("name", list(testbed.HANDWRITTEN))
def test_every_handwritten_module_round_trips_exactly(name: str) -> None:
    m, x = testbed.build(name)
    g = ParameterGraph.from_module(m, x)
    assert g.spec["format"] == RECORDED_FORMAT
    _exact(g, m)
    s = g.summary()
    assert s["recorded"]["breaks"] == [] and s["skipped"] == []
    assert g.num_edges > 0 and int(g.edge_index.max()) < g.num_nodes
    data = g.to_pyg()
    assert data.edge_attr.shape == (g.num_edges, 49)


def test_half_precision_and_float64_round_trip() -> None:
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        m, x = testbed.build("resnet")
        m = m.to(dtype)
        _exact(ParameterGraph.from_module(m, x.to(dtype)), m)


def test_recorded_path_agrees_with_the_spec_path() -> None:
    torch.manual_seed(0)
    nets = [
        (nn.Sequential(nn.Linear(12, 8), nn.LayerNorm(8), nn.GELU(), nn.Linear(8, 6), nn.ReLU(), nn.BatchNorm1d(6),
                       nn.Linear(6, 3)), torch.randn(2, 12)),
        (nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1, groups=3),
                       nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 4)), torch.randn(2, 3, 4, 4)),
        (nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                       Residual(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                              nn.Conv2d(4, 4, 3, padding=1))), nn.ReLU(), nn.AdaptiveMaxPool2d(1),
                       nn.Flatten(), nn.Linear(4, 10)), torch.randn(2, 3, 8, 8)),
    ]
    for m, x in nets:
        m = testbed.randomize(m.eval())
        fast, rec = ParameterGraph.from_module(m), ParameterGraph.from_module(m, x, recorded=True)
        assert fast.spec["format"] != RECORDED_FORMAT and rec.spec["format"] == RECORDED_FORMAT
        for attr in ("edge_index", "edge_type", "edge_attr", "node_values", "node_type", "node_act", "node_pool",
                     "node_norm", "node_pos"):
            assert torch.equal(getattr(fast, attr), getattr(rec, attr)), attr


def test_node_and_edge_kinds_of_a_vit() -> None:
    m, x = testbed.build("vit")
    g = ParameterGraph.from_module(m, x)
    kinds = set(g.node_type.tolist())
    assert {int(NodeType.INPUT), int(NodeType.QUERY), int(NodeType.KEY), int(NodeType.VALUE), int(NodeType.PARAMETER),
            int(NodeType.UNUSED), int(NodeType.OUTPUT)} <= kinds
    etypes = set(g.edge_type.tolist())
    assert {int(EdgeType.CONV2D), int(EdgeType.LINEAR), int(EdgeType.RESIDUAL), int(EdgeType.SEGMENT),
            int(EdgeType.PARAMETER)} <= etypes
    assert g.summary()["recorded"]["unused"] == ["mask_token"]


def test_concat_and_gate_edges() -> None:
    g = ParameterGraph.from_module(*testbed.build("densenet"))
    assert int(EdgeType.SEGMENT) in set(g.edge_type.tolist())
    g = ParameterGraph.from_module(*testbed.build("mobilenet_se"))
    assert int(EdgeType.GATE) in set(g.edge_type.tolist())
    layout = g.layout
    flat = ParameterGraph.from_module(nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(12, 2)),
                                      torch.randn(1, 2, 4, 4), recorded=True)
    assert int(NodeType.FLATTEN) in set(flat.node_type.tolist())
    del layout


def test_save_and_load_without_the_module(tmp_path) -> None:
    m, x = testbed.build("swin_like")
    g = ParameterGraph.from_module(m, x)
    g.save(tmp_path / "g.safetensors")
    h = ParameterGraph.load(tmp_path / "g.safetensors")
    _exact(h, m)
    assert torch.equal(h.edge_index, g.edge_index) and h.spec == g.spec


def test_tampered_recorded_layout_is_refused(tmp_path) -> None:
    m, x = testbed.build("mlp_class")
    g = ParameterGraph.from_module(m, x)
    bad = dict(g.spec)
    bad["num_edges"] = bad["num_edges"] + 5
    with pytest.raises(SpecError, match="edge"):
        layout_from_plan(bad)
    bad = dict(g.spec)
    bad["groups"] = [dict(bad["groups"][0], start=3), *bad["groups"][1:]]
    with pytest.raises(SpecError, match="groups"):
        layout_from_plan(bad)
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    path = tmp_path / "g.safetensors"
    g.save(path)
    with safe_open(str(path), "pt") as fh:
        meta, tensors = fh.metadata(), {k: fh.get_tensor(k) for k in fh.keys()}
    spec = json.loads(meta["spec"])
    spec["slots"][0]["in_group"] = 10_000  # points outside the graph
    save_file(tensors, str(path), metadata={**meta, "spec": json.dumps(spec)})
    with pytest.raises(CheckpointError, match="bad graph metadata"):
        ParameterGraph.load(path)


class _WithLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp, self.rnn, self.out = nn.Linear(4, 8), nn.LSTM(8, 8), nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(torch.relu(self.inp(x)))
        return self.out(h)


def test_unrepresentable_parameters_raise_or_are_listed() -> None:
    m, x = _WithLSTM().eval(), torch.randn(5, 1, 4)
    with pytest.raises(UnsupportedLayerError, match="'rnn' of type LSTM") as err:
        ParameterGraph.from_module(m, x)
    assert err.value.path == "rnn"
    g = ParameterGraph.from_module(m, x, strict=False)
    assert [(s.path, s.module) for s in g.skipped] == [("rnn", "LSTM")]
    assert "rnn.weight_ih_l0" in g.skipped[0].tensors
    unplaced = g.summary()["recorded"]["unplaced"]
    assert unplaced[0]["path"] == "rnn" and unplaced[0]["op"] == "lstm" and "rnn.weight_hh_l0" in unplaced[0]["tensors"]
    _exact(g, m)  # listed, and still every tensor is in the graph


def test_a_module_that_does_not_run_names_itself() -> None:
    from weightzoo.errors import ComputeGraphError

    with pytest.raises(ComputeGraphError, match="fc1"):
        ParameterGraph.from_module(testbed.TwoLayerMLP(), torch.randn(2, 7))


def test_recorded_graph_needs_its_window() -> None:
    m, x = testbed.build("mlp_class")
    g = ParameterGraph.from_module(m, x)
    with pytest.raises(SpecError, match="max_kernel"):
        ParameterGraph.from_spec(g.spec, m.state_dict(), max_kernel=3)
    g3 = ParameterGraph.from_module(m, x, max_kernel=3)
    _exact(g3, m)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_TRANSFORMERS, reason="transformers not installed")
@pytest.mark.parametrize("family", list(testbed.HF_TINY))
def test_transformers_families_round_trip(family: str) -> None:
    m, x = testbed.build_hf(family)
    g = ParameterGraph.from_module(m, x, recorded=True)
    _exact(g, m)
    assert g.summary()["recorded"]["breaks"] == []
