"""Networks that read networks: permutation-equivariant metanetworks over ParameterGraphs.

    >>> from weightzoo.metanets.train import TrainConfig, train                    # doctest: +SKIP
    >>> train("zoo", TrainConfig(model="gmn", dataset="digits-cnn"), [0, 1, 2], "runs/gmn")  # doctest: +SKIP

Names resolve lazily, so importing this package imports neither torch_geometric nor scikit-learn.
See docs/metanets.md.
"""

from __future__ import annotations

from weightzoo.zoo import lazy_exports

_EXPORTS = {name: f"weightzoo.metanets.{module}" for name, module in {
    "GraphDataset": "data", "GraphCache": "data", "NetworkRecord": "data", "load_records": "data",
    "Featurizer": "features", "TrainConfig": "train", "TrainedMetanet": "train",
    "graphs_for": "train", "compare": "report", "format_table": "report", "kendall_tau": "metrics",
    "MODELS": "models", "model_class": "models", "GraphMetanetwork": "models.gmn",
    "select_records": "data", "parse_augmentations": "augment", "mixup": "augment", "augment_graph": "augment",
    "ProbeFeatures": "layers.probe_features", "SignInvariantValues": "layers.sign_invariant",
}.items()}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = sorted(_EXPORTS)
