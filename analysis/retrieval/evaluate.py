"""Evaluate encoders side by side on a zoo: for each group of models (by default the ``archs`` zoo's
``test`` split — in-distribution families, unseen architectures — and its ``heldout`` split — families
never seen in training; else the whole zoo) every model queries the others of its group, relevance =
same family, and :mod:`.metrics` scores the rankings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from weightzoo.errors import RetrievalError
from weightzoo.zoo.store import ZooLike, using_zoo

from .build import build_index
from .encoder import Encoder
from .index import select
from .metrics import per_query_metrics, retrieval_metrics

DEFAULT_SPLITS = ("test", "heldout")


@dataclass(frozen=True)
class EvaluationResult:
    """Metrics of one encoder on one group of models, with the per-query values (for bootstraps)."""

    encoder: str
    group: str
    size: int
    families: int
    metrics: Mapping[str, float]
    per_query: Mapping[str, np.ndarray]

    def to_dict(self) -> dict[str, Any]:
        return {"encoder": self.encoder, "group": self.group, "size": self.size, "families": self.families,
                "metrics": {k: (None if v != v else v) for k, v in self.metrics.items()}}  # NaN: no query had a relevant item


def default_groups(zoo: ZooLike) -> dict[str, list[str]]:
    """``{"test": [...], "heldout": [...]}`` from the models' ``split`` metadata, else ``{"all": every model}``."""
    with using_zoo(zoo) as z:
        records = z.models()
    groups: dict[str, list[str]] = {}
    for r in records:
        split = r.metadata.get("split")
        if split in DEFAULT_SPLITS:
            groups.setdefault(str(split), []).append(r.name)
    return groups or {"all": [r.name for r in records]}


def evaluate_zoo(zoo: ZooLike, encoders: Sequence[Encoder], *, k: int = 10,
                 groups: Mapping[str, Sequence[str]] | None = None) -> list[EvaluationResult]:
    """Metrics@k of every encoder on every group (see the module docstring); indexes are built or updated
    in the zoo as needed."""
    with using_zoo(zoo) as z:
        groups = dict(groups) if groups is not None else default_groups(z)
        out = []
        for enc in encoders:
            index = build_index(z, enc).index
            for group, names in groups.items():
                names = [n for n in names if n in index]
                if len(names) < 2:
                    raise RetrievalError(f"group {group!r} has {len(names)} indexed model(s); need at least 2")
                sub = select(index, names)
                sim, fams = sub.similarity_matrix(), sub.families
                out.append(EvaluationResult(enc.name, group, len(names), len({f for f in fams if f is not None}),
                                            retrieval_metrics(sim, fams, k), per_query_metrics(sim, fams, k)))
    return out


__all__ = ["DEFAULT_SPLITS", "EvaluationResult", "default_groups", "evaluate_zoo"]
