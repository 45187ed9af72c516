r"""Textbook retrieval metrics, per query and averaged (Manning, Raghavan & Schütze, *Introduction to
Information Retrieval*, ch. 8).

For a query with ranked results :math:`r_1, r_2, \dots` (the query itself excluded), relevance
:math:`\mathrm{rel}_i \in \{0, 1\}` (or a grade :math:`\ge 0` for nDCG) and :math:`R` relevant items in
the collection:

* precision@k :math:`= \frac1k \sum_{i \le k} \mathrm{rel}_i`; recall@k :math:`= \frac1R \sum_{i \le k} \mathrm{rel}_i`
* RR@k :math:`= 1 / \min\{i \le k : \mathrm{rel}_i = 1\}` (0 if none); MRR@k is its mean
* AP@k :math:`= \frac{1}{\min(k, R)} \sum_{i \le k} \mathrm{rel}_i \cdot \mathrm{precision@}i`; MAP@k its mean
* nDCG@k :math:`= \mathrm{DCG@k} / \mathrm{IDCG@k}`, :math:`\mathrm{DCG@k} = \sum_{i \le k} (2^{\mathrm{rel}_i} - 1) / \log_2(i + 1)`,
  the ideal ranking truncated at :math:`k`
* R-precision :math:`=` precision@R

Queries with no relevant item are left out of every mean (their count is reported). Unlike NAR's
evaluator, AP is normalised by :math:`\min(k, R)` (not :math:`R`), the ideal DCG is truncated at
:math:`k` and not floored, similarity is cosine, and each query keeps :math:`k` results.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

METRICS = ("precision", "recall", "mrr", "map", "ndcg", "r_precision")


def precision_at_k(rel: Sequence[float], k: int) -> float:
    r = np.asarray(rel[:k], dtype=float) > 0
    return float(r.sum() / k)


def recall_at_k(rel: Sequence[float], k: int, n_relevant: int) -> float:
    return float((np.asarray(rel[:k], dtype=float) > 0).sum() / n_relevant) if n_relevant else 0.0


def reciprocal_rank(rel: Sequence[float], k: int) -> float:
    hits = np.flatnonzero(np.asarray(rel[:k], dtype=float) > 0)
    return float(1.0 / (hits[0] + 1)) if hits.size else 0.0


def average_precision_at_k(rel: Sequence[float], k: int, n_relevant: int) -> float:
    r = (np.asarray(rel[:k], dtype=float) > 0).astype(float)
    if not n_relevant:
        return 0.0
    prec = np.cumsum(r) / np.arange(1, r.size + 1)
    return float((prec * r).sum() / min(k, n_relevant))


def ndcg_at_k(gains: Sequence[float], k: int, all_gains: Sequence[float]) -> float:
    """nDCG@k of ranked grades ``gains`` against every candidate's grade ``all_gains`` (ideal truncated at k)."""
    g = np.asarray(gains[:k], dtype=float)
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float(((2.0 ** g - 1.0) * disc[: g.size]).sum())
    ideal = np.sort(np.asarray(all_gains, dtype=float))[::-1][:k]
    idcg = float(((2.0 ** ideal - 1.0) * disc[: ideal.size]).sum())
    return dcg / idcg if idcg > 0 else 0.0


def r_precision(rel: Sequence[float], n_relevant: int) -> float:
    return precision_at_k(rel, n_relevant) if n_relevant else 0.0


def per_query_metrics(similarity: np.ndarray, labels: Sequence[Any], k: int = 10,
                      grades: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Each metric for each query (rows of ``similarity`` ``[N, N]``; the query's own column is excluded).

    Args:
        similarity: ``[N, N]`` scores (higher = more similar).
        labels: ``N`` family labels; relevant = same label (``None`` labels are never relevant).
        k: cut-off.
        grades: optional ``[N, N]`` graded relevance for nDCG (default: binary same-label).

    Returns:
        ``{metric: [Q]}`` over the ``Q`` queries that have a relevant item, plus ``"query"``: their row indices.
    """
    sim = np.asarray(similarity, dtype=np.float64)
    n = sim.shape[0]
    if sim.shape != (n, n) or len(labels) != n:
        raise ValueError(f"similarity must be [N, N] with N = len(labels), got {sim.shape} and {len(labels)}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    lab = np.asarray([str(x) if x is not None else f"\0{i}" for i, x in enumerate(labels)])
    out: dict[str, list[float]] = {m: [] for m in METRICS}
    queries: list[int] = []
    for q in range(n):
        others = np.delete(np.arange(n), q)
        rel_all = (lab[others] == lab[q]).astype(float)
        n_rel = int(rel_all.sum())
        if n_rel == 0:
            continue
        # best first; ties broken by index so results are deterministic
        order = others[np.lexsort((others, -sim[q, others]))]
        rel = (lab[order] == lab[q]).astype(float)
        gain_all = grades[q, others] if grades is not None else rel_all
        gain = grades[q, order] if grades is not None else rel
        queries.append(q)
        out["precision"].append(precision_at_k(rel, k))
        out["recall"].append(recall_at_k(rel, k, n_rel))
        out["mrr"].append(reciprocal_rank(rel, k))
        out["map"].append(average_precision_at_k(rel, k, n_rel))
        out["ndcg"].append(ndcg_at_k(gain, k, gain_all))
        out["r_precision"].append(r_precision(rel, n_rel))
    res = {m: np.asarray(v) for m, v in out.items()}
    res["query"] = np.asarray(queries, dtype=np.int64)
    return res


def retrieval_metrics(similarity: np.ndarray, labels: Sequence[Any], k: int = 10,
                      grades: np.ndarray | None = None) -> dict[str, float]:
    """Means of :func:`per_query_metrics` (keys ``precision@k`` ... ``r_precision``, and ``queries``)."""
    per = per_query_metrics(similarity, labels, k, grades)
    res: dict[str, float] = {}
    for m in METRICS:
        key = m if m == "r_precision" else f"{m}@{k}"
        res[key] = float(per[m].mean()) if per[m].size else float("nan")
    res["queries"] = float(per["query"].size)
    return res


__all__ = ["METRICS", "average_precision_at_k", "ndcg_at_k", "per_query_metrics", "precision_at_k",
           "r_precision", "recall_at_k", "reciprocal_rank", "retrieval_metrics"]
