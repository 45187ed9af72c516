"""Figures of the filter analyses: PCA basis images, coefficient distributions per group, shift heatmap,
and layer metrics against depth. matplotlib is imported lazily with the Agg backend (no display needed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .filters import FilterPCA, FilterTable, ShiftResult


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return path


def plot_pca_basis(pca: FilterPCA, path: str | os.PathLike[str]) -> Path:
    """The k² principal components as k×k images, titled with their explained-variance ratio."""
    if pca.components is None or pca.explained_variance_ratio is None:
        raise ValueError("plot_pca_basis: the PCA is not fitted")
    plt = _plt()
    k = pca.kernel
    n = len(pca.components)
    cols = min(n, 9)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.5 * rows), squeeze=False)
    lim = float(np.abs(pca.components).max())
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(pca.components[i].reshape(k, k), cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.set_title(f"{100 * pca.explained_variance_ratio[i]:.1f}%", fontsize=8)
    fig.suptitle(f"PCA basis of {pca.n_} max-normalised {k}×{k} filters", fontsize=9)
    return _save(fig, path)


def plot_coefficient_distributions(shift: ShiftResult, path: str | os.PathLike[str], *, components: int = 9) -> Path:
    """Per PCA component, the coefficient histogram of every group (densities over the shared bins)."""
    plt = _plt()
    d = min(components, shift.histograms.shape[1])
    cols = min(d, 3)
    rows = -(-d // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.2 * rows), squeeze=False)
    centres = 0.5 * (shift.edges[1:] + shift.edges[:-1])
    evr = shift.pca.explained_variance_ratio
    for j, ax in enumerate(axes.flat):
        if j >= d:
            ax.axis("off")
            continue
        for g, label in enumerate(shift.groups):
            h = shift.histograms[g, j].astype(float)
            ax.plot(centres, h / max(h.sum(), 1.0), label=label, lw=1)
        ax.set_title(f"c{j} ({100 * (evr[j] if evr is not None else 0):.1f}% var)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=6)
    fig.suptitle("PCA-coefficient distributions per group", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_shift_heatmap(shift: ShiftResult, path: str | os.PathLike[str]) -> Path:
    """The group × group shift matrix (explained-variance-weighted symmetric KL) as an annotated heatmap."""
    plt = _plt()
    g = len(shift.groups)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * g, 0.8 + 0.6 * g))
    im = ax.imshow(shift.matrix, cmap="viridis")
    ax.set_xticks(range(g), shift.groups, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(g), shift.groups, fontsize=8)
    for i in range(g):
        for j in range(g):
            ax.text(j, i, f"{shift.matrix[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w")
    fig.colorbar(im, ax=ax, label="weighted symmetric KL")
    return _save(fig, path)


def plot_layer_metrics(table: FilterTable, path: str | os.PathLike[str]) -> Path:
    """Sparsity, variance-entropy ratio and orthogonality of every layer against normalised depth."""
    plt = _plt()
    depth = np.array([r["normalized_depth"] for r in table.layers], float)
    fig, axes = plt.subplots(1, 3, figsize=(10, 2.8))
    for ax, key, title in zip(
        axes,
        ("sparsity", "variance_entropy_clean_ratio", "orthogonality"),
        ("sparsity", "variance entropy / h(n)", "orthogonality"),
    ):
        vals = np.array([np.nan if r.get(key) is None else r[key] for r in table.layers], float)
        flagged = np.array([bool(r.get("flags")) for r in table.layers])
        ax.scatter(depth[~flagged], vals[~flagged], s=12, label="ok")
        ax.scatter(depth[flagged], vals[flagged], s=18, c="tab:red", marker="x", label="flagged")
        ax.set_xlabel("normalised depth")
        ax.set_title(title, fontsize=9)
    axes[1].axhline(1.0, ls="--", c="gray", lw=0.8)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


__all__ = ["plot_coefficient_distributions", "plot_layer_metrics", "plot_pca_basis", "plot_shift_heatmap"]
