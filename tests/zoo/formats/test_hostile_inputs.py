"""Round two of hostile inputs (issue 22) at the reader level: every case is refused with its exact typed
error and one-line message (or, for legitimate inputs, read correctly) — no traceback, no hang, no
allocation beyond what the file holds."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import unicodedata
from pathlib import Path

import pytest
import torch

from weightzoo.errors import (
    CheckpointError,
    CheckpointReadError,
    UnsafeCheckpointError,
)
from weightzoo.zoo.formats import open_checkpoint


def _refused(exc: type[Exception], source: object, match: str) -> Exception:
    with pytest.raises(exc, match=match) as info:
        open_checkpoint(source)
    assert type(info.value) is exc, f"{type(info.value).__name__} instead of {exc.__name__}: {info.value}"
    assert "\n" not in str(info.value)
    return info.value


def test_fifo_is_refused_before_it_is_opened(tmp_path: Path, attacks) -> None:
    p = attacks.write_fifo(tmp_path)
    # In a child process with a timeout: if the FIFO were opened for reading, the open would block forever.
    code = f"from weightzoo.zoo.formats import open_checkpoint\ntry:\n    open_checkpoint({str(p)!r})\n" \
           "except Exception as e:\n    print(type(e).__name__, e)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.stdout.startswith("UnsupportedFormatError") and "FIFO" in out.stdout, out


@pytest.mark.parametrize("which", ["model.safetensors", "config.json"])
def test_symlink_loop_in_a_snapshot(tmp_path: Path, attacks, which: str) -> None:
    _refused(CheckpointReadError, attacks.write_symlink_loop(tmp_path, which), "symlink loop")


def test_unreadable_file_is_a_typed_error(tmp_path: Path, attacks) -> None:
    p = attacks.safetensors_file(tmp_path)
    p.chmod(0)
    if os.access(p, os.R_OK):  # root reads anything: check the conversion of the error itself instead
        from weightzoo.zoo.formats.paths import read_error

        err = read_error(p, PermissionError(13, "Permission denied", str(p)))
        assert isinstance(err, CheckpointReadError) and "permission denied" in str(err)
        return
    _refused(CheckpointReadError, p, "permission denied")


@pytest.mark.parametrize("name, problem", [("\ud800", "lone surrogate"), ("a\x00b", "NUL")])
def test_unstorable_tensor_names_refused(tmp_path: Path, attacks, name: str, problem: str) -> None:
    _refused(CheckpointError, attacks.write_tensor_named(tmp_path, name), problem)


@pytest.mark.parametrize("name", ["", "a/b", "../../etc/passwd", "/abs", "caf\u00e9", unicodedata.normalize("NFD", "caf\u00e9")])
def test_odd_but_valid_tensor_names_are_kept_verbatim(tmp_path: Path, attacks, name: str) -> None:
    with open_checkpoint(attacks.write_tensor_named(tmp_path, name)) as ckpt:
        assert [t.name for t in ckpt.tensors] == [name]
        assert ckpt.read(name).tolist() == [1.0]


@pytest.mark.parametrize("rank", [33, 64])
def test_high_rank_is_read(tmp_path: Path, attacks, rank: int) -> None:
    with open_checkpoint(attacks.write_rank(tmp_path, rank)) as ckpt:
        assert ckpt.read("t").dim() == rank


def test_rank_above_64_refused(tmp_path: Path, attacks) -> None:
    _refused(CheckpointError, attacks.write_rank(tmp_path, 65), "rank 65 exceeds")


def test_zero_element_tensor_with_a_dimension_beyond_int64(tmp_path: Path, attacks) -> None:
    _refused(CheckpointError, attacks.write_zero_element(tmp_path, 2**64), "2\\*\\*63")
    with open_checkpoint(attacks.write_zero_element(tmp_path, 2**62)) as ckpt:  # within int64: fine
        assert ckpt.read("z").shape == (2**62, 0)


@pytest.mark.parametrize("config, match", [
    (b'{"x": 1e400}', "out of range"),
    (b'{"model_type": "\\udc80"}', "lone surrogate"),
    (b'{"a": ' + b"[" * 100 + b"]" * 100 + b"}", "nested deeper than 64"),
    (b'{"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "lists/objects"),
])
def test_bad_config_json(tmp_path: Path, attacks, config: bytes, match: str) -> None:
    _refused(CheckpointError, attacks.write_snapshot_with_config(tmp_path, config), match)


def test_config_of_empty_lists_is_refused_before_parsing(tmp_path: Path, attacks) -> None:
    _refused(CheckpointError, attacks.write_snapshot_with_config(tmp_path, attacks.empty_lists_json(2**20)),
             "memory bomb")
    _refused(CheckpointError, attacks.write_snapshot_with_config(tmp_path, attacks.empty_lists_json(5 * 2**20), "big"),
             "exceeds the limit")


def test_header_of_empty_lists_is_refused_before_parsing(tmp_path: Path, attacks) -> None:
    _refused(CheckpointError, attacks.write_header_of_empty_lists(tmp_path, 2**20), "memory bomb")


@pytest.mark.parametrize("make, match", [
    (lambda a, d: a.write_tensor_constructor(d, kind="zip"), "torch.Tensor"),
    (lambda a, d: a.write_tensor_constructor(d, kind="legacy"), "torch.Tensor"),
    (lambda a, d: a.write_parameter_data_swap(d), "torch.Tensor"),
    (lambda a, d: a.write_bytearray_pickle(d, kind="plain"), "bytearray"),
    (lambda a, d: a.write_bytearray_pickle(d, kind="zip"), "bytearray"),
    (lambda a, d: a.write_overlapping_views(d), "memory bomb"),
], ids=["tensor-ctor-zip", "tensor-ctor-legacy", "param-data-swap", "bytearray-pickle", "bytearray-zip",
        "overlapping-views"])
def test_constructed_and_amplified_tensors_refused(tmp_path: Path, attacks, make, match: str) -> None:
    _refused(UnsafeCheckpointError, make(attacks, tmp_path), match)


def test_tensors_not_mapped_from_the_file_are_refused(tmp_path: Path, attacks) -> None:
    """Defence in depth behind the pickle scan: a zip checkpoint's tensors must live in the file's map."""
    from weightzoo.zoo.formats.torch_pickle import _check_from_file

    p = tmp_path / "ok.pt"
    torch.save({"w": torch.ones(4)}, p)
    loaded = torch.load(p, weights_only=True, mmap=True)
    _check_from_file(p, loaded)  # mapped from the file: fine
    with pytest.raises(UnsafeCheckpointError, match="storage is not in the file"):
        _check_from_file(p, {"w": torch.empty(1000)})  # heap memory
    # torch itself cannot call a storage type under weights_only: still a typed error
    _refused(CheckpointError, attacks.write_storage_constructor(tmp_path), "not callable")


def test_lazy_conjugate_and_negative_views_read_as_their_values(tmp_path: Path, attacks) -> None:
    p = attacks.write_lazy_views(tmp_path)
    expected = torch.load(p, weights_only=True)
    with open_checkpoint(p) as ckpt:
        for name in ("c", "n"):
            got = ckpt.read(name)
            assert not got.is_conj() and not got.is_neg()
            assert torch.equal(got, expected[name].resolve_conj().resolve_neg())
            assert bytes(ckpt.read_bytes(name)) == got.numpy().tobytes()


@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_sparse_tensors_refused_by_name(tmp_path: Path, attacks, layout: str) -> None:
    _refused(CheckpointError, attacks.write_sparse(tmp_path, layout), f"sparse_{layout}")


@pytest.mark.parametrize("key", ["x", "model"])
def test_deep_nesting(tmp_path: Path, attacks, key: str) -> None:
    _refused(CheckpointError, attacks.write_deep_nesting(tmp_path, 3000, key), "deeper than 64")


def test_index_naming_too_many_shards(tmp_path: Path, attacks) -> None:
    from weightzoo.zoo.formats.sharded import MAX_SHARDS

    index = attacks.write_index(tmp_path, {f"t{i}": f"s{i}.safetensors" for i in range(MAX_SHARDS + 1)})
    _refused(CheckpointError, index, "shard files")


_BOMB_UNDER_RLIMIT = textwrap.dedent("""
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    from weightzoo.errors import WeightzooError
    from weightzoo.zoo.formats import open_checkpoint
    try:
        open_checkpoint(sys.argv[1])
    except WeightzooError as e:
        print("refused", type(e).__name__)
""")


@pytest.mark.slow
@pytest.mark.parametrize("make", [
    lambda a, d: a.write_bytearray_pickle(d, 2**33, "plain"),
    lambda a, d: a.write_tensor_constructor(d, 2**31, "zip"),
    lambda a, d: a.write_snapshot_with_config(d, a.empty_lists_json(3 * 2**20)),
], ids=["bytearray-8GiB", "tensor-8GiB", "config-empty-lists"])
def test_memory_bombs_refused_under_an_address_space_limit(tmp_path: Path, attacks, make) -> None:
    """With 3 GiB of address space, a bomb that allocated what it declares would die of MemoryError."""
    p = make(attacks, tmp_path)
    out = subprocess.run([sys.executable, "-c", _BOMB_UNDER_RLIMIT, str(p)], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("refused"), out.stderr[-2000:]


def test_data_section_carrying_another_format_is_just_bytes(tmp_path: Path, attacks) -> None:
    """A zip (or a pickle) hidden as a tensor's bytes is never interpreted: stored and exported verbatim."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("data.pkl", b"\x80\x02}q\x00.")
    payload = buf.getvalue()
    header = {"blob": {"dtype": "U8", "shape": [len(payload)], "data_offsets": [0, len(payload)]}}
    p = attacks.safetensors_file(tmp_path, "carrier.safetensors", header, payload)
    from weightzoo.zoo.store import Zoo

    with Zoo.open(tmp_path / "z") as zoo:
        zoo.ingest(p, name="carrier")
        assert bytes(zoo.tensor("carrier", "blob").numpy()) == payload
