"""Which files hold a repository's weights, and which lineage it declares (pure functions)."""

from __future__ import annotations

import pytest

from weightzoo.zoo.hub.headers import WeightPlan, select_weights
from weightzoo.zoo.hub.lineage import LineageEdge, declared_lineage


@pytest.mark.parametrize("files, layout, parts", [
    (["model.safetensors", "pytorch_model.bin", "config.json"], "single", {"": "model.safetensors"}),
    (["model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
      "model.safetensors"], "sharded", {"": "model.safetensors.index.json"}),
    (["adapter_model.safetensors", "adapter_config.json"], "adapter", {"": "adapter_model.safetensors"}),
    (["model.fp16.safetensors", "weights.safetensors"], "single", {"": "weights.safetensors"}),
    (["a.safetensors", "b.safetensors"], "components", {"a": "a.safetensors", "b": "b.safetensors"}),
    (["model_index.json", "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
      "text_encoder/model.safetensors.index.json", "text_encoder/model-00001-of-00001.safetensors",
      "scheduler/scheduler_config.json", "a/b/model.safetensors"], "components",
     {"unet": "unet/diffusion_pytorch_model.safetensors", "text_encoder": "text_encoder/model.safetensors.index.json"}),
])
def test_select_weights(files: list[str], layout: str, parts: dict[str, str]) -> None:
    plan = select_weights(files)
    assert (plan.layout, plan.parts) == (layout, parts)


def test_pickles_and_nothing() -> None:
    plan = select_weights(["pytorch_model.bin", "training_args.bin", "optimizer.pt", "config.json"])
    assert plan == WeightPlan("pickle", pickles=["pytorch_model.bin"])
    assert select_weights(["README.md", "model.onnx", "tf_model.h5", "sub/pytorch_model.bin"]).layout == "none"


def test_download_patterns_keep_configs_and_honour_include() -> None:
    files = ["config.json", "model.safetensors", "tokenizer.json", "adapter_config.json"]
    plan = select_weights(files)
    assert plan.download_patterns(files) == ["adapter_config.json", "config.json", "model.safetensors"]
    files = ["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
             "vae/diffusion_pytorch_model.safetensors", "vae/config.json"]
    plan = select_weights(files)
    assert plan.download_patterns(files, include=["unet/*.safetensors"]) == [
        "model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "vae/config.json"]


def test_lineage_from_card_and_tags() -> None:
    edges = declared_lineage("me/ft", {"base_model": "org/base"}, ["base_model:finetune:org/base"])
    assert edges == [LineageEdge("me/ft", "org/base", "finetune", "card")]
    edges = declared_lineage("me/q", None, ["base_model:org/base", "base_model:quantized:org/base"])
    assert edges == [LineageEdge("me/q", "org/base", "quantized", "tag")]
    edges = declared_lineage("me/m", {"base_model": ["a/x", "b/y"]}, [])
    assert {(e.parent, e.relation) for e in edges} == {("a/x", "merge"), ("b/y", "merge")}
    edges = declared_lineage("me/lora", {"base_model": "org/base"}, [], adapter=True)
    assert edges[0].relation == "adapter" and edges[0].evidence == {"source": "card"}
    rel = declared_lineage("me/x", {"base_model": "org/base", "base_model_relation": "quantized"}, [])
    assert rel[0].relation == "quantized"


@pytest.mark.parametrize("card, tags", [
    ({"base_model": "me/self"}, []),                      # a model is not its own parent
    ({"base_model": "not a repo id"}, []),                # free text in the card
    ({"base_model": 42}, ["base_model:", "base_model:merge:"]),
    ({"base_model_relation": "finetune"}, ["license:mit"]),
])
def test_lineage_ignores_junk(card, tags) -> None:
    assert declared_lineage("me/self", card, tags) == []
