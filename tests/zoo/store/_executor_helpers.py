"""Job functions for the executor tests, importable by spawned workers (the tests put this folder on sys.path).

Each kills its own worker process with SIGKILL the first time it meets a chosen item (a marker file
records that it did), as an out-of-memory kill or a lost node would, so the retry path runs for real.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from weightzoo.zoo.store import Zoo
from weightzoo.zoo.store.packs import PackWriter
from weightzoo.zoo.store.staging import StagedPack, StageTask, stage_pack


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _first_time(marker: Path) -> bool:
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


class Square:
    """``x -> x * x``; ``ValueError`` for negative numbers (an ordinary task failure, never retried)."""

    def __call__(self, x: int) -> int:
        if x < 0:
            raise ValueError(f"negative: {x}")
        return x * x


class KillOnce:
    """``x -> x * x``, but the worker that first meets ``target`` is killed (``always``: every time)."""

    def __init__(self, marker: str, target: int, always: bool = False) -> None:
        self.marker, self.target, self.always = Path(marker), target, always

    def __call__(self, x: int) -> int:
        if x == self.target and (self.always or _first_time(self.marker)):
            _die()
        return x * x


class KillingStage(StageTask):
    """Stages like :class:`StageTask`, but the worker staging ``target`` is killed once, mid-job:
    ``phase="write"`` while its temporary pack is half written, ``phase="renamed"`` after the pack was
    renamed into place but before the driver got the rows (an orphan pack)."""

    def __init__(self, packs_dir: str | Path, prefix: str, marker: str, target: str, phase: str) -> None:
        super().__init__(packs_dir, prefix)
        self.marker, self.target, self.phase = Path(marker), target, phase

    def __call__(self, batch: Sequence[Mapping[str, Any]]) -> StagedPack:
        hit = any(str(s["source"]).endswith(self.target) for s in batch)
        if hit and _first_time(self.marker):
            if self.phase == "write":
                w = PackWriter(Path(self.packs_dir), prefix=self.prefix)
                w.add("0" * 64, "F32", (1 << 15,), np.zeros(1 << 15, dtype=np.float32))  # 128 KiB: a dataset
                w._open().flush()
            else:
                stage_pack(self.packs_dir, batch, prefix=self.prefix)
            _die()
        return super().__call__(batch)


def snapshot(zoo: Zoo) -> list[dict[str, Any]]:
    """Everything a user sees of a zoo's models, in catalogue order, tensors as raw bytes (no timestamps)."""
    out = []
    for m in zoo.models():
        d = m.to_dict()
        d.pop("created_at")
        d["tensors"] = [(t.name, t.dtype, t.shape, t.hash, t.nan_count, t.inf_count) for t in zoo.tensors(m.ref)]
        d["bytes"] = {k: v.reshape(-1).view(torch.uint8).numpy().tobytes() for k, v in zoo.state_dict(m.ref).items()}
        out.append(d)
    return out


def assert_tidy(zoo: Zoo) -> None:
    """Catalogue and packs agree, and no orphan pack or temporary file is left."""
    rep = zoo.verify()
    assert rep.clean and not rep.orphan_packs and not rep.temp_files, rep.to_dict()


def write_checkpoints(folder: Path, n: int = 5) -> list[Path]:
    """``n`` small safetensors checkpoints sharing a frozen embedding (dedup across tasks), each with a
    bfloat16 bias and a tensor large enough to be its own HDF5 dataset."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    shared = torch.randn(64, 16, generator=g)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        sd = {"emb.weight": shared, "fc.weight": torch.randn(8, 16, generator=g),
              "fc.bias": torch.randn(8, generator=g).to(torch.bfloat16), "big": torch.randn(20_000, generator=g)}
        p = folder / f"net{i}.safetensors"
        save_file(sd, str(p))
        paths.append(p)
    return paths
