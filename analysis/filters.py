r"""Convolution-filter statistics in the manner of CNN Filter DB (Gavrikov & Keuper, CVPR 2022).

The public entry point; the work lives in three modules, one concept each:

* :mod:`~weightzoo.analysis.filter_metrics`: the per-layer quality metrics (:func:`layer_quality`:
  sparsity, variance entropy and its ratio to a random-filter reference, orthogonality, norms,
  degeneration flags) and the vectorised per-filter helpers.
* :mod:`~weightzoo.analysis.filter_table`: finding conv weights in any checkpoint
  (:func:`iter_conv_layers`), collecting every k×k kernel of a selection into a :class:`FilterTable`
  (:func:`scan_filters`, streaming, optionally into HDF5) and exporting it (HDF5, CSV, pandas).
* :mod:`~weightzoo.analysis.filter_shift`: a :class:`FilterPCA` basis shared across the selection, and
  :func:`distribution_shift` / :func:`group_shift`, the explained-variance-weighted symmetric KL
  divergence of PCA-coefficient histograms between groups of filters.
"""

from __future__ import annotations

from weightzoo.errors import FilterAnalysisError

from .filter_metrics import (
    SPARSITY_EPS,
    DegenerationThresholds,
    LayerQuality,
    filter_absmax,
    layer_quality,
    layer_sparsity_vectorized,
    normalize_filters,
    orthogonality,
    random_reference_entropy,
    sparsity_mask,
    variance_entropy,
)
from .filter_shift import (
    KL_BINS,
    KL_EPS,
    FilterPCA,
    ShiftResult,
    coefficient_histograms,
    distribution_shift,
    group_shift,
    symmetric_kl,
)
from .filter_table import ConvLayer, FilterScan, FilterTable, iter_conv_layers, scan_filters

__all__ = [
    "KL_BINS",
    "KL_EPS",
    "SPARSITY_EPS",
    "ConvLayer",
    "DegenerationThresholds",
    "FilterAnalysisError",
    "FilterPCA",
    "FilterScan",
    "FilterTable",
    "LayerQuality",
    "ShiftResult",
    "coefficient_histograms",
    "distribution_shift",
    "filter_absmax",
    "group_shift",
    "iter_conv_layers",
    "layer_quality",
    "layer_sparsity_vectorized",
    "normalize_filters",
    "orthogonality",
    "random_reference_entropy",
    "scan_filters",
    "sparsity_mask",
    "symmetric_kl",
    "variance_entropy",
]
