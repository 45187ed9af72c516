"""The architectures a GHN trains on and is evaluated on, with their splits, and the digits image splits.

An :class:`ArchitecturePool` comes from an ``archs`` benchmark zoo (``weightzoo datasets build archs``;
its manifest fixes train / val / test / heldout per architecture) or is sampled directly with the same
generator (:meth:`ArchitecturePool.sample`, for tests and quick runs). Evaluation splits follow
DeepNets-1M: ``test`` (held-out architectures of the training families), ``wide``, ``deep`` and
``attention-heavy`` (held-out families), and ``bn-free`` (the BatchNorm-free ones among all of them,
reported apart because their accuracy does not depend on recalibration).

The 1,797 digits images are cut three ways and the cut is recorded with every run: the 500 fixed test
images of :func:`weightzoo.datasets.digits.digits_split` are only ever used for evaluation; its 1,297
training images are split (fixed seed) into GHN-training images, BN-calibration images and validation
images (early stopping and the best-seed choice).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from weightzoo.datasets.archs import FAMILIES, HELDOUT_FAMILIES, sample_cells_spec
from weightzoo.datasets.builder import derive_seed, hash_split, read_manifest
from weightzoo.datasets.digits import digits_split
from weightzoo.errors import HyperNetworkError

EVAL_SPLITS: tuple[str, ...] = ("test", *HELDOUT_FAMILIES, "bn-free")
N_CALIBRATION = 200
N_VALIDATION = 200
IMAGE_CUT_SEED = 1


@dataclass(frozen=True)
class Architecture:
    """One architecture: its name, ``weightzoo.cells/1`` spec, split and family."""

    name: str
    spec: Mapping[str, Any]
    split: str
    family: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def bn_free(self) -> bool:
        return self.spec.get("norm") == "none"


class ArchitecturePool:
    """Architectures by split (``train``, ``val``, ``test``, ``heldout``) and evaluation split."""

    def __init__(self, archs: Iterable[Architecture], *, source: str = "") -> None:
        self.archs = list(archs)
        self.source = source
        if not self.archs:
            raise HyperNetworkError(f"an architecture pool needs architectures ({source or 'none given'})")

    @classmethod
    def from_zoo(cls, path: str | os.PathLike[str]) -> ArchitecturePool:
        """The architectures of an ``archs`` zoo (its manifest's splits; specs from the catalogue)."""
        from weightzoo.zoo.store import Zoo

        manifest = read_manifest(path, "archs")
        archs = []
        with Zoo.open(path, create=False) as zoo:
            for group in manifest["groups"].values():
                for name in group["models"]:
                    if not zoo.has_model(name):
                        continue
                    rec = zoo.model(name)
                    md = dict(rec.metadata or {})
                    if rec.spec is None:
                        continue
                    archs.append(Architecture(name, dict(rec.spec), group["split"], str(md.get("family", "")), md))
        return cls(archs, source=os.fspath(path))

    @classmethod
    def sample(cls, size: int, seed: int = 0, *, families: Iterable[str] | None = None) -> ArchitecturePool:
        """``size`` architectures from the ``archs`` generator, families drawn uniformly from ``families``
        (default: all); held-out families go to split ``heldout``, the others to train/val/test by hash."""
        fams = tuple(families) if families is not None else tuple(FAMILIES)
        unknown = [f for f in fams if f not in FAMILIES]
        if unknown or size < 1:
            raise HyperNetworkError(f"ArchitecturePool.sample: size must be >= 1 and families among "
                                    f"{', '.join(FAMILIES)}; got {size}, {unknown}")
        archs = []
        for i in range(size):
            key = f"a{i:05d}"
            rng = np.random.default_rng(derive_seed("hyper-archs", seed, key))
            fam = fams[int(rng.integers(len(fams)))]
            split = "heldout" if fam in HELDOUT_FAMILIES else hash_split("hyper-archs", seed, key)
            archs.append(Architecture(f"archs/{key}", sample_cells_spec(rng, fam), split, fam))
        return cls(archs, source=f"sample(size={size}, seed={seed})")

    def split(self, name: str) -> list[Architecture]:
        """Architectures of a manifest split (``train``, ``val``, ``test``, ``heldout``) or an evaluation
        split (:data:`EVAL_SPLITS`)."""
        if name in ("train", "val", "test", "heldout"):
            return [a for a in self.archs if a.split == name]
        if name in HELDOUT_FAMILIES:
            return [a for a in self.archs if a.split == "heldout" and a.family == name]
        if name == "bn-free":
            return [a for a in self.archs if a.split in ("test", "heldout") and a.bn_free]
        raise HyperNetworkError(f"unknown split {name!r}; valid: train, val, test, heldout, "
                                f"{', '.join(EVAL_SPLITS[1:])}")

    def __len__(self) -> int:
        return len(self.archs)


@dataclass(frozen=True)
class ImageSplits:
    """Disjoint digits images: GHN training, BN calibration, validation (all from the training images)
    and evaluation (the fixed test images). ``*_index`` are indices into ``load_digits``."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_calib: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    index: Mapping[str, list[int]]

    def record(self) -> dict[str, Any]:
        """What a run writes down: sizes and the exact image indices of each part."""
        return {"seed": IMAGE_CUT_SEED, "sizes": {k: len(v) for k, v in self.index.items()},
                "index": {k: list(v) for k, v in self.index.items()}}


@lru_cache(maxsize=1)
def image_splits() -> ImageSplits:
    """The fixed cut of the digits images used by every GHN run and every baseline."""
    d = digits_split()
    perm = np.random.default_rng(IMAGE_CUT_SEED).permutation(len(d.y_train))
    cal, val, tr = perm[:N_CALIBRATION], perm[N_CALIBRATION:N_CALIBRATION + N_VALIDATION], \
        perm[N_CALIBRATION + N_VALIDATION:]
    index = {"train": d.train_index[tr].tolist(), "calibration": d.train_index[cal].tolist(),
             "validation": d.train_index[val].tolist(), "test": d.test_index.tolist()}
    return ImageSplits(d.x_train[tr], d.y_train[tr], d.x_train[cal], d.x_train[val], d.y_train[val],
                       d.x_test, d.y_test, index)


__all__ = ["Architecture", "ArchitecturePool", "EVAL_SPLITS", "ImageSplits", "image_splits"]
