"""Per-family tensor names and config keys of transformers, mapped onto :class:`.TransformerBuilder`.

Read from ``config.json`` and the checkpoint's tensor names only — ``transformers`` is never imported:

* ``bert`` — BERT-like encoders (post-LN): word/position/token-type embeddings + LayerNorm, blocks
  ``encoder.layer.N.{attention.self.query|key|value, attention.output.dense, attention.output.LayerNorm,
  intermediate.dense, output.dense, output.LayerNorm}``, optional ``pooler.dense`` and ``classifier``.
* ``gpt2`` — ``wte``, ``wpe``, ``h.N.{ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj}``, ``ln_f``;
  Conv1D weights are stored ``[in, out]`` (transposed slots); ``c_attn`` is fused q|k|v; tied LM head.
* ``llama``, ``mistral``, ``qwen2`` — ``embed_tokens``, ``layers.N.{input_layernorm, self_attn.q|k|v|o_proj,
  post_attention_layernorm, mlp.gate|up|down_proj}``, ``norm``, ``lm_head``; RMSNorm, rotary, grouped-query
  attention, SwiGLU; q/k/v biases (qwen2) are taken when present.
* ``vit`` — patch embedding (a conv with kernel = stride = patch: a Linear from the ``C·p·p`` pixels of a
  patch), ``cls_token``, ``position_embeddings``, pre-LN blocks ``encoder.layer.N.{layernorm_before,
  attention.attention.query|key|value, attention.output.dense, layernorm_after, intermediate.dense,
  output.dense}`` (or transformers-5 module names ``layers.N.{attention.q|k|v|o_proj, mlp.fc1|fc2}``),
  ``layernorm``, optional ``pooler.dense`` and ``classifier``.

The base-model prefix (``bert.``, ``transformer.``, ``model.``, ``vit.`` or none, as in all-MiniLM-L6-v2)
is found from the names. ``torch`` specs cover ``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from torch import nn

from weightzoo.errors import SpecError, UnsupportedLayerError
from weightzoo.zoo.arch import HF_FORMAT, TORCH_FORMAT

from .layout_types import Layout, set_group
from .transformer_layout import TransformerBuilder
from .vocab import HF_ACTIVATION_IDS, Activation, EdgeType, NodeType, Norm

FAMILIES = ("bert", "gpt2", "llama", "mistral", "qwen2", "vit")
_ANCHORS = {"bert": "embeddings.word_embeddings.weight", "gpt2": "wte.weight", "llama": "embed_tokens.weight",
            "vit": "embeddings.patch_embeddings.projection.weight"}


class _Config:
    """Typed reads of a config dict; errors name the key."""

    def __init__(self, cfg: Mapping[str, Any], family: str) -> None:
        self.cfg, self.family = cfg, family

    def count(self, key: str, default: int | None = None) -> int:
        v = self.cfg.get(key, default)
        if v is None:
            v = default
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise SpecError(f"config.{key}: a {self.family} config needs a positive int, got {v!r}")
        return v

    def act(self, key: str, default: str) -> Activation:
        name = self.cfg.get(key) or default
        if not isinstance(name, str) or name not in HF_ACTIVATION_IDS:
            raise UnsupportedLayerError(f"config.{key}", str(name),
                                        f"activations covered: {', '.join(sorted(HF_ACTIVATION_IDS))}")
        return HF_ACTIVATION_IDS[name]

    def labels(self) -> int:
        id2label = self.cfg.get("id2label")
        if isinstance(id2label, Mapping) and id2label:
            return len(id2label)
        return self.count("num_labels", 2)


def _prefix(b: TransformerBuilder, anchor: str, family: str) -> str:
    hits = sorted((n[: -len(anchor)] for n in b.names if n.endswith(anchor)
                   and (len(n) == len(anchor) or n[-len(anchor) - 1] == ".")), key=len)
    if not hits:
        raise SpecError(f"no tensor named '*{anchor}': not a {family} checkpoint (or a layout weightzoo does not know)")
    return hits[0]


def _labels_head(b: TransformerBuilder, name: str, read: int, n: int) -> int | None:
    if not b.has(f"{name}.weight"):
        return None
    out = b.group(n, NodeType.OUTPUT)
    b.linear(name, read, out)
    return out


def _bert(b: TransformerBuilder, cls: str, c: _Config) -> None:
    d, heads, layers = c.count("hidden_size"), c.count("num_attention_heads"), c.count("num_hidden_layers")
    if d % heads:
        raise SpecError(f"config.hidden_size {d} is not a multiple of num_attention_heads {heads}")
    if c.cfg.get("position_embedding_type", "absolute") not in (None, "absolute"):
        raise UnsupportedLayerError("config.position_embedding_type", str(c.cfg["position_embedding_type"]),
                                    "only absolute position embeddings are covered")
    p = _prefix(b, _ANCHORS["bert"], "bert")
    vocab, n_pos = c.count("vocab_size"), c.count("max_position_embeddings")
    word, pos = b.chunks(vocab), b.chunks(n_pos)
    types = c.count("type_vocab_size", 2)
    ttype = b.chunks(types) if b.has(f"{p}embeddings.token_type_embeddings.weight") else None
    s = b.stream(d)
    b.table(f"{p}embeddings.word_embeddings.weight", (vocab, d), word, s)
    b.table(f"{p}embeddings.position_embeddings.weight", (n_pos, d), pos, s)
    if ttype is not None:
        b.table(f"{p}embeddings.token_type_embeddings.weight", (types, d), ttype, s)
    b.buffer(f"{p}embeddings.position_ids", (1, n_pos))
    read = b.norm(f"{p}embeddings.LayerNorm", s, Norm.LAYER)
    act = c.act("hidden_act", "gelu")
    for layer in range(layers):
        b.block = layer
        lp = f"{p}encoder.layer.{layer}."
        o = b.attention(read, heads=heads, kv_heads=heads, head_dim=d // heads, out=d, q=f"{lp}attention.self.query",
                        k=f"{lp}attention.self.key", v=f"{lp}attention.self.value", o=f"{lp}attention.output.dense")
        b.write(o, s)
        b.write(read, s)  # post-LN: the sublayer's input is the residual
        n1 = b.norm(f"{lp}attention.output.LayerNorm", s, Norm.LAYER)
        b.write(b.mlp(n1, inner=c.count("intermediate_size"), up=f"{lp}intermediate.dense", down=f"{lp}output.dense",
                      act=act), s)
        b.write(n1, s)
        read = b.norm(f"{lp}output.LayerNorm", s, Norm.LAYER)
    b.block = layers
    feat = read
    if b.has(f"{p}pooler.dense.weight"):
        feat = b.group(d, NodeType.HIDDEN, act=Activation.TANH)
        b.linear(f"{p}pooler.dense", read, feat)
    if _labels_head(b, "classifier", feat, c.labels()) is not None:
        b.info["stream_permutable"] = True
    else:  # a bare encoder: its last hidden states (and pooled output) are the outputs
        set_group(b.groups, read, kind=NodeType.OUTPUT)
        set_group(b.groups, feat, kind=NodeType.OUTPUT)


def _gpt2(b: TransformerBuilder, cls: str, c: _Config) -> None:
    d, heads, layers = c.count("n_embd"), c.count("n_head"), c.count("n_layer")
    if d % heads:
        raise SpecError(f"config.n_embd {d} is not a multiple of n_head {heads}")
    p = _prefix(b, _ANCHORS["gpt2"], "gpt2")
    vocab, n_pos = c.count("vocab_size"), c.count("n_positions")
    lm = b.has("lm_head.weight") or "LMHead" in cls
    tied = bool(c.cfg.get("tie_word_embeddings", True))
    word, pos = b.chunks(vocab), b.chunks(n_pos)
    s = b.stream(d)
    b.table(f"{p}wte.weight", (vocab, d), word, s)
    b.table(f"{p}wpe.weight", (n_pos, d), pos, s)
    act = c.act("activation_function", "gelu_new")
    for layer in range(layers):
        b.block = layer
        lp = f"{p}h.{layer}."
        n1 = b.norm(f"{lp}ln_1", s, Norm.LAYER)
        b.write(b.attention(n1, heads=heads, kv_heads=heads, head_dim=d // heads, out=d, o=f"{lp}attn.c_proj",
                            qkv=(f"{lp}attn.c_attn.weight", f"{lp}attn.c_attn.bias"), transposed=True), s)
        b.buffer(f"{lp}attn.bias", (1, 1, n_pos, n_pos))
        b.buffer(f"{lp}attn.masked_bias", ())
        n2 = b.norm(f"{lp}ln_2", s, Norm.LAYER)
        b.write(b.mlp(n2, inner=c.count("n_inner", 4 * d), up=f"{lp}mlp.c_fc", down=f"{lp}mlp.c_proj", act=act,
                      transposed=True), s)
    b.block = layers
    final = b.norm(f"{p}ln_f", s, Norm.LAYER)
    _causal_head(b, lm, tied, final, vocab, d, word, f"{p}wte.weight", c)


def _causal_head(b: TransformerBuilder, lm: bool, tied: bool, final: int, vocab: int, d: int, word: int,
                 word_name: str, c: _Config) -> None:
    if lm:
        b.head_table("lm_head.weight", word_name, tied, final, vocab, d, word)
        b.info["stream_permutable"] = True
    elif _labels_head(b, "score", final, c.labels()) is not None:
        b.info["stream_permutable"] = True
    else:
        set_group(b.groups, final, kind=NodeType.OUTPUT)


def _rope_theta(cfg: Mapping[str, Any]) -> float:
    theta = cfg.get("rope_theta")
    params = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    if theta is None and isinstance(params, Mapping):
        theta = params.get("rope_theta")
    return float(theta) if isinstance(theta, int | float) else 10000.0


def _llama(b: TransformerBuilder, cls: str, c: _Config) -> None:
    d, heads, layers = c.count("hidden_size"), c.count("num_attention_heads"), c.count("num_hidden_layers")
    kv = c.count("num_key_value_heads", heads)
    head_dim = c.count("head_dim", d // heads)
    p = _prefix(b, _ANCHORS["llama"], c.family)
    vocab = c.count("vocab_size")
    lm = b.has("lm_head.weight") or cls.endswith("ForCausalLM")
    tied = bool(c.cfg.get("tie_word_embeddings", False))
    word = b.chunks(vocab)
    s = b.stream(d)
    b.table(f"{p}embed_tokens.weight", (vocab, d), word, s)
    act, theta = c.act("hidden_act", "silu"), _rope_theta(c.cfg)
    b.buffer(f"{p}rotary_emb.inv_freq", (head_dim // 2,))
    for layer in range(layers):
        b.block = layer
        lp = f"{p}layers.{layer}."
        n1 = b.norm(f"{lp}input_layernorm", s, Norm.RMS)
        b.write(b.attention(n1, heads=heads, kv_heads=kv, head_dim=head_dim, out=d, q=f"{lp}self_attn.q_proj",
                            k=f"{lp}self_attn.k_proj", v=f"{lp}self_attn.v_proj", o=f"{lp}self_attn.o_proj",
                            rotary=theta), s)
        b.buffer(f"{lp}self_attn.rotary_emb.inv_freq", (head_dim // 2,))
        n2 = b.norm(f"{lp}post_attention_layernorm", s, Norm.RMS)
        b.write(b.mlp(n2, inner=c.count("intermediate_size"), gate=f"{lp}mlp.gate_proj", up=f"{lp}mlp.up_proj",
                      down=f"{lp}mlp.down_proj", act=act), s)
    b.block = layers
    final = b.norm(f"{p}norm", s, Norm.RMS)
    _causal_head(b, lm, tied, final, vocab, d, word, f"{p}embed_tokens.weight", c)


def _vit(b: TransformerBuilder, cls: str, c: _Config) -> None:
    d, heads, layers = c.count("hidden_size"), c.count("num_attention_heads"), c.count("num_hidden_layers")
    if d % heads:
        raise SpecError(f"config.hidden_size {d} is not a multiple of num_attention_heads {heads}")
    ch, ps, img = c.count("num_channels", 3), c.count("patch_size"), c.count("image_size")
    if img % ps:
        raise SpecError(f"config.image_size {img} is not a multiple of patch_size {ps}")
    n_tok = (img // ps) ** 2 + 1
    p = _prefix(b, _ANCHORS["vit"], "vit")
    pixels = b.group(ch * ps * ps, NodeType.INPUT)
    patch = b.group(d, NodeType.HIDDEN)
    b.weight(f"{p}embeddings.patch_embeddings.projection.weight", (d, ch, ps, ps), pixels, patch,
             EdgeType.LINEAR, flat=True)
    b.vector(f"{p}embeddings.patch_embeddings.projection.bias", "bias", patch, 0)
    cls_tok, pos = b.chunks(1), b.chunks(n_tok)
    s = b.stream(d)
    b.write(patch, s)
    b.table(f"{p}embeddings.cls_token", (1, 1, d), cls_tok, s)
    b.table(f"{p}embeddings.position_embeddings", (1, n_tok, d), pos, s)
    act = c.act("hidden_act", "gelu")
    v5 = b.has(f"{p}layers.0.attention.q_proj.weight")  # transformers-5 module names (from_module)
    for layer in range(layers):
        b.block = layer
        lp = f"{p}layers.{layer}." if v5 else f"{p}encoder.layer.{layer}."
        n1 = b.norm(f"{lp}layernorm_before", s, Norm.LAYER)
        a = f"{lp}attention." if v5 else f"{lp}attention.attention."
        names = ({"q": f"{a}q_proj", "k": f"{a}k_proj", "v": f"{a}v_proj", "o": f"{a}o_proj"} if v5 else
                 {"q": f"{a}query", "k": f"{a}key", "v": f"{a}value", "o": f"{lp}attention.output.dense"})
        b.write(b.attention(n1, heads=heads, kv_heads=heads, head_dim=d // heads, out=d, q=names["q"], k=names["k"],
                            v=names["v"], o=names["o"]), s)
        n2 = b.norm(f"{lp}layernorm_after", s, Norm.LAYER)
        up, down = (f"{lp}mlp.fc1", f"{lp}mlp.fc2") if v5 else (f"{lp}intermediate.dense", f"{lp}output.dense")
        b.write(b.mlp(n2, inner=c.count("intermediate_size"), up=up, down=down, act=act), s)
    b.block = layers
    final = b.norm(f"{p}layernorm", s, Norm.LAYER)
    pooled = None
    if b.has(f"{p}pooler.dense.weight"):
        pooled = b.group(d, NodeType.OUTPUT, act=c.act("pooler_act", "tanh"))
        b.linear(f"{p}pooler.dense", final, pooled)
    if _labels_head(b, "classifier", final, c.labels()) is not None:
        b.info["stream_permutable"] = True
    else:
        set_group(b.groups, final, kind=NodeType.OUTPUT)


# --- torch.nn modules ----------------------------------------------------------------------------


def _torch_mha(b: TransformerBuilder, cfg: _Config) -> None:
    d, heads = cfg.count("embed_dim"), cfg.count("num_heads")
    if d % heads:
        raise SpecError(f"config.embed_dim {d} is not a multiple of num_heads {heads}")
    x = b.group(d, NodeType.INPUT)
    b.block = 0
    b.attention(x, heads=heads, kv_heads=heads, head_dim=d // heads, out=d, o="out_proj",
                qkv=("in_proj_weight", "in_proj_bias"), out_kind=NodeType.OUTPUT)


def _torch_encoder_layer(b: TransformerBuilder, cfg: _Config) -> None:
    d, heads = cfg.count("d_model"), cfg.count("nhead")
    if d % heads:
        raise SpecError(f"config.d_model {d} is not a multiple of nhead {heads}")
    act = cfg.act("activation", "relu")
    x = b.group(d, NodeType.INPUT)
    b.block = 0
    s = b.stream(d)
    b.write(x, s)
    attn = {"heads": heads, "kv_heads": heads, "head_dim": d // heads, "out": d, "o": "self_attn.out_proj",
            "qkv": ("self_attn.in_proj_weight", "self_attn.in_proj_bias")}
    mlp = {"inner": cfg.count("dim_feedforward", 2048), "up": "linear1", "down": "linear2", "act": act}
    if cfg.cfg.get("norm_first", False):
        b.write(b.attention(b.norm("norm1", s, Norm.LAYER), **attn), s)  # type: ignore[arg-type]
        b.write(b.mlp(b.norm("norm2", s, Norm.LAYER), **mlp), s)  # type: ignore[arg-type]
        y = b.group(d, NodeType.OUTPUT)
        b.write(s, y)
    else:
        b.write(b.attention(x, **attn), s)  # type: ignore[arg-type]
        n1 = b.norm("norm1", s, Norm.LAYER)
        b.write(b.mlp(n1, **mlp), s)  # type: ignore[arg-type]
        b.write(n1, s)
        set_group(b.groups, b.norm("norm2", s, Norm.LAYER), kind=NodeType.OUTPUT)


def build_family(spec: dict[str, Any], names: list[str], pack: int) -> Layout:
    """Lay out a normalized ``hf``/``torch`` spec (see the module docstring for what is covered)."""
    cfg = spec["config"]
    if spec["format"] == TORCH_FORMAT:
        b = TransformerBuilder(names, pack, "torch." + spec["class"])
        (_torch_mha if spec["class"] == "MultiheadAttention" else _torch_encoder_layer)(b, _Config(cfg, spec["class"]))
        return b.finish(spec)
    family = cfg.get("model_type")
    if family not in FAMILIES:
        raise UnsupportedLayerError("<root>", f"{spec['class']} (model_type {family!r})",
                                    f"parameter graphs cover the families {', '.join(FAMILIES)}")
    b = TransformerBuilder(names, pack, family)
    fn = {"bert": _bert, "gpt2": _gpt2, "vit": _vit}.get(family, _llama)
    fn(b, spec["class"], _Config(cfg, family))
    return b.finish(spec)


# --- specs of modules ----------------------------------------------------------------------------


def covered_module_spec(module: nn.Module) -> dict[str, Any] | None:
    """:func:`module_spec` when :func:`build_family` covers it (``torch`` specs and the families in
    :data:`FAMILIES`), else ``None`` — such modules take the recorded path (:mod:`.dataflow`)."""
    try:
        spec = module_spec(module)
    except UnsupportedLayerError:
        return None
    if spec is None or spec["format"] == TORCH_FORMAT or spec["config"].get("model_type") in FAMILIES:
        return spec
    return None


def module_spec(module: nn.Module) -> dict[str, Any] | None:
    """The transformer spec of a module graphs cover directly, or ``None`` if it is not one.

    ``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` give ``torch`` specs; ``transformers``
    models give ``hf`` specs (class name + their config as JSON).
    """
    if type(module) is nn.MultiheadAttention:
        m: Any = module
        if not m._qkv_same_embed_dim or m.bias_k is not None or m.add_zero_attn:
            raise UnsupportedLayerError("<root>", "MultiheadAttention",
                                        "only kdim = vdim = embed_dim without add_bias_kv/add_zero_attn is covered")
        return {"format": TORCH_FORMAT, "class": "MultiheadAttention",
                "config": {"embed_dim": m.embed_dim, "num_heads": m.num_heads, "bias": m.in_proj_bias is not None,
                           "batch_first": m.batch_first, "dropout": m.dropout}}
    if type(module) is nn.TransformerEncoderLayer:
        e: Any = module
        acts = {1: "relu", 2: "gelu"}
        if e.activation_relu_or_gelu not in acts:
            raise UnsupportedLayerError("<root>", "TransformerEncoderLayer", "only relu/gelu activations are covered")
        sa = e.self_attn
        if not sa._qkv_same_embed_dim or sa.bias_k is not None:
            raise UnsupportedLayerError("self_attn", "MultiheadAttention", "only kdim = vdim = d_model is covered")
        return {"format": TORCH_FORMAT, "class": "TransformerEncoderLayer",
                "config": {"d_model": sa.embed_dim, "nhead": sa.num_heads, "dim_feedforward": e.linear1.out_features,
                           "dropout": e.dropout.p, "activation": acts[e.activation_relu_or_gelu],
                           "layer_norm_eps": e.norm1.eps, "batch_first": sa.batch_first, "norm_first": e.norm_first,
                           "bias": e.linear1.bias is not None}}
    config = getattr(module, "config", None)
    if config is not None and type(module).__module__.startswith("transformers.") and hasattr(config, "to_json_string"):
        return {"format": HF_FORMAT, "class": type(module).__name__,
                "config": json.loads(config.to_json_string(use_diff=False))}
    return None


__all__ = ["covered_module_spec", "FAMILIES", "build_family", "module_spec"]
