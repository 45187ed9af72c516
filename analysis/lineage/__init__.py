"""Lineage recovery from weights: families, fine-tunes, merges, quantised copies and adapters.

    >>> from weightzoo.analysis.lineage import infer_lineage, mother_lineage, score_lineage   # doctest: +SKIP

See :mod:`weightzoo.analysis.lineage.infer` for the method; ``weightzoo lineage --infer`` runs it from the CLI.
Names resolve lazily (importing this package imports neither torch nor networkx).
"""

from __future__ import annotations

from weightzoo.zoo import lazy_exports

_MODULES = {
    "sketch": ("ModelSketch", "TensorSketch", "sketch_state_dict", "sketch_zoo", "dequantised_tensors"),
    "candidates": ("find_families", "pair_distance", "Candidates", "PairDistance"),
    "merges": ("find_merges", "MergeFit"),
    "trees": ("build_tree", "calibrate_kurtosis", "medoid", "TreeEdge"),
    "infer": ("infer_lineage", "InferredEdge", "LineageResult", "DIRECTIONS", "INFERRED_RELATIONS"),
    "mother": ("mother_lineage",),
    "evaluate": ("score_lineage",),
    "plot": ("plot_lineage",),
}
_EXPORTS = {name: f"weightzoo.analysis.lineage.{module}" for module, names in _MODULES.items() for name in names}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = sorted(_EXPORTS)
