r"""Directed trees inside a family: who was fine-tuned from whom.

Given the family's distance matrix :math:`D` (models that are neither merges, nor quantised or duplicate
copies), edges are chosen as a **minimum spanning arborescence** (Edmonds; ``nx.minimum_spanning_arborescence``)
of the complete digraph with cost

.. math::
    c(u \to v) = D_{uv} + \lambda\,[\text{direction prior violated by } u \to v]

where :math:`\lambda` is ``penalty`` × the largest distance in the family (a violation then costs more than
any tree without one). Direction priors, strongest first:

- **time**: a parent was uploaded before its child (only the Hub's ``createdAt`` counts);
- **kurtosis**: fine-tuning moves the weights' kurtosis one way; the sign is *calibrated* on the zoo's
  declared edges (MoTHer saw it fall on large pretrained models; it rose on the small digits networks
  fine-tuned with Adam here), and used only when that calibration is clear;
- **medoid**: with nothing to calibrate on, the family is rooted at its medoid (siblings fine-tuned from
  one parent sit farther from each other than from it) and every edge points away from it — the
  arborescence rooted at the medoid is then the minimum spanning tree oriented from the root.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TreeEdge:
    """``parent → child`` (indices into the family), with the cost terms that chose it."""

    child: int
    parent: int
    distance: float
    runner_up: float  # distance to the closest other allowed parent (inf if none)
    violates_prior: bool


def medoid(D: np.ndarray) -> int:
    """The row with the smallest sum of distances (ties: the first)."""
    return int(np.argmin(D.sum(axis=1)))


def build_tree(D: np.ndarray, *, root: int | None = None, kurtosis: Sequence[float] | None = None,
               kurtosis_sign: float = 0.0, times: Sequence[float | None] | None = None,
               penalty: float = 10.0) -> list[TreeEdge]:
    """The minimum spanning arborescence of one family (see the module docstring).

    Args:
        D: (m, m) symmetric distances.
        root: force this node to be the root (no incoming edges), e.g. the medoid.
        kurtosis, kurtosis_sign: per-node kurtosis and the calibrated direction: ``-1`` if children have
            *lower* kurtosis than their parents (MoTHer), ``+1`` if higher, ``0`` to ignore kurtosis.
        times: per-node upload times (``None`` where unknown); a parent must be older than its child.
        penalty: λ in units of the family's largest distance.
    """
    import networkx as nx

    m = D.shape[0]
    if m < 2:
        return []
    lam = penalty * float(D.max() or 1.0)
    g = nx.DiGraph()
    g.add_nodes_from(range(m))
    violates: dict[tuple[int, int], bool] = {}
    for u in range(m):
        for v in range(m):
            if u == v or v == root:
                continue
            bad = False
            if times is not None and times[u] is not None and times[v] is not None and times[u] > times[v]:  # type: ignore[operator]
                bad = True
            if kurtosis is not None and kurtosis_sign and np.sign(kurtosis[v] - kurtosis[u]) == -np.sign(kurtosis_sign):
                bad = True
            violates[(u, v)] = bad
            g.add_edge(u, v, weight=float(D[u, v]) + (lam if bad else 0.0))
    tree = nx.minimum_spanning_arborescence(g, attr="weight", preserve_attrs=True)
    out = []
    for u, v in sorted(tree.edges(), key=lambda e: e[1]):
        alt = [float(D[w, v]) for w in range(m) if w not in (u, v) and (w, v) in violates and not violates[(w, v)]]
        out.append(TreeEdge(child=int(v), parent=int(u), distance=float(D[u, v]), runner_up=min(alt, default=float("inf")),
                            violates_prior=violates[(u, v)]))
    return out


def calibrate_kurtosis(deltas: Sequence[float], *, min_edges: int = 3, min_agreement: float = 0.7) -> tuple[float, float]:
    """The kurtosis direction from declared edges: ``(sign, agreement)``.

    ``deltas`` are kurtosis(child) − kurtosis(parent) of declared fine-tune edges. ``sign`` is ``-1`` (falls),
    ``+1`` (rises) or ``0`` when fewer than ``min_edges`` edges or less than ``min_agreement`` of them agree.
    """
    d = [x for x in deltas if x != 0]
    if len(d) < min_edges:
        return 0.0, 0.0
    up = sum(1 for x in d if x > 0) / len(d)
    agreement = max(up, 1 - up)
    if agreement < min_agreement:
        return 0.0, agreement
    return (1.0 if up > 0.5 else -1.0), agreement


__all__ = ["TreeEdge", "build_tree", "calibrate_kurtosis", "medoid"]
