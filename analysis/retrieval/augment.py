"""Augmented views of an architecture, the positives of contrastive encoder training: the same design
at another width or depth, or with one operation swapped for another of its family.

Views are made on ``weightzoo.cells/1`` specs (the ``archs`` zoo):

* **width jitter** — every channel count (stem and cells) × a factor from ``WIDTH_FACTORS``;
* **depth jitter** — one normal cell repeated or removed (at least two cells stay);
* **op swap** — one operation of the genotype replaced by another of the family's operations (the
  family's op set from :data:`weightzoo.datasets.archs.FAMILIES`; all cell ops when unknown).

Each view applies one, two or all three, chosen by the generator.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np

from weightzoo.datasets.archs import FAMILIES
from weightzoo.errors import SpecError
from weightzoo.zoo.arch.cells import CELLS_FORMAT, OPS

WIDTH_FACTORS = (0.5, 0.75, 1.25, 1.5, 2.0)


def _width(spec: dict[str, Any], factor: float) -> None:
    spec["stem"]["channels"] = max(2, round(spec["stem"]["channels"] * factor))
    for cell in spec["cells"]:
        cell["channels"] = max(2, round(cell["channels"] * factor))


def _depth(spec: dict[str, Any], rng: np.random.Generator) -> None:
    cells = spec["cells"]
    normal = [i for i, c in enumerate(cells) if c["type"] == "normal"]
    if not normal:
        return
    i = normal[int(rng.integers(len(normal)))]
    if len(cells) > 2 and rng.random() < 0.5:
        del cells[i]
    else:
        cells.insert(i, dict(cells[i]))


def _swap(spec: dict[str, Any], rng: np.random.Generator, ops: tuple[str, ...]) -> None:
    slots = [(kind, j, e) for kind in ("normal", "reduce") for j, node in enumerate(spec["genotype"][kind])
             for e in range(len(node))]
    kind, j, e = slots[int(rng.integers(len(slots)))]
    current = spec["genotype"][kind][j][e][0]
    choices = [o for o in ops if o != current]
    if choices:
        spec["genotype"][kind][j][e][0] = choices[int(rng.integers(len(choices)))]


def architecture_view(spec: Mapping[str, Any], rng: np.random.Generator, family: str | None = None) -> dict[str, Any]:
    """One random view of a cells spec (see the module docstring); ``SpecError`` for other spec formats."""
    if spec.get("format") != CELLS_FORMAT:
        raise SpecError(f"architecture views are defined for {CELLS_FORMAT} specs, got {spec.get('format')!r}")
    out = copy.deepcopy(dict(spec))
    ops = tuple(sorted(set(FAMILIES[family]["ops"]))) if family in FAMILIES else OPS
    which = rng.permutation(3)[: int(rng.integers(1, 4))]
    for w in which:
        if w == 0:
            _width(out, float(rng.choice(WIDTH_FACTORS)))
        elif w == 1:
            _depth(out, rng)
        else:
            _swap(out, rng, ops)
    return out


__all__ = ["WIDTH_FACTORS", "architecture_view"]
