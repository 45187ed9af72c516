r"""A shared PCA basis of filters and CNN Filter DB's distribution shift between groups of filters.

:class:`FilterPCA` is fitted in one streaming pass on max-normalised filters; :func:`distribution_shift`
compares two groups by the explained-variance-weighted symmetric KL divergence of their PCA-coefficient
histograms, and :func:`group_shift` does it for every pair of groups of a :class:`FilterTable`
(by model, layer, depth or any metadata key), streaming the table in chunks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from weightzoo.errors import FilterAnalysisError

from .filter_metrics import _CHUNK
from .filter_table import FilterTable

#: Number of histogram bins per PCA component in :func:`distribution_shift` (CNN Filter DB).
KL_BINS = 70
#: Probability floor added to every histogram bin before renormalising, so empty bins keep KL finite.
KL_EPS = 1e-10


class FilterPCA:
    r"""PCA basis of max-normalised filters, fitted in one streaming pass and shared across a selection.

    Filters are scaled by their own max |w| (CNN Filter DB), then the k²×k² covariance is accumulated in
    float64 over chunks (:meth:`partial_fit`), so a basis over billions of filters needs O(k⁴) memory.
    ``components`` (k²×k², rows = principal axes by decreasing variance, sign fixed so each axis' largest
    |entry| is positive), ``explained_variance`` and ``explained_variance_ratio`` as in scikit-learn.
    """

    def __init__(self, kernel: int = 3) -> None:
        if kernel < 1:
            raise FilterAnalysisError(f"FilterPCA(kernel={kernel}): kernel must be ≥ 1")
        self.kernel = kernel
        d = kernel * kernel
        self.n_ = 0
        self._sum = np.zeros(d)
        self._gram = np.zeros((d, d))
        self.mean: np.ndarray | None = None
        self.components: np.ndarray | None = None
        self.explained_variance: np.ndarray | None = None
        self.explained_variance_ratio: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"FilterPCA(kernel={self.kernel}, n={self.n_}, fitted={self.components is not None})"

    def partial_fit(self, filters: np.ndarray) -> FilterPCA:
        """Add an (n, k²) block of raw filters to the running moments."""
        x = np.asarray(filters, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.kernel**2:
            raise FilterAnalysisError(f"FilterPCA(kernel={self.kernel}) expects (n, {self.kernel ** 2}) filters, got {x.shape}")
        xt = np.ascontiguousarray(x.T)
        m = np.abs(xt).max(axis=0) if xt.shape[1] else np.zeros(0, np.float32)
        m[m == 0] = 1.0
        xt /= m
        self._sum += xt.sum(axis=1, dtype=np.float64)
        x64 = xt.astype(np.float64)
        self._gram += x64 @ x64.T
        self.n_ += x.shape[0]
        return self

    def finalize(self) -> FilterPCA:
        """Turn the accumulated moments into the basis."""
        if self.n_ < 2:
            raise FilterAnalysisError(f"FilterPCA needs at least 2 filters, got {self.n_}")
        mean = self._sum / self.n_
        cov = (self._gram - self.n_ * np.outer(mean, mean)) / (self.n_ - 1)
        vals, vecs = np.linalg.eigh(cov)
        order = np.argsort(vals)[::-1]
        vals = np.clip(vals[order], 0.0, None)
        comps = vecs[:, order].T
        signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
        comps *= signs[:, None]
        self.mean = mean
        self.components = comps
        self.explained_variance = vals
        total = vals.sum()
        self.explained_variance_ratio = vals / total if total > 0 else np.full_like(vals, 1.0 / len(vals))
        return self

    def fit(self, table: FilterTable | np.ndarray, layer_ids: Iterable[int] | None = None) -> FilterPCA:
        """Fit on a whole table (chunked) or an (n, k²) array."""
        for block in _blocks(table, layer_ids):
            self.partial_fit(block)
        return self.finalize()

    def transform(
        self, filters: np.ndarray, *, absmax_out: np.ndarray | None = None, out: np.ndarray | None = None
    ) -> np.ndarray:
        r"""PCA coefficients (n, k²) of raw filters, normalised internally: :math:`C(x/\max|x| - \mu)`.

        One fused pass per cache-sized chunk (transpose, |·|, max, matmul, scale); the result is
        Fortran-ordered (component-major memory), which is what histogramming per component wants.
        ``absmax_out`` (length n) receives each filter's max |w| on the way (for sparsity tests); ``out``
        (a (k², n) float32 C-ordered buffer, reused across calls to avoid fresh pages) receives the
        transposed coefficients, and ``out.T`` is returned.
        """
        if self.components is None or self.mean is None:
            raise FilterAnalysisError("FilterPCA.transform before fit/finalize")
        x = np.asarray(filters, dtype=np.float32)
        d = self.kernel**2
        if x.ndim != 2 or x.shape[1] != d:
            raise FilterAnalysisError(f"FilterPCA(kernel={self.kernel}) expects (n, {d}) filters, got {x.shape}")
        if out is None:
            out = np.empty((d, x.shape[0]), np.float32)
        elif out.shape != (d, x.shape[0]) or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise FilterAnalysisError(f"FilterPCA.transform: out must be a C-ordered float32 array of shape {(d, x.shape[0])}")
        comps = self.components.astype(np.float32)
        shift = (comps @ self.mean.astype(np.float32))[:, None]
        cols = min(_CHUNK, max(x.shape[0], 1))
        xt, a, m = np.empty((d, cols), np.float32), np.empty((d, cols), np.float32), np.empty(cols, np.float32)
        p = np.empty((d, cols), np.float32)  # matmul into contiguous memory: a strided `out` leaves BLAS
        for s in range(0, x.shape[0], _CHUNK):
            blk = x[s : s + _CHUNK]
            b = blk.shape[0]
            np.copyto(xt[:, :b], blk.T)
            np.abs(xt[:, :b], out=a[:, :b])
            np.maximum.reduce(a[:, :b], axis=0, out=m[:b])
            if absmax_out is not None:
                absmax_out[s : s + b] = m[:b]
            mb = m[:b]
            mb[mb == 0] = 1.0
            np.reciprocal(mb, out=mb)
            pb = p[:, :b] if b == cols else np.empty((d, b), np.float32)
            np.matmul(comps, xt[:, :b], out=pb)
            pb *= mb
            np.subtract(pb, shift, out=out[:, s : s + b])
        return out.T


def _blocks(table: FilterTable | np.ndarray, layer_ids: Iterable[int] | None) -> Iterator[np.ndarray]:
    if isinstance(table, FilterTable):
        yield from table.iter_chunks(layer_ids)
    else:
        x = np.asarray(table, dtype=np.float32)
        for s in range(0, x.shape[0], _CHUNK):
            yield x[s : s + _CHUNK]


# --- distribution shift ------------------------------------------------------------------------------


def coefficient_histograms(
    coefficients: np.ndarray, edges: np.ndarray
) -> np.ndarray:
    """Counts (k², bins) of each PCA component's coefficients over shared bin ``edges`` (values outside are
    clipped into the end bins)."""
    c = np.asarray(coefficients, dtype=np.float32)
    bins = len(edges) - 1
    lo, hi = float(edges[0]), float(edges[-1])
    width = (hi - lo) / bins if hi > lo else 1.0
    counts = np.zeros((c.shape[1], bins), np.int64)
    for j in range(c.shape[1]):
        idx = np.floor((c[:, j] - lo) / width).astype(np.int64)
        np.clip(idx, 0, bins - 1, out=idx)
        counts[j] = np.bincount(idx, minlength=bins)
    return counts


def symmetric_kl(p_counts: np.ndarray, q_counts: np.ndarray, *, eps: float = KL_EPS) -> np.ndarray:
    r"""KL(P‖Q) + KL(Q‖P) (natural log) per row of two count arrays (…, bins).

    Each histogram becomes :math:`P = (c/\sum c + \varepsilon) / (1 + B\varepsilon)` with
    ε = ``KL_EPS`` (1e-10) so empty bins keep the divergence finite.
    """
    def prob(c: np.ndarray) -> np.ndarray:
        c = np.asarray(c, dtype=np.float64)
        tot = c.sum(axis=-1, keepdims=True)
        p = np.divide(c, tot, out=np.zeros_like(c), where=tot > 0)
        return (p + eps) / (1.0 + c.shape[-1] * eps)

    p, q = prob(p_counts), prob(q_counts)
    lr = np.log(p) - np.log(q)
    return ((p - q) * lr).sum(axis=-1)


def distribution_shift(
    coeffs_a: np.ndarray,
    coeffs_b: np.ndarray,
    explained_variance_ratio: np.ndarray,
    *,
    bins: int = KL_BINS,
    value_range: tuple[float, float] | None = None,
    eps: float = KL_EPS,
) -> float:
    r"""CNN Filter DB's shift between two groups of filters given their PCA coefficients.

    .. math:: D(A, B) = \sum_i w_i \,[\mathrm{KL}(P_i\|Q_i) + \mathrm{KL}(Q_i\|P_i)],

    :math:`P_i, Q_i` the ``bins``-bin (70) histograms of component i's coefficients over a shared range
    (``value_range``, default the min/max of both groups over all components), :math:`w_i` the explained
    variance ratio. Natural log; see :func:`symmetric_kl` for the empty-bin ε.
    """
    a = np.asarray(coeffs_a, np.float32)
    b = np.asarray(coeffs_b, np.float32)
    if a.shape[0] == 0 or b.shape[0] == 0:
        raise FilterAnalysisError("distribution_shift needs at least one filter in each group")
    if value_range is None:
        value_range = (float(min(a.min(), b.min())), float(max(a.max(), b.max())))
    edges = np.linspace(value_range[0], value_range[1], bins + 1)
    kl = symmetric_kl(coefficient_histograms(a, edges), coefficient_histograms(b, edges), eps=eps)
    w = np.asarray(explained_variance_ratio, np.float64)[: len(kl)]
    return float((w * kl).sum())


@dataclass
class ShiftResult:
    """Pairwise shifts between groups: ``matrix[i, j]`` = D(groups[i], groups[j]) (symmetric, zero diagonal
    up to histogram ε), the shared ``pca``, the per-group histograms (groups × k² × bins) and bin ``edges``."""

    groups: list[str]
    matrix: np.ndarray
    pca: FilterPCA
    histograms: np.ndarray
    edges: np.ndarray
    sizes: list[int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "groups": self.groups,
            "sizes": self.sizes,
            "matrix": self.matrix.tolist(),
            "explained_variance_ratio": [] if self.pca.explained_variance_ratio is None else self.pca.explained_variance_ratio.tolist(),
        }


def group_shift(
    table: FilterTable,
    by: str,
    *,
    pca: FilterPCA | None = None,
    bins: int = KL_BINS,
    depth_bins: int = 4,
    eps: float = KL_EPS,
) -> ShiftResult:
    """Shift matrix between the groups of ``table`` (see :meth:`FilterTable.group_layers` for ``by``).

    Streams the table three times in chunks (fit the shared PCA unless given, find the coefficient range,
    histogram each group), so it works on HDF5-backed tables larger than memory.
    """
    if bins < 2:
        raise FilterAnalysisError(f"bins must be ≥ 2, got {bins}")
    groups = table.group_layers(by, depth_bins=depth_bins)
    ids_all = sorted(i for ids in groups.values() for i in ids)
    if pca is None:
        pca = FilterPCA(table.kernel).fit(table, ids_all)
    lo, hi = np.inf, -np.inf
    for block in table.iter_chunks(ids_all):
        c = pca.transform(block)
        if c.size:
            lo, hi = min(lo, float(c.min())), max(hi, float(c.max()))
    if not np.isfinite(lo):
        raise FilterAnalysisError("no filters to compare")
    if hi <= lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, bins + 1)
    d = table.kernel**2
    hists = np.zeros((len(groups), d, bins), np.int64)
    sizes = []
    for gi, ids in enumerate(groups.values()):
        size = 0
        for block in table.iter_chunks(ids):
            hists[gi] += coefficient_histograms(pca.transform(block), edges)
            size += block.shape[0]
        sizes.append(size)
    w = pca.explained_variance_ratio
    assert w is not None
    g = len(groups)
    mat = np.zeros((g, g))
    for i in range(g):
        kl = symmetric_kl(hists[i][None], hists, eps=eps)  # (g, d)
        mat[i] = kl @ w
    return ShiftResult(list(groups), mat, pca, hists, edges, sizes)


__all__ = [
    "KL_BINS",
    "KL_EPS",
    "FilterPCA",
    "ShiftResult",
    "coefficient_histograms",
    "distribution_shift",
    "group_shift",
    "symmetric_kl",
]
