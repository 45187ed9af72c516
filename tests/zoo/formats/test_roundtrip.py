"""Every dtype round-trips bit-exactly: safetensors and torch.save files, modules and state dicts, and the
real digits-trained CNN."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from weightzoo.errors import CheckpointError
from weightzoo.zoo.formats import open_checkpoint
from weightzoo.zoo.formats.dtypes import CODES, dtype_from_code

# What each writer can represent in this torch / safetensors build.
SAFETENSORS_CODES = [c for c in CODES if c != "F8_E8M0"]  # safetensors 0.8's torch bridge lacks e8m0
# torch's legacy (pre-1.6) format has no storage class for float8 and the wide unsigned ints.
LEGACY_CODES = ["BOOL", "U8", "I8", "I16", "I32", "I64", "F16", "BF16", "F32", "F64", "C64"]


def _tensor(code: str, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Random bits of dtype ``code`` (NaN payloads, infinities, subnormals included); bool as 0/1."""
    dt = dtype_from_code(code)
    n = int(np.prod(shape, dtype=np.int64))
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 2 if code == "BOOL" else 256, size=n * dt.itemsize, dtype=np.uint8)
    t = torch.from_numpy(raw)
    return (t.view(torch.bool) if code == "BOOL" else t.view(dt.torch)).reshape(shape) if n else torch.empty(shape, dtype=dt.torch)


def _bits(t: torch.Tensor) -> bytes:
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""


def _state_dicts(codes: list[str]) -> st.SearchStrategy[dict[str, torch.Tensor]]:
    entry = st.tuples(st.sampled_from(codes), st.lists(st.integers(0, 4), max_size=3), st.integers(0, 2**32 - 1))
    names = st.text(alphabet="abcxyz._0123", min_size=1, max_size=12).filter(lambda s: s != "__metadata__")
    return st.dictionaries(names, entry, min_size=1, max_size=6).map(
        lambda d: {n: _tensor(c, tuple(shape), seed) for n, (c, shape, seed) in d.items()}
    )


def _check(path: Path, sd: dict[str, torch.Tensor], fmt: str) -> None:
    with open_checkpoint(path) as ckpt:
        assert ckpt.format == fmt
        assert sorted(t.name for t in ckpt.tensors) == sorted(sd)
        for name, t in sd.items():
            got = ckpt.read(name)
            assert got.dtype == t.dtype and tuple(got.shape) == tuple(t.shape), name
            assert _bits(got) == _bits(t), name
            assert bytes(ckpt.read_bytes(name)) == _bits(t), name


_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(_state_dicts(SAFETENSORS_CODES))
def test_safetensors_roundtrip(sd: dict[str, torch.Tensor]) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.safetensors"
        safetensors.torch.save_file(sd, p, metadata={"k": "v"})
        _check(p, sd, "safetensors")


@_SETTINGS
@given(_state_dicts(list(CODES)))
def test_torch_zip_roundtrip(sd: dict[str, torch.Tensor]) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.pt"
        torch.save(sd, p)
        _check(p, sd, "torch-zip")


@_SETTINGS
@given(_state_dicts(LEGACY_CODES))
def test_torch_legacy_roundtrip(sd: dict[str, torch.Tensor]) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.pt"
        torch.save(sd, p, _use_new_zipfile_serialization=False)
        _check(p, sd, "torch-legacy")


@settings(max_examples=25, deadline=None)
@given(_state_dicts(list(CODES)))
def test_state_dict_roundtrip(sd: dict[str, torch.Tensor]) -> None:
    ckpt = open_checkpoint(sd)
    assert ckpt.format == "state-dict"
    for name, t in sd.items():
        assert ckpt.read(name).dtype == t.dtype and _bits(ckpt.read(name)) == _bits(t)


def test_legacy_float8_is_a_typed_error(tmp_path: Path) -> None:
    """torch 2.13 writes float8 into the legacy format but cannot read it back: a CheckpointError, not a crash."""
    p = tmp_path / "f8.pt"
    torch.save({"w": torch.zeros(2, dtype=torch.float8_e4m3fn)}, p, _use_new_zipfile_serialization=False)
    try:
        ckpt = open_checkpoint(p)
    except CheckpointError as e:
        assert "torch.load failed" in str(e)
    else:  # a future torch that reads it must read it exactly
        assert ckpt.read("w").dtype == torch.float8_e4m3fn


def test_non_contiguous_and_shared_tensors(tmp_path: Path) -> None:
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    sd = {"t": base.t(), "row": base[1], "slice": base[:, 2:4], "base": base}
    torch.save(sd, tmp_path / "v.pt")
    for src in (sd, tmp_path / "v.pt"):
        with open_checkpoint(src) as ckpt:
            for name, t in sd.items():
                assert torch.equal(ckpt.read(name), t) and ckpt.read(name).is_contiguous()
                assert bytes(ckpt.read_bytes(name)) == t.contiguous().numpy().tobytes()


# --- modules and state dicts -----------------------------------------------------------------------------


def test_module_checkpoint(digits_cnn: torch.nn.Module) -> None:
    ckpt = open_checkpoint(digits_cnn)
    assert ckpt.format == "module" and ckpt.metadata["module_class"] == "torch.nn.modules.container.Sequential"
    sd = digits_cnn.state_dict()
    assert [t.name for t in ckpt.tensors] == list(sd)  # BN running stats and num_batches_tracked included
    assert ckpt.info("1.num_batches_tracked").dtype == "I64"
    read = ckpt.read("0.weight")
    read.zero_()  # a copy: the live module is untouched
    assert not torch.equal(digits_cnn.state_dict()["0.weight"], read)


def test_state_dict_with_non_tensor_value() -> None:
    with pytest.raises(CheckpointError, match="value is a int, not a tensor") as info:
        open_checkpoint({"w": torch.ones(1), "epoch": 3})
    assert type(info.value) is CheckpointError and info.value.tensor == "epoch"


def test_unstorable_tensors_refused() -> None:
    with pytest.raises(CheckpointError, match="torch.sparse_coo"):
        open_checkpoint({"s": torch.eye(3).to_sparse()})
    with pytest.raises(CheckpointError, match="complex128 cannot be stored"):
        open_checkpoint({"c": torch.zeros(2, dtype=torch.complex128)})


@pytest.mark.parametrize("legacy", [False, True])
def test_digits_cnn_roundtrip(tmp_path: Path, digits_cnn: torch.nn.Module, digits_data, legacy: bool) -> None:
    """The real digits-trained CNN saved with torch.save reads back bit-exactly and predicts the same."""
    p = tmp_path / "cnn.pt"
    sd = digits_cnn.state_dict()
    torch.save(sd, p, _use_new_zipfile_serialization=not legacy)
    with open_checkpoint(p) as ckpt:
        assert ckpt.format == ("torch-legacy" if legacy else "torch-zip")
        assert [t.name for t in ckpt.tensors] == list(sd)
        for name, t in sd.items():
            assert _bits(ckpt.read(name)) == _bits(t) and ckpt.read(name).dtype == t.dtype, name
        clone = copy.deepcopy(digits_cnn)
        for t in clone.state_dict().values():
            t.zero_()  # forget the weights: only the checkpoint can bring them back
        clone.load_state_dict(dict(ckpt.state_dict()))
    clone.eval()
    _, _, x_test, _ = digits_data
    with torch.no_grad():
        assert torch.equal(clone(x_test), digits_cnn(x_test))



@settings(max_examples=20, deadline=None)
@given(_state_dicts(list(CODES)))
def test_our_writer_output_passes_our_reader(sd: dict[str, torch.Tensor]) -> None:
    """What weightzoo exports (``zoo.formats.writer``) must pass its own strict reader, sharded or not."""
    from weightzoo.zoo.formats.writer import save_state_dict

    with tempfile.TemporaryDirectory() as d:
        save_state_dict(sd, Path(d) / "one.safetensors", metadata={"source": "test"})
        _check(Path(d) / "one.safetensors", sd, "safetensors")
        save_state_dict(sd, Path(d) / "shards", max_shard_bytes=16)
        _check(Path(d) / "shards", sd, "safetensors-sharded")


def test_failed_sharded_rewrite_leaves_no_mixed_checkpoint(tmp_path) -> None:
    import torch

    from weightzoo.zoo.formats import TensorInfo
    from weightzoo.zoo.formats.writer import write_sharded

    infos = [TensorInfo("a", "F32", (4,)), TensorInfo("b", "F32", (4,))]
    old = {n: torch.zeros(4) for n in "ab"}
    write_sharded(tmp_path, infos, lambda n: old[n].numpy().tobytes(), max_shard_bytes=16)

    def failing(name: str) -> bytes:
        if name == "b":
            raise OSError("disk went away")
        return torch.ones(4).numpy().tobytes()

    with pytest.raises(OSError):
        write_sharded(tmp_path, infos, failing, max_shard_bytes=16)
    assert not (tmp_path / "model.safetensors.index.json").exists()  # no index stitching new a to old b
