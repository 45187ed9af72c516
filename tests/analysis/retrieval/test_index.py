"""The index: build in the zoo (incremental), save/load, search, typed errors, and retrieval that works:
a width-scaled copy finds its original, hand-written class-based modules find their own family."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from weightzoo.analysis.retrieval import (
    OpHistogramEncoder,
    RetrievalIndex,
    WLEncoder,
    build_index,
    index_dir,
    query_graph,
    retrieve,
)
from weightzoo.errors import CheckpointError, RetrievalError
from weightzoo.zoo.store import Zoo


@pytest.mark.slow
@pytest.mark.parametrize("encoder", [OpHistogramEncoder(), WLEncoder()], ids=["ops", "wl"])
def test_build_is_incremental_and_round_trips(archs_zoo: Path, encoder) -> None:
    first = build_index(archs_zoo, encoder)
    assert len(first.index) == 16 and len(first.added) == 16 and not first.skipped
    again = build_index(archs_zoo, encoder)
    assert again.kept == 16 and not again.added
    loaded = RetrievalIndex.load(index_dir(archs_zoo, encoder), encoder)
    assert loaded.names == first.index.names and loaded.families == first.index.families
    np.testing.assert_allclose(loaded.similarity_matrix(), first.index.similarity_matrix(), atol=1e-5)
    with Zoo.open(archs_zoo) as z:
        z.rm("archs/a00000")
    third = build_index(archs_zoo, encoder)
    assert third.removed == ["archs/a00000"] and len(third.index) == 15


@pytest.mark.slow
def test_an_index_refuses_another_encoder_and_damage(archs_zoo: Path) -> None:
    build_index(archs_zoo, WLEncoder())
    where = index_dir(archs_zoo, WLEncoder())
    with pytest.raises(RetrievalError, match="rebuild"):
        RetrievalIndex.load(where, WLEncoder(iterations=1))
    meta = json.loads((where / "index.json").read_text())
    meta["names"] = meta["names"][:-1]
    (where / "index.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="malformed"):
        RetrievalIndex.load(where, WLEncoder())
    with pytest.raises(RetrievalError, match="no retrieval index"):
        RetrievalIndex.load(archs_zoo / "nowhere", WLEncoder())
    # a damaged index is rebuilt from scratch by build_index, never half-used
    with pytest.raises(CheckpointError):
        build_index(archs_zoo, WLEncoder())


def _scaled(spec: dict, factor: float) -> dict:
    s = copy.deepcopy(spec)
    s["stem"]["channels"] = round(s["stem"]["channels"] * factor)
    for cell in s["cells"]:
        cell["channels"] = round(cell["channels"] * factor)
    return s


@pytest.mark.slow
def test_a_width_scaled_copy_retrieves_its_original_in_the_top_3(archs_zoo: Path) -> None:
    with Zoo.open(archs_zoo) as z:
        names = [r.name for r in z.models()][:6]
        specs = {n: z.model(n).spec for n in names}
    hits = {}
    for enc in ("ops", "wl"):
        for name in names:
            found = [m.model for m in retrieve(_scaled(specs[name], 1.5), archs_zoo, k=3, encoder=enc)]
            hits[(enc, name)] = name in found
    assert all(hits[("wl", n)] for n in names), hits
    # the bag of ops ignores the wiring, so it cannot always tell same-ops genotypes apart
    assert sum(hits[("ops", n)] for n in names) >= len(names) // 2


class _Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)
        self.norm = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.norm(self.conv2(torch.relu(self.conv1(x)))))


class HandResNet(nn.Module):
    """Hand-written residual CNN (class-based: residual adds in forward, a plain scale parameter)."""

    def __init__(self, width: int = 16, blocks: int = 2) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.blocks = nn.ModuleList(_Block(width) for _ in range(blocks))
        self.scale = nn.Parameter(torch.ones(1))
        self.head = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for b in self.blocks:
            x = b(x)
        return self.head(x.mean(dim=(2, 3)) * self.scale)


class HandTransformer(nn.Module):
    """Hand-written pre-norm transformer encoder over token ids (attention + gated MLP, class token)."""

    def __init__(self, dim: int = 32, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.attn = nn.ModuleList(nn.MultiheadAttention(dim, 4, batch_first=True) for _ in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(layers))
        self.gate = nn.ModuleList(nn.Linear(dim, 2 * dim) for _ in range(layers))
        self.out = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))
        self.head = nn.Linear(dim, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.cls.expand(ids.shape[0], -1, -1), self.embed(ids)], dim=1)
        for attn, norm, gate, out in zip(self.attn, self.norms, self.gate, self.out, strict=True):
            h = norm(x)
            x = x + attn(h, h, h, need_weights=False)[0]
            a, b = gate(x).chunk(2, dim=-1)
            x = x + out(a * torch.sigmoid(b))
        return self.head(x[:, 0])


class HandMLP(nn.Module):
    def __init__(self, width: int = 64, depth: int = 3) -> None:
        super().__init__()
        dims = [20] + [width] * depth
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.head = nn.Linear(width, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return self.head(x)


def _graph(module: nn.Module, x: torch.Tensor):
    from weightzoo.zoo.graphs import ComputeGraph

    return ComputeGraph.record(module, x, cutoff=1)


FAMILIES = {
    "resnet": (HandResNet, [(8, 1), (16, 2), (32, 3)], lambda: torch.randn(1, 3, 16, 16), (24, 2)),
    "transformer": (HandTransformer, [(16, 1), (32, 2), (64, 3)], lambda: torch.randint(0, 100, (1, 8)), (48, 2)),
    "mlp": (HandMLP, [(16, 2), (64, 3), (128, 4)], lambda: torch.randn(1, 20), (32, 3)),
}


@pytest.mark.parametrize("encoder", [OpHistogramEncoder(), WLEncoder()], ids=["ops", "wl"])
def test_a_hand_written_class_based_module_retrieves_its_own_family_first(encoder) -> None:
    index = RetrievalIndex(encoder)
    for fam, (cls, sizes, inp, _) in FAMILIES.items():
        for i, args in enumerate(sizes):
            index.add(f"{fam}-{i}", _graph(cls(*args), inp()), family=fam)
    for fam, (cls, _, inp, query_args) in FAMILIES.items():
        matches = index.search(query_graph(cls(*query_args)) if fam == "mlp" else _graph(cls(*query_args), inp()), k=3)
        assert matches[0].family == fam, (fam, matches)


@pytest.mark.slow
def test_queries_by_module_spec_config_and_class_ref(archs_zoo: Path, tmp_path: Path, monkeypatch) -> None:
    with Zoo.open(archs_zoo) as z:
        spec = z.model("archs/a00004").spec
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    by_file = retrieve(str(spec_file), archs_zoo, k=1, encoder="wl")
    by_name = retrieve("archs/a00004", archs_zoo, k=1, encoder="wl", exclude_self=False)
    assert by_file[0].model == by_name[0].model == "archs/a00004"
    assert by_file[0].similarity == pytest.approx(1.0, abs=1e-5)
    (tmp_path / "retrieval_user_nets.py").write_text(
        "from torch import nn\n"
        "class Tiny(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.a, self.b = nn.Conv2d(1, 8, 3), nn.Linear(8, 10)\n"
        "    def forward(self, x):\n"
        "        return self.b(self.a(x).mean((2, 3)))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    g = query_graph("retrieval_user_nets:Tiny")
    assert [n.op.name for n in g.nodes if n.params] == ["CONV", "LINEAR"]
    with pytest.raises(Exception, match="cannot import"):
        query_graph("retrieval_user_nets:Missing")
    with pytest.raises(RetrievalError, match="cannot retrieve by a int"):
        query_graph(3)
