r"""Accuracy prediction from the architecture alone (the trained part of the ``archs`` zoo carries
``test_accuracy``): which designs train well?

Predictors, all fitted on the same seeded architecture split (``train_fraction`` of the trained
architectures, the rest held out) and scored by Kendall :math:`\tau` on the held-out architectures:

* ``params`` — the baseline: a linear fit on :math:`\log_{10}` parameter count (its :math:`\tau` is
  :math:`\pm\tau` of the parameter count itself);
* ``ops`` — ridge regression on the op-histogram encoding (:class:`~.op_histogram.OpHistogramEncoder`);
* ``wl`` — ridge regression on tf-idf WL subtree features (the WL-kernel predictor of NAS-BOWL, Ru et al.,
  2021, with a linear kernel); its largest coefficients name the subtrees that raise or lower accuracy
  — the interpretable part;
* ``gcn`` — :class:`~weightzoo.metanets.layers.graph_encoder.GraphEncoder` with a linear head, trained on
  standardised accuracy with MSE (the neural predictor of Wen et al., 2020), early stopping on a
  validation part of the training architectures.

Seeds change the split and the GCN's initialisation; report mean ± std over seeds.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from weightzoo.errors import RetrievalError
from weightzoo.zoo.graphs import ComputeGraph
from weightzoo.zoo.store import ZooLike, resolve_spec, using_zoo

from .build import graph_cache
from .labels import parameter_count
from .op_histogram import OpHistogramEncoder
from .query import graph_of_spec
from .wl import WLEncoder

PREDICTORS = ("params", "ops", "wl", "gcn")


def kendall_tau(pred: Sequence[float] | np.ndarray, target: Sequence[float] | np.ndarray) -> float:
    """Kendall :math:`\\tau_b` (scipy)."""
    from scipy.stats import kendalltau

    t = kendalltau(np.asarray(pred), np.asarray(target)).statistic
    return float(t) if t == t else 0.0


@dataclass
class PredictionResult:
    """Kendall τ of every predictor per seed, and the WL features with the largest coefficients."""

    taus: dict[str, list[float]]
    seeds: list[int]
    train_size: int
    test_size: int
    top_features: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, tuple[float, float]]:
        """predictor → (mean, std) of τ over seeds."""
        return {k: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0) for k, v in self.taus.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"seeds": self.seeds, "train_size": self.train_size, "test_size": self.test_size,
                "kendall_tau": self.taus, "summary": {k: {"mean": m, "std": s} for k, (m, s) in self.summary().items()},
                "top_wl_features": self.top_features}


def _ridge(x_train: Any, y_train: np.ndarray, x_test: Any, alpha: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.linear_model import Ridge

    model = Ridge(alpha=alpha).fit(x_train, y_train)
    return model.predict(x_test), np.asarray(model.coef_)


def _tfidf(rows: list[Counter[str]], train: np.ndarray) -> tuple[sp.csr_matrix, list[str]]:
    vocab: dict[str, int] = {}
    for i in train:
        for tok in rows[i]:
            vocab.setdefault(tok, len(vocab))
    r, c, v = [], [], []
    for i, row in enumerate(rows):
        for tok, n in row.items():
            j = vocab.get(tok)
            if j is not None:
                r.append(i)
                c.append(j)
                v.append(1.0 + math.log(n))
    m = sp.csr_matrix((v, (r, c)), shape=(len(rows), max(len(vocab), 1)))
    df = np.bincount(m[train].indices, minlength=m.shape[1])
    idf = np.log((1.0 + len(train)) / (1.0 + df)) + 1.0
    m = m @ sp.diags(idf)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    return sp.csr_matrix(sp.diags(1.0 / np.maximum(norms, 1e-12)) @ m), list(vocab)


def _gcn(graphs: list[ComputeGraph], y: np.ndarray, train: np.ndarray, test: np.ndarray, seed: int,
         epochs: int) -> np.ndarray:
    from weightzoo.metanets.layers.graph_encoder import GraphEncoder

    from .labels import NUM_OPS, NUMERIC_COLUMNS
    from .learned import EDGE_FEATURES, collate, graph_tensors

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tensors = [graph_tensors(g) for g in graphs]
    perm = rng.permutation(train)
    n_val = max(2, len(perm) // 6)
    val, fit = perm[:n_val], perm[n_val:]
    mu, sd = float(y[fit].mean()), float(y[fit].std() + 1e-8)
    target = torch.tensor((y - mu) / sd, dtype=torch.float32)
    net = GraphEncoder(NUM_OPS, len(NUMERIC_COLUMNS), EDGE_FEATURES, dim=32, out_dim=1, layers=2)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)

    def run(idx: np.ndarray) -> torch.Tensor:
        b = collate([tensors[i] for i in idx])
        return net(b["op"], b["x"], b["edge_index"], b["edge_attr"], b["batch"], b["num_graphs"]).squeeze(-1)

    best, best_state = -2.0, None
    for _ in range(epochs):
        net.train()
        order = rng.permutation(fit)
        for i in range(0, len(order), 16):
            idx = order[i:i + 16]
            loss = nn.functional.mse_loss(run(idx), target[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            tau = kendall_tau(run(val).numpy(), y[val])
        if best_state is None or tau > best:
            best, best_state = tau, {k: v.clone() for k, v in net.state_dict().items()}
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    with torch.no_grad():
        return np.asarray(run(test).numpy(), dtype=np.float64)


def predict_accuracy(zoo: ZooLike, *, seeds: Sequence[int] = (0, 1, 2), train_fraction: float = 0.7,
                     predictors: Sequence[str] = PREDICTORS, epochs: int = 60, top: int = 8,
                     target: str = "test_accuracy") -> PredictionResult:
    """Predict ``target`` of the zoo's trained architectures from their ComputeGraphs (module docstring)."""
    bad = [p for p in predictors if p not in PREDICTORS]
    if bad:
        raise RetrievalError(f"unknown predictor(s) {bad}; valid: {', '.join(PREDICTORS)}")
    if not 0.1 <= train_fraction <= 0.9:
        raise RetrievalError(f"train_fraction must be in [0.1, 0.9], got {train_fraction}")
    with using_zoo(zoo) as z:
        records = [r for r in z.models() if isinstance(r.metadata.get(target), int | float)]
        if len(records) < 10:
            raise RetrievalError(f"accuracy prediction needs >= 10 models with {target!r} metadata (trained "
                                 f"architectures of the archs zoo); {z.path} has {len(records)}")
        cache = graph_cache(z.path)
        graphs = [graph_of_spec(resolve_spec(r.name, zoo=z), cache=cache) for r in records]
    y = np.asarray([float(r.metadata[target]) for r in records])
    log_params = np.log10(np.asarray([parameter_count(g) for g in graphs], dtype=np.float64) + 1).reshape(-1, 1)
    ops = OpHistogramEncoder().encode(graphs)
    wl = WLEncoder()
    rows = [wl.tokens(g) for g in graphs]
    taus: dict[str, list[float]] = {p: [] for p in predictors}
    top_features: list[dict[str, Any]] = []
    n_train = int(round(train_fraction * len(records)))
    for seed in seeds:
        perm = np.random.default_rng(seed).permutation(len(records))
        train, test = np.sort(perm[:n_train]), np.sort(perm[n_train:])
        for p in predictors:
            if p == "params":
                pred, _ = _ridge(log_params[train], y[train], log_params[test], alpha=1e-6)
            elif p == "ops":
                pred, _ = _ridge(ops[train], y[train], ops[test])
            elif p == "wl":
                x, vocab = _tfidf(rows, train)
                pred, coef = _ridge(x[train], y[train], x[test])
                if seed == seeds[0]:
                    order = np.argsort(-np.abs(coef))[:top]
                    top_features = [{"feature": vocab[j], "weight": float(coef[j]), "description": wl.describe(vocab[j])}
                                    for j in order]
            else:
                pred = _gcn(graphs, y, train, test, seed, epochs)
            taus[p].append(kendall_tau(pred, y[test]))
    return PredictionResult(taus, list(seeds), n_train, len(records) - n_train, top_features)


__all__ = ["PREDICTORS", "PredictionResult", "kendall_tau", "predict_accuracy"]
