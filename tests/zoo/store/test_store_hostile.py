"""Round two of hostile inputs and damaged zoos (issue 22) at the store and CLI level.

Each case asserts the exact error type (or, through the CLI, exit 1 with one line on stderr and no
traceback), that no user file was touched, and that the zoo is unchanged with ``verify`` clean. The
damaged-zoo cases run the real ``weightzoo`` command in subprocesses on real files.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from weightzoo.cli import main
from weightzoo.errors import (
    CheckpointError,
    InvalidNameError,
    InvalidOptionError,
    TensorCorruptError,
    ZooCorruptError,
    ZooNotFoundError,
)
from weightzoo.zoo.store import Zoo

EXE = Path(sys.executable).with_name("weightzoo")

_spec = importlib.util.spec_from_file_location(
    "weightzoo_store_hostile_attacks", Path(__file__).parents[1] / "formats" / "attacks" / "generators.py")
assert _spec is not None and _spec.loader is not None
attacks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(attacks)




@pytest.fixture
def zoo_dir(tmp_path: Path) -> Path:
    z = tmp_path / "zoo"
    with Zoo.open(z) as zoo:
        zoo.ingest({"w": torch.randn(10), "big": torch.randn(40_000)}, name="existing", metadata={"seed": 1})
    return z


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line_error(rc: int, err: str) -> None:
    assert rc == 1, err
    assert err.count("\n") == 1 and "error:" in err and "Traceback" not in err, err


def _run(*argv: str | bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(EXE), *argv], capture_output=True, timeout=300, cwd="/")


# --- the lock and odd zoo folders: user files are never touched -----------------------------------------


def test_lock_symlink_to_a_user_file_is_not_followed(zoo_dir: Path, tmp_path: Path, zoo_state: Callable[[Path], Any]) -> None:
    precious = tmp_path / "thesis.txt"
    precious.write_bytes(b"x" * 2000)
    (zoo_dir / ".lock").unlink(missing_ok=True)
    os.symlink(precious, zoo_dir / ".lock")
    before = zoo_state(zoo_dir)
    with Zoo.open(zoo_dir) as zoo, pytest.raises(ZooCorruptError, match="symbolic link"):
        zoo.ingest({"w": torch.ones(2)}, name="new")
    assert precious.read_bytes() == b"x" * 2000
    assert zoo_state(zoo_dir) == before


def test_lock_hard_link_to_a_user_file_is_refused(zoo_dir: Path, tmp_path: Path) -> None:
    precious = tmp_path / "notes.txt"
    precious.write_bytes(b"y" * 100)
    (zoo_dir / ".lock").unlink(missing_ok=True)
    os.link(precious, zoo_dir / ".lock")
    with Zoo.open(zoo_dir) as zoo, pytest.raises(ZooCorruptError, match="hard links"):
        zoo.rm("existing")
    assert precious.read_bytes() == b"y" * 100


def test_lock_that_is_a_folder(zoo_dir: Path, capsys) -> None:
    (zoo_dir / ".lock").unlink(missing_ok=True)
    (zoo_dir / ".lock").mkdir()
    rc, _, err = _cli(["rm", "existing", "--zoo", str(zoo_dir)], capsys)
    _one_line_error(rc, err)
    assert "is a folder" in err
    rc, out, _ = _cli(["ls", "--zoo", str(zoo_dir)], capsys)  # reads still work
    assert rc == 0 and "existing" in out


def test_packs_that_is_a_file(zoo_dir: Path, tmp_path: Path, capsys) -> None:
    import shutil

    shutil.rmtree(zoo_dir / "packs")
    (zoo_dir / "packs").write_bytes(b"not a folder")
    rc, _, err = _cli(["ls", "--zoo", str(zoo_dir)], capsys)
    _one_line_error(rc, err)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "packs").write_bytes(b"mine")
    rc, _, err = _cli(["ingest", str(attacks.safetensors_file(tmp_path)), "--zoo", str(fresh)], capsys)
    _one_line_error(rc, err)
    assert (fresh / "packs").read_bytes() == b"mine"


def test_folder_with_foreign_packs_is_not_taken_for_a_zoo(tmp_path: Path) -> None:
    folder = tmp_path / "results"
    (folder / "packs").mkdir(parents=True)
    (folder / "packs" / "my_results.h5").write_bytes(b"results")
    with pytest.raises(ZooNotFoundError, match="not empty"):
        Zoo.open(folder)
    assert (folder / "packs" / "my_results.h5").read_bytes() == b"results"
    assert not (folder / "catalog.sqlite").exists()


def test_repair_never_deletes_foreign_files_or_folders(zoo_dir: Path) -> None:
    (zoo_dir / "packs" / "my_results.h5").write_bytes(b"results")
    (zoo_dir / "packs" / ("ab" * 16 + ".h5")).mkdir()  # a folder named like a pack
    with Zoo.open(zoo_dir) as zoo:
        rep = zoo.verify(repair=True)
        assert rep.clean and sorted(rep.foreign_files) == sorted(["my_results.h5", "ab" * 16 + ".h5"])
        assert not rep.repaired
    assert (zoo_dir / "packs" / "my_results.h5").read_bytes() == b"results"
    assert (zoo_dir / "packs" / ("ab" * 16 + ".h5")).is_dir()


# --- names and metadata: Unicode, depth, finiteness, size ------------------------------------------------


@pytest.mark.parametrize("argv_tail, match", [
    (["--name", "bad\udcff"], "not valid Unicode"),
    (["--meta", "k\udcff=1"], "not valid Unicode"),
    (["--meta", "k=" + "[" * 50_000 + "]" * 50_000], "nested"),
    (["--meta", "k=1e400"], "not finite"),
    (["--meta", "k=" + json.dumps("x" * (2 * 2**20))], "bytes of JSON"),
])
def test_bad_names_and_metadata_through_the_cli(zoo_dir: Path, tmp_path: Path, capsys, argv_tail, match, zoo_state: Callable[[Path], Any]) -> None:
    src = attacks.safetensors_file(tmp_path)
    before = zoo_state(zoo_dir)
    rc, _, err = _cli(["ingest", str(src), "--zoo", str(zoo_dir), *argv_tail], capsys)
    _one_line_error(rc, err)
    assert match in err
    assert zoo_state(zoo_dir) == before


def test_surrogates_in_other_arguments(zoo_dir: Path, capsys) -> None:
    for argv in (["show", "x\udcff", "--zoo", str(zoo_dir)],
                 ["lineage", "existing", "--add-parent", "p\udcff", "--zoo", str(zoo_dir)],
                 ["ls", "--filter", "k\udcff=1", "--zoo", str(zoo_dir)],
                 ["ls", "--filter", "k=" + "[" * 50_000 + "]" * 50_000, "--zoo", str(zoo_dir)]):
        rc, _, err = _cli(argv, capsys)
        _one_line_error(rc, err)


def test_invalid_utf8_file_name_through_a_real_process(zoo_dir: Path, tmp_path: Path) -> None:
    src = attacks.safetensors_file(tmp_path, "ok.safetensors")
    odd = os.fsencode(tmp_path) + b"/bad\xff.safetensors"
    os.rename(src, odd)
    out = _run(b"ingest", odd, b"--zoo", os.fsencode(zoo_dir))
    assert out.returncode == 1 and b"Traceback" not in out.stderr and b"not valid Unicode" in out.stderr, out.stderr
    out = _run(b"ingest", odd, b"--zoo", os.fsencode(zoo_dir), b"--name", b"renamed")  # a valid name: fine
    assert out.returncode == 0, out.stderr


def test_api_metadata_and_config_checks(zoo_dir: Path) -> None:
    deep: object = 1
    for _ in range(100):
        deep = [deep]
    with Zoo.open(zoo_dir) as zoo:
        with pytest.raises(InvalidOptionError, match="nested deeper"):
            zoo.set_metadata("existing", deep=deep)
        with pytest.raises(InvalidOptionError, match="not finite"):
            zoo.add_metadata_only("m", [], config={"x": float("inf")})
        with pytest.raises(InvalidNameError):
            zoo.add_lineage("existing", "\ud800")


def test_infinite_config_value_is_refused_and_the_zoo_stays_listable(zoo_dir: Path, tmp_path: Path, capsys) -> None:
    snap = attacks.write_snapshot_with_config(tmp_path, b'{"architectures": ["X"], "x": 1e400}')
    rc, _, err = _cli(["ingest", str(snap), "--zoo", str(zoo_dir)], capsys)
    _one_line_error(rc, err)
    rc, out, _ = _cli(["ls", "--zoo", str(zoo_dir), "--json"], capsys)
    assert rc == 0 and [m["name"] for m in json.loads(out)] == ["existing"]


def test_checkpoints_refused_through_the_cli_leave_the_zoo_unchanged(zoo_dir: Path, tmp_path: Path, capsys, zoo_state: Callable[[Path], Any]) -> None:
    work = tmp_path / "work"
    work.mkdir()
    cases = [attacks.write_symlink_loop(work), attacks.write_symlink_loop(work, "config.json"),
             attacks.write_rank(work, 65), attacks.write_zero_element(work), attacks.write_tensor_constructor(work),
             attacks.write_bytearray_pickle(work), attacks.write_overlapping_views(work),
             attacks.write_sparse(work), attacks.write_deep_nesting(work, 3000),
             attacks.write_tensor_named(work, "\ud800"), attacks.write_fifo(work)]
    before = zoo_state(zoo_dir)
    for p in cases:
        rc, _, err = _cli(["ingest", str(p), "--zoo", str(zoo_dir), "--name", "intruder"], capsys)
        _one_line_error(rc, err)
    assert zoo_state(zoo_dir) == before
    with Zoo.open(zoo_dir) as zoo:
        assert zoo.verify().clean


def test_high_rank_and_huge_empty_tensors_round_trip(tmp_path: Path) -> None:
    src = attacks.write_rank(tmp_path, 40, elements=2**15)  # 128 KiB: its own HDF5 dataset, stored flat
    empty = attacks.write_zero_element(tmp_path, 2**62)
    with Zoo.open(tmp_path / "z") as zoo:
        zoo.ingest(src, name="r40")
        zoo.ingest(empty, name="empty")
        assert zoo.tensor("r40", "t").shape == load_file(src)["t"].shape
        assert torch.equal(zoo.tensor("r40", "t"), load_file(src)["t"])
        assert zoo.tensor("empty", "z").shape == (2**62, 0)
        assert zoo.verify().clean
    assert main(["export", "empty", "--zoo", str(tmp_path / "z"), "--out", str(tmp_path / "e.safetensors")]) == 0
    assert load_file(tmp_path / "e.safetensors")["z"].shape == (2**62, 0)


# --- damaged zoos ---------------------------------------------------------------------------------------


def _pack(zoo_dir: Path) -> Path:
    (pack,) = [p for p in (zoo_dir / "packs").iterdir() if p.suffix == ".h5"]
    return pack


def test_bit_flips_make_export_fail_loudly(tmp_path: Path) -> None:
    import h5py

    zoo_dir = tmp_path / "z"
    src = tmp_path / "m.safetensors"
    save_file({"small": torch.randn(100), "big": torch.randn(40_000)}, src)
    with Zoo.open(zoo_dir) as zoo:
        zoo.ingest(src, name="m")
        big = next(t.hash for t in zoo.tensors("m") if t.name == "big")
    with h5py.File(_pack(zoo_dir), "r+") as f:
        f[big][7] = f[big][7] + 1.0
    out_file = tmp_path / "out.safetensors"
    out = _run("export", "m", "--zoo", str(zoo_dir), "--out", str(out_file))
    assert out.returncode == 1 and b"Traceback" not in out.stderr and b"do not match their hash" in out.stderr
    assert not out_file.exists() and not list(tmp_path.glob(".out.safetensors*"))
    with Zoo.open(zoo_dir) as zoo:
        with pytest.raises(TensorCorruptError):
            zoo.tensor("m", "big")
        assert zoo.tensor("m", "big", verify=False).shape == (40_000,)  # explicitly unchecked: allowed
        assert zoo.tensor("m", "small").shape == (100,)


def test_lost_pack_is_reported_and_healed_by_reingesting(tmp_path: Path) -> None:
    zoo_dir = tmp_path / "z"
    src = tmp_path / "m.safetensors"
    save_file({"w": torch.randn(100), "big": torch.randn(40_000)}, src)
    with Zoo.open(zoo_dir) as zoo:
        zoo.ingest(src, name="m")
        zoo.ingest(src, name="twin")  # shares every blob
    _pack(zoo_dir).unlink()
    out = _run("verify", "--zoo", str(zoo_dir), "--repair", "--json")
    rep = json.loads(out.stdout)
    assert out.returncode == 1 and not rep["clean"] and rep["missing_packs"]
    assert any(u.startswith("m (restore: weightzoo ingest") and "--replace" in u for u in rep["unrecoverable"])
    out = _run("ingest", str(src), "--name", "m", "--replace", "--zoo", str(zoo_dir))
    assert out.returncode == 0, out.stderr
    out = _run("verify", "--zoo", str(zoo_dir), "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["clean"], out.stdout
    with Zoo.open(zoo_dir) as zoo:  # the twin shares the blobs, so it is healed too
        assert torch.equal(zoo.tensor("twin", "big"), load_file(src)["big"])


def test_lost_pack_heals_without_repair_first(tmp_path: Path) -> None:
    src = tmp_path / "m.safetensors"
    save_file({"w": torch.randn(100)}, src)
    with Zoo.open(tmp_path / "z") as zoo:
        zoo.ingest(src, name="m")
        _pack(zoo.path).unlink()
        zoo.ingest(src, name="m", replace=True)
        assert zoo.verify().clean and zoo.tensor("m", "w").shape == (100,)


@pytest.mark.slow
def test_flipped_bytes_in_pack_metadata_never_give_a_traceback(tmp_path: Path) -> None:
    zoo_dir = tmp_path / "z"
    with Zoo.open(zoo_dir) as zoo:
        zoo.ingest({"w": torch.randn(100), "big": torch.randn(40_000), "b2": torch.randn(20_000)}, name="m")
    pack = _pack(zoo_dir)
    pristine = pack.read_bytes()
    rng = random.Random(0)
    for _ in range(30):
        data = bytearray(pristine)
        for _ in range(4):  # HDF5 metadata sits in the first KiB and around the datasets' headers
            i = rng.randrange(0, 4096)
            data[i] ^= 1 << rng.randrange(8)
        pack.write_bytes(bytes(data))
        with Zoo.open(zoo_dir) as zoo:
            zoo.verify()  # must not raise: damage is reported
            try:
                dict(zoo.state_dict("m"))
            except (ZooCorruptError, TensorCorruptError):
                pass
    pack.write_bytes(pristine)
    out = _run("verify", "--zoo", str(zoo_dir))
    assert out.returncode == 0


def test_export_sees_one_revision_while_another_process_replaces_it(tmp_path: Path) -> None:
    zoo_dir = tmp_path / "z"
    old = {f"t{i}": torch.full((10,), float(i)) for i in range(20)}
    with Zoo.open(zoo_dir) as zoo:
        zoo.ingest(old, name="m")
    with Zoo.open(zoo_dir) as reader, reader.read_snapshot():
        sd = reader.state_dict("m")
        first = sd["t0"]
        with Zoo.open(zoo_dir) as writer:  # another connection: like another process
            writer.ingest({"other": torch.ones(3)}, name="m", replace=True)
        got = {k: sd[k] for k in sd}
    assert torch.equal(first, old["t0"]) and all(torch.equal(got[k], old[k]) for k in old)
    with Zoo.open(zoo_dir) as zoo:
        assert [t.name for t in zoo.tensors("m")] == ["other"]


def test_zoo_of_another_user_opens_read_only(zoo_dir: Path, tmp_path: Path, monkeypatch, capsys, zoo_state: Callable[[Path], Any]) -> None:
    """A zoo this user may read but not write: reads work, writes say so. (Tests run as root, whom no
    permission stops, so the access check is what is simulated; SQLite really opens with ``mode=ro``.)"""
    from weightzoo.errors import ZooReadOnlyError

    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if mode == os.W_OK else real_access(p, mode, **kw))
    before = zoo_state(zoo_dir)
    with Zoo.open(zoo_dir) as zoo:
        assert zoo.read_only and zoo.tensor("existing", "w").shape == (10,)
        for write in (lambda: zoo.set_metadata("existing", x=1), lambda: zoo.rm("existing"), zoo.gc,
                      lambda: zoo.ingest({"x": torch.ones(1)}, name="n"), lambda: zoo.verify(repair=True)):
            with pytest.raises(ZooReadOnlyError, match="read-only for this user"):
                write()
        assert zoo.verify().clean
    rc, _, err = _cli(["rm", "existing", "--zoo", str(zoo_dir)], capsys)
    _one_line_error(rc, err)
    assert "read-only for this user" in err and "not a readable zoo catalogue" not in err
    assert zoo_state(zoo_dir) == before


def test_checkpoint_errors_after_open_are_typed(tmp_path: Path) -> None:
    bad = attacks.write_snapshot_with_config(tmp_path, b'{"a": 1}')
    with Zoo.open(tmp_path / "z") as zoo:
        from weightzoo.zoo.formats import open_checkpoint

        ckpt = open_checkpoint(bad)
        ckpt.config = {"x": float("nan")}  # a config set by a caller: validated at ingest too
        with pytest.raises(CheckpointError, match="not finite"):
            zoo.ingest(ckpt, name="x")


def test_serve_hub_never_serves_damaged_bytes(tmp_path: Path) -> None:
    import h5py
    from huggingface_hub import hf_hub_download

    from weightzoo.zoo.hub.mirror import HubMirror

    zoo_dir = tmp_path / "z"
    with Zoo.open(zoo_dir) as zoo:
        zoo.ingest({"big": torch.randn(40_000)}, name="lab/m")
        big = zoo.tensors("lab/m")[0].hash
    with h5py.File(_pack(zoo_dir), "r+") as f:
        f[big][3] = f[big][3] + 1.0
    with HubMirror(zoo=zoo_dir) as hub, pytest.raises(Exception) as info:
        hf_hub_download("lab/m", "model.safetensors", endpoint=hub.url, cache_dir=tmp_path / "c")
    assert not isinstance(info.value, AssertionError)
    assert not list((tmp_path / "c").rglob("model.safetensors"))


_FULL_DISK = r"""
import os, resource, signal, sys, torch
from weightzoo.zoo.store import Zoo
from weightzoo.errors import WeightzooError
z = sys.argv[1]
with Zoo.open(z) as zoo:
    for i in range(3):
        zoo.ingest({"w": torch.randn(10)}, name=f"m{i}")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file-size limit then fails writes like a full disk
with Zoo.open(z) as zoo:
    biggest = max(os.path.getsize(os.path.join(z, f)) for f in os.listdir(z) if f.startswith("catalog"))
    resource.setrlimit(resource.RLIMIT_FSIZE, (biggest + 1024, resource.RLIM_INFINITY))
    for op in (lambda: zoo.add_lineage("m1", "m0", evidence={"x": "y" * 100000}), lambda: zoo.rm("m0"),
               lambda: zoo.set_metadata("m2", notes="z" * 100000),
               lambda: zoo.ingest({"v": torch.randn(100000)}, name="big")):
        try:
            op()
            print("ok")
        except WeightzooError as e:
            print("typed", type(e).__name__)
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    print("clean" if zoo.verify().clean else "CORRUPT")
"""


@pytest.mark.slow
def test_full_disk_during_catalogue_writes_gives_storage_errors(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", _FULL_DISK, str(tmp_path / "z")], capture_output=True, text=True,
                         timeout=300, cwd="/")
    lines = out.stdout.split()
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert lines[-1] == "clean" and "StorageError" in lines and "cannot rollback" not in out.stderr, out.stdout
