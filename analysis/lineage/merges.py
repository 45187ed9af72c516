r"""Merges: a model that is an exact linear mixture of two or more other models of its family.

For a child :math:`c` and candidate parents :math:`P = \{p_1, \dots, p_r\}` (``r`` = 2, then 3) the
least-squares coefficients :math:`\alpha = \arg\min \|x_c - \sum_i \alpha_i x_{p_i}\|` are found on the
models' sketches (sketches are linear, so an exact mixture stays exact). The fit is a merge when

- the relative residual :math:`\|x_c - \sum_i \alpha_i x_{p_i}\| / \|x_c\| \le` ``tol`` (1e-3), and
- the residual is below ``margin`` (5 %) of the distance from :math:`c` to its nearest parent (so models
  that barely moved from each other are not called mixtures of each other), and every
  :math:`|\alpha_i| \ge 0.05`.

A merge :math:`m = (a + b)/2` makes :math:`a = 2m - b` an exact mixture too; of the models of one exact
dependency the merge is the one whose coefficients have the smallest :math:`\ell_1` norm (1 for
averages and task arithmetic with a base, 3 for the inverted fits). Weight averaging, task arithmetic
(:math:`\theta_0 + \lambda \sum_i \tau_i`, the base as a parent with its own coefficient) and SLERP at
small angles are linear or near-linear; TIES/DARE merges are not exact mixtures and are not detected here.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MergeFit:
    """``child`` ≈ Σ ``coefficients[i]`` · ``parents[i]`` (indices into the family's rows)."""

    child: int
    parents: tuple[int, ...]
    coefficients: tuple[float, ...]
    relative_residual: float

    @property
    def l1(self) -> float:
        return float(sum(abs(c) for c in self.coefficients))


def _fit(X: np.ndarray, c: int, ps: tuple[int, ...]) -> tuple[np.ndarray, float]:
    A = X[list(ps)].T
    coef, *_ = np.linalg.lstsq(A, X[c], rcond=None)
    res = X[c] - A @ coef
    return coef, float(np.sqrt(res @ res))


def find_merges(X: np.ndarray, *, tol: float = 1e-3, margin: float = 0.05, max_parents: int = 3,
                min_coefficient: float = 0.05) -> list[MergeFit]:
    """The merges among the rows of ``X`` (one row per model, the family's shared sketch coordinates).

    Shapes: ``X`` is (models, features). Cost: a Gram-matrix screen of every (child, parent set), an exact
    least-squares fit of the survivors; families are small (tens of models).
    """
    m = X.shape[0]
    if m < 3:
        return []
    X = np.asarray(X, dtype=np.float64)
    G = X @ X.T
    sq = np.diag(G)
    D = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * G, 0.0))
    fits: list[MergeFit] = []
    for c in range(m):
        others = [i for i in range(m) if i != c]
        found: list[MergeFit] = []
        for r in range(2, max_parents + 1):
            if len(others) < r or found:
                break
            for ps in itertools.combinations(others, r):
                idx = list(ps)
                Gp, g = G[np.ix_(idx, idx)], G[idx, c]
                try:
                    coef = np.linalg.solve(Gp, g)
                except np.linalg.LinAlgError:
                    continue
                screen = max(float(sq[c] - g @ coef), 0.0)
                if screen > (10 * tol) ** 2 * sq[c] + 1e-12 * sq[c]:
                    continue
                coef, res = _fit(X, c, ps)
                nearest = float(min(D[c, p] for p in ps))
                if (res <= tol * np.sqrt(sq[c]) and res <= margin * nearest
                        and all(abs(a) >= min_coefficient for a in coef)):
                    found.append(MergeFit(c, tuple(int(p) for p in ps), tuple(float(a) for a in coef),
                                          res / float(np.sqrt(sq[c])) if sq[c] > 0 else 0.0))
        if found:
            fits.append(min(found, key=lambda f: (f.l1, f.relative_residual)))
    accepted: list[MergeFit] = []
    merged: set[int] = set()
    used: set[int] = set()
    for f in sorted(fits, key=lambda f: (f.l1, f.relative_residual)):
        # a parent of an accepted merge is not itself that dependency's merge, nor is a fit through a merge
        if f.child in used or merged & set(f.parents):
            continue
        accepted.append(f)
        merged.add(f.child)
        used |= set(f.parents)
    return sorted(accepted, key=lambda f: f.child)


__all__ = ["MergeFit", "find_merges"]
