"""Workers stage packs, the driver commits: same catalogue as a local ingest, nothing lost, nothing left over."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from weightzoo.errors import CheckpointError, ModelExistsError
from weightzoo.zoo.store import Zoo
from weightzoo.zoo.store.executors import ProcessExecutor, SerialExecutor
from weightzoo.zoo.store.staging import ingest_parallel, new_job_prefix, stage_pack

HERE = Path(__file__).resolve().parent


@pytest.fixture()
def helpers() -> Iterator[Any]:
    sys.path.insert(0, str(HERE))
    try:
        import _executor_helpers

        yield _executor_helpers
    finally:
        sys.path.remove(str(HERE))


@pytest.fixture()
def snapshot(helpers: Any) -> Any:
    return helpers.snapshot


@pytest.fixture()
def is_tidy(helpers: Any) -> Any:
    return helpers.assert_tidy


@pytest.fixture()
def checkpoints(tmp_path: Path, helpers: Any) -> list[Path]:
    """Five small checkpoints sharing a frozen embedding (dedup across tasks) plus one large tensor each."""
    return list(helpers.write_checkpoints(tmp_path / "ckpts"))


def items_of(paths: list[Path]) -> list[dict[str, Any]]:
    return [{"source": str(p), "metadata": {"i": k}} for k, p in enumerate(paths)]


def test_staged_ingest_equals_local_ingest(tmp_path: Path, checkpoints: list[Path], snapshot: Any, is_tidy: Any) -> None:
    with Zoo.open(tmp_path / "local") as local:
        for it in items_of(checkpoints):
            local.ingest(**it)
        expected = snapshot(local)
    for per_task, atomic in ((1, False), (2, True)):
        with Zoo.open(tmp_path / f"staged{per_task}") as z:
            recs = ingest_parallel(z, items_of(checkpoints), SerialExecutor(), per_task=per_task, atomic=atomic)
            assert [r.name for r in recs] == [f"net{i}" for i in range(5)]
            assert snapshot(z) == expected
            is_tidy(z)
            # the shared embedding is stored once, whichever task staged it first
            assert z.stats()["blobs"] == 1 + 3 * 5


def test_a_taken_name_or_bad_file_commits_earlier_models_and_leaves_no_pack(tmp_path: Path, checkpoints: list[Path],
                                                                           is_tidy: Any) -> None:
    bad = tmp_path / "ckpts" / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with Zoo.open(tmp_path / "z") as z:
        with pytest.raises(CheckpointError):
            ingest_parallel(z, items_of(checkpoints[:2] + [bad] + checkpoints[2:]), SerialExecutor())
        assert [m.name for m in z.models()] == ["net0", "net1"]
        is_tidy(z)
        with pytest.raises(ModelExistsError):
            ingest_parallel(z, items_of(checkpoints), SerialExecutor(), atomic=True)
        assert len(z) == 2
        is_tidy(z)


def test_commit_refuses_a_missing_pack_and_discard_removes_uncommitted(tmp_path: Path, checkpoints: list[Path],
                                                                        is_tidy: Any) -> None:
    with Zoo.open(tmp_path / "z") as z:
        job = new_job_prefix()
        sp = stage_pack(z.packs_dir, [{"source": str(checkpoints[0])}], prefix=job)
        assert sp.pack is not None and sp.pack.startswith(job)
        assert z.verify().orphan_packs == [sp.pack]  # staged, not committed: an orphan
        (z.packs_dir / f"{job}notes.txt").write_text("a user's file")  # named like no pack: never deleted
        assert z.discard_staged(job) == [sp.pack]
        assert (z.packs_dir / f"{job}notes.txt").exists()
        (z.packs_dir / f"{job}notes.txt").unlink()
        with pytest.raises(OSError, match="missing"):
            z.commit_staged([sp])
        assert len(z) == 0
        is_tidy(z)


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["write", "renamed"])
def test_killed_worker_mid_stage_loses_and_duplicates_nothing(tmp_path: Path, checkpoints: list[Path], helpers: Any,
                                                              phase: str, snapshot: Any, is_tidy: Any) -> None:
    with Zoo.open(tmp_path / "local") as local:
        for it in items_of(checkpoints):
            local.ingest(**it)
        expected = snapshot(local)
    task = partial(helpers.KillingStage, marker=str(tmp_path / "killed"), target="net2.safetensors", phase=phase)
    with Zoo.open(tmp_path / "z") as z, ProcessExecutor(2) as ex:
        ingest_parallel(z, items_of(checkpoints), ex, task=task)
        assert ex.retries >= 1 and (tmp_path / "killed").exists()
        assert snapshot(z) == expected
        is_tidy(z)
