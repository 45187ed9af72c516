"""Snapshot folders, sharded indexes, path escapes, and format sniffing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import safetensors.torch
import torch

from weightzoo.errors import (
    CheckpointError,
    NoWeightsError,
    UnsafeCheckpointError,
    UnsupportedFormatError,
)
from weightzoo.zoo.formats import ShardedCheckpoint, open_checkpoint, sniff_format


def _raises_exactly(exc: type[Exception], source: object, match: str, **kw: object) -> Exception:
    with pytest.raises(exc, match=match) as info:
        open_checkpoint(source, **kw)
    assert type(info.value) is exc, f"expected exactly {exc.__name__}, got {type(info.value).__name__}"
    return info.value


def _state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"embed.weight": torch.randn(5, 4, generator=g).bfloat16(), "layer.0.weight": torch.randn(4, 4, generator=g),
            "layer.0.bias": torch.zeros(4), "layer.1.weight": torch.randn(4, 4, generator=g).half(),
            "head.scale": torch.randn(4, generator=g).to(torch.float8_e5m2)}


def _write_sharded(folder: Path, sd: dict[str, torch.Tensor], kind: str = "safetensors") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    names = list(sd)
    parts = [names[:2], names[2:]]
    weight_map = {}
    for i, part in enumerate(parts, start=1):
        if kind == "safetensors":
            shard = f"model-{i:05d}-of-00002.safetensors"
            safetensors.torch.save_file({n: sd[n] for n in part}, folder / shard)
        else:
            shard = f"pytorch_model-{i:05d}-of-00002.bin"
            torch.save({n: sd[n] for n in part}, folder / shard)
        weight_map.update(dict.fromkeys(part, shard))
    index = folder / ("model.safetensors.index.json" if kind == "safetensors" else "pytorch_model.bin.index.json")
    index.write_text(json.dumps({"metadata": {"total_size": 123}, "weight_map": weight_map}))
    return index


def _assert_same(ckpt, sd: dict[str, torch.Tensor]) -> None:
    assert sorted(t.name for t in ckpt.tensors) == sorted(sd)
    for name, t in sd.items():
        got = ckpt.read(name)
        assert got.dtype == t.dtype and got.shape == t.shape
        assert got.reshape(-1).view(torch.uint8).tolist() == t.contiguous().reshape(-1).view(torch.uint8).tolist()


# --- sharded ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["safetensors", "torch"])
def test_sharded_checkpoint(tmp_path: Path, kind: str) -> None:
    sd = _state()
    index = _write_sharded(tmp_path / "snap", sd, kind)
    with open_checkpoint(index) as ckpt:
        assert isinstance(ckpt, ShardedCheckpoint)
        assert ckpt.format == ("safetensors-sharded" if kind == "safetensors" else "torch-zip-sharded")
        assert ckpt.metadata == {"total_size": "123"}
        assert len(ckpt.shard_files) == 2
        _assert_same(ckpt, sd)
    # The same folder opened as a snapshot finds the index.
    with open_checkpoint(tmp_path / "snap") as ckpt:
        assert ckpt.format.endswith("-sharded")
        _assert_same(ckpt, sd)


def test_index_naming_missing_shard(tmp_path: Path) -> None:
    index = _write_sharded(tmp_path, _state())
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    _raises_exactly(CheckpointError, index, "model-00002-of-00002.safetensors', which does not exist")


def test_index_disagreeing_with_shards(tmp_path: Path) -> None:
    index = _write_sharded(tmp_path, _state())
    doc = json.loads(index.read_text())
    doc["weight_map"]["ghost.weight"] = "model-00001-of-00002.safetensors"
    index.write_text(json.dumps(doc))
    _raises_exactly(CheckpointError, index, "'ghost.weight'.*does not hold it")
    del doc["weight_map"]["ghost.weight"]
    del doc["weight_map"]["layer.0.bias"]  # the shard holds a tensor the index does not map there
    index.write_text(json.dumps(doc))
    _raises_exactly(CheckpointError, index, "'layer.0.bias'.*does not map it")


def test_index_with_duplicate_names(tmp_path: Path) -> None:
    index = _write_sharded(tmp_path, _state())
    text = index.read_text().replace('"weight_map": {', '"weight_map": {"head.scale": "model-00001-of-00002.safetensors", ')
    index.write_text(text)
    _raises_exactly(CheckpointError, index, "names 'head.scale' twice")


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_weight_map_escaping_the_snapshot(tmp_path: Path, attacks, how: str) -> None:
    snap = attacks.write_index_escape(tmp_path / "in", how, tmp_path / "outside")
    match = {"dotdot": "contains '..'", "absolute": "absolute path", "symlink": "outside"}[how]
    _raises_exactly(UnsafeCheckpointError, snap, match)
    _raises_exactly(UnsafeCheckpointError, snap / "model.safetensors.index.json", match)


def test_symlinked_weights_escaping_the_snapshot(tmp_path: Path, attacks) -> None:
    snap = attacks.write_symlinked_weights(tmp_path / "in", tmp_path / "outside")
    _raises_exactly(UnsafeCheckpointError, snap, "symlink escaping")
    # Pointed at directly, a symlinked file is the user's explicit choice and is read.
    assert open_checkpoint(snap / "model.safetensors").format == "safetensors"


def test_hf_cache_snapshot_with_blob_symlinks(tmp_path: Path, attacks) -> None:
    """In the Hugging Face cache, snapshot files are symlinks into ../../blobs: that is allowed."""
    repo = tmp_path / "models--org--name"
    blobs, snap = repo / "blobs", repo / "snapshots" / "abc123"
    blobs.mkdir(parents=True)
    snap.mkdir(parents=True)
    blob = attacks.safetensors_file(blobs, "0123deadbeef")
    (snap / "model.safetensors").symlink_to(Path("../../blobs") / blob.name)
    (blobs / "cfg").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    (snap / "config.json").symlink_to(Path("../../blobs/cfg"))
    with open_checkpoint(snap) as ckpt:
        assert ckpt.path == snap and ckpt.architecture == "BertModel"
        assert [t.name for t in ckpt.tensors] == ["a", "b"]


# --- snapshot folders ------------------------------------------------------------------------------------


def test_folder_with_no_weights(tmp_path: Path, attacks) -> None:
    _raises_exactly(NoWeightsError, attacks.write_no_weights(tmp_path), "no weights in this folder")


def test_missing_path() -> None:
    err = _raises_exactly(NoWeightsError, "/nonexistent/weights.safetensors", "no such file")
    assert isinstance(err, FileNotFoundError)


def test_snapshot_prefers_safetensors_and_ignores_other_files(tmp_path: Path, attacks) -> None:
    snap = tmp_path / "snap"
    snap.mkdir()
    attacks.safetensors_file(snap)
    torch.save({"other": torch.ones(1)}, snap / "pytorch_model.bin")
    (snap / "tokenizer.json").write_text("{}")
    (snap / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    with open_checkpoint(snap) as ckpt:
        assert ckpt.format == "safetensors" and ckpt.model_type == "bert"
        assert [t.name for t in ckpt.tensors] == ["a", "b"]
    (snap / "model.safetensors").unlink()
    (snap / "training_args.bin").write_bytes(b"\x80\x02}q\x00.")  # not weights: never opened
    with open_checkpoint(snap) as ckpt:
        assert ckpt.format == "torch-zip" and [t.name for t in ckpt.tensors] == ["other"]
    _raises_exactly(UnsupportedFormatError, snap, "allow_pickle=False", allow_pickle=False)


def test_snapshot_with_ambiguous_weights(tmp_path: Path, attacks) -> None:
    attacks.safetensors_file(tmp_path, "a.safetensors")
    attacks.safetensors_file(tmp_path, "b.safetensors")
    _raises_exactly(CheckpointError, tmp_path, "ambiguous")


def test_snapshot_with_broken_config(tmp_path: Path, attacks) -> None:
    attacks.safetensors_file(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "bert", "model_type": "gpt2"}')
    _raises_exactly(CheckpointError, tmp_path, "config.json names 'model_type' twice")


def test_minilm_snapshot(minilm_dir: Path) -> None:
    """The real all-MiniLM-L6-v2: 100+ tensors, its config, and every tensor bit-exact vs the library."""
    reference = safetensors.torch.load_file(minilm_dir / "model.safetensors")
    with open_checkpoint(minilm_dir) as ckpt:
        assert ckpt.format == "safetensors"
        assert len(ckpt.tensors) >= 100
        assert ckpt.config is not None and ckpt.config["model_type"] == "bert"
        assert ckpt.config["hidden_size"] == 384 and ckpt.architecture == "BertModel"
        assert sorted(t.name for t in ckpt.tensors) == sorted(reference)
        assert ckpt.parameter_count == sum(t.numel() for t in reference.values())
        for name, ref in reference.items():
            got = ckpt.read(name)
            assert got.dtype == ref.dtype and got.shape == ref.shape
            assert bytes(ckpt.read_bytes(name)) == ref.contiguous().view(torch.uint8).numpy().tobytes(), name


# --- sniffing --------------------------------------------------------------------------------------------


def test_sniff_by_content(tmp_path: Path, attacks) -> None:
    attacks.safetensors_file(tmp_path, "noext")
    assert sniff_format(tmp_path / "noext") == "safetensors"
    torch.save({"w": torch.ones(1)}, tmp_path / "z")
    assert sniff_format(tmp_path / "z") == "torch-zip"
    torch.save({"w": torch.ones(1)}, tmp_path / "l", _use_new_zipfile_serialization=False)
    assert sniff_format(tmp_path / "l") == "torch-legacy"
    assert sniff_format(attacks.write_legacy_tar(tmp_path)) == "torch-tar"
    (tmp_path / "junk.bin").write_bytes(b"GGUF\x03\x00\x00\x00" + bytes(64))
    with pytest.raises(UnsupportedFormatError, match="unrecognised content"):
        sniff_format(tmp_path / "junk.bin")


def test_sniff_safetensors_header_that_looks_like_a_pickle(tmp_path: Path, attacks) -> None:
    """A 640-byte header length is b"\\x80\\x02..." — the first bytes of a protocol-2 pickle."""
    raw = json.dumps(attacks.VALID_HEADER).encode()
    raw += b" " * (640 - len(raw))  # padding, as the safetensors library pads its headers
    p = attacks.safetensors_file(tmp_path, "m.safetensors", raw)
    assert p.read_bytes()[:2] == b"\x80\x02"
    assert sniff_format(p) == "safetensors"
    assert open_checkpoint(p).read("b").tolist() == [1, -2, 3, 2**62]


@pytest.mark.parametrize("writer", ["write_zip_named_safetensors", "write_safetensors_named_bin"])
def test_content_disagreeing_with_extension(tmp_path: Path, attacks, writer: str) -> None:
    _raises_exactly(UnsupportedFormatError, getattr(attacks, writer)(tmp_path), "extension .* claims")


def test_json_that_is_not_an_index(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    _raises_exactly(UnsupportedFormatError, tmp_path / "config.json", "not a sharded checkpoint")

