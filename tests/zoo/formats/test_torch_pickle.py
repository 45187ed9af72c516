"""PyTorch pickles: code never runs, zips are checked before torch inflates anything, wrappers unwrap."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import pytest
import torch

from weightzoo.errors import CheckpointError, NoWeightsError, UnsafeCheckpointError, UnsupportedFormatError
from weightzoo.zoo.formats import inspect_torch_zip, open_checkpoint, select_tensors


def _raises_exactly(exc: type[Exception], source: object, match: str, **kw: object) -> Exception:
    with pytest.raises(exc, match=match) as info:
        open_checkpoint(source, **kw)
    assert type(info.value) is exc, f"expected exactly {exc.__name__}, got {type(info.value).__name__}"
    return info.value


@pytest.mark.parametrize("kind", ["zip", "legacy", "plain"])
def test_pickle_calling_os_system_never_runs(tmp_path: Path, attacks, kind: str) -> None:
    sentinel = tmp_path / "PWNED"
    p = attacks.write_code_pickle(tmp_path, sentinel, kind)
    _raises_exactly(UnsafeCheckpointError, p, "refused")
    assert not sentinel.exists(), "the pickle's code ran"


def test_zip_bomb_refused_before_torch_inflates(tmp_path: Path, attacks, monkeypatch: pytest.MonkeyPatch) -> None:
    p = attacks.write_zip_bomb(tmp_path)  # 16 MiB of zeros deflated to a few KiB
    assert p.stat().st_size < 2**20
    with zipfile.ZipFile(p) as zf:
        assert sum(i.file_size for i in zf.infolist()) > 100 * p.stat().st_size

    def no_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.load was called on a zip bomb")

    monkeypatch.setattr(torch, "load", no_load)
    t0 = time.perf_counter()
    _raises_exactly(UnsafeCheckpointError, p, "zip bomb; nothing was inflated")
    assert time.perf_counter() - t0 < 1.0


def test_zip_member_declaring_4gib_refused(tmp_path: Path, attacks, monkeypatch: pytest.MonkeyPatch) -> None:
    p = attacks.write_zip_lying_size(tmp_path)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load reached"))
    _raises_exactly(UnsafeCheckpointError, p, "declare 42949\\d+ bytes uncompressed")


def test_deflated_members_refused(tmp_path: Path, attacks) -> None:
    p = attacks.write_deflated(tmp_path)
    err = _raises_exactly(UnsafeCheckpointError, p, "is compressed")
    assert "mmap=True" in str(err)
    # The same content stored (as torch.save writes it) reads fine.
    assert open_checkpoint(tmp_path / "stored.bin").read("w").shape == (64, 64)


def test_duplicate_zip_members_refused(tmp_path: Path) -> None:
    src = tmp_path / "a.bin"
    torch.save({"w": torch.ones(2)}, src)
    dst = tmp_path / "dup.bin"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
        with pytest.warns(UserWarning, match="Duplicate name"):
            zout.writestr(zin.infolist()[-1].filename, b"x")
    _raises_exactly(UnsafeCheckpointError, dst, "twice")


def test_too_many_zip_members(tmp_path: Path) -> None:
    p = tmp_path / "many.bin"
    torch.save({"w": torch.ones(2)}, p)
    with pytest.raises(UnsafeCheckpointError, match="members \\(limit 3\\)"):
        inspect_torch_zip(p, max_members=3)


def test_zip_without_data_pkl(tmp_path: Path) -> None:
    p = tmp_path / "notes.bin"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("notes.txt", b"hello")
    _raises_exactly(UnsupportedFormatError, p, "without data.pkl")


def test_truncated_torch_zip(tmp_path: Path) -> None:
    p = tmp_path / "cut.bin"
    torch.save({"w": torch.ones(100)}, p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    _raises_exactly(CheckpointError, p, "not a readable zip")


def test_truncated_legacy(tmp_path: Path) -> None:
    p = tmp_path / "cut.pt"
    torch.save({"w": torch.ones(100)}, p, _use_new_zipfile_serialization=False)
    data = p.read_bytes()
    p.write_bytes(data[:-50])
    _raises_exactly(CheckpointError, p, "torch.load failed")


def test_legacy_size_bound(tmp_path: Path) -> None:
    p = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(100)}, p, _use_new_zipfile_serialization=False)
    _raises_exactly(CheckpointError, p, "exceeds max_legacy_bytes=100", max_legacy_bytes=100)


def test_legacy_tar_refused(tmp_path: Path, attacks) -> None:
    _raises_exactly(UnsupportedFormatError, attacks.write_legacy_tar(tmp_path), "legacy tar checkpoint")


def test_allow_pickle_false(tmp_path: Path) -> None:
    p = tmp_path / "w.pt"
    torch.save({"w": torch.ones(2)}, p)
    _raises_exactly(UnsupportedFormatError, p, "allow_pickle=False", allow_pickle=False)


def test_torch_zip_is_memory_mapped(tmp_path: Path) -> None:
    p = tmp_path / "w.pt"
    w = torch.arange(1000, dtype=torch.float32)
    torch.save({"w": w}, p)
    with open_checkpoint(p) as ckpt:
        assert ckpt.format == "torch-zip"
        view = ckpt.read_bytes("w")
        assert bytes(view) == w.numpy().tobytes()
        # Reads are copies: writing to one does not change the checkpoint.
        t = ckpt.read("w")
        t.zero_()
        assert torch.equal(ckpt.read("w"), w)


# --- what the pickle holds ---------------------------------------------------------------------------------


def test_training_checkpoint_wrapper(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    p = tmp_path / "ckpt.pt"
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 7, "loss": 0.25,
                "arch": "linear"}, p)
    with open_checkpoint(p) as ckpt:
        assert [t.name for t in ckpt.tensors] == ["weight", "bias"]
        assert torch.equal(ckpt.read("weight"), model.weight.detach())
        assert ckpt.metadata == {"epoch": "7", "loss": "0.25", "arch": "linear", "dropped_keys": "optimizer"}


@pytest.mark.parametrize("key", ["state_dict", "model_state_dict", "model", "module", "net", "network", "weights"])
def test_single_key_wrappers_unwrap(key: str) -> None:
    sd = {"a.weight": torch.ones(2), "a.bias": torch.zeros(1)}
    tensors, meta = select_tensors({key: sd}, "x.pt")
    assert list(tensors) == ["a.weight", "a.bias"] and meta == {}


def test_nested_wrappers_unwrap() -> None:
    tensors, meta = select_tensors({"model": {"state_dict": {"w": torch.ones(1)}, "step": 3}}, "x.pt")
    assert list(tensors) == ["w"] and meta == {"step": "3"}


def test_unknown_nesting_is_flattened_with_dots() -> None:
    tensors, _ = select_tensors({"encoder": {"w": torch.ones(1), "sub": {"b": torch.ones(1)}},
                                 "decoder": {"w": torch.ones(1)}}, "x.pt")
    assert list(tensors) == ["encoder.w", "encoder.sub.b", "decoder.w"]


def test_flattening_collisions_refused() -> None:
    with pytest.raises(CheckpointError, match="same dotted name"):
        select_tensors({"a.b": torch.ones(1), "a": {"b": torch.ones(1)}}, "x.pt")


@pytest.mark.parametrize(
    ("obj", "exc", "match"),
    [
        ({"params": [torch.ones(1)]}, CheckpointError, "entry 'params' is a list"),
        ({"state": {0: {"exp_avg": torch.ones(1)}}, "param_groups": []}, CheckpointError, "not a string"),
        (torch.ones(3), CheckpointError, "single tensor"),
        ([torch.ones(3)], CheckpointError, "holds a list"),
        ({"epoch": 3}, NoWeightsError, "no tensors"),
    ],
)
def test_unreadable_pickle_contents(tmp_path: Path, obj: object, exc: type[Exception], match: str) -> None:
    p = tmp_path / "x.pt"
    torch.save(obj, p)
    _raises_exactly(exc, p, match)


def test_expanded_view_is_refused_before_allocating(attacks, tmp_path) -> None:
    import torch

    from weightzoo.errors import UnsafeCheckpointError
    from weightzoo.zoo.formats import open_checkpoint

    path = attacks.write_expanded_view(tmp_path)
    assert path.stat().st_size < 4096
    with pytest.raises(UnsafeCheckpointError, match="expanded view"):
        open_checkpoint(path)
    # tied weights and in-bounds views still read
    w = torch.randn(4, 3)
    torch.save({"a": w, "b": w, "pos": torch.arange(6).reshape(1, 6)}, tmp_path / "tied.pt")
    with open_checkpoint(tmp_path / "tied.pt") as ckpt:
        assert torch.equal(ckpt.read("b"), w)
