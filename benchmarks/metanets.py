"""Graph metanetwork layer: sparse (ours) vs dense-adjacency (neural-graphs layout) memory and speed.

The same :class:`EdgeUpdateConv` parameters run sparsely (messages ``[E, d]``) and densely
(:class:`DenseEdgeUpdateConv`, pairs ``[B, N, N, d]``) on batches of CNN ParameterGraphs whose depth grows
(width fixed): edges grow linearly with depth, node pairs quadratically. Printed per depth: edges, nodes,
peak anonymous memory above the start (forward + backward of two layers) and seconds for each path, and the
dense/sparse memory ratio.

    .venv/bin/python benchmarks/metanets.py [--depths 4 8 16] [--width 16] [--batch 8] [--hidden 32]
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from _measure import PeakSampler, rss_anon_bytes  # noqa: E402

from weightzoo.metanets.layers.dense_edge_update_conv import DenseEdgeUpdateConv, to_dense  # noqa: E402
from weightzoo.metanets.layers.edge_update_conv import EdgeUpdateConv  # noqa: E402
from weightzoo.zoo.graphs import ParameterGraph  # noqa: E402


def cnn(depth: int, width: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(1, width, 3, padding=1), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))


def measure(fn) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    gc.collect()
    base = rss_anon_bytes()
    t0 = time.perf_counter()
    with PeakSampler(0.002) as s:
        fn()
    return (s.peak - base) / 2**20, time.perf_counter() - t0


def run_sparse(convs: nn.ModuleList, b, x: torch.Tensor, e: torch.Tensor) -> None:  # type: ignore[no-untyped-def]
    h, f = x.clone().requires_grad_(), e.clone().requires_grad_()
    for c in convs:
        h, f = c(h, b.edge_index, f)
    (h.sum() + f.sum()).backward()


def run_dense(dense: list[DenseEdgeUpdateConv], b, x: torch.Tensor, e: torch.Tensor) -> None:  # type: ignore[no-untyped-def]
    xd, ed, mask, _ = to_dense(x, b.edge_index, e, b.batch)
    h, f = xd.requires_grad_(), ed.requires_grad_()
    for c in dense:
        h, f = c(h, f, mask)
    (h.sum() + f.sum()).backward()


def one(path: str, depth: int, width: int, batch: int, hidden: int) -> dict[str, float]:
    """Build the inputs, then measure one path (run in a fresh process, so no allocator cache is shared)."""
    from torch_geometric.data import Batch

    torch.manual_seed(0)
    torch.set_num_threads(1)
    convs = nn.ModuleList([EdgeUpdateConv(hidden) for _ in range(2)])
    b = Batch.from_data_list([ParameterGraph.from_module(cnn(depth, width)).to_pyg() for _ in range(batch)])
    x, e = torch.randn(b.num_nodes, hidden), torch.randn(b.num_edges, hidden)
    fn = partial(run_sparse, convs, b, x, e) if path == "sparse" else partial(run_dense, [DenseEdgeUpdateConv(c) for c in convs], b, x, e)
    mib, sec = measure(fn)
    return {"mib": mib, "seconds": sec, "edges": b.num_edges // batch, "nodes": b.num_nodes // batch}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--depths", type=int, nargs="+", default=[4, 8, 16])
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--one", nargs=2, metavar=("PATH", "DEPTH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.width, args.batch, args.hidden)))
        return
    print(f"width {args.width}, batch {args.batch} graphs, hidden {args.hidden}, two layers, forward + backward; "
          "peak RssAnon above the start of each fresh process")
    print(f"{'depth':>5} {'edges':>7} {'nodes':>6} {'sparse MiB':>10} {'sparse s':>8} {'dense MiB':>10} {'dense s':>8} "
          f"{'dense/sparse MiB':>16}")
    for depth in args.depths:
        r = {}
        for path in ("sparse", "dense"):
            cmd = [sys.executable, __file__, "--one", path, str(depth), "--width", str(args.width), "--batch",
                   str(args.batch), "--hidden", str(args.hidden)]
            r[path] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        s, d = r["sparse"], r["dense"]
        print(f"{depth:>5} {s['edges']:>7} {s['nodes']:>6} {s['mib']:>10.1f} {s['seconds']:>8.3f} {d['mib']:>10.1f} "
              f"{d['seconds']:>8.3f} {d['mib'] / max(s['mib'], 0.1):>15.1f}×")


if __name__ == "__main__":
    main()
