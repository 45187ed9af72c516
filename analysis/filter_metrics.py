r"""Per-layer conv-filter metrics of CNN Filter DB (Gavrikov & Keuper, CVPR 2022) and their random reference.

:func:`layer_quality` gives one conv layer's sparsity, variance entropy and its ratio to the entropy random
Gaussian filters reach (:func:`random_reference_entropy`), orthogonality, norms and degeneration flags
(:class:`DegenerationThresholds`). The vectorised helpers (:func:`filter_absmax`,
:func:`layer_sparsity_vectorized`) do the per-filter work of a whole table in chunks laid out
component-major (``k² × chunk``), so every NumPy call is a contiguous, SIMD-friendly pass; see
``benchmarks/filters.py`` for the rate against straightforward NumPy.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from weightzoo.errors import FilterAnalysisError

#: Default ε of the sparsity test: a kernel is sparse when all its |w| < ε·max|W_layer| (CNN Filter DB).
SPARSITY_EPS = 0.01
#: Filters per chunk of the vectorised passes (k² × 65536 float32 stays cache-sized).
_CHUNK = 65536
#: Parameters of CNN Filter DB's random-filter reference curve for 3×3 kernels (torchconvquality).
_H_L, _H_X0, _H_K, _H_B = 1.2618047, 2.30436435, 0.88767525, -0.31050834


# --- the random-filter reference --------------------------------------------------------------------


def random_reference_entropy(n: int, kernel: int = 3, *, method: str = "auto", draws: int = 64, seed: int = 0) -> float:
    r"""Variance entropy (base 10) that ``n`` random Gaussian k×k filters reach: the reference of the ratio.

    For 3×3 kernels (``method="fit"``, the default through ``"auto"``) this is CNN Filter DB's fitted curve

    .. math::
        h(n) = \frac{1.2618}{1 + e^{-0.8877(\log_2 n - 2.3044)}} - 0.3105,

    which follows the *lowest* entropy of random layers (for n ≥ 64, random layers score
    h(n)·[0.99, 1.02]; below n ≈ 32 random layers lie well above it, and h(n) ≤ 0 for n ≤ 2).
    For other kernel sizes (``method="monte_carlo"``) it is the mean entropy of ``draws`` seeded random
    Gaussian n×k² matrices (n capped at 16384, where the curve is flat); results are cached.
    Its limit is :math:`\log_{10} k^2` (0.954 for 3×3).
    """
    if n < 1 or kernel < 1:
        raise FilterAnalysisError(f"random_reference_entropy needs n ≥ 1 and kernel ≥ 1, got n={n}, kernel={kernel}")
    if method == "auto":
        method = "fit" if kernel == 3 else "monte_carlo"
    if method == "fit":
        if kernel != 3:
            raise FilterAnalysisError(f"the fitted reference curve h(n) holds for 3×3 kernels only (kernel={kernel}); use method='monte_carlo'")
        return float(_H_L / (1.0 + math.exp(-_H_K * (math.log2(n) - _H_X0))) + _H_B)
    if method == "monte_carlo":
        return _mc_reference(min(int(n), 16384), int(kernel), int(draws), int(seed))
    raise FilterAnalysisError(f"unknown reference method {method!r}; choose one of 'auto', 'fit', 'monte_carlo'")


@lru_cache(maxsize=4096)
def _mc_reference(n: int, kernel: int, draws: int, seed: int) -> float:
    rng = np.random.default_rng([seed, n, kernel])
    d = kernel * kernel
    total = 0.0
    for _ in range(draws):
        total += variance_entropy(rng.standard_normal((n, d)))
    return total / draws


# --- per-layer metrics -------------------------------------------------------------------------------


def variance_entropy(filters: np.ndarray | torch.Tensor, *, base: float = 10.0) -> float:
    r"""Entropy of the variance spectrum of a set of filters (CNN Filter DB's *variance entropy*).

    The n×k² matrix :math:`X` (one flattened filter per row) is centred, its singular values :math:`s_i`
    give the variances :math:`\lambda_i = s_i^2/(n-1)` along the principal axes, and

    .. math:: H = -\sum_i p_i \log_b p_i, \qquad p_i = \lambda_i / \textstyle\sum_j \lambda_j,

    with :math:`0 \log 0 = 0`. Base 10 as in the original (maximum :math:`\log_{10} k^2`, 0.954 for 3×3);
    0 when all filters are equal or fewer than two are given. Computed from the k²×k² Gram matrix of the
    centred filters in float64 (its eigenvalues are the :math:`s_i^2`).
    """
    x = _as_f64(filters)
    if x.ndim != 2:
        raise FilterAnalysisError(f"variance_entropy expects an (n, k²) matrix, got shape {tuple(x.shape)}")
    n = x.shape[0]
    if n < 2:
        return 0.0
    xc = x - x.mean(axis=0)
    lam = np.clip(np.linalg.eigvalsh(xc.T @ xc), 0.0, None) / (n - 1)
    total = lam.sum()
    if not total > 0.0:
        return 0.0
    p = lam / total
    p = p[p > 0.0]
    return float(-(p * np.log(p)).sum() / math.log(base))


def sparsity_mask(filters: np.ndarray | torch.Tensor, *, eps: float = SPARSITY_EPS) -> np.ndarray:
    r"""Boolean mask of sparse kernels: all :math:`|w| < \varepsilon \cdot \max|W_{layer}|` (n×k² input).

    An all-zero layer uses threshold 1 (as the original), so all its kernels count as sparse.
    """
    x = np.abs(_as_f32(filters))
    if x.ndim != 2:
        raise FilterAnalysisError(f"sparsity_mask expects an (n, k²) matrix, got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    kmax = x.max(axis=1)
    t = float(kmax.max()) * eps
    return kmax < (t if t > 0 else 1.0)


def orthogonality(weight: np.ndarray | torch.Tensor) -> float:
    r"""CNN Filter DB's orthogonality of a conv weight ``[c_out, c_in/groups, k, k]``.

    With :math:`\hat W` the c_out × (c_in·k²) matrix whose rows are scaled to unit L2 norm (all-zero
    rows are left at zero),

    .. math:: O = 1 - \frac{\sum_{ij} |\hat W \hat W^\top - I|_{ij}}{n(n-1)}, \qquad n = c_{out},

    1 for mutually orthogonal output filters, 0 when all are parallel. NaN when c_out < 2.
    """
    w = _as_f64(weight)
    w = w.reshape(w.shape[0], -1)
    n = w.shape[0]
    if n < 2:
        return float("nan")
    norms = np.linalg.norm(w, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    wn = w / norms
    g = wn @ wn.T
    g[np.diag_indices(n)] -= 1.0
    return float(1.0 - np.abs(g).sum() / (n * (n - 1)))


@dataclass(frozen=True)
class DegenerationThresholds:
    """When a conv layer counts as degenerated (CNN Filter DB's three kinds of degeneration).

    Attributes:
        sparsity: ``high_sparsity`` when the share of sparse kernels is ≥ this (default 0.5: most kernels
            are dead).
        low_entropy_ratio: ``low_diversity`` when variance entropy / h(n) of the non-sparse kernels is
            below this (default 0.5: the filters span few directions).
        random_entropy_ratio: ``random_like`` when that ratio is ≥ this (default 0.98: as diverse as
            random Gaussian filters, i.e. no learned structure; random layers of ≥ 64 kernels score
            0.99–1.02).
        min_filters: layers with fewer non-sparse kernels are never flagged for entropy (default 32: the
            reference is unreliable there).
    """

    sparsity: float = 0.5
    low_entropy_ratio: float = 0.5
    random_entropy_ratio: float = 0.98
    min_filters: int = 32

    def __post_init__(self) -> None:
        if not 0.0 < self.sparsity <= 1.0:
            raise FilterAnalysisError(f"DegenerationThresholds: sparsity must lie in (0, 1], got {self.sparsity}")
        if not 0.0 <= self.low_entropy_ratio < self.random_entropy_ratio:
            raise FilterAnalysisError(
                "DegenerationThresholds: need 0 ≤ low_entropy_ratio < random_entropy_ratio, got "
                f"{self.low_entropy_ratio} and {self.random_entropy_ratio}"
            )


@dataclass(frozen=True)
class LayerQuality:
    """Quality metrics of one conv layer (field meanings in :func:`layer_quality`)."""

    n_filters: int
    c_out: int
    c_in_per_group: int
    kernel: int
    sparsity: float
    variance_entropy: float
    variance_entropy_ratio: float
    variance_entropy_clean: float
    variance_entropy_clean_ratio: float
    orthogonality: float
    l1: float
    l2: float
    flags: tuple[str, ...] = ()

    @property
    def degenerated(self) -> bool:
        return bool(self.flags)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["flags"] = list(self.flags)
        return d


def layer_quality(
    weight: np.ndarray | torch.Tensor,
    *,
    eps: float = SPARSITY_EPS,
    thresholds: DegenerationThresholds | None = None,
    reference: str = "auto",
) -> LayerQuality:
    r"""All CNN Filter DB metrics of one conv weight ``[c_out, c_in/groups, k, k]`` (or ``[c_out, c_in, k]``).

    * ``sparsity``: share of the n = c_out·c_in/groups kernels with every :math:`|w| < \varepsilon\max|W|`.
    * ``variance_entropy``: :func:`variance_entropy` (base 10) of all n kernels; ``variance_entropy_ratio``
      = that / :func:`random_reference_entropy` (n) (NaN where the reference is ≤ 0, n ≤ 2).
    * ``variance_entropy_clean`` / ``..._clean_ratio``: the same over the non-sparse kernels only.
    * ``orthogonality``: :func:`orthogonality`.
    * ``l1``, ``l2``: :math:`\sum|w|` and :math:`\sqrt{\sum w^2}` of the layer.
    * ``flags``: ``high_sparsity``, ``low_diversity``, ``random_like`` per :class:`DegenerationThresholds`.
    """
    w = _as_f32(weight)
    if w.ndim not in (3, 4) or w.shape[0] == 0 or w.shape[1] == 0:
        raise FilterAnalysisError(f"layer_quality expects a conv weight [c_out, c_in/groups, k(, k)], got shape {tuple(w.shape)}")
    th = thresholds or DegenerationThresholds()
    k = int(w.shape[-1])
    d = int(np.prod(w.shape[2:]))
    flat = w.reshape(-1, d)
    n = flat.shape[0]
    mask = sparsity_mask(flat, eps=eps)
    sp = float(mask.mean())
    # The fitted and k×k references hold for square kernels; a 1×k, k×1 or 1-D filter is a random
    # d-vector, compared with a Monte-Carlo reference on n×d.
    ref_k = k if w.ndim == 4 and w.shape[2] == w.shape[3] else None
    ve = variance_entropy(flat)
    clean = flat[~mask]
    vec = variance_entropy(clean)
    w64 = flat.astype(np.float64)
    flags: list[str] = []
    ratio_clean = _ratio(vec, clean.shape[0], ref_k, d, reference)
    if sp >= th.sparsity:
        flags.append("high_sparsity")
    if clean.shape[0] >= th.min_filters and not math.isnan(ratio_clean):
        if ratio_clean < th.low_entropy_ratio:
            flags.append("low_diversity")
        elif ratio_clean >= th.random_entropy_ratio:
            flags.append("random_like")
    return LayerQuality(
        n_filters=n,
        c_out=int(w.shape[0]),
        c_in_per_group=int(w.shape[1]),
        kernel=k,
        sparsity=sp,
        variance_entropy=ve,
        variance_entropy_ratio=_ratio(ve, n, ref_k, d, reference),
        variance_entropy_clean=vec,
        variance_entropy_clean_ratio=ratio_clean,
        orthogonality=orthogonality(w),
        l1=float(np.abs(w64).sum()),
        l2=float(np.sqrt((w64 * w64).sum())),
        flags=tuple(flags),
    )


def _ratio(entropy: float, n: int, kernel: int | None, d: int, reference: str) -> float:
    if n < 1:
        return float("nan")
    if kernel is None:  # conv1d or non-square kernels: a d-tap filter is a random d-vector
        ref = _mc_reference_1d(min(n, 16384), d)
    else:
        ref = random_reference_entropy(n, kernel, method=reference)
    return float(entropy / ref) if ref > 0 else float("nan")


@lru_cache(maxsize=4096)
def _mc_reference_1d(n: int, d: int, draws: int = 64, seed: int = 0) -> float:
    rng = np.random.default_rng([seed, n, d, 1])
    return sum(variance_entropy(rng.standard_normal((n, d))) for _ in range(draws)) / draws

# --- vectorised per-filter work ----------------------------------------------------------------------


def filter_absmax(filters: np.ndarray) -> np.ndarray:
    """max |w| of every filter of an (n, k²) array: cache-sized chunks transposed to component-major, so
    the max runs as k² − 1 contiguous SIMD passes instead of a short strided reduction per row."""
    x = np.asarray(filters, dtype=np.float32)
    out = np.empty(x.shape[0], np.float32)
    buf = np.empty((x.shape[1], min(_CHUNK, max(x.shape[0], 1))), np.float32)
    for s in range(0, x.shape[0], _CHUNK):
        blk = x[s : s + _CHUNK]
        b = buf[:, : blk.shape[0]]
        np.copyto(b, blk.T)
        np.abs(b, out=b)
        np.maximum.reduce(b, axis=0, out=out[s : s + blk.shape[0]])
    return out


def normalize_filters(filters: np.ndarray) -> np.ndarray:
    """Each filter divided by its own max |w| (all-zero filters stay zero), as CNN Filter DB scales them."""
    x = np.asarray(filters, dtype=np.float32)
    m = filter_absmax(x)
    m[m == 0] = 1.0
    return x / m[:, None]


def layer_sparsity_vectorized(
    filters: np.ndarray, offsets: np.ndarray, *, eps: float = SPARSITY_EPS, absmax: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Sparse-kernel mask (length N) and per-layer sparsity of a whole table in one vectorised pass.

    Same definition as :func:`sparsity_mask`, applied to every layer ``offsets[i]:offsets[i+1]`` at once
    (per-layer maxima by ``np.maximum.reduceat``). Pass ``absmax`` (from :func:`filter_absmax` or
    :meth:`FilterPCA.transform`) to skip recomputing the per-filter maxima.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    m = filter_absmax(filters) if absmax is None else np.asarray(absmax, np.float32)
    sizes = np.diff(offsets)
    nonempty = sizes > 0
    layer_max = np.zeros(len(sizes), np.float32)
    if m.size:
        layer_max[nonempty] = np.maximum.reduceat(m, offsets[:-1][nonempty])
    t = layer_max * np.float32(eps)
    t[t == 0] = 1.0
    mask = m < np.repeat(t, sizes)
    counts = np.add.reduceat(mask.astype(np.int64), offsets[:-1][nonempty]) if m.size else np.zeros(0, np.int64)
    sp = np.full(len(sizes), np.nan)
    sp[nonempty] = counts / sizes[nonempty]
    return mask, sp


# --- helpers -----------------------------------------------------------------------------------------


def _as_f32(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to(torch.float32).cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def _as_f64(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to(torch.float64).cpu().numpy()
    return np.asarray(x, dtype=np.float64)


__all__ = [
    "SPARSITY_EPS",
    "DegenerationThresholds",
    "LayerQuality",
    "filter_absmax",
    "layer_quality",
    "layer_sparsity_vectorized",
    "normalize_filters",
    "orthogonality",
    "random_reference_entropy",
    "sparsity_mask",
    "variance_entropy",
]
