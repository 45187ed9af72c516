"""ComputeGraph: op sequences of ResNet- and ViT-like modules, ownership and coverage, data flow through
in-place ops and views, virtual edges against networkx, files, PyG/networkx exports, bad input."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from weightzoo.errors import CheckpointError, ComputeGraphError
from weightzoo.zoo.arch import build_module
from weightzoo.zoo.graphs import ComputeGraph, OpType, ParameterGraph
from weightzoo.zoo.graphs.compute_graph import shortest_path_edges


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                         if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.shortcut is None else self.shortcut(x)
        return F.relu(out + skip)


class ResNetLike(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.layer1 = Block(8, 8)
        self.layer2 = Block(8, 16, stride=2)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.stem(x), 2)
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class ViTBlock(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class ViTLike(nn.Module):
    def __init__(self, d: int = 16, depth: int = 2, patch: int = 4, image: int = 16) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, d, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + (image // patch) ** 2, d))
        self.blocks = nn.ModuleList(ViTBlock(d, 2) for _ in range(depth))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 10)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = self.patch(img).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(img.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.norm(x)[:, 0])


IMG = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))

RESNET_OPS = ["INPUT", "CONV", "BATCH_NORM", "RELU", "MAX_POOL",
              "CONV", "BATCH_NORM", "RELU", "CONV", "BATCH_NORM", "ADD", "RELU",
              "CONV", "BATCH_NORM", "RELU", "CONV", "BATCH_NORM", "CONV_POINTWISE", "BATCH_NORM", "ADD", "RELU",
              "GLOBAL_AVG_POOL", "FLATTEN", "LINEAR", "OUTPUT"]
VIT_BLOCK = ["LAYER_NORM", "ATTENTION", "ADD", "LAYER_NORM", "LINEAR", "GELU", "LINEAR", "ADD"]
VIT_OPS = ["INPUT", "CONV", "FLATTEN", "TRANSPOSE", "CONCAT", "ADD", *VIT_BLOCK, *VIT_BLOCK,
           "LAYER_NORM", "INDEX", "LINEAR", "OUTPUT"]


def test_resnet_like_op_sequence_and_main_path() -> None:
    g = ComputeGraph.record(ResNetLike(), IMG)
    assert g.op_names() == RESNET_OPS
    main = [g.nodes[i].op.name for i in g.main_path()]
    # the trunk skips the projection shortcut (CONV_POINTWISE, BATCH_NORM) of layer2
    assert main == [op for i, op in enumerate(RESNET_OPS) if i not in (17, 18)]
    adds = [i for i, n in enumerate(g.nodes) if n.op is OpType.ADD]
    preds = {i: sorted(g.edge_index[0, g.edge_index[1] == i].tolist()) for i in adds}
    assert preds[adds[0]] == [4, 9]  # identity shortcut from the max pool, main branch from bn2
    assert preds[adds[1]] == [16, 18]  # main branch bn2, projection shortcut bn
    assert g.nodes[17].params == (("layer2.shortcut.0.weight", (16, 8, 1, 1)),)
    assert g.nodes[17].path == "layer2.shortcut.0" and g.nodes[10].path == "layer1"
    assert g.nodes[1].out_shape == (2, 8, 16, 16) and g.nodes[-2].out_shape == (2, 10)
    assert g.coverage.complete and g.coverage.fraction == 1.0


def test_vit_like_op_sequence_and_functional_parameters() -> None:
    m = ViTLike()
    g = ComputeGraph.record(m, IMG)
    assert g.op_names() == VIT_OPS
    by_op = {n.op.name: n for n in g.nodes[:6]}
    # parameters used by plain tensor code belong to the first data op that consumes them
    assert by_op["CONCAT"].params == (("cls_token", (1, 1, 16)),)
    assert by_op["ADD"].params == (("pos_embed", (1, 17, 16)),)
    attn = g.nodes[VIT_OPS.index("ATTENTION")]
    assert [p for p, _ in attn.params] == ["blocks.0.attn.in_proj_weight", "blocks.0.attn.in_proj_bias",
                                           "blocks.0.attn.out_proj.weight", "blocks.0.attn.out_proj.bias"]
    assert g.coverage.complete
    assert set(g.coverage.owners) == {n for n, _ in m.named_parameters()}


def test_expand_attention_records_projections_matmuls_and_softmax() -> None:
    g = ComputeGraph.record(ViTLike(depth=1), IMG, expand_attention=True)
    ops = g.op_names()
    assert "ATTENTION" not in ops
    i = ops.index("LINEAR")
    assert ops[i:i + 5] == ["LINEAR", "MATMUL", "SOFTMAX", "MATMUL", "LINEAR"]
    assert [p for p, _ in g.nodes[i].params] == ["blocks.0.attn.in_proj_weight", "blocks.0.attn.in_proj_bias"]
    assert [p for p, _ in g.nodes[i + 4].params] == ["blocks.0.attn.out_proj.weight", "blocks.0.attn.out_proj.bias"]
    assert g.nodes[i + 2].out_shape == (2, 2, 17, 17)  # (batch, heads, query, key)
    assert g.coverage.complete


@pytest.mark.slow  # the first torch.export in a process takes seconds
def test_export_backend_agrees_with_eager_on_parametric_ops() -> None:
    m = ResNetLike()
    eager = ComputeGraph.record(m, IMG)
    exported = ComputeGraph.record(m, IMG, backend="export")
    assert exported.backend == "export" and exported.coverage.complete
    para = lambda g: [(n.op.name, n.params) for n in g.nodes if n.params]  # noqa: E731
    assert para(exported) == para(eager)
    assert [n.path for n in exported.nodes if n.params] == [n.path for n in eager.nodes if n.params]


def test_functions_inside_leaf_modules_are_not_nodes() -> None:
    class MyLayerNorm(nn.Module):  # a norm written out by hand: recognised by its class name
        def __init__(self, d: int) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.ones(d))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mu = x.mean(-1, keepdim=True)
            return self.weight * (x - mu) / (x.var(-1, keepdim=True) + 1e-5).sqrt()

    m = nn.Sequential(nn.Linear(4, 4), MyLayerNorm(4), nn.Linear(4, 2))
    g = ComputeGraph.record(m, torch.randn(3, 4))
    assert g.op_names() == ["INPUT", "LINEAR", "LAYER_NORM", "LINEAR", "OUTPUT"]


def test_raw_parameters_in_functional_calls_are_owned() -> None:
    class Custom(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.randn(3, 4))
            self.b = nn.Parameter(torch.zeros(4))
            self.kernel = nn.Parameter(torch.randn(6, 4, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = F.linear(x, self.w.t(), self.b)  # a parameter transformed before use still belongs to linear
            return F.conv1d(h.unsqueeze(-1).expand(-1, -1, 5), self.kernel, padding=1, dilation=1)

    g = ComputeGraph.record(Custom(), torch.randn(2, 3))
    assert g.op_names() == ["INPUT", "LINEAR", "RESHAPE", "EXPAND", "CONV", "OUTPUT"]
    assert g.nodes[1].params == (("w", (3, 4)), ("b", (4,)))
    assert g.nodes[4].params == (("kernel", (6, 4, 3)),) and g.nodes[4].attrs["kernel"] == [3]
    assert g.coverage.complete


def test_in_place_write_through_a_view_moves_the_producer() -> None:
    class InPlace(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.lin(x)
            h[:, :2].mul_(2.0)  # writes into h through a view
            h.relu_()
            return h + 1

    g = ComputeGraph.record(InPlace(), torch.randn(2, 4))
    assert g.op_names() == ["INPUT", "LINEAR", "INDEX", "MUL", "RELU", "ADD", "OUTPUT"]
    edges = set(map(tuple, g.edge_index.t().tolist()))
    assert (3, 4) in edges and (4, 5) in edges and (1, 4) not in edges


def test_convolution_kinds_by_kernel_groups_and_dilation() -> None:
    m = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.Conv2d(8, 8, 1), nn.Conv2d(8, 8, 3, padding=1, groups=8),
                      nn.Conv2d(8, 8, 3, padding=1, groups=2), nn.Conv2d(8, 8, 3, padding=2, dilation=2),
                      nn.ConvTranspose2d(8, 4, 2, stride=2))
    g = ComputeGraph.record(m)  # input derived from the first conv: 1×4×32×32
    assert g.op_names()[1:-1] == ["CONV", "CONV_POINTWISE", "CONV_DEPTHWISE", "CONV_GROUPED", "CONV_DILATED",
                                  "CONV_TRANSPOSE"]
    assert g.input_shapes == [(1, 4, 32, 32)] and g.nodes[-1].out_shape == (1, 4, 64, 64)


def test_tied_weights_are_covered_under_every_name() -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(20, 8)
            self.head = nn.Linear(8, 20, bias=False)
            self.head.weight = self.emb.weight

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.head(self.emb(ids))

    g = ComputeGraph.record(Tied())  # token ids derived from the embedding
    assert g.op_names() == ["INPUT", "EMBEDDING", "LINEAR", "OUTPUT"]
    assert g.coverage.owners == {"emb.weight": 1, "head.weight": 1}
    assert g.coverage.shared["emb.weight"] == (1, 2)
    assert g.nodes[2].params == (("head.weight", (20, 8)),)


def test_unused_parameter_is_listed_and_strict_raises() -> None:
    class Unused(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used = nn.Linear(3, 3)
            self.spare = nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.used(x)

    g = ComputeGraph.record(Unused(), torch.randn(1, 3))
    assert g.coverage.unowned == ("spare.bias", "spare.weight") and g.coverage.fraction == 0.5
    with pytest.raises(ComputeGraphError, match="spare.bias") as info:
        ComputeGraph.record(Unused(), torch.randn(1, 3), strict=True)
    assert info.value.unowned == ["spare.bias", "spare.weight"]


def test_forward_error_names_the_module_and_leaves_it_unchanged() -> None:
    m = ResNetLike()
    m.train()
    state = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(ComputeGraphError, match=r"'stem.0' \(Conv2d\) raised RuntimeError") as info:
        ComputeGraph.record(m, torch.randn(1, 5, 16, 16))  # 5 channels where the stem takes 3
    assert (info.value.path, info.value.kind) == ("stem.0", "Conv2d")
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in state.items())
    assert all(mod.training for mod in m.modules())


def test_forward_error_in_a_nested_module() -> None:
    class Boom(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("boom")

    m = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU(), Boom()))
    m.train()
    with pytest.raises(ComputeGraphError, match=r"'1.1' \(Boom\) raised RuntimeError: boom") as info:
        ComputeGraph.record(m, torch.randn(1, 2))
    assert (info.value.path, info.value.kind) == ("1.1", "Boom")
    assert all(mod.training for mod in m.modules())  # train/eval flags restored


def test_recording_changes_no_state() -> None:
    m = ResNetLike()
    m.train()
    state = {k: v.clone() for k, v in m.state_dict().items()}
    ComputeGraph.record(m, IMG)
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in state.items())  # BN running stats untouched
    assert all(mod.training for mod in m.modules())
    assert not m._forward_hooks and not m.layer1.conv1._forward_pre_hooks


@pytest.mark.slow  # eight random cell networks: seconds
def test_specs_random_cells_and_mlp_are_fully_covered() -> None:
    from weightzoo.datasets.archs import FAMILIES, sample_cells_spec

    spec = {"format": "weightzoo.arch/1", "input_shape": [6], "layers": [
        {"type": "linear", "in": 6, "out": 8}, {"type": "sine", "w0": 30.0}, {"type": "linear", "in": 8, "out": 8},
        {"type": "layernorm", "normalized_shape": 8}, {"type": "tanh"}, {"type": "linear", "in": 8, "out": 2}]}
    g = ComputeGraph.from_spec(spec)
    assert g.op_names() == ["INPUT", "LINEAR", "SINE", "LINEAR", "LAYER_NORM", "TANH", "LINEAR", "OUTPUT"]
    assert g.spec == spec and g.input_shapes == [(1, 6)]
    rng = np.random.default_rng(1)
    for family in FAMILIES:
        cells = sample_cells_spec(rng, family)
        cg = ComputeGraph.from_spec(cells)
        assert cg.coverage.complete, (family, cg.coverage.unowned)
        assert set(cg.coverage.owners) == {n for n, _ in build_module(cells).named_parameters()}
        assert not cg.summary()["unknown_ops"]


def _nx_pairs(g: nx.DiGraph, cutoff: int, directed: bool) -> dict[tuple[int, int], int]:
    h = g if directed else g.to_undirected()
    return {(s, t): d for s, lengths in nx.all_pairs_shortest_path_length(h, cutoff=cutoff)
            for t, d in lengths.items() if s != t}


@pytest.mark.parametrize("directed", [True, False])
@pytest.mark.parametrize("seed", range(6))
def test_virtual_edges_equal_networkx_shortest_paths(seed: int, directed: bool) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 40))
    m = int(rng.integers(1, 3 * n))
    edges = rng.integers(0, n, size=(2, m))
    if seed % 2:  # a DAG (forward edges only), like a recorded graph
        edges = np.sort(edges, axis=0)
    cutoff = int(rng.integers(1, 6))
    index, dist = shortest_path_edges(torch.from_numpy(edges), n, cutoff, directed=directed)
    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    g.add_edges_from((int(a), int(b)) for a, b in edges.T if a != b)
    got = {(int(a), int(b)): int(d) for (a, b), d in zip(index.t().tolist(), dist.tolist())}
    assert got == _nx_pairs(g, cutoff, directed)


def test_recorded_virtual_edges_match_networkx() -> None:
    for direction in ("forward", "undirected"):
        g = ComputeGraph.record(ViTLike(depth=3), IMG, cutoff=7, direction=direction)
        got = {(a, b): d for (a, b), d in zip(g.virtual_edge_index.t().tolist(), g.virtual_edge_dist.tolist())}
        assert got == _nx_pairs(g.to_networkx(), 7, direction == "forward")
        assert max(got.values()) == 7


def test_save_load_round_trip(tmp_path) -> None:
    g = ComputeGraph.record(ViTLike(), IMG, metadata={"note": "vit"})
    path = tmp_path / "vit.safetensors"
    g.save(path)
    back = ComputeGraph.load(path)
    assert back.nodes == g.nodes and back.op_names() == VIT_OPS
    assert torch.equal(back.edge_index, g.edge_index) and torch.equal(back.virtual_edge_index, g.virtual_edge_index)
    assert torch.equal(back.virtual_edge_dist, g.virtual_edge_dist)
    assert dict(back.coverage.owners) == dict(g.coverage.owners) and back.coverage.unowned == g.coverage.unowned
    assert back.metadata["note"] == "vit" and back.cutoff == 50 and back.input_shapes == [(2, 3, 16, 16)]
    assert b"pickle" not in path.read_bytes()[:8]


def test_load_rejects_other_files(tmp_path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(CheckpointError):
        ComputeGraph.load(bad)
    pg = tmp_path / "param.safetensors"
    ParameterGraph.from_module(nn.Sequential(nn.Linear(2, 2))).save(pg)
    with pytest.raises(CheckpointError, match="not a compute graph"):
        ComputeGraph.load(pg)


@pytest.mark.slow  # importing torch_geometric takes seconds
def test_to_pyg_and_networkx() -> None:
    g = ComputeGraph.record(ResNetLike(), IMG)
    data = g.to_pyg()
    n = len(RESNET_OPS)
    assert data.num_nodes == n and torch.equal(data.x, torch.tensor([int(OpType[o]) for o in RESNET_OPS]))
    assert data.param_shape.shape == (n, 6) and data.param_shape[1].tolist() == [8, 3, 3, 3, -1, -1]
    assert data.out_shape[0].tolist() == [2, 3, 16, 16, -1, -1]
    assert data.virtual_edge_attr.shape == (data.virtual_edge_index.shape[1], 1)
    assert int(data.param_count.sum()) == sum(p.numel() for p in ResNetLike().parameters())
    nxg = g.to_networkx()
    assert nxg.number_of_nodes() == n and nxg.number_of_edges() == g.edge_index.shape[1]
    assert nx.is_directed_acyclic_graph(nxg) and nxg.nodes[1]["op"] == "CONV"


def test_meta_device_module_records_without_compute() -> None:
    with torch.device("meta"):
        m = ViTLike(image=32)
    g = ComputeGraph.record(m)  # no example input: derived from the first conv, on the meta device
    assert g.op_names()[:2] == ["INPUT", "CONV"] and g.coverage.complete
    assert g.input_shapes == [(1, 3, 32, 32)]


def test_bad_input_is_refused() -> None:
    with pytest.raises(ComputeGraphError, match="needs an nn.Module"):
        ComputeGraph.record("resnet")  # type: ignore[arg-type]
    with pytest.raises(ComputeGraphError, match="valid: eager, export"):
        ComputeGraph.record(ResNetLike(), IMG, backend="fx")
    with pytest.raises(ComputeGraphError, match="cutoff"):
        ComputeGraph.record(ResNetLike(), IMG, cutoff=0)
    with pytest.raises(ComputeGraphError, match="example_input must be"):
        ComputeGraph.record(ResNetLike(), example_input=3.0)
    with pytest.raises(ComputeGraphError, match="cannot derive an example input"):
        ComputeGraph.record(nn.ReLU())
