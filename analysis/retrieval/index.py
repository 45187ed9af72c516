"""A retrieval index: the encoded architectures of a zoo, exact cosine top-k search, stored in the zoo.

On disk (``<zoo>/retrieval/<encoder>/``, replaced whole and durably by
:func:`weightzoo.zoo.formats.durable.atomic_path`): ``index.safetensors`` with the embeddings (dense
encoders) or the token-count matrix in CSR form (WL), the op-count matrix and parameter counts, and
``index.json`` with the names, families, spec hashes, the encoder's fingerprint (name, version, settings,
hash; networkx version for WL) and the WL vocabulary with readable descriptions. No pickles.

Search is exact: one matrix–vector product (numpy, or a scipy sparse product for WL) and
``argpartition``; 10k × 256 dense embeddings take well under a millisecond (see benchmarks/retrieval.py).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from weightzoo.errors import CheckpointError, RetrievalError
from weightzoo.zoo.formats.durable import atomic_path
from weightzoo.zoo.graphs import ComputeGraph, OpType

from .encoder import Encoder, l2_normalise
from .labels import NUM_OPS, parameter_count

INDEX_FORMAT = "weightzoo.retrieval_index/1"
INDEX_FILES = ("index.safetensors", "index.json")
_OP_NAMES = [OpType(i).name if i in OpType._value2member_map_ else str(i) for i in range(NUM_OPS)]


@dataclass(frozen=True)
class Match:
    """One search result: rank (1-based), the indexed model, cosine similarity, its family, and the op
    types whose counts differ most between the query and it (query count − match count)."""

    rank: int
    model: str
    similarity: float
    family: str | None
    differing_ops: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "model": self.model, "similarity": self.similarity, "family": self.family,
                "differing_ops": dict(self.differing_ops)}


@dataclass
class _Entry:
    name: str
    family: str | None
    spec_hash: str | None
    op_counts: np.ndarray
    params: int


def graph_op_counts(graph: ComputeGraph) -> np.ndarray:
    """``[NUM_OPS]`` int64 node counts per op type."""
    return np.bincount([int(n.op) for n in graph.nodes], minlength=NUM_OPS)[:NUM_OPS].astype(np.int64)


def differing_ops(query: np.ndarray, match: np.ndarray, top: int = 3) -> dict[str, int]:
    """The ``top`` op types with the largest |query − match| count difference (non-zero only)."""
    diff = query.astype(np.int64) - match.astype(np.int64)
    order = np.argsort(-np.abs(diff), kind="stable")[:top]
    return {_OP_NAMES[i]: int(diff[i]) for i in order if diff[i] != 0}


class RetrievalIndex:
    """Encoded architectures with names and families; exact cosine search.

    Args:
        encoder (Encoder): the encoder (its fingerprint is stored; :meth:`load` checks it).

    Build with :meth:`add` (or :func:`~weightzoo.analysis.retrieval.build_index` over a zoo), search with
    :meth:`search`; :meth:`save` / :meth:`load` a folder.
    """

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.fingerprint = encoder.fingerprint()
        self._entries: list[_Entry] = []
        self._position: dict[str, int] = {}
        self._dense: list[np.ndarray] = []  # rows of dense encoders
        self._tokens: list[Counter[str]] = []  # rows of sparse encoders
        self._descriptions: dict[str, str] = {}
        self._matrix: Any = None  # cached search matrix (dense [N, D] or csr tf-idf)
        self._columns: Any = None  # the tf-idf matrix by columns (csc), for sparse queries
        self._idf: np.ndarray | None = None
        self._vocab: dict[str, int] = {}

    # --- contents ---------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._position

    @property
    def names(self) -> list[str]:
        return [e.name for e in self._entries]

    @property
    def families(self) -> list[str | None]:
        return [e.family for e in self._entries]

    def spec_hash(self, name: str) -> str | None:
        return self._entries[self._position[name]].spec_hash

    def add(self, name: str, graph: ComputeGraph, *, family: str | None = None, spec_hash: str | None = None) -> None:
        """Add (or replace) one architecture."""
        self.add_many([(name, graph, family, spec_hash)])

    def add_many(self, items: Iterable[tuple[str, ComputeGraph, str | None, str | None]]) -> None:
        """Add (or replace) ``(name, graph, family, spec_hash)`` items; dense encoders encode them in one batch."""
        items = list(items)
        if not items:
            return
        self.remove([name for name, *_ in items if name in self._position])
        graphs = [g for _, g, _, _ in items]
        if self.encoder.kind == "dense":
            self._dense.extend(self.encoder.encode(graphs))
        else:
            self._tokens.extend(self.encoder.tokens(g) for g in graphs)
            for row in self._tokens[-len(graphs):]:
                for tok in row:
                    if tok not in self._descriptions:
                        self._descriptions[tok] = self.encoder.describe(tok)
        for name, g, family, spec_hash in items:
            self._position[name] = len(self._entries)
            self._entries.append(_Entry(name, family, spec_hash, graph_op_counts(g), parameter_count(g)))
        self._matrix = None

    def remove(self, names: Iterable[str]) -> None:
        drop = {self._position[n] for n in names if n in self._position}
        if not drop:
            return
        keep = [i for i in range(len(self._entries)) if i not in drop]
        self._entries = [self._entries[i] for i in keep]
        if self._dense:
            self._dense = [self._dense[i] for i in keep]
        if self._tokens:
            self._tokens = [self._tokens[i] for i in keep]
        self._position = {e.name: i for i, e in enumerate(self._entries)}
        self._matrix = None

    # --- search -----------------------------------------------------------------------------------------

    def _search_matrix(self) -> Any:
        if self._matrix is not None:
            return self._matrix
        if self.encoder.kind == "dense":
            self._matrix = (np.stack(self._dense).astype(np.float32) if self._dense
                            else np.zeros((0, 1), dtype=np.float32))
            return self._matrix
        vocab: dict[str, int] = {}
        indptr, indices, data = [0], [], []
        for row in self._tokens:
            for tok, c in row.items():
                indices.append(vocab.setdefault(tok, len(vocab)))
                data.append(c)
            indptr.append(len(indices))
        counts = sp.csr_matrix((np.asarray(data, dtype=np.float32), np.asarray(indices, dtype=np.int64),
                                np.asarray(indptr, dtype=np.int64)), shape=(len(self._tokens), max(len(vocab), 1)))
        n = counts.shape[0]
        df = np.bincount(counts.indices, minlength=counts.shape[1])
        self._idf = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)
        self._vocab = vocab
        tfidf = counts.copy()
        tfidf.data = (1.0 + np.log(tfidf.data)) * self._idf[tfidf.indices]
        norms = np.sqrt(np.asarray(tfidf.multiply(tfidf).sum(axis=1)).ravel())
        tfidf = sp.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)) @ tfidf
        self._matrix = tfidf.tocsr()
        self._columns = self._matrix.tocsc()  # queries touch only their own tokens' columns (an inverted index)
        return self._matrix

    def _query_vector(self, graph: ComputeGraph) -> Any:
        if self.encoder.kind == "dense":
            return self.encoder.encode([graph])[0]
        return self._tokens_vector(self.encoder.tokens(graph))

    def _tokens_vector(self, tokens: Counter[str]) -> Any:
        matrix = self._search_matrix()
        assert self._idf is not None
        n = matrix.shape[0]
        cols, vals, norm2 = [], [], 0.0
        for tok, c in tokens.items():
            j = self._vocab.get(tok)
            w = (1.0 + np.log(c)) * (self._idf[j] if j is not None else np.log(1.0 + n) + 1.0)
            norm2 += float(w) ** 2
            if j is not None:
                cols.append(j)
                vals.append(w)
        vec = np.zeros(matrix.shape[1], dtype=np.float32)
        if cols and norm2 > 0:
            vec[np.asarray(cols, dtype=np.int64)] = np.asarray(vals, dtype=np.float32) / np.sqrt(norm2)
        return vec

    def scores(self, graph: ComputeGraph) -> np.ndarray:
        """``[N]`` cosine similarity of ``graph`` to every indexed architecture."""
        return self.vector_scores(self._query_vector(graph))

    def vector_scores(self, vector: Any) -> np.ndarray:
        """``[N]`` cosine similarities of an already encoded query (see :meth:`encode_query`)."""
        matrix = self._search_matrix()
        if len(self) == 0:
            return np.zeros(0, dtype=np.float32)
        vector = np.asarray(vector, dtype=np.float32).ravel()
        if self.encoder.kind == "dense":
            return np.asarray(matrix @ vector, dtype=np.float32)
        cols = np.flatnonzero(vector)
        return np.asarray(self._columns[:, cols] @ vector[cols], dtype=np.float32).ravel()

    def encode_query(self, graph: ComputeGraph) -> Any:
        """The query's vector (dense encoders) or its tf-idf row over this index's vocabulary (WL), as a
        1-D float32 array."""
        return self._query_vector(graph)

    def search(self, query: ComputeGraph, k: int = 10, *, exclude: Iterable[str] = ()) -> list[Match]:
        """The ``k`` most similar indexed architectures to ``query`` (best first; ``exclude`` names skipped)."""
        if not isinstance(k, int) or k < 1:
            raise RetrievalError(f"k must be a positive int, got {k!r}")
        scores = self.scores(query)
        return self.top_k(scores, k, exclude=exclude, query_ops=graph_op_counts(query))

    def top_k(self, scores: np.ndarray, k: int, *, exclude: Iterable[str] = (),
              query_ops: np.ndarray | None = None) -> list[Match]:
        """Turn a score vector into the ``k`` best :class:`Match` es (ties broken by name)."""
        scores = np.array(scores, dtype=np.float64)
        for name in exclude:
            if name in self._position:
                scores[self._position[name]] = -np.inf
        valid = int(np.isfinite(scores).sum())
        k = min(k, valid)
        if k == 0:
            return []
        cand = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        order = sorted(cand.tolist(), key=lambda i: (-scores[i], self._entries[i].name))[:k]
        out = []
        for rank, i in enumerate(order, start=1):
            e = self._entries[i]
            diff = differing_ops(query_ops, e.op_counts) if query_ops is not None else {}
            out.append(Match(rank, e.name, float(scores[i]), e.family, diff))
        return out

    def similarity_matrix(self) -> np.ndarray:
        """``[N, N]`` cosine similarities between all indexed architectures (for evaluation)."""
        m = self._search_matrix()
        if self.encoder.kind == "dense":
            return np.asarray(m @ m.T, dtype=np.float64)
        return np.asarray((m @ m.T).toarray(), dtype=np.float64)

    def embeddings(self) -> np.ndarray:
        """``[N, D]`` dense vectors (tf-idf rows densified for WL; for projections and plots)."""
        m = self._search_matrix()
        return np.asarray(m if self.encoder.kind == "dense" else m.toarray(), dtype=np.float32)

    def op_counts(self) -> np.ndarray:
        return np.stack([e.op_counts for e in self._entries]) if self._entries else np.zeros((0, NUM_OPS), np.int64)

    def parameter_counts(self) -> np.ndarray:
        return np.asarray([e.params for e in self._entries], dtype=np.int64)

    def describe(self, token: str) -> str:
        return self._descriptions.get(token, token)

    # --- storage ----------------------------------------------------------------------------------------

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the index folder (replaced whole, durably); returns its path."""
        from safetensors.numpy import save_file

        folder = Path(folder)
        tensors: dict[str, np.ndarray] = {"op_counts": self.op_counts(), "params": self.parameter_counts()}
        meta: dict[str, Any] = {"format": INDEX_FORMAT, "encoder": self.fingerprint,
                                "names": self.names, "families": self.families,
                                "spec_hashes": [e.spec_hash for e in self._entries]}
        if self.encoder.kind == "dense":
            tensors["embeddings"] = (np.stack(self._dense).astype(np.float32) if self._dense
                                     else np.zeros((0, 0), dtype=np.float32))
        else:
            vocab: dict[str, int] = {}
            indptr, indices, data = [0], [], []
            for row in self._tokens:
                for tok, c in sorted(row.items()):
                    indices.append(vocab.setdefault(tok, len(vocab)))
                    data.append(c)
                indptr.append(len(indices))
            tensors.update(indptr=np.asarray(indptr, dtype=np.int64), indices=np.asarray(indices, dtype=np.int64),
                           counts=np.asarray(data, dtype=np.int64))
            meta["vocab"] = list(vocab)
            meta["descriptions"] = {t: self._descriptions.get(t, t) for t in vocab}
        folder.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder, folder=True) as tmp:
            save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp / INDEX_FILES[0]))
            (tmp / INDEX_FILES[1]).write_text(json.dumps(meta, sort_keys=True), encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike[str], encoder: Encoder) -> RetrievalIndex:
        """Read an index folder written by :meth:`save` with the same encoder; raises
        :class:`RetrievalError` when the stored fingerprint differs (rebuild it) and
        :class:`~weightzoo.errors.CheckpointError` on a damaged folder."""
        from safetensors.numpy import load_file

        folder = Path(folder)
        try:
            meta = json.loads((folder / INDEX_FILES[1]).read_text(encoding="utf-8"))
            tensors = load_file(str(folder / INDEX_FILES[0]))
        except FileNotFoundError as exc:
            raise RetrievalError(f"no retrieval index in {folder} (build it: weightzoo retrieve --build-index)") from exc
        except (OSError, ValueError) as exc:
            raise CheckpointError(folder, f"unreadable retrieval index: {exc}") from exc
        if not isinstance(meta, dict) or meta.get("format") != INDEX_FORMAT:
            raise CheckpointError(folder, f"not a retrieval index (expected format {INDEX_FORMAT!r})")
        fp = encoder.fingerprint()
        stored = meta.get("encoder", {})
        if stored.get("hash") != fp["hash"]:
            raise RetrievalError(f"index in {folder} was built by encoder {stored.get('name')} {stored.get('settings')} "
                                 f"(hash {stored.get('hash')}), not {fp['name']} {fp['settings']} (hash {fp['hash']}); "
                                 "rebuild it (weightzoo retrieve --build-index)")
        try:
            names, families, hashes = meta["names"], meta["families"], meta["spec_hashes"]
            n = len(names)
            ops, params = tensors["op_counts"], tensors["params"]
            if ops.shape != (n, NUM_OPS) or params.shape != (n,) or len(families) != n or len(hashes) != n:
                raise ValueError("row counts disagree")
            index = cls(encoder)
            index._entries = [_Entry(str(nm), fam, h, ops[i].astype(np.int64), int(params[i]))
                              for i, (nm, fam, h) in enumerate(zip(names, families, hashes, strict=True))]
            index._position = {e.name: i for i, e in enumerate(index._entries)}
            if len(index._position) != n:
                raise ValueError("duplicate names")
            if encoder.kind == "dense":
                emb = tensors["embeddings"]
                if n and (emb.ndim != 2 or emb.shape[0] != n):
                    raise ValueError("embeddings do not match the names")
                index._dense = [l2_normalise(r) for r in emb] if n else []
            else:
                vocab: list[str] = meta["vocab"]
                indptr, indices, counts = tensors["indptr"], tensors["indices"], tensors["counts"]
                if (indptr.shape != (n + 1,) or int(indptr[-1]) != len(indices) or len(counts) != len(indices)
                        or (len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= len(vocab)))
                        or np.any(np.diff(indptr) < 0) or (len(counts) and int(counts.min()) < 1)):
                    raise ValueError("malformed token matrix")
                index._tokens = [Counter({vocab[int(j)]: int(c) for j, c in zip(indices[a:b], counts[a:b], strict=True)})
                                 for a, b in zip(indptr[:-1], indptr[1:], strict=True)]
                index._descriptions = {str(k): str(v) for k, v in meta.get("descriptions", {}).items()}
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise CheckpointError(folder, f"malformed retrieval index: {exc}") from exc
        return index

    def __repr__(self) -> str:
        return f"RetrievalIndex(encoder={self.fingerprint['name']}, entries={len(self)})"


def select(index: RetrievalIndex, names: Sequence[str]) -> RetrievalIndex:
    """A new index holding only ``names`` (same encoder; rows copied, nothing re-encoded)."""
    sub = RetrievalIndex(index.encoder)
    for name in names:
        i = index._position[name]
        sub._position[name] = len(sub._entries)
        sub._entries.append(index._entries[i])
        if index._dense:
            sub._dense.append(index._dense[i])
        if index._tokens:
            sub._tokens.append(index._tokens[i])
    sub._descriptions = index._descriptions
    return sub


__all__ = ["INDEX_FORMAT", "Match", "RetrievalError", "RetrievalIndex", "differing_ops", "graph_op_counts", "select"]
