"""Make the figures and numbers of docs/analysis.md from real, seeded training runs on scikit-learn digits.

Trains six small CNNs on digits (three seeds × two widths) and keeps their untrained initialisations, then
runs the filter analysis (layer metrics, shared PCA, shift by training state and by depth) and the weight
statistics on them. Usage (≈1 min on one core):

    .venv/bin/python docs/make_analysis_figures.py [--out docs/img]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target, dtype=torch.long)
    return x, y


def cnn(width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, 10),
    )  # fmt: skip


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int, epochs: int = 8) -> float:
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    n = 1400
    for _ in range(epochs):
        perm = torch.randperm(n)
        for i in range(0, n, 64):
            b = perm[i : i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[b]), y[b]).backward()
            opt.step()
    with torch.no_grad():
        return float((model(x[n:]).argmax(1) == y[n:]).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).parent / "img"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)

    from weightzoo.analysis.filter_plots import (
        plot_coefficient_distributions,
        plot_layer_metrics,
        plot_pca_basis,
        plot_shift_heatmap,
    )
    from weightzoo.analysis.filters import group_shift, layer_quality, scan_filters
    from weightzoo.analysis.stats import model_stats

    x, y = digits()
    sources, accs = [], {}
    for width in (16, 32):
        for seed in range(3):
            torch.manual_seed(100 * width + seed)
            m = cnn(width)
            sources.append((f"init-w{width}-s{seed}", {k: v.clone() for k, v in m.state_dict().items()}))
            accs[f"cnn-w{width}-s{seed}"] = train(m, x, y, seed)
            sources.append((f"cnn-w{width}-s{seed}", m))
    scan = scan_filters(sources)
    table = scan.table
    for row in table.layers:
        row["state"] = "init" if row["model"].startswith("init") else "trained"

    # a trained-then-pruned layer, for the degeneration example
    w = [m for _, m in sources if isinstance(m, nn.Module)][0][6].weight.detach().clone()
    last = w.reshape(-1, 9)
    keep = torch.randperm(len(last), generator=torch.Generator().manual_seed(0))[: len(last) // 5]
    pruned = torch.zeros_like(last)
    pruned[keep] = last[keep]
    q_pruned = layer_quality(pruned.reshape(w.shape))

    by_state = group_shift(table, "state")
    by_depth = group_shift(table, "depth", pca=by_state.pca)
    trained_ids = [i for i, r in enumerate(table.layers) if r["state"] == "trained"]
    plot_pca_basis(by_state.pca, out / "filters_pca_basis.png")
    plot_coefficient_distributions(by_state, out / "filters_coefficients_state.png")
    plot_shift_heatmap(by_depth, out / "filters_shift_depth.png")
    plot_layer_metrics(table, out / "filters_layer_metrics.png")

    stats_rows = [r.as_dict() for name, m in sources for r in model_stats(m, model_name=name)]
    _plot_stats(stats_rows, out / "stats_kurtosis_rank.png")

    summary = {
        "test_accuracy": accs,
        "layers": [{k: r[k] for k in ("model", "layer", "depth", "n_filters", "sparsity", "variance_entropy",
                                      "variance_entropy_clean_ratio", "orthogonality", "flags")} for r in table.layers],
        "pruned_layer": q_pruned.as_dict(),
        "shift_by_state": by_state.as_dict(),
        "shift_by_depth_trained_and_init": by_depth.as_dict(),
        "n_trained_layers": len(trained_ids),
    }
    (out / "analysis_summary.json").write_text(json.dumps(summary, indent=1, default=float))
    print(json.dumps({"test_accuracy": accs, "shift_by_state": by_state.as_dict()["matrix"],
                      "shift_by_depth": by_depth.as_dict(), "pruned_flags": q_pruned.flags}, indent=1, default=float))
    for r in table.layers:
        print(f"{r['model']:<14} {r['layer']:>3} n={r['n_filters']:>5} sp={r['sparsity']:.3f} "
              f"H={r['variance_entropy']:.3f} ratio={r['variance_entropy_clean_ratio']:.3f} "
              f"orth={r['orthogonality']:.3f} {','.join(r['flags'])}")


def _plot_stats(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    for state, marker in (("init", "o"), ("cnn", "x")):
        sel = [r for r in rows if r["model"].startswith(state) and r["tensor"].endswith("weight") and r["effective_rank"]]
        k = np.array([r["kurtosis"] for r in sel])
        er = np.array([r["effective_rank"] / min(r["shape"][0], int(np.prod(r["shape"][1:]))) for r in sel])
        sr = np.array([r["stable_rank"] / min(r["shape"][0], int(np.prod(r["shape"][1:]))) for r in sel])
        idx = np.arange(len(sel))
        label = "untrained init" if state == "init" else "trained"
        axes[0].scatter(idx, k, marker=marker, label=label)
        axes[1].scatter(sr, er, marker=marker, label=label)
    axes[0].set_title("excess kurtosis per weight tensor", fontsize=9)
    axes[0].set_xlabel("tensor index")
    axes[1].set_title("rank / min(out, rest)", fontsize=9)
    axes[1].set_xlabel("stable rank")
    axes[1].set_ylabel("effective rank")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
