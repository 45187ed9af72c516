"""Figure of INR editing: test INRs' renders, their edited targets, and each model's edited render.

    python docs/experiments/inr/edit_figure.py OUT.png RUN [RUN...]

Reads ``seed-0/renders.safetensors`` of each run (``weightzoo metanet edit``); the first run's inputs and
targets head the figure; each run adds a row with its test render MSE (mean over its seeds).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from safetensors.torch import load_file  # noqa: E402


def main(out: str, runs: list[str], columns: int = 8) -> None:
    rows: list[tuple[str, np.ndarray]] = []
    for k, run in enumerate(runs):
        seed = Path(run) / "seed-0"
        r = load_file(str(seed / "renders.safetensors"))
        if k == 0:
            rows += [("input INR", r["input"].numpy()), ("target (dilated)", r["target"].numpy())]
        mses = [json.loads(p.read_text())["test"]["render_mse"] for p in sorted(Path(run).glob("seed-*/metrics.json"))]
        model = json.loads((seed / "metrics.json").read_text())["model"]
        rows.append((f"{model}\nMSE {np.mean(mses):.4f}", r["prediction"].numpy()))
    fig, axes = plt.subplots(len(rows), columns, figsize=(columns * 1.0, len(rows) * 1.05))
    for i, (label, imgs) in enumerate(rows):
        for j in range(columns):
            ax = axes[i, j]
            ax.imshow(np.clip(imgs[j], 0, 1), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.tight_layout(pad=0.2)
    fig.savefig(out, dpi=130)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
