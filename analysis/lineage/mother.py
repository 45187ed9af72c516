r"""MoTHer-style baseline (Horwitz et al.): distance + kurtosis direction + minimum arborescence, trees only.

Every model of one architecture is one node of a complete digraph with cost
:math:`c(u \to v) = \|u - v\| + \lambda\,[\kappa(v) > \kappa(u)]` (a child with *higher* kurtosis than its
parent pays :math:`\lambda`, MoTHer's regime), and the lineage is its minimum spanning arborescence. As
published it assumes families were clustered beforehand and builds trees only (a merge gets one parent);
``families=`` hands it ours to separate that effect. Distances come from the same sketches as
:func:`~weightzoo.analysis.lineage.infer_lineage`, so both run in one harness.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from .infer import InferredEdge
from .sketch import ModelSketch
from .trees import build_tree


def mother_lineage(sketches: Sequence[ModelSketch], *, families: Sequence[Sequence[str]] | None = None,
                   penalty: float = 10.0) -> list[InferredEdge]:
    """The MoTHer-style edges: one arborescence per architecture (or per given family)."""
    by_ref = {s.ref: s for s in sketches}
    if families is None:
        groups: dict[Any, list[str]] = defaultdict(list)
        for s in sketches:
            groups[s.signature].append(s.ref)
        families = list(groups.values())
    edges = []
    for fam in families:
        members = [by_ref[r] for r in fam]
        if len(members) < 2:
            continue
        names = sorted(set.intersection(*(set(m.tensors) for m in members)))
        X = np.stack([m.vector(names) for m in members])
        sq = np.einsum("ij,ij->i", X, X)
        D = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * X @ X.T, 0.0))
        kurt = [m.kurtosis for m in members]
        for e in build_tree(D, kurtosis=kurt, kurtosis_sign=-1.0, penalty=penalty):
            edges.append(InferredEdge(members[e.child].ref, members[e.parent].ref, "finetune", 0.5,
                                      {"distance": e.distance, "kurtosis": [kurt[e.parent], kurt[e.child]]}))
    return edges


__all__ = ["mother_lineage"]
