"""Generators of Hub-style test repositories for the mirror (also used by ``benchmarks/crawl.py``).

Every repository is a real folder of real files: safetensors written by the ``safetensors`` library,
pickles by ``torch.save``, broken headers byte by byte. Deterministic (seeded tensors, fixed shas).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from weightzoo.zoo.hub.retry import RetryPolicy

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
#: The bearer token the test mirror accepts for gated and private repositories.
TOKEN = "hf_test_secret"
#: Fast retries so fault tests take milliseconds, seeded so they replay.
FAST = RetryPolicy(attempts=6, base_delay=0.01, max_delay=0.05, max_retry_after=0.05, timeout=5.0, seed=0)


def _sha(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()


def tensors(seed: int, spec: dict[str, tuple[int, ...]], dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shape, generator=g).to(dtype) for k, shape in spec.items()}


def repo(root: Path, repo_id: str, *, hub: dict[str, Any] | None = None, files: dict[str, Any] | None = None) -> Path:
    """Create ``root/repo_id`` with ``files`` (bytes, str, dict → JSON, or a state dict → safetensors)."""
    folder = root / repo_id
    folder.mkdir(parents=True, exist_ok=True)
    for rel, content in (files or {}).items():
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        elif isinstance(content, str):
            p.write_text(content)
        elif isinstance(content, dict) and content and all(isinstance(v, torch.Tensor) for v in content.values()):
            save_file(content, str(p))
        else:
            p.write_text(json.dumps(content))
    meta = {"sha": _sha(repo_id), **(hub or {})}
    (folder / ".hub.json").write_text(json.dumps(meta))
    return folder


def card(**fields: Any) -> str:
    import yaml

    return f"---\n{yaml.safe_dump(fields, sort_keys=True)}---\n\n# model card\n"


def minilm(root: Path, minilm_dir: Path) -> Path:
    """The real all-MiniLM-L6-v2 snapshot, linked file by file (the source folder stays untouched)."""
    folder = root / MINILM
    folder.mkdir(parents=True, exist_ok=True)
    for entry in minilm_dir.iterdir():
        link = folder / entry.name
        if not link.exists():
            os.symlink(entry.resolve(), link)
    (folder / ".hub.json").write_text(json.dumps({"sha": _sha(MINILM), "downloads": 90_000_000, "likes": 3000,
                                                  "pipeline_tag": "sentence-similarity"}))
    return folder


def small_bert(seed: int, layers: int = 2, hidden: int = 8) -> dict[str, torch.Tensor]:
    spec: dict[str, tuple[int, ...]] = {"embeddings.word_embeddings.weight": (32, hidden)}
    for i in range(layers):
        spec[f"encoder.layer.{i}.attention.self.query.weight"] = (hidden, hidden)
        spec[f"encoder.layer.{i}.attention.self.query.bias"] = (hidden,)
        spec[f"encoder.layer.{i}.output.dense.weight"] = (hidden, hidden)
    return tensors(seed, spec)


BERT_CONFIG = {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": 8}


def broken_header(kind: str) -> bytes:
    """A safetensors file whose header lies: ``corrupt`` (not JSON), ``lying`` (offsets past the end),
    ``huge`` (a 150 MB header length field)."""
    if kind == "huge":
        return struct.pack("<Q", 150_000_000) + b"{" + b" " * 200_000
    if kind == "corrupt":
        body = b'{"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]'  # unterminated
        return struct.pack("<Q", len(body)) + body + bytes(16)
    if kind == "lying":
        body = json.dumps({"w": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4_000_000]}}).encode()
        return struct.pack("<Q", len(body)) + body + bytes(64)
    raise ValueError(kind)


def build_test_hub(root: Path, minilm_dir: Path) -> dict[str, str]:
    """Every layout and failure the crawler meets; returns ``{repo_id: expected outcome}``."""
    root.mkdir(parents=True, exist_ok=True)
    minilm(root, minilm_dir)
    expected = {MINILM: "ok"}
    sd = small_bert(1, layers=4)
    names = sorted(sd)
    shard1, shard2 = {k: sd[k] for k in names[:5]}, {k: sd[k] for k in names[5:]}
    index = {"metadata": {"total_size": 0}, "weight_map": {
        **{k: "model-00001-of-00002.safetensors" for k in shard1}, **{k: "model-00002-of-00002.safetensors" for k in shard2}}}
    repo(root, "acme/sharded-bert", files={"config.json": BERT_CONFIG, "model-00001-of-00002.safetensors": shard1,
                                          "model-00002-of-00002.safetensors": shard2,
                                          "model.safetensors.index.json": index,
                                          "README.md": card(license="mit", library_name="transformers")},
         hub={"downloads": 500})
    expected["acme/sharded-bert"] = "ok"
    repo(root, "acme/tiny-diffusion", files={
        "model_index.json": {"_class_name": "StableDiffusionPipeline"},
        "unet/config.json": {"in_channels": 4},
        "unet/diffusion_pytorch_model.safetensors": tensors(2, {"conv_in.weight": (4, 4, 3, 3), "conv_in.bias": (4,)}),
        "unet/diffusion_pytorch_model.fp16.safetensors": tensors(2, {"conv_in.weight": (4, 4, 3, 3)}, torch.float16),
        "vae/diffusion_pytorch_model.safetensors": tensors(3, {"decoder.conv_out.weight": (3, 4, 3, 3)}),
        "text_encoder/model.safetensors": tensors(4, {"embeddings.weight": (16, 4)}),
    }, hub={"library_name": "diffusers", "pipeline_tag": "text-to-image", "downloads": 100})
    expected["acme/tiny-diffusion"] = "ok"
    repo(root, "acme/minilm-lora", files={
        "adapter_config.json": {"peft_type": "LORA", "r": 2, "base_model_name_or_path": MINILM},
        "adapter_model.safetensors": tensors(5, {"base_model.model.encoder.layer.0.attention.self.query.lora_A.weight": (2, 384),
                                                 "base_model.model.encoder.layer.0.attention.self.query.lora_B.weight": (384, 2)}),
        "README.md": card(base_model=MINILM, library_name="peft")}, hub={"downloads": 7})
    expected["acme/minilm-lora"] = "ok"
    repo(root, "acme/minilm-finetuned", files={"config.json": BERT_CONFIG, "model.safetensors": small_bert(6),
                                               "README.md": card(base_model=MINILM, license="apache-2.0")},
         hub={"downloads": 50, "pipeline_tag": "text-classification"})
    expected["acme/minilm-finetuned"] = "ok"
    repo(root, "acme/minilm-merge", files={"config.json": BERT_CONFIG, "model.safetensors": small_bert(7),
                                           "README.md": card(base_model=["acme/minilm-finetuned", MINILM],
                                                             base_model_relation="merge")}, hub={"downloads": 5})
    expected["acme/minilm-merge"] = "ok"
    repo(root, "acme/minilm-quant", files={"config.json": BERT_CONFIG,
                                           "model.safetensors": {k: v.half() for k, v in small_bert(6).items()}},
         hub={"tags": ["base_model:quantized:acme/minilm-finetuned"], "downloads": 3})
    expected["acme/minilm-quant"] = "ok"
    repo(root, "acme/gated-model", files={"config.json": BERT_CONFIG, "model.safetensors": small_bert(8)},
         hub={"gated": "manual"})
    expected["acme/gated-model"] = "gated"
    repo(root, "acme/private-model", files={"config.json": BERT_CONFIG, "model.safetensors": small_bert(9)},
         hub={"private": True})
    expected["acme/private-model"] = "private"
    pkl = root / "acme/pickle-only"
    pkl.mkdir(parents=True, exist_ok=True)
    torch.save(small_bert(10), pkl / "pytorch_model.bin")
    repo(root, "acme/pickle-only", files={"config.json": BERT_CONFIG})
    expected["acme/pickle-only"] = "pickle-only"
    repo(root, "acme/no-weights", files={"README.md": card(license="mit"), "config.json": BERT_CONFIG,
                                         "model.onnx": b"\x08\x07onnx"})
    expected["acme/no-weights"] = "no-weights"
    for kind, outcome in (("corrupt", "corrupt-header"), ("lying", "corrupt-header"), ("huge", "header-too-large")):
        repo(root, f"broken/{kind}-header", files={"model.safetensors": broken_header(kind)})
        expected[f"broken/{kind}-header"] = outcome
    return expected


def build_many(root: Path, n: int, *, seed: int = 0) -> list[str]:
    """``n`` small generated repositories ``gen/model-NNNNN`` (a 4-tensor safetensors file and a config)."""
    ids = []
    for i in range(n):
        rid = f"gen/model-{i:05d}"
        repo(root, rid, files={"config.json": BERT_CONFIG,
                               "model.safetensors": tensors(seed + i, {"a.weight": (8, 8), "a.bias": (8,),
                                                                       "b.weight": (4, 8), "b.bias": (4,)})},
             hub={"downloads": (i * 7919) % 1000})
        ids.append(rid)
    return ids
