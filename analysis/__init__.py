"""Analyses over zoos: task vectors and merging, filter and weight statistics, architecture retrieval
and lineage recovery.

    >>> from weightzoo.analysis import TaskVector, merge, scan_filters   # doctest: +SKIP

Names resolve lazily, so importing this package imports neither torch nor matplotlib.
"""

from __future__ import annotations

from weightzoo.zoo import lazy_exports

_MODULES = {
    "task_vectors": ("TaskVector", "task_vectors", "match_models", "MatchReport", "block_of"),
    "sources": ("open_source", "tensor_specs", "TensorSpec"),
    "merging": ("merge", "save_merged", "MergedStateDict", "METHODS", "resolve_method"),
    "merge_config": ("MergeConfig", "load_merge_config", "parse_merge_config"),
    "atlas": ("learn_coefficients", "classification_objective", "Objective", "AtlasResult"),
    "lora": ("lora_deltas",),
    "filters": ("scan_filters", "FilterTable", "FilterScan", "FilterPCA", "ShiftResult", "group_shift",
                "distribution_shift", "layer_quality", "LayerQuality", "DegenerationThresholds"),
    "filter_plots": ("plot_coefficient_distributions", "plot_layer_metrics", "plot_pca_basis", "plot_shift_heatmap"),
    "lineage": ("infer_lineage", "LineageResult", "InferredEdge"),
    "retrieval": ("retrieve", "RetrievalIndex", "build_index", "query_graph", "evaluate_zoo"),
    "stats": ("tensor_stats", "layer_stats", "model_stats", "zoo_stats", "spectral_norm", "TensorStats", "stats_frame"),
}
_EXPORTS = {name: f"weightzoo.analysis.{module}" for module, names in _MODULES.items() for name in names}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = sorted(_EXPORTS)
