"""Edge features stored per kernel size (zoo/graphs/edge_kernels.py): padding on demand is bit-identical
to placing every kernel in the window directly (format v1), for every consumer of a ParameterGraph."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from weightzoo.errors import ShapeMismatchError
from weightzoo.zoo.graphs import ParameterGraph, parameter_graph
from weightzoo.zoo.graphs.edge_kernels import EdgeKernels, KernelRun
from weightzoo.zoo.graphs.parameter_graph import _place

sys.path.insert(0, str(Path(__file__).parent))
import testbed  # noqa: E402

_spec = importlib.util.spec_from_file_location("_hf_checkpoints", Path(__file__).with_name("_hf_checkpoints.py"))
HF = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(HF)  # type: ignore[union-attr]


@pytest.fixture(autouse=True)
def _kernel_storage_for_every_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test graphs are small: without this they would be padded while built (PAD_AT_BUILD_VALUES)."""
    monkeypatch.setattr(parameter_graph, "PAD_AT_BUILD_VALUES", 0)


def _direct(g: ParameterGraph, sd: dict[str, torch.Tensor]) -> torch.Tensor:
    """Format v1 written the direct way: a zero [E, kh, kw] tensor, every kernel placed, identities = 1."""
    kh, kw = g.max_kernel
    lay = g.layout
    f64 = any(sd[s.name].dtype == torch.float64 for s in lay.slots if s.role != "buffer")
    out = torch.zeros(lay.num_edges, kh, kw, dtype=torch.float64 if f64 else torch.float32)
    scratch = torch.zeros(lay.num_nodes, 5, dtype=out.dtype)
    for s in lay.slots:
        if s.role in ("weight", "embedding", "unembed", "table"):
            _place(out, scratch, lay, s, sd[s.name].detach(), g.max_kernel)
    for stc in lay.struct:
        out[stc.edge_start: stc.edge_start + stc.count, (kh - 1) // 2, (kw - 1) // 2] = 1
    return out.reshape(lay.num_edges, kh * kw)


def _same_sd(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


def _check(g: ParameterGraph, sd: dict[str, torch.Tensor]) -> None:
    """Everything a consumer can read agrees before and after the padded features are written."""
    assert g.edge_storage == "kernels"
    _same_sd(g.to_state_dict(), sd)  # read from the unpadded runs
    groups = g.edge_kernels()
    ref = _direct(g, sd)
    attr = g.edge_attr
    assert g.edge_storage == "padded"
    assert attr.dtype == ref.dtype and torch.equal(attr, ref)
    _same_sd(g.to_state_dict(), sd)  # now read from the padded tensor
    ids = torch.cat([i for i, _ in groups.values()])
    assert torch.equal(ids.sort().values, torch.arange(g.num_edges))  # every edge exactly once
    kh, kw = g.max_kernel
    rebuilt = torch.zeros(g.num_edges, kh, kw, dtype=attr.dtype)
    for (kr, kc), (i, v) in groups.items():
        r0, c0 = (kh - kr) // 2, (kw - kc) // 2
        rebuilt[i, r0: r0 + kr, c0: c0 + kc] = v.view(-1, kr, kc)
    assert torch.equal(rebuilt.view(g.num_edges, -1), attr)
    after = g.edge_kernels()  # the same groups from the padded storage
    assert list(after) == list(groups)
    for k in groups:
        assert torch.equal(after[k][0], groups[k][0]) and torch.equal(after[k][1], groups[k][1])


@pytest.mark.parametrize("name", list(testbed.HANDWRITTEN))
def test_recorded_graphs_pad_bit_identically(name: str) -> None:
    m, x = testbed.build(name)
    g = ParameterGraph.from_module(m, x)
    _check(g, m.state_dict())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtypes_pad_bit_identically(dtype: torch.dtype) -> None:
    m, x = testbed.build("unet")  # transposed convs, group norm, concatenation
    m = m.to(dtype)
    g = ParameterGraph.from_module(m, x.to(dtype))
    _check(g, m.state_dict())


@pytest.mark.parametrize("family", ["gpt2", "llama", "vit"])
def test_transformer_graphs_pad_bit_identically(family: str) -> None:
    spec, sd = HF.CHECKPOINTS[family](0)
    for mk in (None, (1, 3), 7):  # packed embedding tables fill the window
        _check(ParameterGraph.from_spec(spec, sd, max_kernel=mk), sd)


@settings(max_examples=15, deadline=None)
@given(k1=st.integers(1, 5), k2=st.integers(1, 5), conv1d=st.booleans(), window=st.integers(5, 8),
       f64=st.booleans(), seed=st.integers(0, 2**16))
def test_random_kernel_sizes_pad_bit_identically(k1: int, k2: int, conv1d: bool, window: int, f64: bool,
                                                 seed: int) -> None:
    torch.manual_seed(seed)
    if conv1d:
        m: nn.Module = nn.Sequential(nn.Conv1d(2, 3, k1, padding=k1), nn.ReLU(), nn.Conv1d(3, 4, k2, padding=k2),
                                     nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(4, 2))
    else:
        m = nn.Sequential(nn.Conv2d(2, 3, (k1, k2), padding=2), nn.BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 4, 1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    m = testbed.randomize(m.eval(), seed)
    if f64:
        m = m.double()
    _check(ParameterGraph.from_module(m, max_kernel=window), m.state_dict())


def test_writes_to_edge_attr_reach_the_state_dict() -> None:
    m, x = testbed.build("resnet")
    g = ParameterGraph.from_module(m, x)
    name = "stem.weight" if "stem.weight" in g.layout.slot_by_name else next(
        s.name for s in g.layout.slots if s.role == "weight")
    s = g.layout.slot_by_name[name]
    before = g.to_state_dict()[name].clone()
    kh, kw = g.max_kernel
    g.edge_attr[s.edge_start, ((kh - 1) // 2) * kw + (kw - 1) // 2] += 1.0  # negative control: the weight moves
    assert not torch.equal(g.to_state_dict()[name], before)
    with pytest.raises(ShapeMismatchError):
        g.edge_attr = torch.zeros(3, 3)


def test_save_from_kernel_storage_loads_exactly(tmp_path: Path) -> None:
    m, x = testbed.build("convnext")
    g = ParameterGraph.from_module(m, x)
    g.save(tmp_path / "g.safetensors")
    assert g.edge_storage == "kernels"  # writing the file did not keep the padded tensor
    h = ParameterGraph.load(tmp_path / "g.safetensors")
    assert torch.equal(h.edge_attr, g.edge_attr)
    _same_sd(h.to_state_dict(), m.state_dict())


def test_kernel_storage_is_about_one_copy_of_the_weights() -> None:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                      nn.Flatten(), nn.Linear(64, 10))
    g = ParameterGraph.from_module(m)
    weights = sum(p.numel() for n, p in m.named_parameters() if n.endswith("weight"))
    assert g._kernels is not None and g._kernels.nbytes == 4 * weights  # unpadded: 4 bytes per weight
    assert g.edge_attr.nbytes == 4 * 49 * g.num_edges  # the padded format: a 7×7 window per edge


def test_edge_kernels_validation() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        EdgeKernels(4, (3, 3), [KernelRun(0, 4, (5, 5), torch.zeros(4, 25))], torch.float32)
    with pytest.raises(ValueError, match="does not fit"):
        EdgeKernels(4, (3, 3), [KernelRun(2, 4, (1, 1), None)], torch.float32)
    with pytest.raises(ValueError, match="holds values"):
        EdgeKernels(4, (3, 3), [KernelRun(0, 4, (3, 3), torch.zeros(4, 3))], torch.float32)
    ek = EdgeKernels(3, (3, 3), [KernelRun(0, 2, (3, 3), torch.arange(18.).view(2, 9)), KernelRun(2, 1, (1, 1), None)],
                     torch.float32)
    padded = ek.padded()
    assert torch.equal(padded[:2], torch.arange(18.).view(2, 9)) and padded[2].tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 0]


@pytest.mark.parametrize("name", ["resnet", "vit", "unet"])
def test_small_graphs_padded_at_build_agree_with_kernel_storage(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    m, x = testbed.build(name)
    if name == "unet":
        m, x = m.double(), x.double()
    compact = ParameterGraph.from_module(m, x)
    monkeypatch.setattr(parameter_graph, "PAD_AT_BUILD_VALUES", 1 << 40)
    eager = ParameterGraph.from_module(m, x)
    assert compact.edge_storage == "kernels" and eager.edge_storage == "padded"
    _same_sd(eager.to_state_dict(), compact.to_state_dict())
    a, b = eager.edge_kernels(), compact.edge_kernels()
    assert list(a) == list(b) and all(torch.equal(a[k][0], b[k][0]) and torch.equal(a[k][1], b[k][1]) for k in a)
    assert eager.edge_attr.dtype == compact.edge_attr.dtype and torch.equal(eager.edge_attr, compact.edge_attr)


# --- files with edge features per kernel size (save(..., edge_storage="kernels")) ---------------------------


def _rewrite(src: Path, dst: Path, *, meta: dict[str, str] | None = None,
             tensors: dict[str, torch.Tensor] | None = None, drop: str | None = None) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(src), "pt") as f:
        m = dict(f.metadata())
        t = {k: f.get_tensor(k) for k in f.keys()}
    m.update(meta or {})
    t.update(tensors or {})
    if drop:
        t.pop(drop)
    save_file(t, str(dst), metadata=m)


@pytest.mark.parametrize("name", ["resnet", "vit", "seq_model"])
def test_kernel_files_round_trip_exactly(name: str, tmp_path: Path) -> None:
    m, x = testbed.build(name)
    g = ParameterGraph.from_module(m, x)
    g.save(tmp_path / "k.safetensors", edge_storage="kernels")
    g.save(tmp_path / "p.safetensors")
    h = ParameterGraph.load(tmp_path / "k.safetensors")
    assert h.edge_storage == "kernels"
    _same_sd(h.to_state_dict(), m.state_dict())
    assert torch.equal(h.edge_attr, ParameterGraph.load(tmp_path / "p.safetensors").edge_attr)
    assert (tmp_path / "k.safetensors").stat().st_size < (tmp_path / "p.safetensors").stat().st_size
    g.save(tmp_path / "k2.safetensors", edge_storage="kernels")  # from padded storage now: same runs
    _same_sd(ParameterGraph.load(tmp_path / "k2.safetensors").to_state_dict(), m.state_dict())
    with pytest.raises(ValueError, match="edge_storage"):
        g.save(tmp_path / "x.safetensors", edge_storage="sparse")


def test_tampered_kernel_files_are_refused(tmp_path: Path) -> None:
    import json

    from weightzoo.errors import CheckpointError

    m, x = testbed.build("resnet")
    g = ParameterGraph.from_module(m, x)
    src = tmp_path / "k.safetensors"
    g.save(src, edge_storage="kernels")
    from safetensors import safe_open

    with safe_open(str(src), "pt") as f:
        rows = json.loads(f.metadata()["edge_kernels"])
    moved = [list(r) for r in rows]
    moved[0][1] += 1  # a run longer than its tensor
    shrunk = [list(r) for r in rows]
    shrunk[1][2], shrunk[1][3] = 1, 1  # a 3×3 run claiming 1×1 kernels
    hollow = [list(r) for r in rows]
    hollow[0][4] = False  # weights without values
    bad = tmp_path / "bad.safetensors"
    cases = [dict(meta={"edge_kernels": json.dumps(moved)}), dict(meta={"edge_kernels": json.dumps(shrunk)}),
             dict(meta={"edge_kernels": json.dumps(hollow)}), dict(meta={"edge_kernels": "[[0]]"}),
             dict(meta={"edge_dtype": "I8"}), dict(drop="kernels.0"),
             dict(tensors={"kernels.0": torch.zeros(3, 2)}), dict(tensors={"edge_index": torch.zeros(2, 3).long()}),
             dict(tensors={"kernels.0": torch.zeros(rows[0][1], rows[0][2] * rows[0][3], dtype=torch.int32)})]
    for case in cases:
        _rewrite(src, bad, **case)  # type: ignore[arg-type]
        with pytest.raises(CheckpointError):
            ParameterGraph.load(bad)
    _rewrite(src, bad)  # negative control: an untouched copy loads
    _same_sd(ParameterGraph.load(bad).to_state_dict(), m.state_dict())


def test_cli_writes_kernel_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from weightzoo.cli import main
    from weightzoo.zoo.arch import spec_from_module
    from weightzoo.zoo.store import Zoo

    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    with Zoo.open(tmp_path / "zoo") as z:
        z.ingest(m, name="tiny", spec=spec_from_module(m))
    out = tmp_path / "g.safetensors"
    assert main(["graph", "tiny", "--zoo", str(tmp_path / "zoo"), "--out", str(out), "--edge-storage", "kernels"]) == 0
    g = ParameterGraph.load(out)
    assert g.edge_storage == "kernels"
    _same_sd(g.to_state_dict(), dict(m.state_dict()))
