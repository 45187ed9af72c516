"""Architecture retrieval: which known architectures resemble mine?

Encoders of :class:`~weightzoo.zoo.graphs.ComputeGraph` s — a bag-of-ops baseline, Weisfeiler–Lehman
subtree features (tf-idf, cosine) and a learned graph encoder trained contrastively — an index stored in
the zoo, queries by module, spec, config, zoo name or ``pkg.module:Class``, textbook retrieval metrics,
and accuracy prediction from the architecture alone.

    >>> from weightzoo.analysis.retrieval import retrieve                      # doctest: +SKIP
    >>> retrieve("archs/a00012", "zoo/", k=5, encoder="wl")                     # doctest: +SKIP

Names resolve lazily.
"""

from __future__ import annotations

from weightzoo.zoo import lazy_exports

_MODULES = {
    "encoder": ("Encoder",),
    "resolve": ("ENCODERS", "resolve_encoder"),
    "op_histogram": ("OpHistogramEncoder",),
    "wl": ("WLEncoder",),
    "index": ("RetrievalIndex", "Match"),
    "build": ("build_index", "load_index", "index_dir", "BuildReport", "family_of"),
    "query": ("query_graph", "graph_of_spec", "graph_of_class", "spec_hash"),
    "metrics": ("retrieval_metrics", "per_query_metrics", "precision_at_k", "recall_at_k", "reciprocal_rank",
                "average_precision_at_k", "ndcg_at_k", "r_precision"),
    "search": ("retrieve",),
    "augment": ("architecture_view",),
    "predict": ("predict_accuracy", "PredictionResult", "kendall_tau", "PREDICTORS"),
    "learned": ("LearnedEncoder", "train_encoder", "TrainResult", "ArchitectureEncoderNet"),
    "evaluate": ("evaluate_zoo", "EvaluationResult"),
}
_EXPORTS = {name: f"{__name__}.{module}" for module, names in _MODULES.items() for name in names}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = sorted(_EXPORTS)
