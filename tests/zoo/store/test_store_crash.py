"""Crash safety and concurrency of the store, with real subprocesses (SIGKILL, two writers, disk full)."""

from __future__ import annotations

import os
import random
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from weightzoo.zoo.store import Zoo

EXE = Path(sys.executable).with_name("weightzoo")

CHILD = r"""
import sys
from weightzoo.zoo.store import Zoo
from weightzoo.zoo.formats import open_checkpoint
zoo = Zoo.open(sys.argv[1], lock_timeout=float(sys.argv[4]))
ckpt = open_checkpoint(sys.argv[2])
print("ready", flush=True)
try:
    zoo.ingest(ckpt, name=sys.argv[3])
except Exception as exc:
    print(type(exc).__name__, exc, flush=True)
    sys.exit(3)
print("done", flush=True)
"""


def _child(zoo: Path, src: Path, name: str, lock_timeout: float = 30.0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(zoo), str(src), name, str(lock_timeout)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")


def _catalogue(zoo_dir: Path) -> dict[str, list]:
    con = sqlite3.connect(zoo_dir / "catalog.sqlite")
    try:
        return {t: sorted(map(repr, con.execute(f"SELECT * FROM {t}").fetchall())) for t in ("models", "tensors", "blobs", "packs")}
    finally:
        con.close()


@pytest.mark.slow
def test_sigkill_at_random_points_leaves_whole_model_or_none(tmp_path: Path, minilm_dir: Path) -> None:
    rng = random.Random(0)
    zoo_dir = tmp_path / "z"
    Zoo.open(zoo_dir).close()
    src = minilm_dir / "model.safetensors"
    outcomes = []
    for i in range(8):
        p = _child(zoo_dir, src, f"m{i}")
        assert p.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.3))  # an ingest of MiniLM takes ~0.2 s or more here
        p.send_signal(signal.SIGKILL)
        p.wait()
        with Zoo.open(zoo_dir) as zoo:
            rep = zoo.verify()
            assert rep.clean, rep
            if zoo.has_model(f"m{i}"):
                outcomes.append("whole")
                sd = zoo.state_dict(f"m{i}")
                assert len(sd) == len(zoo.tensors(f"m{i}")) > 100
                for k in list(sd)[:3]:
                    sd[k]
                zoo.rm(f"m{i}")  # so that the next ingest writes its bytes again (no dedup)
                zoo.gc()
            else:
                outcomes.append("none")
            zoo.verify(repair=True)
            assert not zoo.verify().orphan_packs and not zoo.verify().temp_files
    # after all the kills a normal ingest still works
    with Zoo.open(zoo_dir) as zoo:
        zoo.ingest(src, name="final")
        assert zoo.verify().clean
    assert "none" in outcomes, outcomes  # at least one kill landed mid-ingest


@pytest.mark.slow
def test_two_writers_both_succeed_or_one_is_busy(tmp_path: Path, minilm_dir: Path) -> None:
    zoo_dir = tmp_path / "z"
    Zoo.open(zoo_dir).close()
    src = minilm_dir / "model.safetensors"
    # Waiting writers: both succeed, one after the other.
    a, b = _child(zoo_dir, src, "a"), _child(zoo_dir, src, "b")
    outs = [p.communicate(timeout=120)[0] for p in (a, b)]
    assert all(o.strip().endswith("done") for o in outs), outs
    # Impatient writers: each either succeeds or says the zoo is busy; nothing is corrupted.
    c, d = _child(zoo_dir, src, "c", 0.0), _child(zoo_dir, src, "d", 0.0)
    outs = [p.communicate(timeout=120)[0] for p in (c, d)]
    for o in outs:
        assert o.strip().endswith("done") or "ZooBusyError" in o, o
    with Zoo.open(zoo_dir) as zoo:
        assert zoo.verify().clean
        assert {"a", "b"} <= {m.name for m in zoo.models()}
        assert zoo.stats()["packs"] == 1  # identical bytes were deduplicated across processes


@pytest.mark.slow
def test_disk_full_is_a_typed_error_and_changes_nothing(tmp_path: Path, minilm_dir: Path) -> None:
    zoo_dir = tmp_path / "z"
    with Zoo.open(zoo_dir) as zoo:
        zoo.ingest({"w": __import__("torch").ones(3)}, name="keep")
    before = _catalogue(zoo_dir)
    packs_before = set(os.listdir(zoo_dir / "packs"))

    def limit() -> None:  # a file-size limit makes writes fail like a full disk (EFBIG instead of ENOSPC)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (8 << 20, 8 << 20))

    res = subprocess.run([str(EXE), "ingest", str(minilm_dir), "--zoo", str(zoo_dir), "--name", "big"],
                         capture_output=True, text=True, preexec_fn=limit, cwd="/")
    assert res.returncode == 1, res
    assert "error" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert _catalogue(zoo_dir) == before
    assert set(os.listdir(zoo_dir / "packs")) == packs_before
    with Zoo.open(zoo_dir) as zoo:
        assert zoo.verify().clean
