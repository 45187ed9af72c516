"""Figure for docs/results.md (issue 15): where a trained probing graph metanetwork looks.

Renders a few test INRs of digits-inr on a fine grid and overlays the metanetwork's learned probe points
(the inputs whose per-neuron activations it reads), plus the test accuracy of every run as bars.

Usage: python docs/experiments/inr_probes_figure.py ZOO PROBING_RUN OUT.png [RUN ...]
(``PROBING_RUN`` a ``weightzoo metanet train --option probes=K`` folder; RUNs for the bars).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch


def main(zoo: str, run: str, out: str, bars: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from weightzoo.datasets import read_manifest
    from weightzoo.datasets.inr import grid_coordinates
    from weightzoo.metanets.train import TrainedMetanet
    from weightzoo.zoo.store import Zoo

    tm = TrainedMetanet.load(run)
    probe = getattr(tm.model, "probe", None)
    if probe is None:
        raise SystemExit(f"{run}: not a probing GMN (train it with --option probes=K)")
    points = probe.points.detach()  # [K, 2] in (y, x) order, like grid_coordinates
    z = Zoo.open(zoo, create=False)
    man = read_manifest(zoo, "digits-inr")
    tests = [g for g, e in man["groups"].items() if e["split"] == "test"][:4]
    fig, axes = plt.subplots(1, len(tests) + 1, figsize=(2.0 * len(tests) + 5, 2.6),
                             gridspec_kw={"width_ratios": [1] * len(tests) + [2.6]})
    res = 48
    coords = grid_coordinates(res)
    for ax, group in zip(axes, tests):
        name = man["groups"][group]["models"][0]
        with torch.no_grad():
            img = z.module(name)(coords).reshape(res, res)
        ax.imshow(img, cmap="gray", extent=(-1, 1, 1, -1))
        ax.scatter(points[:, 1], points[:, 0], s=14, c="tab:red", marker="x", linewidths=1)
        ax.set_title(f"label {z.model(name).metadata['label']}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = axes[-1]
    names, means, stds = [], [], []
    for r in bars:
        accs = [json.loads(p.read_text())["test"]["accuracy"] for p in sorted(Path(r).glob("seed-*/metrics.json"))]
        if accs:
            t = torch.tensor(accs)
            names.append(Path(r).name)
            means.append(float(t.mean()) * 100)
            stds.append(float(t.std()) * 100 if len(accs) > 1 else 0.0)
    ax.barh(range(len(names)), means, xerr=stds, color="tab:blue")
    ax.set_yticks(range(len(names)), names, fontsize=6)
    ax.set_xlabel("test accuracy (%)", fontsize=7)
    ax.axvline(10, color="grey", lw=0.5, ls="--")
    ax.tick_params(labelsize=6)
    fig.suptitle("digits-inr: learned probe points (red ×) of the probing GMN on test INRs; accuracy per run", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=130)


if __name__ == "__main__":
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
