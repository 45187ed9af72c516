r"""Baselines every metanetwork result is shown beside (same harness, same split).

* :class:`StatNNTrees` — StatNN (Unterthiner et al., 2020): per-tensor mean, variance and quantiles →
  gradient-boosted trees. :class:`StatNNMLP` — the same features → MLP.
* :class:`HParamsTrees` — the catalogue's recorded training settings → gradient-boosted trees. It never
  sees a weight: a metanetwork that only recognises training settings must beat it to mean anything.
* :class:`FlatMLP` — all parameters as one vector → MLP; trained with permutation augmentation (the
  harness feeds a seeded hidden-permutation view of each network per epoch).
* :class:`ProbeMLP` — the network's outputs on fixed inputs → MLP (probing; reported apart from
  weights-only models).
* :class:`PixelMLP` — an INR rendered on the 8 × 8 pixel grid → MLP (the pixel oracle of INR tasks).

Gradient-boosted trees are not pickled: the model stores its training features and targets (safetensors)
and refits, deterministically from its seed, when loaded (scikit-learn's ``HistGradientBoosting*``, ~1 s).

Symmetry: StatNN and probing features are invariant to hidden-neuron permutations (statistics of a tensor
and the network's function do not change); the flat MLP is not (augmentation only teaches it); the
hyperparameter model sees no weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from weightzoo.metanets.layers._mlp import mlp


def _one_thread() -> Any:
    """OpenMP limited to one thread: small tree ensembles gain nothing from threads, and on a shared
    machine spinning OpenMP workers made fitting 50× slower (measured here)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)


class _Trees(nn.Module, PyTorchModelHubMixin):  # type: ignore[misc]
    """Gradient-boosted trees on feature vectors, stored as their training data (see the module docstring).

    Args:
        n_features (int), n_train (int): shape of the stored training features.
        out_dim (int): 1 for regression, the class count for classification.
        seed (int): the trees' random state (feature subsampling 0.8 per split, so seeds differ).
        max_iter (int), learning_rate (float), max_leaf_nodes (int), min_samples_leaf (int): boosting
            settings (300, 0.05, 15, 10).
    """

    fit_only = True

    def __init__(self, n_features: int, n_train: int, out_dim: int = 1, seed: int = 0, max_iter: int = 300,
                 learning_rate: float = 0.05, max_leaf_nodes: int = 15, min_samples_leaf: int = 10) -> None:
        super().__init__()
        self.out_dim, self.seed = out_dim, seed
        self.settings = {"max_iter": max_iter, "learning_rate": learning_rate, "max_leaf_nodes": max_leaf_nodes,
                         "min_samples_leaf": min_samples_leaf}
        self.register_buffer("x_train", torch.zeros(n_train, n_features))
        self.register_buffer("y_train", torch.zeros(n_train))
        self._est: Any = None

    def _buffer(self, name: str) -> torch.Tensor:
        b = self._buffers[name]
        if b is None:
            raise RuntimeError(f"{type(self).__name__}: buffer {name} is missing")
        return b

    def fit(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Store ``x [n_train, n_features]`` and encoded targets ``y [n_train]``, then fit the trees."""
        self._buffer("x_train").copy_(x)
        self._buffer("y_train").copy_(y)
        self._est = None
        self._fitted()

    def _fitted(self) -> Any:
        if self._est is None:
            from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

            cls = HistGradientBoostingRegressor if self.out_dim == 1 else HistGradientBoostingClassifier
            est = cls(random_state=self.seed, early_stopping=False, l2_regularization=1.0, max_features=0.8,
                      **self.settings)
            y = self._buffer("y_train").numpy().astype(np.float64 if self.out_dim == 1 else np.int64)
            with _one_thread():
                self._est = est.fit(self._buffer("x_train").numpy().astype(np.float64), y)
        return self._est

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        est = self._fitted()
        xs = x.detach().cpu().numpy().astype(np.float64)
        with _one_thread():
            if self.out_dim == 1:
                return torch.tensor(est.predict(xs), dtype=torch.float32).reshape(-1, 1)
            proba = np.zeros((len(xs), self.out_dim))
            proba[:, est.classes_.astype(int)] = est.predict_proba(xs)
        return torch.tensor(proba, dtype=torch.float32)


class StatNNTrees(_Trees):
    """StatNN statistics → gradient-boosted trees."""

    input_kind = "stats"


class HParamsTrees(_Trees):
    """Recorded training settings → gradient-boosted trees (sees no weights)."""

    input_kind = "hparams"


class _VectorMLP(nn.Module, PyTorchModelHubMixin):  # type: ignore[misc]
    """An MLP on a feature vector: ``n_features → hidden → hidden → out_dim`` with dropout.

    Args:
        n_features (int), out_dim (int), hidden (int, default 256), layers (int, default 3),
        dropout (float, default 0.1).
    """

    fit_only = False

    def __init__(self, n_features: int, out_dim: int = 1, hidden: int = 256, layers: int = 3, dropout: float = 0.1) -> None:
        super().__init__()
        self.net = mlp(n_features, hidden, out_dim, layers=layers, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.nan_to_num(x))


class StatNNMLP(_VectorMLP):
    """StatNN statistics → MLP."""

    input_kind = "stats"


class FlatMLP(_VectorMLP):
    """All parameters as one vector → MLP (trained with permutation augmentation)."""

    input_kind = "flat"


class ProbeMLP(_VectorMLP):
    """The network's outputs on fixed inputs → MLP (probing)."""

    input_kind = "probe"


class PixelMLP(_VectorMLP):
    """The pixel oracle of INR classification: the INR rendered on the 8 × 8 grid → MLP (it reads the
    image the weights encode, so it is the ceiling of weights-only INR models, not a peer)."""

    input_kind = "render"
    inr_only = True


__all__ = ["FlatMLP", "HParamsTrees", "PixelMLP", "ProbeMLP", "StatNNMLP", "StatNNTrees"]
