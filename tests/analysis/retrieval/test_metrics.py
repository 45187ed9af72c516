"""Textbook retrieval metrics against hand-computed values (and where NAR's definitions differ)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from weightzoo.analysis.retrieval.metrics import (
    average_precision_at_k,
    ndcg_at_k,
    per_query_metrics,
    precision_at_k,
    r_precision,
    recall_at_k,
    reciprocal_rank,
    retrieval_metrics,
)


def test_single_ranking_by_hand() -> None:
    rel = [0, 1, 0, 1, 1]  # relevant at ranks 2, 4, 5; 4 relevant in the collection
    assert precision_at_k(rel, 4) == 0.5
    assert recall_at_k(rel, 4, 4) == 0.5
    assert reciprocal_rank(rel, 5) == 0.5
    assert reciprocal_rank(rel, 1) == 0.0
    # AP@5 = (1/2 + 2/4 + 3/5) / min(5, 4)  (NAR would divide by all relevant items, here the same 4)
    assert average_precision_at_k(rel, 5, 4) == pytest.approx((0.5 + 0.5 + 0.6) / 4)
    # AP@2 normalises by min(k, R) = 2, not by R = 4
    assert average_precision_at_k(rel, 2, 4) == pytest.approx(0.5 / 2)
    assert r_precision(rel, 4) == 0.5


def test_ndcg_ideal_is_truncated_at_k() -> None:
    gains = [0, 1, 1]
    all_gains = [1, 1, 1, 0, 0]
    dcg = 1 / math.log2(3) + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(gains, 3, all_gains) == pytest.approx(dcg / idcg)
    # at k=1 the ideal is one relevant item at rank 1, the ranking has none
    assert ndcg_at_k(gains, 1, all_gains) == 0.0
    assert ndcg_at_k([1, 1, 1], 3, all_gains) == pytest.approx(1.0)


def test_per_query_excludes_the_query_and_skips_queries_without_relevant_items() -> None:
    labels = ["a", "a", "b", "c"]
    sim = np.array([[1.0, 0.9, 0.1, 0.0],
                    [0.2, 1.0, 0.8, 0.1],
                    [0.0, 0.0, 1.0, 0.5],
                    [0.0, 0.0, 0.0, 1.0]])
    per = per_query_metrics(sim, labels, k=2)
    assert per["query"].tolist() == [0, 1]  # b and c have no other member
    assert per["mrr"].tolist() == [1.0, 0.5]
    means = retrieval_metrics(sim, labels, k=2)
    assert means["mrr@2"] == 0.75 and means["queries"] == 2
    assert means["precision@2"] == pytest.approx(0.5)


def test_a_perfect_ranking_scores_one_and_a_reversed_one_less() -> None:
    labels = [0, 0, 0, 1, 1, 1]
    same = np.equal.outer(labels, labels).astype(float)
    perfect = retrieval_metrics(same + np.eye(6), labels, k=2)
    assert all(perfect[m] == 1.0 for m in ("mrr@2", "map@2", "ndcg@2", "r_precision"))
    worst = retrieval_metrics(1 - same, labels, k=2)
    assert worst["mrr@2"] == 0.0 and worst["map@2"] == 0.0


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError, match="N, N"):
        per_query_metrics(np.zeros((2, 3)), [0, 1])
