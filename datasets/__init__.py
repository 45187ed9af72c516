"""Builders of benchmark zoos from real training runs, and importers of the field's published zoos.

    >>> from weightzoo.datasets import build                                   # doctest: +SKIP
    >>> build("digits-cnn", "my-zoo", size=200, seed=0)                        # doctest: +SKIP

Datasets: ``digits-cnn``, ``digits-cnn-wild``, ``digits-mlp``, ``digits-inr``, ``digits-lineage``, ``archs`` (see
docs/datasets.md). Importers: :func:`import_small_cnn_zoo`, :func:`import_model_zoo`,
:func:`import_inr_folder`. Names resolve lazily, so importing this package does not import torch.
"""

from __future__ import annotations

from weightzoo.zoo import lazy_exports

_EXPORTS = {name: f"weightzoo.datasets.{module}" for name, module in {
    "build": "registry", "get_builder": "registry", "describe": "registry", "DATASETS": "registry",
    "build_dataset": "builder", "read_manifest": "builder", "DatasetError": "builder", "Executor": "builder",
    "ProcessExecutor": "builder", "SerialExecutor": "builder", "split_half_reliability": "builder",
    "import_small_cnn_zoo": "importers", "import_model_zoo": "importers", "import_inr_folder": "importers",
}.items()}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = sorted(_EXPORTS)
