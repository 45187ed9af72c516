"""Scoring inferred lineage against known trees: edge and direction accuracy, merges, quantised copies, families.

Edge accuracy (MoTHer, Model Atlas) is the share of true ``parent → child`` edges that were recovered
with the right direction; a merge counts once per parent. Direction accuracy is measured on the
predicted edges whose unordered pair is a true edge. Merge precision/recall are over merge *nodes*
(a node predicted as a merge whose true relation is a merge), with ``merge_parents_exact`` the share
of true merges whose parents were all found. Family clustering is scored by the adjusted Rand index
against the true trees (every model outside a tree is its own family).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def _pairs(edges: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    return {(c, p) for c, p in edges}


def score_lineage(predicted: Iterable[Mapping[str, Any]], truth: Iterable[Mapping[str, Any]], *,
                  families: Sequence[Sequence[str]] | None = None,
                  true_families: Mapping[str, str] | None = None) -> dict[str, float | int | None]:
    """Scores of ``predicted`` edges (``{child, parent, relation}``) against ``truth`` (same form).

    ``families``: the predicted families (lists of refs); ``true_families``: ref → true family label for
    every model in the evaluated set (distractors get their own label). Both are needed for the ARI.
    """
    pred = [dict(e) for e in predicted]
    true = [dict(e) for e in truth]
    P = _pairs((e["child"], e["parent"]) for e in pred)
    T = _pairs((e["child"], e["parent"]) for e in true)
    undirected_T = {frozenset(x) for x in T}
    matched = [x for x in P if frozenset(x) in undirected_T]
    out: dict[str, float | int | None] = {
        "true_edges": len(T), "predicted_edges": len(P),
        "edge_accuracy": len(P & T) / len(T) if T else None,
        "edge_precision": len(P & T) / len(P) if P else None,
        "direction_accuracy": sum(1 for x in matched if x in T) / len(matched) if matched else None,
    }
    for rel in ("merge", "quantized"):
        pn = {e["child"] for e in pred if e.get("relation") == rel}
        tn = {e["child"] for e in true if e.get("relation") == rel}
        out[f"{rel}_precision"] = len(pn & tn) / len(pn) if pn else None
        out[f"{rel}_recall"] = len(pn & tn) / len(tn) if tn else None
        out[f"{rel}_true"] = len(tn)
    tm = {e["child"] for e in true if e.get("relation") == "merge"}
    if tm:
        exact = 0
        for c in tm:
            tp = {e["parent"] for e in true if e["child"] == c}
            pp = {e["parent"] for e in pred if e["child"] == c and e.get("relation") == "merge"}
            exact += tp == pp
        out["merge_parents_exact"] = exact / len(tm)
    if families is not None and true_families is not None:
        from sklearn.metrics import adjusted_rand_score

        label = {ref: k for k, fam in enumerate(families) for ref in fam}
        refs = sorted(true_families)
        out["family_ari"] = float(adjusted_rand_score([true_families[r] for r in refs],
                                                      [label.get(r, -1 - i) for i, r in enumerate(refs)]))
    return out


__all__ = ["score_lineage"]
