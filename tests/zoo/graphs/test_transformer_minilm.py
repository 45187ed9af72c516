"""The real all-MiniLM-L6-v2 snapshot through the zoo, the graph CLI and transformers models (optional)."""

from __future__ import annotations

import json

import pytest
import torch

from weightzoo.cli import main
from weightzoo.zoo.graphs import NodeType, ParameterGraph


@pytest.mark.slow  # ingest 91 MB + a 22.7M-edge graph: ~10 s on 2 shared cores
def test_minilm_from_the_zoo_round_trips_bit_exactly(minilm_dir, tmp_path, capsys) -> None:
    from weightzoo.zoo.store import Zoo

    with Zoo.open(tmp_path / "zoo") as z:
        rec = z.ingest(minilm_dir, name="minilm")
        assert rec.spec["format"] == "hf" and rec.spec["config"]["model_type"] == "bert"
        sd = z.state_dict("minilm")
        g = ParameterGraph.from_spec(rec.spec, sd)
        back = g.to_state_dict()
        assert list(back) == list(sd)
        for k in sd:  # names without the "bert." prefix, the int64 position_ids buffer included
            t = sd[k]
            assert back[k].dtype == t.dtype and torch.equal(back[k], t), k
    info = g.summary()["transformer"]
    assert (info["family"], info["blocks"], info["heads"], info["head_dim"]) == ("bert", 6, 12, 32)
    assert g.num_parameters == 22_713_728
    # a bare encoder: its last LayerNorm and the pooler are the outputs, the stream never moves
    assert int((g.node_type == int(NodeType.OUTPUT)).sum()) == 2 * 384
    assert not g.layout.info["stream_permutable"]
    out = tmp_path / "g.safetensors"
    assert main(["graph", "minilm", "--zoo", str(tmp_path / "zoo"), "--kind", "parameter", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["parameters"] == 22_713_728 and summary["max_kernel"] == [1, 1]
    assert summary["edges"] == g.num_edges and summary["transformer"]["family"] == "bert"
    del out


@pytest.mark.parametrize("family", ["gpt2", "llama", "qwen2", "vit"])
def test_hub_snapshots_from_the_zoo(family: str, tmp_path) -> None:
    import importlib.util
    from pathlib import Path

    from weightzoo.zoo.store import Zoo

    spec_ = importlib.util.spec_from_file_location("_hf_checkpoints", Path(__file__).with_name("_hf_checkpoints.py"))
    hf = importlib.util.module_from_spec(spec_)  # type: ignore[arg-type]
    spec_.loader.exec_module(hf)  # type: ignore[union-attr]
    spec, sd = hf.CHECKPOINTS[family](4, dtype=torch.bfloat16)
    folder = hf.write_snapshot(tmp_path / family, spec, sd)
    with Zoo.open(tmp_path / "zoo") as z:
        rec = z.ingest(folder, name=family)
        g = ParameterGraph.from_spec(rec.spec, z.state_dict(family))
        stored = z.state_dict(family)
        back = g.to_state_dict()
        assert sorted(back) == sorted(sd)
        assert all(back[k].dtype == torch.bfloat16 and torch.equal(back[k], stored[k]) for k in sd)


def test_bert_gamma_beta_layernorm_names() -> None:
    import importlib.util
    from pathlib import Path

    spec_ = importlib.util.spec_from_file_location("_hf_checkpoints", Path(__file__).with_name("_hf_checkpoints.py"))
    hf = importlib.util.module_from_spec(spec_)  # type: ignore[arg-type]
    spec_.loader.exec_module(hf)  # type: ignore[union-attr]
    spec, sd = hf.bert(0)
    old = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
           for k, v in sd.items()}
    g = ParameterGraph.from_spec(spec, old)
    back = g.to_state_dict()
    assert list(back) == list(old) and all(torch.equal(back[k], old[k]) for k in old)


@pytest.mark.slow  # imports transformers (3-10 s)
def test_transformers_models_from_module() -> None:
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(vocab_size=30, hidden_size=16, intermediate_size=20, num_hidden_layers=1,
                                   num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    torch.manual_seed(0)
    for model in (transformers.LlamaForCausalLM(cfg),
                  transformers.ViTModel(transformers.ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                                               intermediate_size=20, image_size=8, patch_size=4))):
        sd = model.state_dict()
        g = ParameterGraph.from_module(model)
        back = g.to_state_dict()
        assert list(back) == list(sd) and all(torch.equal(back[k], sd[k]) for k in sd)
    assert ParameterGraph.from_module(transformers.LlamaForCausalLM(cfg)).aliases == {
        "lm_head.weight": "model.embed_tokens.weight"}
