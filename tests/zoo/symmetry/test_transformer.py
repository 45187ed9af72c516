"""Transformer symmetries: head / within-head / MLP / residual-stream permutations keep the function.

Reference forward passes come from ``transformers`` models loaded (``from_pretrained``) from small random
checkpoints written in the Hub layouts; negative controls show which permutations are *not* symmetries.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from weightzoo.errors import UnsupportedLayerError
from weightzoo.zoo.graphs import ParameterGraph, layout_of
from weightzoo.zoo.graphs.hf_families import module_spec
from weightzoo.zoo.symmetry import align, flip_signs, node_permutation, permute_hidden
from weightzoo.zoo.symmetry.transformer import apply_transformer_permutation, sample_transformer_perms

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

_spec = importlib.util.spec_from_file_location(
    "_hf_checkpoints", Path(__file__).parents[1] / "graphs" / "_hf_checkpoints.py")
HF = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(HF)  # type: ignore[union-attr]

FAMILIES = list(HF.CHECKPOINTS)
_MODELS: dict[str, nn.Module] = {}


def _model(family: str, tmp: Path) -> nn.Module:
    """The family's Hub-layout checkpoint loaded by transformers (no missing or unexpected keys)."""
    if family not in _MODELS:
        spec, sd = HF.CHECKPOINTS[family](0)
        folder = HF.write_snapshot(tmp / family, spec, sd)
        model, info = getattr(transformers, spec["class"]).from_pretrained(folder, output_loading_info=True)
        assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
        _MODELS[family] = model.eval()
    return _MODELS[family]


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hf")


def _out(model: nn.Module) -> torch.Tensor:
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        if model.config.model_type == "vit":
            o = model(pixel_values=torch.randn(2, HF.CH, HF.IMG, HF.IMG, generator=g))
        else:
            o = model(input_ids=torch.randint(0, HF.VOCAB, (2, 7), generator=g))
    return o.logits if hasattr(o, "logits") else o.last_hidden_state


def _permuted(model: nn.Module, perms_of) -> nn.Module:
    sd = model.state_dict()
    layout = layout_of(module_spec(model), list(sd))
    new = copy.deepcopy(model)
    new.load_state_dict(apply_transformer_permutation(layout, sd, perms_of(layout)), strict=True)
    return new


@pytest.mark.parametrize("family", FAMILIES)
@settings(max_examples=3, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**16))
def test_permute_hidden_preserves_function(family: str, seed: int, tmp) -> None:
    model = _model(family, tmp)
    new = permute_hidden(model, torch.Generator().manual_seed(seed))
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, new.state_dict()[k])]
    assert len(changed) >= 10  # heads, MLP units (and the stream where it may move) really moved
    torch.testing.assert_close(_out(new), _out(model), atol=1e-4, rtol=0)


@pytest.mark.parametrize("family", ["bert", "gpt2", "llama", "vit"])
def test_hub_state_dicts_permute_too(family: str, tmp) -> None:
    spec, sd = HF.CHECKPOINTS[family](0)
    sd2 = permute_hidden(sd, torch.Generator().manual_seed(1), spec=spec)
    folder = HF.write_snapshot(tmp / f"{family}-perm", spec, sd2)
    permuted = getattr(transformers, spec["class"]).from_pretrained(folder).eval()
    torch.testing.assert_close(_out(permuted), _out(_model(family, tmp)), atol=1e-4, rtol=0)


@pytest.mark.parametrize("kind", ["heads", "within_heads", "mlp", "stream"])
@pytest.mark.parametrize("family", ["gpt2", "mistral", "qwen2"])
def test_each_kind_alone_is_a_symmetry(kind: str, family: str, tmp) -> None:
    model = _model(family, tmp)
    flags = {k: k == kind for k in ("heads", "within_heads", "mlp", "stream")}
    new = _permuted(model, lambda lay: sample_transformer_perms(lay, torch.Generator().manual_seed(3), **flags))
    torch.testing.assert_close(_out(new), _out(model), atol=1e-4, rtol=0)


def _qk_within_head(layout, seed: int = 0) -> dict[int, torch.Tensor]:
    """The same non-identity permutation of q/k dims inside every head of block 0."""
    a = layout.info["attention"][0]
    dh = a["head_dim"]
    psi = torch.roll(torch.arange(dh), 1)
    return {a["q"]: torch.cat([h * dh + psi for h in range(a["heads"])]),
            a["k"]: torch.cat([g * dh + psi for g in range(a["kv_heads"])])}


def test_negative_control_rotary_forbids_qk_permutations_inside_heads(tmp) -> None:
    llama = _model("llama", tmp)
    assert (_out(_permuted(llama, _qk_within_head)) - _out(llama)).abs().max() > 1e-3  # rotary: not a symmetry
    gpt2 = _model("gpt2", tmp)  # the same permutation without rotary embeddings is one
    torch.testing.assert_close(_out(_permuted(gpt2, _qk_within_head)), _out(gpt2), atol=1e-4, rtol=0)
    layout = layout_of(module_spec(llama), list(llama.state_dict()))
    perms = sample_transformer_perms(layout, torch.Generator().manual_seed(0), heads=False, mlp=False, stream=False)
    a = layout.info["attention"][0]
    assert torch.equal(perms[a["q"]], torch.arange(len(perms[a["q"]])))  # permute_hidden never draws one
    assert not torch.equal(perms[a["v"]], torch.arange(len(perms[a["v"]])))  # v/o inside heads still move


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_negative_control_inconsistent_permutations_change_the_output(family: str, tmp) -> None:
    model = _model(family, tmp)
    ref = _out(model)

    sd = model.state_dict()
    layout = layout_of(module_spec(model), list(sd))
    full = sample_transformer_perms(layout, torch.Generator().manual_seed(5))
    a, m = layout.info["attention"][0], layout.info["mlp"][0]
    for key, gi in (("q", a["q"]), ("mlp", m["hidden"][0]), ("stream", layout.info["stream"][0])):
        moved = apply_transformer_permutation(layout, sd, {gi: full[gi]})
        for s in layout.slots:  # the tensors reading these neurons stay put: an inconsistent permutation
            if s.role == "weight" and s.in_group == gi:
                moved[s.name] = sd[s.name]
        new = copy.deepcopy(model)
        new.load_state_dict(moved)
        assert (_out(new) - ref).abs().max() > 1e-3, key


def test_bare_encoder_keeps_its_stream(tmp) -> None:
    model = _model("bert_base_minilm_style", tmp)  # BertModel: the stream itself is the output
    layout = layout_of(module_spec(model), list(model.state_dict()))
    assert not layout.info["stream_permutable"]
    stream = {gi: torch.randperm(HF.D, generator=torch.Generator().manual_seed(0)) for gi in layout.info["stream"]}
    moved = _permuted(model, lambda lay: stream)
    assert (_out(moved) - _out(model)).abs().max() > 1e-3  # outputs come out permuted: not a symmetry


@pytest.mark.parametrize("family,mk", [("llama", (1, 2)), ("gpt2", (1, 1)), ("vit", (1, 3))])
def test_graph_of_permuted_network_is_the_graph_relabelled(family: str, mk) -> None:
    spec, sd = HF.CHECKPOINTS[family](0)
    g = ParameterGraph.from_spec(spec, sd, max_kernel=mk)
    sd2, perms = permute_hidden(sd, torch.Generator().manual_seed(2), spec=spec, return_perms=True)
    h = ParameterGraph.from_spec(spec, sd2, max_kernel=mk)
    m = node_permutation(g.layout, perms)

    def canon(ei: torch.Tensor, attr: torch.Tensor, et: torch.Tensor) -> list:
        return sorted(zip(ei[0].tolist(), ei[1].tolist(), et.tolist(), attr.tolist()))

    assert canon(m[g.edge_index], g.edge_attr, g.edge_type) == canon(h.edge_index, h.edge_attr, h.edge_type)
    x = torch.empty_like(g.node_features())
    x[m] = g.node_features()
    assert torch.equal(x, h.node_features())


@settings(max_examples=3, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**16))
def test_torch_attention_modules(seed: int) -> None:
    torch.manual_seed(seed)
    x = torch.randn(5, 2, 8)
    mha = nn.MultiheadAttention(8, 2).eval()
    p = permute_hidden(mha, torch.Generator().manual_seed(seed))
    assert not torch.equal(p.in_proj_weight, mha.in_proj_weight)
    torch.testing.assert_close(p(x, x, x)[0], mha(x, x, x)[0], atol=1e-4, rtol=0)
    for norm_first in (False, True):
        layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=12, norm_first=norm_first, dropout=0.0).eval()
        q = permute_hidden(layer, torch.Generator().manual_seed(seed))
        assert not torch.equal(q.linear1.weight, layer.linear1.weight)
        torch.testing.assert_close(q(x), layer(x), atol=1e-4, rtol=0)


def test_sign_scale_and_align_refuse_transformers() -> None:
    mha = nn.MultiheadAttention(8, 2)
    with pytest.raises(UnsupportedLayerError, match="permute_hidden"):
        flip_signs(mha)
    with pytest.raises(UnsupportedLayerError, match="permute_hidden"):
        align(mha, mha)
