"""ParameterGraph: exact round trips, layout of nodes/edges, PyG collation, files, bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from weightzoo.errors import (
    CheckpointError,
    GraphTooLargeError,
    KernelTooLargeError,
    SpecError,
    UnsupportedLayerError,
)
from weightzoo.zoo.arch import Residual, Sine, build_module, spec_from_module
from weightzoo.zoo.graphs import VOCAB_VERSION, Activation, EdgeType, NodeType, ParameterGraph


def _nets() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {
        "mlp": nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.LayerNorm(8), nn.GELU(), nn.Linear(8, 6), Sine(3.0),
                             nn.Linear(6, 5), nn.LeakyReLU(0.1), nn.BatchNorm1d(5), nn.Linear(5, 3, bias=False)),
        "conv2d": nn.Sequential(nn.Conv2d(3, 6, 3, stride=2, padding=1, dilation=1), nn.BatchNorm2d(6), nn.ReLU(),
                                nn.Conv2d(6, 6, 5, padding=4, dilation=2, groups=3), nn.GroupNorm(3, 6), nn.SiLU(),
                                nn.Conv2d(6, 6, 3, padding=1, groups=6), nn.Tanh(), nn.Dropout(0.1), nn.Flatten(),
                                nn.Linear(6 * 4 * 4, 4)),
        "conv1d": nn.Sequential(nn.Conv1d(2, 4, 7, padding=3), nn.BatchNorm1d(4), nn.Sigmoid(), nn.Conv1d(4, 4, 2),
                                nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(4, 2)),
        "resnet": nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
            Residual(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                   nn.Conv2d(4, 4, 3, padding=1))), nn.ReLU(),
            Residual(nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1)),
                     nn.Sequential(nn.Conv2d(4, 8, 1, bias=False), nn.BatchNorm2d(8))), nn.ReLU(),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(8, 10)),
    }


INPUTS = {"mlp": (12,), "conv2d": (3, 8, 8), "conv1d": (2, 16), "resnet": (3, 8, 8)}


def _randomize_stats(m: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(3)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm1d | nn.BatchNorm2d):
            mod.running_mean.copy_(torch.randn(mod.num_features, generator=g))
            mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
            mod.num_batches_tracked.fill_(17)
    return m


@pytest.mark.parametrize("name", list(INPUTS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_round_trip_is_bit_exact(name: str, dtype: torch.dtype) -> None:
    m = _randomize_stats(_nets()[name]).to(dtype)
    sd = m.state_dict()
    g = ParameterGraph.from_module(m)
    out = g.to_state_dict()
    assert list(out) == list(sd)
    for k, v in sd.items():
        assert out[k].dtype == v.dtype and out[k].shape == v.shape, k
        assert torch.equal(out[k].view(torch.uint8) if v.is_floating_point() else out[k],
                           v.view(torch.uint8) if v.is_floating_point() else v), k
    assert g.num_parameters == sum(v.numel() for v in sd.values())
    # the rebuilt module computes the same function
    m2 = build_module(g.spec).to(dtype)
    m2.load_state_dict(out, strict=True)
    m.eval(), m2.eval()
    x = torch.randn(2, *INPUTS[name]).to(dtype)
    assert torch.equal(m(x), m2(x))


def test_edges_follow_weights_and_groups() -> None:
    m = _nets()["conv2d"]
    g = ParameterGraph.from_module(m)
    groups = g.layout.groups
    # 3 input channels, 6+6+6 hidden channels, 96 flatten features, 4 outputs
    assert [grp.size for grp in groups] == [3, 6, 6, 6, 96, 4]
    assert [grp.kind for grp in groups] == [NodeType.INPUT, NodeType.HIDDEN, NodeType.HIDDEN, NodeType.HIDDEN,
                                           NodeType.FLATTEN, NodeType.OUTPUT]
    counts = g.summary()["edge_types"]
    assert counts["conv2d"] == 6 * 3 + 6 * 2 + 6 * 1 and counts["flatten"] == 96 and counts["linear"] == 96 * 4
    src, dst = g.edge_index
    # the grouped conv (groups=3): every edge stays inside its group of 2 channels
    layer = g.edge_layer == 2
    assert torch.equal((src[layer] - groups[1].start) // 2, (dst[layer] - groups[2].start) // 2)
    # depthwise: channel i → channel i only
    layer = g.edge_layer == 3
    assert torch.equal(src[layer] - groups[2].start, dst[layer] - groups[3].start)
    # flatten: feature c·16 + p comes from channel c, position p
    flat = g.edge_type == EdgeType.FLATTEN
    assert torch.equal(src[flat] - groups[3].start, (dst[flat] - groups[4].start) // 16)
    assert torch.equal(g.node_pos[groups[4].start:groups[4].start + 96], torch.arange(96) % 16)


def test_kernel_window_placement_and_node_features() -> None:
    m = _nets()["conv1d"]
    g = ParameterGraph.from_module(m, max_kernel=(3, 9))
    attr = g.edge_attr.reshape(-1, 3, 9)
    w0 = m[0].weight.detach()  # [4, 2, 7] → centre row, columns 1..7
    assert torch.equal(attr[:8, 1, 1:8], w0.reshape(8, 7))
    assert attr[:8, [0, 2]].abs().sum() == 0 and attr[:8, 1, [0, 8]].abs().sum() == 0
    lin = g.edge_type == EdgeType.LINEAR
    assert torch.equal(attr[lin][:, 1, 4], m[7].weight.detach().reshape(-1))
    # node features: bias and BN values on the hidden channels; activations and positions
    hidden = g.layout.groups[1]
    nv = g.node_values[hidden.start:hidden.start + 4]
    bn = m[1]
    assert torch.equal(nv[:, 0], m[0].bias.detach()) and torch.equal(nv[:, 1], bn.weight.detach())
    assert torch.equal(nv[:, 3], bn.running_mean) and torch.equal(nv[:, 4], bn.running_var)
    assert int(g.node_act[hidden.start]) == Activation.SIGMOID
    out = g.layout.groups[-1]
    assert g.node_pos[out.start:out.start + 2].tolist() == [0, 1] and int(g.node_pos[hidden.start]) == -1
    assert g.node_layer.tolist() == [0] * 2 + [1] * 4 + [2] * 4 + [3] * 2


def test_residual_edges_are_identities() -> None:
    g = ParameterGraph.from_module(_nets()["resnet"])
    res = g.edge_type == EdgeType.RESIDUAL
    assert int(res.sum()) == 4 + 8
    attr = g.edge_attr[res].reshape(-1, 7, 7)
    assert torch.all(attr[:, 3, 3] == 1) and attr.abs().sum() == res.sum()
    groups = g.layout.groups
    src, dst = g.edge_index[:, res]
    # identity block: channel i of the block input → channel i of the block output
    assert torch.equal(src[:4] - groups[1].start, dst[:4] - groups[3].start)


def test_kernel_too_large_says_how_to_raise_it() -> None:
    m = nn.Sequential(nn.Conv2d(1, 2, 9), nn.ReLU(), nn.Flatten(), nn.Linear(2, 1))
    with pytest.raises(KernelTooLargeError, match=r"max_kernel=\(9, 9\)") as err:
        ParameterGraph.from_module(m)
    assert err.value.path == "0"
    assert ParameterGraph.from_module(m, max_kernel=9).edge_attr.shape == (2 + 2, 81)


def test_unsupported_layer_strict_and_skipped() -> None:
    m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.LSTM(8, 8), nn.Linear(8, 2))
    with pytest.raises(UnsupportedLayerError, match="'2' of type LSTM"):
        ParameterGraph.from_module(m)
    g = ParameterGraph.from_module(m, strict=False)
    assert [(s.path, s.module) for s in g.skipped] == [("2", "LSTM")]
    assert "2.weight_ih_l0" in g.skipped[0].tensors
    assert set(g.to_state_dict()) == {"0.weight", "0.bias", "3.weight", "3.bias"}
    assert g.layout.groups[2].fixed and g.layout.groups[1].fixed
    # a spec with an "unsupported" entry refuses strict graphs too
    with pytest.raises(UnsupportedLayerError):
        ParameterGraph.from_spec(g.spec, m.state_dict())


def test_state_dict_must_match_spec() -> None:
    m = _nets()["mlp"]
    sd = dict(m.state_dict())
    spec = spec_from_module(m)
    sd.pop("1.bias")
    with pytest.raises(SpecError, match="missing"):
        ParameterGraph.from_spec(spec, sd)
    sd = dict(m.state_dict(), extra=torch.zeros(1))
    with pytest.raises(SpecError, match="unexpected"):
        ParameterGraph.from_spec(spec, sd)
    bad = {"format": "weightzoo.arch/1", "layers": [{"type": "linear", "in": 4, "out": 3},
                                                    {"type": "linear", "in": 5, "out": 1}]}
    with pytest.raises(SpecError, match=r"layers\[1\]: expects 5 features"):
        ParameterGraph.from_spec(bad, {})


def test_collate_different_architectures() -> None:
    from torch_geometric.data import Batch

    graphs = [ParameterGraph.from_module(m) for m in _nets().values()]
    batch = Batch.from_data_list([g.to_pyg() for g in graphs])
    assert batch.num_graphs == 4
    assert batch.x.shape == (sum(g.num_nodes for g in graphs), 12)
    assert batch.edge_attr.shape == (sum(g.num_edges for g in graphs), 49)
    # edge indices are offset per graph and stay inside their graph
    offsets = torch.cumsum(torch.tensor([0] + [g.num_nodes for g in graphs[:-1]]), 0)
    e0 = graphs[0].num_edges
    assert torch.equal(batch.edge_index[:, e0:e0 + graphs[1].num_edges], graphs[1].edge_index + offsets[1])
    assert torch.equal(batch.batch[batch.edge_index[0]], batch.batch[batch.edge_index[1]])


def test_save_load_round_trip(tmp_path) -> None:
    m = _randomize_stats(_nets()["resnet"]).to(torch.bfloat16)
    g = ParameterGraph.from_module(m, max_kernel=5, metadata={"accuracy": 0.5})
    path = tmp_path / "g.safetensors"
    g.save(path)
    h = ParameterGraph.load(path)
    assert h.max_kernel == (5, 5) and h.metadata == {"accuracy": 0.5} and h.spec == g.spec
    assert torch.equal(h.edge_attr, g.edge_attr) and torch.equal(h.edge_index, g.edge_index)
    for k, v in m.state_dict().items():
        assert torch.equal(h.to_state_dict()[k], v) and h.to_state_dict()[k].dtype == v.dtype
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        assert fh.metadata()["vocab_version"] == str(VOCAB_VERSION)


def test_load_rejects_other_files(tmp_path) -> None:
    from safetensors.torch import save_file

    p = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(p))
    with pytest.raises(CheckpointError, match="not a ParameterGraph"):
        ParameterGraph.load(p)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError):
        ParameterGraph.load(junk)


def test_to_networkx_and_limit() -> None:
    g = ParameterGraph.from_module(_nets()["conv1d"])
    nxg = g.to_networkx()
    assert nxg.number_of_nodes() == g.num_nodes and nxg.number_of_edges() == g.num_edges
    assert nxg.nodes[0]["node_type"] == NodeType.INPUT
    with pytest.raises(GraphTooLargeError, match="force=True"):
        g.to_networkx(limit=10)
    assert g.to_networkx(limit=10, force=True).number_of_nodes() == g.num_nodes


def test_trained_digits_models(digits_cnn, digits_mlp, digits_data) -> None:
    x, y = digits_data[2], digits_data[3]
    for model in (digits_cnn, digits_mlp):
        g = ParameterGraph.from_spec(spec_from_module(model), model.state_dict())
        rebuilt = build_module(g.spec)
        rebuilt.load_state_dict(g.to_state_dict(), strict=True)
        rebuilt.eval()
        assert torch.equal(rebuilt(x), model(x))
        assert float((model(x).argmax(1) == y).float().mean()) > 0.3  # trained: chance is 0.1
    g = ParameterGraph.from_module(digits_cnn)
    assert g.summary()["parameters"] == sum(v.numel() for v in digits_cnn.state_dict().values())


@pytest.mark.slow  # a fresh interpreter importing torch: ~5 s on a loaded machine
def test_import_does_not_pull_torch_geometric() -> None:
    code = "import sys, weightzoo.zoo.graphs, weightzoo.zoo.symmetry; print('torch_geometric' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "False"


def test_even_window_keeps_linear_weights_and_identities_on_one_pixel() -> None:
    import torch
    from torch import nn

    from weightzoo.zoo.arch import Residual

    torch.manual_seed(0)
    lin = nn.Sequential(nn.Linear(3, 2))
    g = ParameterGraph.from_module(lin, max_kernel=(4, 4))
    weights = sorted(d["weight"] for _, _, d in g.to_networkx().edges(data=True))
    assert weights == sorted(lin[0].weight.detach().flatten().tolist())
    res = nn.Sequential(nn.Linear(4, 4), Residual(nn.Sequential(nn.Linear(4, 4), nn.ReLU())))
    gr = ParameterGraph.from_module(res, max_kernel=(4, 4))
    nonzero = gr.edge_attr.reshape(gr.num_edges, -1).abs().sum(0).nonzero().flatten().tolist()
    assert nonzero == [1 * 4 + 1]  # every edge, weight or identity, uses the same centre pixel
