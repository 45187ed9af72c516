r"""Comparison tables of trained runs: mean ± std over seeds, and bootstrap intervals of differences.

``compare(runs)`` reads each run folder's finished seeds (``seed-K/metrics.json`` and ``predictions.json``)
and returns one row per run: test :math:`\tau_b` (or accuracy) and :math:`R^2` as mean ± std over seeds,
validation metric, epochs, wall/CPU seconds, and — for every run except the reference — the paired
bootstrap 95 % interval of its difference to the reference on the same test networks (each resample draws
networks with replacement; a model's score on it is the mean over its seeds). The reference is the best
*weights-only baseline* (StatNN trees/MLP, flat MLP) by mean validation metric, never chosen on the test split.
Editing runs (:mod:`.editing`, task ``edit``) compare their mean render MSE (lower is better) against the best
of the identity edit, the flat MLP and NP by validation MSE.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .editing import EDIT_BASELINES
from .metrics import accuracy, kendall_tau
from .train import seed_dirs

#: Weights-only baselines the metanetworks are measured against.
BASELINES = ("statnn", "statnn-mlp", "mlp")


def _mean_std(vals: list[float]) -> tuple[float, float]:
    v = [x for x in vals if x is not None and math.isfinite(x)]
    if not v:
        return (math.nan, math.nan)
    return (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0)


def _load(run: Path) -> dict[str, Any]:
    seeds = []
    for d in seed_dirs(run):
        m = json.loads((d / "metrics.json").read_text())
        preds = json.loads((d / "predictions.json").read_text())["test"]
        seeds.append({"metrics": m, "pred": {p["network"]: p["prediction"] for p in preds},
                      "target": {p["network"]: p["target"] for p in preds}})
    return {"run": str(run), "seeds": seeds}


def _score(task: str, preds: list[dict[str, Any]], target: dict[str, Any], nets: Sequence[str]) -> float:
    if task == "edit":  # predictions are per-network render MSEs (lower is better)
        return float(np.mean([np.mean([p[n] for n in nets]) for p in preds]))
    t = [target[n] for n in nets]
    vals = []
    for p in preds:
        x = [p[n] for n in nets]
        vals.append(kendall_tau(x, t) if task == "regression" else accuracy(x, t))
    vals = [v for v in vals if math.isfinite(v)]
    return float(np.mean(vals)) if vals else math.nan


def compare(runs: Sequence[str | os.PathLike[str]], *, resamples: int = 1000, seed: int = 0,
            reference: str | None = None) -> dict[str, Any]:
    """Rows of the comparison table (see the module docstring); ``reference`` forces the reference run."""
    loaded = [_load(Path(r)) for r in runs]
    loaded = [x for x in loaded if x["seeds"]]
    rows = []
    for x in loaded:
        ms = [s["metrics"] for s in x["seeds"]]
        task = ms[0]["data"]["task"]
        key = {"regression": "kendall_tau", "edit": "render_mse"}.get(task, "accuracy")
        row = {"run": x["run"], "model": ms[0]["model"], "task": task, "target": ms[0]["data"]["target"],
               "seeds": [m["seed"] for m in ms], "metric": key,
               "test": _mean_std([m["test"].get(key) for m in ms]), "val": _mean_std([m["val"].get(key) for m in ms]),
               "r2": _mean_std([m["test"].get("r2") for m in ms]) if task == "regression" else None,
               "test_n": ms[0]["test"]["n"], "checkpoints": ms[0]["config"].get("checkpoints", "final"),
               "epochs_run": [m["epochs_run"] for m in ms],
               "wall_seconds": round(sum(m["wall_seconds"] for m in ms), 1),
               "cpu_seconds": round(sum(m["cpu_seconds"] for m in ms), 1)}
        rows.append(row)
    ref_row = None
    if reference is not None:
        ref_row = next((r for r in rows if r["run"] == reference or r["model"] == reference), None)
    else:
        edit = bool(rows) and rows[0]["task"] == "edit"
        base = EDIT_BASELINES if edit else BASELINES
        cands = [r for r in rows if r["model"] in base and r["checkpoints"] == "final" and math.isfinite(r["val"][0])]
        ref_row = (min if edit else max)(cands, key=lambda r: r["val"][0]) if cands else None
    if ref_row is not None:
        ref = next(x for x in loaded if x["run"] == ref_row["run"])
        rng = np.random.default_rng(seed)
        for row, x in zip(rows, loaded):
            if x is ref:
                row["reference"] = True
                continue
            nets = sorted(set(x["seeds"][0]["pred"]) & set(ref["seeds"][0]["pred"]))
            if len(nets) < 3:
                continue
            target = x["seeds"][0]["target"]
            pa, pb = [s["pred"] for s in x["seeds"]], [s["pred"] for s in ref["seeds"]]
            diffs = []
            for _ in range(resamples):
                sample = [nets[i] for i in rng.integers(0, len(nets), len(nets))]
                d = _score(row["task"], pa, target, sample) - _score(row["task"], pb, target, sample)
                if math.isfinite(d):
                    diffs.append(d)
            point = _score(row["task"], pa, target, nets) - _score(row["task"], pb, target, nets)
            ci = [float(v) for v in np.quantile(diffs, [0.025, 0.975])] if diffs else [math.nan, math.nan]
            row["diff_vs_reference"] = {"reference": ref_row["model"], "diff": point, "ci95": ci}
    return {"rows": rows, "reference": ref_row["model"] if ref_row else None}


def format_table(result: dict[str, Any]) -> str:
    """The comparison as a Markdown table (what ``weightzoo metanet report`` prints; render MSEs with 4
    decimals, other metrics with 3)."""
    lines = ["| run | model | seeds | test metric | test | val | R² | Δ vs reference [95 % CI] | CPU s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        p = 4 if r["metric"] == "render_mse" else 3

        def ms(v: Any, p: int = p) -> str:
            return "-" if v is None or not math.isfinite(v[0]) else f"{v[0]:.{p}f} ± {v[1]:.{p}f}"

        d = r.get("diff_vs_reference")
        diff = ("reference" if r.get("reference") else
                f"{d['diff']:+.{p}f} [{d['ci95'][0]:+.{p}f}, {d['ci95'][1]:+.{p}f}]" if d else "-")
        lines.append(f"| {Path(r['run']).name} | {r['model']} | {len(r['seeds'])} | {r['metric']} (n={r['test_n']}) | "
                     f"{ms(r['test'])} | {ms(r['val'])} | {ms(r['r2'])} | {diff} | {r['cpu_seconds']:.0f} |")
    return "\n".join(lines)


__all__ = ["BASELINES", "compare", "format_table"]
