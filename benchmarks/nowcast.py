"""Nowcast cost per application against one training step, and its peak memory, on three network sizes.

For MLPs 64 → w → w → 10 (w = 32, 256, 1024: 3.5k, 85k and 1.1M parameters) each size runs in a fresh
subprocess: one Adam training step on a batch of 32 (forward, backward, step; the baseline, measured in
the same process), then one application of each nowcaster (linear, MLP, graph with the default
``edge-update`` layer and with ``pyg-general``; untrained weights — cost does not depend on them) on a
history of 5 states. Times are CPU seconds of this process (``time.process_time``, one thread), so the
ratio nowcast / training step holds on a shared, loaded machine. Also printed: the peak anonymous
memory above the process's level before the nowcast (history included), per parameter — flat across
sizes when memory is linear in parameters.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/nowcast.py [--widths 32 256 1024]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch
from torch import nn


def one_size(width: int) -> dict[str, float]:
    from _measure import PeakSampler, rss_anon_bytes

    from weightzoo.hyper.nowcast import LinearNowcaster, MLPNowcaster, Nowcaster, ParameterIndex

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(32, 64), torch.randint(0, 10, (32,))

    def train_step() -> None:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    train_step()
    t0 = time.process_time()
    for _ in range(5):
        train_step()
    step_s = (time.process_time() - t0) / 5
    index = ParameterIndex.from_module(model)
    flat = index.flatten(dict(model.named_parameters()))
    states = torch.stack([flat + 1e-3 * i for i in range(5)])
    out: dict[str, float] = {"width": width, "parameters": index.num_params, "edges": index.num_edges,
                             "train_step_s": step_s}
    for name, nc in (("linear", LinearNowcaster()), ("mlp", MLPNowcaster()), ("graph", Nowcaster()),
                     ("graph-pyg", Nowcaster(layer="pyg-general"))):
        nc.predict(index, states)  # warm-up
        base = rss_anon_bytes()
        with PeakSampler() as peak:
            t0 = time.process_time()
            nc.predict(index, states)
            secs = time.process_time() - t0
        out[f"{name}_s"] = secs
        out[f"{name}_ratio"] = secs / step_s
        out[f"{name}_peak_bytes_per_param"] = max(peak.peak - base, 0) / index.num_params
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[32, 256, 1024])
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(one_size(args.one)))
        return
    rows = []
    for w in args.widths:
        res = subprocess.run([sys.executable, __file__, "--one", str(w)], capture_output=True, text=True, check=True)
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    kinds = ("linear", "mlp", "graph", "graph-pyg")
    print(f"{'params':>9} {'edges':>9} {'step ms':>8} | " + " | ".join(f"{k:>9} ms  ×step  B/param" for k in kinds))
    for r in rows:
        cells = " | ".join(f"{1e3 * r[f'{k}_s']:12.1f} {r[f'{k}_ratio']:6.1f} {r[f'{k}_peak_bytes_per_param']:8.0f}"
                           for k in kinds)
        print(f"{r['parameters']:9d} {r['edges']:9d} {1e3 * r['train_step_s']:8.2f} | {cells}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
