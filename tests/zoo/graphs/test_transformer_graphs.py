"""ParameterGraphs of transformers: exact round trips for every family, graph structure, collation, files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from weightzoo.errors import CheckpointError, ShapeMismatchError, SpecError, UnsupportedLayerError
from weightzoo.zoo.arch import spec_from_module
from weightzoo.zoo.graphs import Activation, EdgeType, NodeType, Norm, ParameterGraph

_spec = importlib.util.spec_from_file_location("_hf_checkpoints", Path(__file__).with_name("_hf_checkpoints.py"))
HF = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(HF)  # type: ignore[union-attr]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return list(a) == list(b) and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("family", list(HF.CHECKPOINTS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_round_trip_is_bit_exact(family: str, dtype: torch.dtype) -> None:
    spec, sd = HF.CHECKPOINTS[family](1, dtype=dtype)
    for mk in (None, (1, 3), 7):
        g = ParameterGraph.from_spec(spec, sd, max_kernel=mk)
        assert _same(g.to_state_dict(), sd)
        assert g.num_parameters == sum(t.numel() for t in sd.values())


def test_float64_and_lazy_mapping_keep_values_exact() -> None:
    spec, sd = HF.llama(2, dtype=torch.float64)
    reads: list[str] = []

    class Lazy(dict):
        def __getitem__(self, k):  # type: ignore[override]
            reads.append(k)
            return super().__getitem__(k)

    g = ParameterGraph.from_spec(spec, Lazy(sd))
    assert g.edge_attr.dtype == torch.float64 and _same(g.to_state_dict(), sd)
    assert sorted(reads) == sorted(sd)  # every tensor read exactly once


def _edges(g: ParameterGraph, etype: EdgeType) -> tuple[torch.Tensor, torch.Tensor]:
    m = g.edge_type == int(etype)
    return g.edge_index[:, m], g.edge_attr[m]


def test_gpt2_conv1d_weights_are_read_transposed() -> None:
    spec, sd = HF.gpt2(0)
    g = ParameterGraph.from_spec(spec, sd)
    w = sd["transformer.h.0.attn.c_attn.weight"]  # [in, out] = [d, 3d]: q | k | v
    d = w.shape[0]
    (ei, ea), gr = _edges(g, EdgeType.ATTN_K), g.layout.groups
    slot = g.layout.slot_by_name["transformer.h.0.attn.c_attn.weight"]
    k_group = gr[slot.out_parts[1]]
    assert k_group.kind == NodeType.KEY and gr[slot.out_parts[0]].kind == NodeType.QUERY
    in_start = gr[slot.in_group].start
    first = (ei[1] >= k_group.start) & (ei[1] < k_group.start + k_group.size)
    src, dst, val = ei[0, first] - in_start, ei[1, first] - k_group.start, ea[first, 0]
    assert torch.equal(val, w[src, d + dst])  # edge input i → key j carries W[i, d + j]
    # c_fc / c_proj too: the MLP's first edges come from the ln_2 nodes into hidden unit 0
    assert torch.equal(g.to_state_dict()["transformer.h.0.mlp.c_fc.weight"], sd["transformer.h.0.mlp.c_fc.weight"])


def test_heads_are_recoverable_with_grouped_query_attention() -> None:
    spec, sd = HF.llama(0, kv_heads=2)  # 4 query heads, 2 key/value heads, dh = 4
    g = ParameterGraph.from_spec(spec, sd)
    blk = g.layout.info["attention"][0]
    gr = g.layout.groups
    heads, q, k, v, a = (gr[blk[n]] for n in ("head", "q", "k", "v", "attn"))
    assert (heads.size, q.size, k.size, v.size, a.size) == (4, 16, 8, 8, 16)
    # hidden positions (-1) keep node features equivariant; the heads are read from the edges
    assert set(g.node_pos[heads.start: a.start + a.size].tolist()) == {-1}
    ei, _ = _edges(g, EdgeType.ATTN_SCORE)

    def heads_of(group) -> dict[int, set[int]]:
        out: dict[int, set[int]] = {}
        m = (ei[0] >= group.start) & (ei[0] < group.start + group.size)
        for s_, d_ in ei[:, m].t().tolist():
            out.setdefault(s_ - group.start, set()).add(d_ - heads.start)
        return out

    assert heads_of(q) == {i: {i // 4} for i in range(16)}  # each query dim scores for its own head
    assert heads_of(k) == {i: {2 * (i // 4), 2 * (i // 4) + 1} for i in range(8)}  # a key head serves 2 heads
    # rotary embeddings are a node feature of the query/key nodes (act = ROTARY, act_param = θ)
    assert set(g.node_act[q.start: q.start + q.size].tolist()) == {int(Activation.ROTARY)}
    assert float(g.node_features()[k.start, 5]) == 10000.0
    assert set(g.node_act[v.start: v.start + v.size].tolist()) == {int(Activation.NONE)}
    # SwiGLU: gate (silu) → up identity edges
    gate_edges, gate_attr = _edges(g, EdgeType.GATE)
    assert gate_edges.shape[1] == 2 * HF.INNER and torch.all(gate_attr[:, 0] == 1)
    assert int((g.layout.node_tensors["node_norm"] == int(Norm.RMS)).sum()) == (2 * HF.LAYERS + 1) * HF.D


def test_residual_stream_is_shared_and_embeddings_are_packed() -> None:
    spec, sd = HF.bert(0)
    for kh, kw in ((1, 1), (1, 5)):
        g = ParameterGraph.from_spec(spec, sd, max_kernel=(kh, kw))
        streams = [gr for gr in g.layout.groups if gr.kind == NodeType.STREAM]
        assert len(streams) == 1 and streams[0].size == HF.D
        k = kh * kw
        word = [gr for gr in g.layout.groups if gr.kind == NodeType.EMBEDDING][0]
        assert word.size == -(-HF.VOCAB // k)
        ei, ea = _edges(g, EdgeType.EMBEDDING)
        table = sd["bert.embeddings.word_embeddings.weight"]
        # edge (chunk c → stream j) holds rows c·k .. c·k+k-1 of column j
        assert torch.equal(ea[ei[0] == word.start + 1], table[k: 2 * k, :].t())
        last = ea[ei[0] == word.start + word.size - 1]  # the last chunk is zero-padded
        rest = HF.VOCAB - (word.size - 1) * k
        assert torch.equal(last[:, :rest], table[-rest:, :].t()) and not last[:, rest:].any()
        # every block writes into the same stream nodes
        res, _ = _edges(g, EdgeType.RESIDUAL)
        assert set(res[1].tolist()) == set(range(streams[0].start, streams[0].start + HF.D))


def test_tied_head_is_stored_once_and_both_names_come_back() -> None:
    spec, sd = HF.gpt2(0, lm_head=True)  # the state dict of GPT2LMHeadModel: both names, one tensor
    g = ParameterGraph.from_spec(spec, sd)
    assert g.aliases == {"lm_head.weight": "transformer.wte.weight"}
    assert g.summary()["transformer"]["tied_embeddings"] is True
    assert int((g.node_type == int(NodeType.TIED_EMBEDDING)).sum()) == HF.VOCAB
    assert g.num_edges == ParameterGraph.from_spec(*HF.gpt2(0)).num_edges  # no second copy of the table
    assert _same(g.to_state_dict(), sd)
    bad = dict(sd)
    bad["lm_head.weight"] = sd["lm_head.weight"] + 1
    with pytest.raises(SpecError, match="tied"):
        ParameterGraph.from_spec(spec, bad)
    spec_q, sd_q = HF.CHECKPOINTS["qwen2"](0)  # tied, and the checkpoint stores the table once
    gq = ParameterGraph.from_spec(spec_q, sd_q)
    assert gq.aliases == {} and gq.layout.info["tied"] and _same(gq.to_state_dict(), sd_q)


def test_untied_lm_head_is_packed_into_output_chunks() -> None:
    spec, sd = HF.llama(0)
    g = ParameterGraph.from_spec(spec, sd, max_kernel=(2, 2))
    out = [gr for gr in g.layout.groups if gr.kind == NodeType.OUTPUT]
    assert len(out) == 1 and out[0].size == -(-HF.VOCAB // 4)
    assert int((g.edge_type == int(EdgeType.UNEMBED)).sum()) == out[0].size * HF.D


def test_vit_patch_embedding_is_a_linear_map_on_patch_pixels() -> None:
    spec, sd = HF.vit(0)
    g = ParameterGraph.from_spec(spec, sd)
    pixels = g.layout.groups[0]
    assert pixels.kind == NodeType.INPUT and pixels.size == HF.CH * HF.PATCH ** 2
    w = sd["vit.embeddings.patch_embeddings.projection.weight"].reshape(HF.D, -1)
    ei, ea = g.edge_index, g.edge_attr[:, 0]
    m = (ei[0] >= pixels.start) & (ei[0] < pixels.start + pixels.size)
    patch = g.layout.groups[1]
    assert torch.equal(ea[m], w[ei[1, m] - patch.start, ei[0, m] - pixels.start])


def test_different_families_and_cnns_collate() -> None:
    from torch_geometric.data import Batch

    graphs = [ParameterGraph.from_spec(*HF.CHECKPOINTS[f](0), max_kernel=7) for f in ("bert", "gpt2", "llama", "vit")]
    cnn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    graphs.append(ParameterGraph.from_module(cnn))
    graphs.append(ParameterGraph.from_module(nn.MultiheadAttention(8, 2), max_kernel=7))
    batch = Batch.from_data_list([g.to_pyg() for g in graphs])
    assert batch.num_graphs == 6 and batch.edge_attr.shape == (sum(g.num_edges for g in graphs), 49)
    assert batch.x.shape[1] == 12
    assert torch.equal(batch.batch[batch.edge_index[0]], batch.batch[batch.edge_index[1]])


def test_torch_attention_modules() -> None:
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2)
    g = ParameterGraph.from_module(mha)
    assert g.spec["format"] == "torch" and _same(g.to_state_dict(), dict(mha.state_dict()))
    assert g.summary()["transformer"]["heads"] == 2
    for norm_first in (False, True):
        layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=12, activation="gelu", norm_first=norm_first)
        g = ParameterGraph.from_module(layer)
        assert _same(g.to_state_dict(), dict(layer.state_dict()))
        assert int((g.node_type == int(NodeType.OUTPUT)).sum()) == 8
    with pytest.raises(UnsupportedLayerError):
        ParameterGraph.from_module(nn.MultiheadAttention(8, 2, kdim=4, vdim=4))


def test_save_load_round_trip(tmp_path) -> None:
    spec, sd = HF.gpt2(3, lm_head=True, attn_bias=True, dtype=torch.bfloat16)
    g = ParameterGraph.from_spec(spec, sd, max_kernel=(1, 2), metadata={"run": 1})
    g.save(tmp_path / "g.safetensors")
    h = ParameterGraph.load(tmp_path / "g.safetensors")
    assert h.max_kernel == (1, 2) and h.aliases == g.aliases and h.metadata == {"run": 1}
    assert torch.equal(h.edge_index, g.edge_index) and _same(h.to_state_dict(), sd)
    assert h.to_state_dict()["transformer.h.0.attn.bias"].dtype == torch.bool


def test_bad_input_is_refused() -> None:
    spec, sd = HF.llama(0)
    # a family without a fast path is rebuilt from its config and recorded (zoo.graphs.dataflow) ...
    other = ParameterGraph.from_spec({**spec, "config": {**spec["config"], "model_type": "t5"}}, sd)
    assert other.spec["format"] == "weightzoo.recorded/1" and _same(other.to_state_dict(), sd)
    # ... and a class transformers does not have is refused
    with pytest.raises(SpecError):
        ParameterGraph.from_spec({**spec, "class": "NoSuchModel", "config": {**spec["config"], "model_type": "t5"}}, sd)
    missing = {k: v for k, v in sd.items() if "layers.1.mlp.up_proj" not in k}
    with pytest.raises(SpecError, match="up_proj"):
        ParameterGraph.from_spec(spec, missing)
    shaped = {**sd, "model.layers.0.self_attn.k_proj.weight": torch.zeros(16, 16)}
    with pytest.raises(ShapeMismatchError, match="k_proj"):
        ParameterGraph.from_spec(spec, shaped)
    extra = {**sd, "model.layers.0.adapter.weight": torch.zeros(3)}
    with pytest.raises(UnsupportedLayerError, match="strict=False"):
        ParameterGraph.from_spec(spec, extra)
    g = ParameterGraph.from_spec(spec, extra, strict=False)
    assert g.skipped[0].tensors == ("model.layers.0.adapter.weight",)
    with pytest.raises(SpecError, match="embed_tokens"):
        ParameterGraph.from_spec(spec, {k.replace("embed_tokens", "tok"): v for k, v in sd.items()})
    with pytest.raises(SpecError, match="names"):
        from weightzoo.zoo.graphs import layout_of

        layout_of(spec)
    bad_heads = {**spec, "config": {**spec["config"], "num_key_value_heads": 3}}
    with pytest.raises(SpecError, match="multiple"):
        ParameterGraph.from_spec(bad_heads, sd)


def test_arch_specs_are_unchanged() -> None:
    m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    g = ParameterGraph.from_module(m)
    assert g.max_kernel == (7, 7) and g.spec == spec_from_module(m) and "transformer" not in g.summary()


def test_load_rejects_unknown_vocab(tmp_path) -> None:
    from safetensors.torch import save_file

    p = tmp_path / "g.safetensors"
    ParameterGraph.from_spec(*HF.llama(0)).save(p)
    from safetensors import safe_open

    with safe_open(str(p), "pt") as fh:
        meta, tensors = fh.metadata(), {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    save_file(tensors, str(p), metadata={**meta, "vocab_version": "99"})
    with pytest.raises(CheckpointError, match="vocab version"):
        ParameterGraph.load(p)
