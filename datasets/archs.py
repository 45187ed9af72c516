"""``archs``: a DeepNets-1M style zoo of random cell-based architectures, a fraction trained on digits.

Recipe 1. Each architecture belongs to a *family* (its label for retrieval), which fixes the operation
mix and the ranges of depth and width; a genotype (one normal and one reduce cell, 1–3 nodes of 2
edges each, as DARTS) is sampled per architecture and repeated over its cells; reduce cells sit at
1/3 and 2/3 of the depth and double the channels; the stem kernel is 3 or 5 and normalization is batch
norm (p = 0.7) or none. Specs use :mod:`weightzoo.zoo.arch.cells` (``weightzoo.cells/1``).

In-distribution families (split train/val/test by architecture):

==============  ==========================================  =======  ======
family          operations                                  cells    width
==============  ==========================================  =======  ======
plain           conv3, conv5, max3, id                      3–6      8–16
separable       sep3, sep5, dil3, avg3, id                  3–6      8–16
pooled          conv3, max3, avg3, id, zero                 3–6      8–16
mixed           all but attn                                3–6      8–16
attention       all, attn 1 draw in 10                      3–6      8–16
==============  ==========================================  =======  ======

Held-out families (split ``heldout``, never in train/val/test): ``wide`` (mixed ops, width 24–32),
``deep`` (mixed ops, 8–10 cells, width 8–12) and ``attention-heavy`` (attn half of the draws, width 8–16). An
architecture is held out with probability 0.15, spread evenly over the three.

A fraction (``trained_fraction``, 0.25 by default, chosen by a hash of the architecture) is trained for
``epochs`` (2) with Adam (lr 3e-3, batch 64) on the digits training images and carries
``test_accuracy`` & co.; the others are stored at their (seeded) PyTorch default initialisation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .builder import (
    DatasetBuilder,
    ModelItem,
    UnitResult,
    WorkUnit,
    categorical_summary,
    derive_seed,
    hash_split,
    numeric_summary,
)

_ALL = ("conv3", "conv5", "sep3", "sep5", "dil3", "max3", "avg3", "id", "zero")
FAMILIES: dict[str, dict[str, Any]] = {
    "plain": {"ops": ("conv3", "conv5", "max3", "id"), "cells": (3, 6), "width": (8, 16)},
    "separable": {"ops": ("sep3", "sep5", "dil3", "avg3", "id"), "cells": (3, 6), "width": (8, 16)},
    "pooled": {"ops": ("conv3", "max3", "avg3", "id", "zero"), "cells": (3, 6), "width": (8, 16)},
    "mixed": {"ops": _ALL, "cells": (3, 6), "width": (8, 16)},
    "attention": {"ops": _ALL + ("attn",), "cells": (3, 6), "width": (8, 16)},
    "wide": {"ops": _ALL, "cells": (3, 6), "width": (24, 32)},
    "deep": {"ops": _ALL, "cells": (8, 10), "width": (8, 12)},
    "attention-heavy": {"ops": _ALL + ("attn",) * 9, "cells": (3, 6), "width": (8, 16)},
}
HELDOUT_FAMILIES = ("wide", "deep", "attention-heavy")
IN_FAMILIES = tuple(f for f in FAMILIES if f not in HELDOUT_FAMILIES)
HELDOUT_P = 0.15


def sample_cells_spec(rng: np.random.Generator, family: str) -> dict[str, Any]:
    """A random ``weightzoo.cells/1`` spec of ``family`` for 1×8×8 inputs and 10 classes."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; valid: {', '.join(FAMILIES)}")
    fam = FAMILIES[family]
    ops = fam["ops"]

    def genotype() -> list[list[list[Any]]]:
        nodes = []
        for j in range(int(rng.integers(1, 4))):
            srcs = rng.choice(2 + j, size=2, replace=False)
            nodes.append([[str(ops[int(rng.integers(len(ops)))]), int(s)] for s in srcs])
        return nodes

    n_cells = int(rng.integers(fam["cells"][0], fam["cells"][1] + 1))
    width = int(rng.integers(fam["width"][0] // 4, fam["width"][1] // 4 + 1)) * 4
    reduce_at = {n_cells // 3, 2 * n_cells // 3} - {0}
    cells, c = [], width
    for i in range(n_cells):
        if i in reduce_at:
            c *= 2
        cells.append({"type": "reduce" if i in reduce_at else "normal", "channels": c})
    return {"format": "weightzoo.cells/1", "input_shape": [1, 8, 8], "num_classes": 10,
            "norm": "bn" if rng.random() < 0.7 else "none",
            "stem": {"channels": width, "kernel": int(rng.choice([3, 5]))},
            "genotype": {"normal": genotype(), "reduce": genotype()}, "cells": cells}


def make_arch(unit: WorkUnit) -> UnitResult:
    """Build one architecture, train it if selected, measure it (a work-unit function)."""
    from weightzoo.zoo.arch.cells import build_cells, op_counts

    from .digits import digits_split, make_optimizer, measure, numpy_state, train_epoch

    p = dict(unit.params)
    spec, seed = p["spec"], p["seed"]
    torch.manual_seed(seed)
    model = build_cells(spec)
    n_params = sum(t.numel() for t in model.parameters())
    md: dict[str, Any] = {"dataset": p["dataset"], "arch": p["index"], "family": p["family"],
                          "heldout": p["family"] in HELDOUT_FAMILIES, "split": p["split"], "seed": seed,
                          "trained": p["trained"], "parameters": n_params, "cells": len(spec["cells"]),
                          "width": spec["stem"]["channels"], "norm": spec["norm"],
                          "ops": {k: v for k, v in op_counts(spec).items() if v}}
    if p["trained"]:
        data = digits_split()
        gen = torch.Generator().manual_seed(seed)
        opt = make_optimizer("adam", list(model.parameters()), 3e-3, 0.0)
        for _ in range(p["epochs"]):
            train_epoch(model, opt, data.x_train, data.y_train, batch_size=64, generator=gen)
        tr, te = measure(model, data.x_train, data.y_train), measure(model, data.x_test, data.y_test)
        md.update(epoch=p["epochs"], train_accuracy=tr["accuracy"], train_loss=tr["loss"],
                  test_accuracy=te["accuracy"], test_loss=te["loss"], test_accuracy_a=te["accuracy_a"],
                  test_accuracy_b=te["accuracy_b"])
    else:
        md["epoch"] = 0
    return UnitResult(unit.key, [ModelItem(unit.names[0], numpy_state(model.eval()), spec, md)])


class ArchsBuilder(DatasetBuilder):
    """archs: random cell-based architectures with family labels; a fraction trained briefly on digits."""

    name = "archs"
    recipe_version = 1
    default_size = 1000
    size_unit = "architectures"

    def __init__(self, trained_fraction: float = 0.25, epochs: int = 2) -> None:
        if not 0.0 <= trained_fraction <= 1.0 or epochs < 1:
            raise ValueError(f"ArchsBuilder: trained_fraction must be in [0, 1] and epochs >= 1, "
                             f"got {trained_fraction}, {epochs}")
        self.trained_fraction, self.epochs = float(trained_fraction), int(epochs)

    def recipe(self) -> dict[str, Any]:
        return {"families": {k: {"ops": sorted(set(v["ops"])), "cells": list(v["cells"]), "width": list(v["width"])}
                             for k, v in FAMILIES.items()},
                "heldout_families": list(HELDOUT_FAMILIES), "heldout_p": HELDOUT_P,
                "trained_fraction": self.trained_fraction, "epochs": self.epochs, "optimizer": "adam", "lr": 3e-3}

    def _family(self, seed: int, key: str) -> str:
        rng = np.random.default_rng(derive_seed(self.name, seed, key, "family"))
        if rng.random() < HELDOUT_P:
            return str(HELDOUT_FAMILIES[int(rng.integers(len(HELDOUT_FAMILIES)))])
        return str(IN_FAMILIES[int(rng.integers(len(IN_FAMILIES)))])

    def split_of(self, seed: int, group: str) -> str:
        return "heldout" if self._family(seed, group) in HELDOUT_FAMILIES else hash_split(self.name, seed, group)

    def units(self, size: int, seed: int) -> list[WorkUnit]:
        out = []
        for i in range(size):
            key = f"a{i:05d}"
            fam = self._family(seed, key)
            arch_seed = derive_seed(self.name, seed, key)
            spec = sample_cells_spec(np.random.default_rng(arch_seed), fam)
            trained = derive_seed(self.name, seed, key, "trained") / (2**31 - 1) < self.trained_fraction
            name = f"{self.name}/{key}"
            params = {"dataset": self.name, "index": i, "family": fam, "seed": arch_seed, "spec": spec,
                      "trained": trained, "epochs": self.epochs, "split": self.split_of(seed, key)}
            out.append(WorkUnit(key, make_arch, {key: (name,)}, (name,), params))
        return out

    def manifest_extra(self, units: list[WorkUnit], seed: int) -> dict[str, Any]:
        fams: dict[str, list[str]] = {}
        for u in units:
            fams.setdefault(u.params["family"], []).append(u.key)
        return {"families": fams, "heldout_families": list(HELDOUT_FAMILIES)}

    def summarize(self, final: list[Any]) -> dict[str, Any]:
        trained = [r for r in final if r.metadata.get("trained")]
        return {"family": categorical_summary(r.metadata["family"] for r in final),
                "trained": len(trained),
                "test_accuracy": numeric_summary([r.metadata.get("test_accuracy") for r in trained], chance=0.2),
                "parameters": numeric_summary([r.metadata["parameters"] for r in final], lo=0.0,
                                              hi=float(max([r.metadata["parameters"] for r in final], default=1)))}


__all__ = ["ArchsBuilder", "FAMILIES", "HELDOUT_FAMILIES", "IN_FAMILIES", "make_arch", "sample_cells_spec"]
