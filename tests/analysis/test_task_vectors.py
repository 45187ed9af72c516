"""Task vectors: algebra (property-based), application, norms and cosines against flattened references,
integer buffers, mismatch reports, LoRA adapters as ΔW = s·B·A, and real checkpoints on disk."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from weightzoo.analysis.task_vectors import TaskVector, block_of
from weightzoo.errors import (
    CheckpointError,
    InvalidOptionError,
    ShapeMismatchError,
    TensorNotFoundError,
    UnsupportedFormatError,
)

SHAPES = {"a.weight": (4, 3), "a.bias": (4,), "b.weight": (2, 4)}


def _model(seed: int, scale: float = 1.0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = {k: scale * torch.randn(s, generator=g) for k, s in SHAPES.items()}
    sd["bn.num_batches_tracked"] = torch.tensor(seed, dtype=torch.int64)
    return sd


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 10_000), st.integers(0, 10_000),
       st.floats(-3, 3, allow_nan=False, allow_infinity=False))
def test_algebra_properties(s0, s1, s2, c):
    base, f1, f2, f3 = _model(s0), _model(s1), _model(s2), _model(s2 + 1)
    a, b, d = TaskVector(f1, base), TaskVector(f2, base), TaskVector(f3, base)
    assert set(a) == set(SHAPES)  # the integer counter is not a difference of anything
    for k in SHAPES:
        ref_a = f1[k] - base[k]
        assert torch.equal(a[k], ref_a)
        assert torch.equal((a + b)[k], ref_a + (f2[k] - base[k]))
        assert torch.equal((a - a)[k], torch.zeros(SHAPES[k]))
        neg = -a
        assert torch.equal((-neg)[k], a[k])
        assert torch.equal((2 * a)[k], (a + a)[k])
        assert torch.allclose((c * a)[k], c * ref_a, atol=1e-6)
        assert torch.allclose(((a + b) + d)[k], (a + (b + d))[k], atol=1e-6)
        assert torch.allclose((a / 4)[k], ref_a / 4, atol=1e-7)
    assert torch.allclose(sum([a, b])["a.weight"], (a + b)["a.weight"])
    # applying a task vector to its base gives the fine-tune back (to rounding); buffers come from the base
    applied = a.apply_to(base)
    for k in SHAPES:
        assert torch.allclose(applied[k], f1[k], atol=1e-6)
    assert torch.equal(applied["bn.num_batches_tracked"], base["bn.num_batches_tracked"])
    half = a.apply_to(base, scale=0.5)
    assert torch.allclose(half["a.bias"], base["a.bias"] + 0.5 * (f1["a.bias"] - base["a.bias"]), atol=1e-6)


def test_norms_and_cosines_match_flattened_reference():
    base, f1, f2 = _model(1), _model(2), _model(3)
    a, b = TaskVector(f1, base), TaskVector(f2, base)
    va = torch.cat([(f1[k] - base[k]).flatten() for k in SHAPES]).double()
    vb = torch.cat([(f2[k] - base[k]).flatten() for k in SHAPES]).double()
    assert a.norm() == pytest.approx(float(va.norm()), rel=1e-9)
    assert a.cosine(b) == pytest.approx(float(va @ vb / (va.norm() * vb.norm())), rel=1e-9)
    assert a.cosine(a) == pytest.approx(1.0) and a.cosine(-a) == pytest.approx(-1.0)
    per = a.cosine_per_block(b)
    x, y = (f1["b.weight"] - base["b.weight"]).flatten().double(), (f2["b.weight"] - base["b.weight"]).flatten().double()
    assert per["b.weight"] == pytest.approx(float(x @ y / (x.norm() * y.norm())))
    layers = a.cosine_per_block(b, blocks=block_of)
    assert set(layers) == {"a", "b"}
    xa = torch.cat([(f1[k] - base[k]).flatten() for k in ("a.weight", "a.bias")]).double()
    ya = torch.cat([(f2[k] - base[k]).flatten() for k in ("a.weight", "a.bias")]).double()
    assert layers["a"] == pytest.approx(float(xa @ ya / (xa.norm() * ya.norm())))
    assert a.block_norms(block_of)["a"] == pytest.approx(float(xa.norm()))


def test_real_checkpoints_and_inputs_untouched(minilm_dir, tmp_path):
    base = load_file(str(minilm_dir / "model.safetensors"))
    keep = [k for k in base if k.startswith("encoder.layer.5.") or k == "embeddings.position_ids"]
    base = {k: base[k] for k in keep}
    g = torch.Generator().manual_seed(0)
    ft = {k: (v + 0.01 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v) for k, v in base.items()}
    save_file(base, str(tmp_path / "base.safetensors"))
    save_file(ft, str(tmp_path / "ft.safetensors"))
    tv = TaskVector(tmp_path / "ft.safetensors", tmp_path / "base.safetensors")
    assert "embeddings.position_ids" not in tv and tv.report.passthrough == ["embeddings.position_ids"]
    k = "encoder.layer.5.attention.self.query.weight"
    assert torch.equal(tv[k], ft[k] - base[k])
    out = tmp_path / "edited.safetensors"
    tv.apply_to(tmp_path / "base.safetensors", scale=-1.0, out=out)  # task negation, written streaming
    got = load_file(str(out))
    assert torch.allclose(got[k], base[k] - (ft[k] - base[k]), atol=1e-6)
    assert torch.equal(got["embeddings.position_ids"], base["embeddings.position_ids"])
    # in-memory inputs are never modified
    before = {kk: v.clone() for kk, v in ft.items()}
    tv2 = TaskVector(ft, base, cache=True)
    _ = [tv2[kk] for kk in tv2], [(tv2 * 3)[kk].add_(1) for kk in tv2], [tv2[kk] for kk in tv2]
    assert all(torch.equal(before[kk], ft[kk]) for kk in ft)
    assert torch.equal(tv2[k], ft[k] - base[k])


def test_module_inputs_and_bf16_mix(digits_mlp):
    base = {k: v.clone() for k, v in digits_mlp.state_dict().items()}
    ft = {k: (v + 0.1).to(torch.bfloat16) for k, v in base.items()}
    tv = TaskVector(ft, digits_mlp)
    k = "1.weight"
    assert tv[k].dtype == torch.float32
    assert torch.equal(tv[k], ft[k].float() - base[k])
    out = tv.apply_to(digits_mlp, dtype=torch.bfloat16)
    assert out[k].dtype == torch.bfloat16 and torch.equal(out[k], (base[k] + tv[k]).to(torch.bfloat16))


def test_mismatch_errors_and_policies():
    base, ft = _model(0), _model(1)
    bad = dict(ft, **{"a.weight": torch.zeros(3, 4)})
    with pytest.raises(ShapeMismatchError, match="a.weight") as ei:
        TaskVector(bad, base)
    assert ei.value.mismatches[0][1:] == ((4, 3), (3, 4))
    partial = {k: v for k, v in ft.items() if k != "a.bias"}
    with pytest.raises(TensorNotFoundError, match="a.bias"):
        TaskVector(partial, base)
    assert "a.bias" not in TaskVector(partial, base, missing="skip")
    kb = TaskVector(partial, base, missing="keep-base")
    assert torch.equal(kb["a.bias"], torch.zeros(4))
    with pytest.raises(InvalidOptionError, match="policy"):
        TaskVector(ft, base, missing="ignore")
    other = TaskVector({"a.weight": torch.zeros(2, 2)}, {"a.weight": torch.ones(2, 2)})
    with pytest.raises(ShapeMismatchError):
        TaskVector(ft, base) + other


# --- LoRA -------------------------------------------------------------------------------------------


def _write_adapter(folder, tensors, config):
    folder.mkdir()
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("rslora", [False, True])
def test_lora_linear_delta_matches_forward(tmp_path, rslora):
    torch.manual_seed(0)
    lin = torch.nn.Linear(6, 5)
    base = {"enc.q.weight": lin.weight.detach().clone(), "enc.q.bias": lin.bias.detach().clone()}
    r, alpha = 3, 8
    A, B = torch.randn(r, 6), torch.randn(5, r)
    _write_adapter(tmp_path / "ad", {"base_model.model.enc.q.lora_A.weight": A,
                                     "base_model.model.enc.q.lora_B.weight": B},
                   {"r": r, "lora_alpha": alpha, "use_rslora": rslora, "peft_type": "LORA"})
    tv = TaskVector.from_lora(tmp_path / "ad", base)
    s = alpha / math.sqrt(r) if rslora else alpha / r
    assert list(tv) == ["enc.q.weight"]
    assert torch.allclose(tv["enc.q.weight"], s * B @ A, atol=1e-6)
    # the merged weight reproduces the adapter's forward pass: W x + b + s B A x
    x = torch.randn(7, 6)
    merged = tv.apply_to(base)
    want = x @ base["enc.q.weight"].T + base["enc.q.bias"] + s * (x @ A.T) @ B.T
    assert torch.allclose(x @ merged["enc.q.weight"].T + merged["enc.q.bias"], want, atol=1e-5)


def test_lora_embedding_conv_fan_in_and_full_tensors(tmp_path):
    g = torch.Generator().manual_seed(1)
    base = {"emb.weight": torch.randn(10, 4, generator=g), "conv.weight": torch.randn(8, 3, 3, 3, generator=g),
            "c1d.weight": torch.randn(6, 5, generator=g), "head.weight": torch.randn(2, 4, generator=g)}
    r = 2
    t = {"base_model.model.emb.lora_embedding_A": torch.randn(r, 10, generator=g),
         "base_model.model.emb.lora_embedding_B": torch.randn(4, r, generator=g),
         "base_model.model.conv.lora_A.weight": torch.randn(r, 3, 3, 3, generator=g),
         "base_model.model.conv.lora_B.weight": torch.randn(8, r, 1, 1, generator=g),
         "base_model.model.c1d.lora_A.weight": torch.randn(r, 6, generator=g),
         "base_model.model.c1d.lora_B.weight": torch.randn(5, r, generator=g),
         "base_model.model.head.modules_to_save.default.weight": base["head.weight"] + 1.0}
    cfg = {"r": r, "lora_alpha": 4, "fan_in_fan_out": False, "alpha_pattern": {"conv": 2}}
    tv = TaskVector.from_lora({k: v for k, v in t.items() if "c1d" not in k}, base, config=cfg)
    emb = tv["emb.weight"]
    assert emb.shape == (10, 4)
    assert torch.allclose(emb, 2.0 * (t["base_model.model.emb.lora_embedding_B"] @ t["base_model.model.emb.lora_embedding_A"]).T)
    # conv ΔW equals composing the two convolutions (alpha_pattern gives conv alpha 2 -> s = 1)
    x = torch.randn(1, 3, 7, 7, generator=g)
    A, B = t["base_model.model.conv.lora_A.weight"], t["base_model.model.conv.lora_B.weight"]
    two_step = torch.nn.functional.conv2d(torch.nn.functional.conv2d(x, A), B)
    assert torch.allclose(torch.nn.functional.conv2d(x, tv["conv.weight"]), two_step, atol=1e-4)
    assert torch.allclose(tv["head.weight"], torch.ones(2, 4))  # a full copy becomes saved - base
    # GPT-2 style Conv1D weights are stored (in, out): fan_in_fan_out transposes ΔW
    tv2 = TaskVector.from_lora({k: v for k, v in t.items() if "c1d" in k}, {"c1d.weight": base["c1d.weight"]},
                               config={"r": r, "lora_alpha": 4, "fan_in_fan_out": True})
    assert torch.allclose(tv2["c1d.weight"], 2.0 * (t["base_model.model.c1d.lora_B.weight"]
                                                   @ t["base_model.model.c1d.lora_A.weight"]).T)


def test_lora_errors(tmp_path):
    base = {"q.weight": torch.zeros(5, 6)}
    with pytest.raises(ShapeMismatchError, match="q.weight"):
        TaskVector.from_lora({"base_model.model.q.lora_A.weight": torch.zeros(2, 7),
                              "base_model.model.q.lora_B.weight": torch.zeros(5, 2)}, base, config={"r": 2})
    with pytest.raises(UnsupportedFormatError, match="DoRA"):
        TaskVector.from_lora({"base_model.model.q.lora_A.weight": torch.zeros(2, 6)}, base,
                             config={"r": 2, "use_dora": True})
    with pytest.raises(CheckpointError, match="one of its LoRA factors"):
        TaskVector.from_lora({"base_model.model.q.lora_A.weight": torch.zeros(2, 6)}, base, config={"r": 2})
