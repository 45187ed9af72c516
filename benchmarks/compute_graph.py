"""Time to record a ComputeGraph (with virtual edges), against ``torch.export`` of the same module in the
same process.

Models (built from configs, default PyTorch initialisation; needs ``transformers``):

* ``resnet50``: ``transformers.ResNetModel(ResNetConfig())`` — ResNet-50, 23.5 M parameters, 204 graph nodes,
  on its derived example input (1×3×32×32);
* ``gpt2-100``: ``GPT2Model`` with 100 blocks (``n_embd=128``, 4 heads), 16 tokens.

For each: ``ComputeGraph.record`` (eager backend, virtual edges with cutoff 50 included), the same on the
module built on the meta device (no arithmetic at all), the virtual edges alone, and ``torch.export.export``
(``strict=False``) of the same module on the same input — the baseline, as the ratio
``export / ComputeGraph``. Each figure is the minimum over ``--repeat`` runs after one warm-up call (the
first call's figure is printed too: it pays for oneDNN kernel set-up).

Usage: ``python benchmarks/compute_graph.py [--repeat 3] [--threads 1] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import torch


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """(first call seconds, best of ``repeat`` later calls, last result)."""
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return first, best, out


def _models() -> dict[str, Callable[[], torch.nn.Module]]:
    import transformers as t

    return {
        "resnet50": lambda: t.ResNetModel(t.ResNetConfig()),
        "gpt2-100": lambda: t.GPT2Model(t.GPT2Config(n_layer=100, n_embd=128, n_head=4, n_positions=64,
                                                     vocab_size=1000, bos_token_id=0, eos_token_id=0)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--models", nargs="+", default=["resnet50", "gpt2-100"])
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: per-core figures, robust on a shared machine)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from weightzoo.errors import ComputeGraphError
    from weightzoo.zoo.graphs import ComputeGraph
    from weightzoo.zoo.graphs.compute_graph import example_inputs, shortest_path_edges

    torch.manual_seed(0)
    rows = []
    for name in args.models:
        make = _models()[name]
        module = make().eval()
        with torch.device("meta"):
            meta = make().eval()
        first, rec, graph = _best(lambda m=module: ComputeGraph.record(m), args.repeat)
        try:
            _, meta_s, _ = _best(lambda m=meta: ComputeGraph.record(m), args.repeat)
        except ComputeGraphError:  # data-dependent Python control flow (GPT-2's mask code) needs real values
            meta_s = float("nan")
        _, ve_s, _ = _best(lambda g=graph: shortest_path_edges(g.edge_index, g.num_nodes, 50), args.repeat)
        a, kw = example_inputs(module)
        exp_first, exp_s, _ = _best(lambda m=module, a=a, kw=kw: torch.export.export(m, a, kw, strict=False),
                                    args.repeat)
        rows.append({
            "model": name, "parameters": sum(p.numel() for p in module.parameters()), "nodes": graph.num_nodes,
            "edges": int(graph.edge_index.shape[1]), "virtual_edges": int(graph.virtual_edge_index.shape[1]),
            "compute_graph_s": rec, "compute_graph_first_call_s": first, "compute_graph_meta_s": meta_s,
            "virtual_edges_s": ve_s, "torch_export_s": exp_s, "torch_export_first_call_s": exp_first,
            "export_over_compute_graph": exp_s / rec,
        })
    info = {"torch": torch.__version__, "python": platform.python_version(), "cpus": os.cpu_count(),
            "threads": torch.get_num_threads(), "load_avg_1min": os.getloadavg()[0], "repeat": args.repeat}
    if args.json:
        print(json.dumps({"machine": info, "rows": rows}, indent=2))
        return
    print(f"torch {info['torch']}, {info['cpus']} CPUs, {info['threads']} threads, load {info['load_avg_1min']:.1f}, "
          f"best of {args.repeat} after a warm-up")
    head = f"{'model':<10} {'params':>8} {'nodes':>6} {'virt.e':>7} {'graph s':>8} {'(1st)':>6} {'meta s':>7} " \
           f"{'virt s':>7} {'export s':>9} {'(1st)':>6} {'ratio':>6}"
    print(head)
    for r in rows:
        print(f"{r['model']:<10} {r['parameters'] / 1e6:7.1f}M {r['nodes']:>6} {r['virtual_edges']:>7} "
              f"{r['compute_graph_s']:8.3f} {r['compute_graph_first_call_s']:6.2f} {r['compute_graph_meta_s']:7.3f} "
              f"{r['virtual_edges_s']:7.3f} {r['torch_export_s']:9.3f} {r['torch_export_first_call_s']:6.2f} "
              f"{r['export_over_compute_graph']:5.1f}×")


if __name__ == "__main__":
    main()
