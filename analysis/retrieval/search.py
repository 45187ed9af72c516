"""One call from a query to its nearest architectures in a zoo: resolve the query's ComputeGraph, load
(or build, incrementally) the zoo's index for the chosen encoder, and search it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from weightzoo.zoo.store import ZooLike, using_zoo

from .build import build_index, graph_cache, index_dir
from .encoder import Encoder
from .index import Match, RetrievalIndex
from .query import query_graph
from .resolve import resolve_encoder


def retrieve(query: Any, zoo: ZooLike, k: int = 10, *, encoder: str | Encoder = "wl",
             encoder_run: str | os.PathLike[str] | None = None,
             spec: str | os.PathLike[str] | Mapping[str, Any] | None = None, build: bool = True,
             exclude_self: bool = True) -> list[Match]:
    """The ``k`` architectures of ``zoo`` most similar to ``query``.

    Args:
        query: anything :func:`~weightzoo.analysis.retrieval.query_graph` accepts (module, spec, config,
            zoo name, JSON file, checkpoint path, ``pkg.module:Class``).
        zoo: the zoo (open, or its folder). k: results (default 10).
        encoder: ``"ops"``, ``"wl"`` (default) or ``"learned"`` (with ``encoder_run``), or an Encoder.
        spec: architecture of a checkpoint-path query.
        build: build or update the index when it is missing or stale (default ``True``); else a missing
            index raises :class:`~weightzoo.errors.RetrievalError`.
        exclude_self: leave a zoo-name query out of its own results (default ``True``).
    """
    enc = encoder if isinstance(encoder, Encoder) else resolve_encoder(encoder, run=encoder_run)
    with using_zoo(zoo) as z:
        index = build_index(z, enc).index if build else RetrievalIndex.load(index_dir(z.path, enc), enc)
        graph = query_graph(query, zoo=z, spec=spec, cache=graph_cache(z.path))
        exclude = [os.fspath(query)] if exclude_self and isinstance(query, str) and query in index else []
        return index.search(graph, k, exclude=exclude)


__all__ = ["retrieve"]
