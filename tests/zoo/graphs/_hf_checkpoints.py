"""Small random checkpoints in the real Hugging Face layouts (tensor names and config keys as on the Hub).

Written by hand (no ``transformers`` import) so the graph tests run without it; the symmetry tests load
them with ``transformers.from_pretrained`` when it is installed, which checks the names against the
library (no missing or unexpected keys).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

D, HEADS, LAYERS, INNER, VOCAB, POS = 16, 4, 2, 24, 37, 12


def _lin(sd: dict, g: torch.Generator, name: str, n_out: int, n_in: int, bias: bool = True, *,
         transposed: bool = False, dtype: torch.dtype = torch.float32) -> None:
    shape = (n_in, n_out) if transposed else (n_out, n_in)
    sd[f"{name}.weight"] = (torch.randn(shape, generator=g) / n_in ** 0.5).to(dtype)
    if bias:
        sd[f"{name}.bias"] = (0.1 * torch.randn(n_out, generator=g)).to(dtype)


def _norm(sd: dict, g: torch.Generator, name: str, d: int, bias: bool = True, dtype: torch.dtype = torch.float32) -> None:
    sd[f"{name}.weight"] = (1 + 0.2 * torch.randn(d, generator=g)).to(dtype)
    if bias:
        sd[f"{name}.bias"] = (0.1 * torch.randn(d, generator=g)).to(dtype)


def _emb(sd: dict, g: torch.Generator, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> None:
    sd[name] = (0.5 * torch.randn(shape, generator=g)).to(dtype)


def bert(seed: int = 0, *, prefix: str = "bert.", classifier: int | None = 3, pooler: bool = True,
         position_ids: bool = False, dtype: torch.dtype = torch.float32) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    g, sd = torch.Generator().manual_seed(seed), {}
    p = prefix
    _emb(sd, g, f"{p}embeddings.word_embeddings.weight", (VOCAB, D), dtype)
    _emb(sd, g, f"{p}embeddings.position_embeddings.weight", (POS, D), dtype)
    _emb(sd, g, f"{p}embeddings.token_type_embeddings.weight", (2, D), dtype)
    if position_ids:
        sd[f"{p}embeddings.position_ids"] = torch.arange(POS).unsqueeze(0)
    _norm(sd, g, f"{p}embeddings.LayerNorm", D, dtype=dtype)
    for i in range(LAYERS):
        lp = f"{p}encoder.layer.{i}."
        for n in ("query", "key", "value"):
            _lin(sd, g, f"{lp}attention.self.{n}", D, D, dtype=dtype)
        _lin(sd, g, f"{lp}attention.output.dense", D, D, dtype=dtype)
        _norm(sd, g, f"{lp}attention.output.LayerNorm", D, dtype=dtype)
        _lin(sd, g, f"{lp}intermediate.dense", INNER, D, dtype=dtype)
        _lin(sd, g, f"{lp}output.dense", D, INNER, dtype=dtype)
        _norm(sd, g, f"{lp}output.LayerNorm", D, dtype=dtype)
    if pooler:
        _lin(sd, g, f"{p}pooler.dense", D, D, dtype=dtype)
    arch = "BertModel"
    config: dict[str, Any] = {"model_type": "bert", "vocab_size": VOCAB, "hidden_size": D, "num_hidden_layers": LAYERS,
                              "num_attention_heads": HEADS, "intermediate_size": INNER, "hidden_act": "gelu",
                              "max_position_embeddings": POS, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
                              "position_embedding_type": "absolute", "hidden_dropout_prob": 0.0,
                              "attention_probs_dropout_prob": 0.0, "pad_token_id": 0}
    if classifier:
        _lin(sd, g, "classifier", classifier, D, dtype=dtype)
        arch = "BertForSequenceClassification"
        config["id2label"] = {str(i): f"LABEL_{i}" for i in range(classifier)}
        config["label2id"] = {f"LABEL_{i}": i for i in range(classifier)}
    config["architectures"] = [arch]
    return {"format": "hf", "class": arch, "config": config}, sd


def gpt2(seed: int = 0, *, prefix: str = "transformer.", lm_head: bool = False, attn_bias: bool = False,
         dtype: torch.dtype = torch.float32) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    g, sd = torch.Generator().manual_seed(seed), {}
    p = prefix
    _emb(sd, g, f"{p}wte.weight", (VOCAB, D), dtype)
    _emb(sd, g, f"{p}wpe.weight", (POS, D), dtype)
    for i in range(LAYERS):
        lp = f"{p}h.{i}."
        _norm(sd, g, f"{lp}ln_1", D, dtype=dtype)
        _lin(sd, g, f"{lp}attn.c_attn", 3 * D, D, transposed=True, dtype=dtype)
        _lin(sd, g, f"{lp}attn.c_proj", D, D, transposed=True, dtype=dtype)
        if attn_bias:
            sd[f"{lp}attn.bias"] = torch.tril(torch.ones(POS, POS, dtype=torch.bool)).view(1, 1, POS, POS)
        _norm(sd, g, f"{lp}ln_2", D, dtype=dtype)
        _lin(sd, g, f"{lp}mlp.c_fc", 4 * D, D, transposed=True, dtype=dtype)
        _lin(sd, g, f"{lp}mlp.c_proj", D, 4 * D, transposed=True, dtype=dtype)
    _norm(sd, g, f"{p}ln_f", D, dtype=dtype)
    if lm_head:
        sd["lm_head.weight"] = sd[f"{p}wte.weight"]
    config = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": VOCAB, "n_embd": D,
              "n_layer": LAYERS, "n_head": HEADS, "n_positions": POS, "n_inner": None,
              "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, "resid_pdrop": 0.0, "embd_pdrop": 0.0,
              "attn_pdrop": 0.0, "bos_token_id": 0, "eos_token_id": 0}
    return {"format": "hf", "class": "GPT2LMHeadModel", "config": config}, sd


def llama(seed: int = 0, *, family: str = "llama", kv_heads: int = 2, tied: bool = False, bias: bool = False,
          dtype: torch.dtype = torch.float32) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``llama``/``mistral``/``qwen2`` CausalLM (prefix ``model.``); qwen2 has q/k/v biases."""
    g, sd = torch.Generator().manual_seed(seed), {}
    dh = D // HEADS
    bias = bias or family == "qwen2"
    _emb(sd, g, "model.embed_tokens.weight", (VOCAB, D), dtype)
    for i in range(LAYERS):
        lp = f"model.layers.{i}."
        _lin(sd, g, f"{lp}self_attn.q_proj", HEADS * dh, D, bias, dtype=dtype)
        _lin(sd, g, f"{lp}self_attn.k_proj", kv_heads * dh, D, bias, dtype=dtype)
        _lin(sd, g, f"{lp}self_attn.v_proj", kv_heads * dh, D, bias, dtype=dtype)
        _lin(sd, g, f"{lp}self_attn.o_proj", D, HEADS * dh, False, dtype=dtype)
        _lin(sd, g, f"{lp}mlp.gate_proj", INNER, D, False, dtype=dtype)
        _lin(sd, g, f"{lp}mlp.up_proj", INNER, D, False, dtype=dtype)
        _lin(sd, g, f"{lp}mlp.down_proj", D, INNER, False, dtype=dtype)
        _norm(sd, g, f"{lp}input_layernorm", D, bias=False, dtype=dtype)
        _norm(sd, g, f"{lp}post_attention_layernorm", D, bias=False, dtype=dtype)
    _norm(sd, g, "model.norm", D, bias=False, dtype=dtype)
    if not tied:
        _emb(sd, g, "lm_head.weight", (VOCAB, D), dtype)
    arch = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"}[family]
    config = {"architectures": [arch], "model_type": family, "vocab_size": VOCAB, "hidden_size": D,
              "intermediate_size": INNER, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
              "num_key_value_heads": kv_heads, "hidden_act": "silu", "max_position_embeddings": 64,
              "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": tied, "attention_dropout": 0.0,
              "bos_token_id": 0, "eos_token_id": 0}
    if family == "llama":
        config["attention_bias"] = bias
    return {"format": "hf", "class": arch, "config": config}, sd


IMG, PATCH, CH = 8, 4, 3


def vit(seed: int = 0, *, classifier: int | None = 3, dtype: torch.dtype = torch.float32) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """ViTForImageClassification (prefix ``vit.``, classifier) or ViTModel (no prefix, pooler)."""
    g, sd = torch.Generator().manual_seed(seed), {}
    p = "vit." if classifier else ""
    n_tok = (IMG // PATCH) ** 2 + 1
    _emb(sd, g, f"{p}embeddings.cls_token", (1, 1, D), dtype)
    _emb(sd, g, f"{p}embeddings.position_embeddings", (1, n_tok, D), dtype)
    sd[f"{p}embeddings.patch_embeddings.projection.weight"] = (
        torch.randn(D, CH, PATCH, PATCH, generator=g) / (CH * PATCH * PATCH) ** 0.5).to(dtype)
    sd[f"{p}embeddings.patch_embeddings.projection.bias"] = (0.1 * torch.randn(D, generator=g)).to(dtype)
    for i in range(LAYERS):
        lp = f"{p}encoder.layer.{i}."
        _norm(sd, g, f"{lp}layernorm_before", D, dtype=dtype)
        for n in ("query", "key", "value"):
            _lin(sd, g, f"{lp}attention.attention.{n}", D, D, dtype=dtype)
        _lin(sd, g, f"{lp}attention.output.dense", D, D, dtype=dtype)
        _norm(sd, g, f"{lp}layernorm_after", D, dtype=dtype)
        _lin(sd, g, f"{lp}intermediate.dense", INNER, D, dtype=dtype)
        _lin(sd, g, f"{lp}output.dense", D, INNER, dtype=dtype)
    _norm(sd, g, f"{p}layernorm", D, dtype=dtype)
    config: dict[str, Any] = {"model_type": "vit", "hidden_size": D, "num_hidden_layers": LAYERS,
                              "num_attention_heads": HEADS, "intermediate_size": INNER, "hidden_act": "gelu",
                              "image_size": IMG, "patch_size": PATCH, "num_channels": CH, "qkv_bias": True,
                              "layer_norm_eps": 1e-12, "hidden_dropout_prob": 0.0,
                              "attention_probs_dropout_prob": 0.0}
    if classifier:
        _lin(sd, g, "classifier", classifier, D, dtype=dtype)
        config["id2label"] = {str(i): f"LABEL_{i}" for i in range(classifier)}
        config["label2id"] = {f"LABEL_{i}": i for i in range(classifier)}
        arch = "ViTForImageClassification"
    else:
        _lin(sd, g, f"{p}pooler.dense", D, D, dtype=dtype)
        arch = "ViTModel"
    config["architectures"] = [arch]
    return {"format": "hf", "class": arch, "config": config}, sd


CHECKPOINTS = {
    "bert": lambda seed=0, **kw: bert(seed, **kw),
    "bert_base_minilm_style": lambda seed=0, **kw: bert(seed, prefix="", classifier=None, position_ids=True, **kw),
    "gpt2": lambda seed=0, **kw: gpt2(seed, **kw),
    "llama": lambda seed=0, **kw: llama(seed, **kw),
    "mistral": lambda seed=0, **kw: llama(seed, family="mistral", kv_heads=1, **kw),
    "qwen2": lambda seed=0, **kw: llama(seed, family="qwen2", tied=True, **kw),
    "vit": lambda seed=0, **kw: vit(seed, **kw),
    "vit_model": lambda seed=0, **kw: vit(seed, classifier=None, **kw),
}


def write_snapshot(folder: Path, spec: dict[str, Any], sd: dict[str, torch.Tensor]) -> Path:
    """config.json + model.safetensors, as a Hub snapshot folder."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(spec["config"]))
    seen: dict[int, str] = {}
    out = {}
    for k, v in sd.items():  # safetensors refuses shared storage: tied names are written as copies
        out[k] = v.clone() if v.data_ptr() in seen else v.contiguous()
        seen[v.data_ptr()] = k
    save_file(out, str(folder / "model.safetensors"))
    return folder
