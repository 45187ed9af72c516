"""Architecture retrieval: query latency over a 10,000-entry index and index build rate per encoder.

Graphs: ``--distinct`` (default 100) architectures sampled from the archs families
(``datasets.archs.sample_cells_spec``) are recorded once; the 10,000-entry index holds each of them
``10000 / distinct`` times under different names (search cost depends on the matrix size, not on the
rows being distinct; the WL vocabulary is that of the distinct graphs). Reported per encoder:

* build rate — architectures/s to encode and add (graph recording excluded, reported apart);
* query latency — ``index.search`` top-10 with the query already encoded (``vector_scores`` +
  ``top_k``), median over ``--queries`` queries, against the baseline in the same run: scipy
  ``cdist(metric="cosine")`` + a full ``argsort`` over the same dense vectors, or for WL the plain CSR
  matrix–vector product + ``argsort`` (ratio = baseline / ours). For WL the copies make this a worst
  case: every column a query touches holds ≥ size/distinct rows;
* the query's own cost apart: recording its ComputeGraph and encoding it.

Target (issue 18): ≤ 10 ms per query over 10,000 architectures, query graph excluded.
Usage: ``python benchmarks/retrieval.py [--size 10000] [--distinct 100] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import numpy as np
import torch
from scipy.spatial.distance import cdist

from weightzoo.analysis.retrieval import OpHistogramEncoder, RetrievalIndex, WLEncoder
from weightzoo.analysis.retrieval.learned import ArchitectureEncoderNet, LearnedEncoder
from weightzoo.analysis.retrieval.query import graph_of_spec
from weightzoo.datasets.archs import FAMILIES, sample_cells_spec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=10_000)
    ap.add_argument("--distinct", type=int, default=100)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    fams = list(FAMILIES)
    specs = [sample_cells_spec(rng, fams[i % len(fams)]) for i in range(args.distinct)]
    t = time.perf_counter()
    graphs = [graph_of_spec(s) for s in specs]
    record_s = (time.perf_counter() - t) / len(graphs)
    torch.manual_seed(0)
    encoders = [OpHistogramEncoder(), WLEncoder(), LearnedEncoder(ArchitectureEncoderNet(), "untrained-benchmark")]
    reps = args.size // args.distinct
    out: dict[str, Any] = {"size": reps * args.distinct, "distinct": args.distinct,
                           "record_ms_per_graph": 1e3 * record_s, "encoders": {}}
    for enc in encoders:
        label = enc.name
        index = RetrievalIndex(enc)
        t = time.perf_counter()
        index.add_many([(f"d{i}", g, None, None) for i, g in enumerate(graphs)])
        encode_s = time.perf_counter() - t
        rate = len(graphs) / encode_s
        if enc.kind == "dense":  # the other copies reuse the encoded rows (same vectors)
            index._dense = index._dense * reps
        else:  # worst case for the inverted index: every token's column holds >= `reps` rows
            index._tokens = index._tokens * reps
        index._entries = [e for _ in range(reps) for e in index._entries]
        for j, e in enumerate(list(index._entries)):
            index._entries[j] = type(e)(f"a{j}", e.family, e.spec_hash, e.op_counts, e.params)
        index._position = {e.name: j for j, e in enumerate(index._entries)}
        index._matrix = None
        index.vector_scores(index.encode_query(graphs[0]))  # builds the search matrix once
        lat, base, own = [], [], []
        dense = index.embeddings() if enc.kind == "dense" else None
        csr = index._search_matrix() if enc.kind == "sparse" else None
        for q in range(args.queries):
            g = graphs[q % len(graphs)]
            t = time.perf_counter()
            vec = index.encode_query(g)
            own.append(time.perf_counter() - t)
            t = time.perf_counter()
            index.top_k(index.vector_scores(vec), 10)
            lat.append(time.perf_counter() - t)
            if dense is not None:
                t = time.perf_counter()
                d = cdist(np.asarray(vec, dtype=np.float64)[None, :], dense, metric="cosine")[0]
                np.argsort(d)[:10]
                base.append(time.perf_counter() - t)
            if csr is not None:  # baseline: the plain sparse matrix-vector product over every row and column
                t = time.perf_counter()
                np.argsort(-(csr @ np.asarray(vec, dtype=np.float32)))[:10]
                base.append(time.perf_counter() - t)
        row = {"build_archs_per_s": rate, "query_ms_median": 1e3 * statistics.median(lat),
               "query_encode_ms_median": 1e3 * statistics.median(own),
               "dim": int(index._search_matrix().shape[1])}
        if base:
            row["baseline_ms_median"] = 1e3 * statistics.median(base)
            row["baseline"] = "cdist+argsort" if dense is not None else "csr matvec+argsort"
            row["ratio_baseline_over_ours"] = statistics.median(base) / statistics.median(lat)
        out["encoders"][label] = row
    if args.json:
        print(json.dumps(out, indent=1))
        return
    print(f"{out['size']} indexed architectures ({args.distinct} distinct), recording a graph: "
          f"{out['record_ms_per_graph']:.0f} ms")
    for name, r in out["encoders"].items():
        extra = (f", baseline {r['baseline']} {r['baseline_ms_median']:.2f} ms "
                 f"(ratio {r['ratio_baseline_over_ours']:.1f}×)") if "ratio_baseline_over_ours" in r else ""
        print(f"{name:<12} build {r['build_archs_per_s']:.0f} archs/s; top-10 query {r['query_ms_median']:.2f} ms "
              f"(target ≤ 10 ms){extra}; encoding the query {r['query_encode_ms_median']:.1f} ms; dim {r['dim']}")


if __name__ == "__main__":
    main()
