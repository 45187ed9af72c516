"""ComputeGraph of Hugging Face models built from configs (no weights): BERT, GPT-2, ViT, ResNet, ConvNeXt."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from weightzoo.zoo.arch import build_module
from weightzoo.zoo.graphs import ComputeGraph, OpType

transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.slow  # importing transformers and building five models takes seconds


def _small() -> dict[str, torch.nn.Module]:
    t = transformers
    torch.manual_seed(0)
    return {
        "bert": t.BertModel(t.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                         intermediate_size=64, vocab_size=100, max_position_embeddings=64)),
        "gpt2": t.GPT2LMHeadModel(t.GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=100, n_positions=64,
                                               bos_token_id=0, eos_token_id=0)),
        "vit": t.ViTModel(t.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                      intermediate_size=64, image_size=32, patch_size=8)),
        "resnet": t.ResNetModel(t.ResNetConfig(embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1],
                                               layer_type="bottleneck")),
        "convnext": t.ConvNextModel(t.ConvNextConfig(hidden_sizes=[16, 32], depths=[1, 1], num_stages=2)),
    }


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    return _small()


@pytest.mark.parametrize("name", ["bert", "gpt2", "vit", "resnet", "convnext"])
def test_hf_models_are_fully_covered(models, name: str) -> None:
    m = models[name]
    g = ComputeGraph.record(m)
    assert g.coverage.complete, g.coverage.unowned
    assert set(g.coverage.owners) == {n for n, _ in m.named_parameters(remove_duplicate=False)}
    assert not g.summary()["unknown_ops"]
    ops = Counter(g.op_names())
    if name in ("bert", "gpt2", "vit"):
        assert ops["ATTENTION"] == 2 and ops["LAYER_NORM"] >= 4
    if name == "resnet":
        assert ops["CONV"] + ops["CONV_POINTWISE"] == sum(isinstance(x, torch.nn.Conv2d) for x in m.modules())
        assert ops["BATCH_NORM"] == sum(isinstance(x, torch.nn.BatchNorm2d) for x in m.modules())
    if name == "convnext":
        assert ops["CONV_DEPTHWISE"] == 2 and ops["GLOBAL_AVG_POOL"] == 1


def test_bert_main_path_and_attention_ownership(models) -> None:
    g = ComputeGraph.record(models["bert"])
    attn = [n for n in g.nodes if n.op is OpType.ATTENTION]
    assert [n.path for n in attn] == ["encoder.layer.0.attention.self", "encoder.layer.1.attention.self"]
    assert [p for p, _ in attn[0].params] == [f"encoder.layer.0.attention.self.{k}.{w}"
                                              for k in ("query", "key", "value") for w in ("weight", "bias")]
    main = [g.nodes[i].op.name for i in g.main_path()]
    block = ["ATTENTION", "LINEAR", "DROPOUT", "ADD", "LAYER_NORM", "LINEAR", "GELU", "LINEAR", "DROPOUT", "ADD",
             "LAYER_NORM"]
    assert main == ["INPUT", "EMBEDDING", "ADD", "ADD", "LAYER_NORM", "DROPOUT", *block, *block,
                    "INDEX", "LINEAR", "TANH", "OUTPUT"]
    assert g.input_shapes == [(1, 16)]  # min(max_position_embeddings, 16) tokens


def test_gpt2_tied_head_and_expanded_attention(models) -> None:
    m = models["gpt2"]
    g = ComputeGraph.record(m, expand_attention=True)
    assert g.coverage.complete and "ATTENTION" not in g.op_names()
    assert g.coverage.shared["lm_head.weight"] == g.coverage.shared["transformer.wte.weight"]
    ops = Counter(g.op_names())
    assert ops["SOFTMAX"] == 2 and ops["MATMUL"] == 4  # per layer: QKᵀ and ·V of the SDPA call


@pytest.mark.slow  # torch.export takes seconds per model
def test_export_backend_on_bert(models) -> None:
    g = ComputeGraph.record(models["bert"], backend="export")
    assert g.coverage.complete and g.backend == "export"
    assert Counter(g.op_names())["SOFTMAX"] == 2 and "ATTENTION" not in g.op_names()


def test_hf_spec_builds_and_records() -> None:
    cfg = transformers.ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                 image_size=16, patch_size=8).to_dict()
    spec = {"format": "hf", "class": "ViTModel", "config": cfg}
    g = ComputeGraph.from_spec(spec)
    assert g.coverage.complete and g.input_shapes == [(1, 3, 16, 16)]
    assert g.coverage.total == len(list(build_module(spec).named_parameters()))
