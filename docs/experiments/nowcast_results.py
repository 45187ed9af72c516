"""The nowcasting table and figure of docs/results.md from per-seed `weightzoo nowcast eval --out` files.

    for t in digits-cnn digits-cnn-wild digits-mlp digits-subset; do for s in 0 1 2; do
      weightzoo nowcast eval runs/nowcast --task $t --seeds $s --networks 4 --out runs/eval/$t-seed$s.json
    done; done
    .venv/bin/python docs/experiments/nowcast_results.py runs/eval/*.json \
        --figure docs/img/nowcast_curves.png --summary docs/img/nowcast_summary.json

Files of one task are combined (their seeds pooled) with ``weightzoo.hyper.nowcast.evaluate.summarize``;
the figure has one panel per task: the median over evaluation networks of each method's validation
loss relative to plain Adam's target (loss / target; 1 = the target).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from weightzoo.hyper.nowcast.evaluate import summarize


def _table(summaries: list[dict[str, Any]]) -> str:
    lines = ["| task | method | fewer steps (mean ± std over seeds) | vs linear (95 % CI) | misses | diverged | "
             "nowcasts applied | final accuracy | wall s (training loops) |", "|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        n = len(s["seeds"]) * s["networks_per_seed"]
        for m, v in s["methods"].items():
            vs = v.get("vs_linear")
            ci = f"{100 * vs['mean']:+.1f} pp [{100 * vs['ci95'][0]:+.1f}, {100 * vs['ci95'][1]:+.1f}]" if vs else "—"
            extra = (f"{v['misses']}/{n} | {v['diverged']}/{n} | {v['applied']}/{v['attempted']}" if m != "adam"
                     else "— | — | —")
            lines.append(f"| {s['task']} | {m} | {100 * v['reduction_mean']:.1f} % ± {100 * v['reduction_std']:.1f} | "
                         f"{ci} | {extra} | {v['final_accuracy_mean']:.3f} ± {v['final_accuracy_std']:.3f} | "
                         f"{v['seconds']:.0f} |")
    return "\n".join(lines)


def _figure(groups: dict[str, list[dict[str, Any]]], out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.4), squeeze=False)
    colours = {"adam": "black", "linear": "tab:blue", "mlp": "tab:orange", "graph": "tab:green"}
    for ax, (task, per_seed) in zip(axes[0], groups.items()):
        rows = [r for seed in per_seed for r in seed["networks"]]
        for m in ["adam"] + sorted(rows[0]["methods"]):
            curves, steps = [], []
            for r in rows:
                c = r["adam_curve"] if m == "adam" else r["methods"][m]["curve"]
                steps = [s for s, _, _ in c] if len(c) > len(steps) else steps
                curves.append([loss / r["target_loss"] for _, loss, _ in c])
            n = min(len(c) for c in curves)
            ax.plot(steps[:n], np.nanmedian(np.array([c[:n] for c in curves]), axis=0), label=m, color=colours.get(m))
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_yscale("log")
        ax.set_title(f"{task} ({len(rows)} networks)")
        ax.set_xlabel("optimizer steps")
    axes[0][0].set_ylabel("val loss / Adam's loss at the last step")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--figure", default=None)
    ap.add_argument("--summary", default=None)
    args = ap.parse_args()
    groups: dict[str, list[dict[str, Any]]] = {}
    for f in sorted(args.files):
        for r in json.loads(Path(f).read_text())["per_seed"]:
            groups.setdefault(r["task"], []).append(r)
    summaries = [summarize(sorted(v, key=lambda r: r["seed"])) for v in groups.values()]
    print(_table(summaries))
    if args.summary:
        Path(args.summary).write_text(json.dumps(summaries, indent=1))
    if args.figure:
        _figure(groups, args.figure)


if __name__ == "__main__":
    main()
