"""Lineage declared on the Hub: a card's ``base_model`` / ``base_model_relation`` and ``base_model:`` tags.

A card names its parents with ``base_model`` (a repo id or a list of them) and, optionally, how the model
derives from them with ``base_model_relation`` ∈ {``finetune``, ``adapter``, ``merge``, ``quantized``}.
The Hub turns these into tags ``base_model:<id>`` and ``base_model:<relation>:<id>`` (which
``list_models(filter=...)`` can search). When no relation is written anywhere we infer it as the Hub does:
several parents → ``merge``; an adapter repository → ``adapter``; otherwise ``finetune``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

RELATIONS = ("finetune", "adapter", "merge", "quantized")

# A Hub repo id (org/name: letters, digits, '-', '_', '.'), at most 96 characters per part as the Hub
# allows; longer strings from a card are not repo ids and are not recorded.
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]{0,95}(/[\w.\-]{1,96})?$")


@dataclass(frozen=True)
class LineageEdge:
    """``child`` derives from ``parent`` by ``relation``; ``source`` says where it was read (card or tag)."""

    child: str
    parent: str
    relation: str
    source: str

    @property
    def evidence(self) -> dict[str, Any]:
        return {"source": self.source}


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str)]
    return []


def declared_lineage(child: str, card: dict[str, Any] | None, tags: Iterable[str] | None, *,
                     adapter: bool = False) -> list[LineageEdge]:
    """The lineage edges a repository declares (deduplicated, one relation per parent).

    Args:
        child: the repository id.
        card: its card data (``cardData``), or ``None``.
        tags: its Hub tags.
        adapter: the repository holds an adapter (``adapter_config.json``/``adapter_model.*``).
    """
    card = card or {}
    parents: dict[str, tuple[str | None, str]] = {}  # parent -> (relation or None, source)
    card_rel = card.get("base_model_relation")
    card_rel = card_rel if card_rel in RELATIONS else None
    for p in _as_list(card.get("base_model")):
        p = p.strip()
        if _REPO_ID.match(p) and p != child:
            parents.setdefault(p, (card_rel, "card"))
    for tag in tags or ():
        if not isinstance(tag, str) or not tag.startswith("base_model:"):
            continue
        rest = tag[len("base_model:"):]
        rel: str | None = None
        head, sep, tail = rest.partition(":")
        if sep and head in RELATIONS:
            rel, rest = head, tail
        if not _REPO_ID.match(rest) or rest == child:
            continue
        known = parents.get(rest)
        if known is None:
            parents[rest] = (rel, "tag")
        elif known[0] is None and rel is not None:
            parents[rest] = (rel, known[1])
    default = "merge" if len(parents) > 1 else "adapter" if adapter else "finetune"
    return [LineageEdge(child, p, rel or default, src) for p, (rel, src) in parents.items()]


__all__ = ["RELATIONS", "LineageEdge", "declared_lineage"]
