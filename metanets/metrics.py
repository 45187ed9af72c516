r"""Metrics of metanetwork predictions, with seeded bootstrap 95 % intervals.

Kendall :math:`\tau_b` (rank agreement, the field's headline metric for accuracy prediction; ties in
either variable are corrected for), :math:`R^2`, and accuracy for class labels. Constant predictions give a
NaN :math:`\tau`, which :func:`score_for_selection` ranks as worst.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def kendall_tau(pred: Sequence[float] | np.ndarray, target: Sequence[float] | np.ndarray) -> float:
    """Kendall :math:`\\tau_b` (NaN when either side is constant or has fewer than two values)."""
    p, t = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if len(p) < 2 or np.all(p == p[0]) or np.all(t == t[0]):
        return math.nan
    if len(p) > 1500:  # the pairwise form below is O(n^2) in memory
        from scipy.stats import kendalltau

        return float(kendalltau(p, t, variant="b").statistic)
    # tau_b = sum_ij sgn(dp) sgn(dt) / sqrt(#untied pairs in p * #untied pairs in t); each pair counted twice
    dp, dt = np.sign(p[:, None] - p[None, :]), np.sign(t[:, None] - t[None, :])
    return float((dp * dt).sum() / math.sqrt(float((dp != 0).sum()) * float((dt != 0).sum())))


def r2_score(pred: Sequence[float] | np.ndarray, target: Sequence[float] | np.ndarray) -> float:
    r""":math:`1 - \sum (t - p)^2 / \sum (t - \bar t)^2` (NaN for a constant target)."""
    p, t = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    ss = float(((t - t.mean()) ** 2).sum())
    return 1.0 - float(((t - p) ** 2).sum()) / ss if ss > 0 else math.nan


def accuracy(pred: Sequence[int] | np.ndarray, target: Sequence[int] | np.ndarray) -> float:
    """Share of equal labels."""
    p, t = np.asarray(pred), np.asarray(target)
    return float((p == t).mean()) if len(t) else math.nan


def bootstrap_interval(fn: Callable[[np.ndarray], float], n: int, *, resamples: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``fn(sample indices)`` over ``resamples`` seeded resamples of ``range(n)``."""
    rng = np.random.default_rng(seed)
    vals = [fn(rng.integers(0, n, n)) for _ in range(resamples)]
    vals = [v for v in vals if math.isfinite(v)]
    if not vals:
        return (math.nan, math.nan)
    lo, hi = np.quantile(vals, [(1 - level) / 2, 1 - (1 - level) / 2])
    return (float(lo), float(hi))


def regression_metrics(pred: np.ndarray, target: np.ndarray, *, seed: int = 0, resamples: int = 1000) -> dict[str, Any]:
    """``kendall_tau``, ``r2`` and their bootstrap 95 % intervals, plus ``n``."""
    return {"n": int(len(target)), "kendall_tau": kendall_tau(pred, target), "r2": r2_score(pred, target),
            "kendall_tau_ci95": list(bootstrap_interval(lambda i: kendall_tau(pred[i], target[i]), len(target),
                                                        seed=seed, resamples=resamples)),
            "r2_ci95": list(bootstrap_interval(lambda i: r2_score(pred[i], target[i]), len(target), seed=seed,
                                               resamples=resamples))}


def classification_metrics(pred: np.ndarray, target: np.ndarray, *, seed: int = 0,
                           resamples: int = 1000) -> dict[str, Any]:
    """``accuracy`` and its bootstrap 95 % interval, plus ``n``."""
    return {"n": int(len(target)), "accuracy": accuracy(pred, target),
            "accuracy_ci95": list(bootstrap_interval(lambda i: accuracy(pred[i], target[i]), len(target), seed=seed,
                                                     resamples=resamples))}


def edit_metrics(mse: np.ndarray, *, seed: int = 0, resamples: int = 1000) -> dict[str, Any]:
    """Per-network render MSEs of an editing task: their mean (``render_mse``) with its bootstrap 95 %
    interval, the mean PSNR in dB (signals in [0, 1]), and ``n``."""
    m = np.asarray(mse, dtype=np.float64)
    return {"n": int(len(m)), "render_mse": float(m.mean()) if len(m) else math.nan,
            "render_mse_ci95": list(bootstrap_interval(lambda i: float(m[i].mean()), len(m), seed=seed,
                                                       resamples=resamples)),
            "psnr": float(np.mean(-10 * np.log10(np.maximum(m, 1e-12)))) if len(m) else math.nan}


def score_for_selection(metrics: dict[str, Any]) -> float:
    """The validation score runs are selected by (higher is better; NaN counts as worst; a render MSE
    counts negated)."""
    if "render_mse" in metrics:
        v = metrics["render_mse"]
        return -math.inf if v is None or not math.isfinite(v) else -float(v)
    v = metrics.get("kendall_tau", metrics.get("accuracy", math.nan))
    return -math.inf if v is None or not math.isfinite(v) else float(v)


__all__ = ["accuracy", "bootstrap_interval", "classification_metrics", "edit_metrics", "kendall_tau", "r2_score",
           "regression_metrics", "score_for_selection"]
