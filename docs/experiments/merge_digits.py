"""Merging real fine-tunes on scikit-learn digits: task arithmetic, TIES, DARE and aTLAS against the
individual fine-tunes and the base, plus task negation. Mean ± std over seeds.

Protocol (per seed):
- split digits (1797 images) into train 1000 / validation 297 / test 500 (seeded permutation);
- base: an MLP 64-64-64-10 (ReLU) trained briefly on all ten digits of the train split (15 Adam steps, lr 3e-3);
- three tasks on disjoint digit sets, T1 = {0,1,2}, T2 = {3,4,5}, T3 = {6,7,8,9}; each fine-tune starts
  from the base and trains 60 SGD steps (lr 0.05, batch 64) on its task's training images only (10-way head, so it forgets
  the other digits);
- merges of the three task vectors: task arithmetic, TIES (density 0.2), DARE (density 0.5) with one
  scale λ each, chosen on the validation split from a grid; aTLAS learns one coefficient per tensor per
  task vector on a few-shot validation set (10 images per class), 150 Adam steps;
- accuracy (10-way argmax) on the test images of each task and on the whole test split;
- task negation: θ_base − λ τ_i, λ chosen on validation as the largest that keeps the other tasks'
  accuracy ≥ 95 % of the base's; reported: accuracy on the negated task and on the others.

Run:  .venv/bin/python docs/experiments/merge_digits.py --seeds 0 1 2 3 4  (from the repo root; CPU only)
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch
from torch import nn

from weightzoo.analysis.atlas import classification_objective, learn_coefficients
from weightzoo.analysis.merging import merge
from weightzoo.analysis.task_vectors import TaskVector

TASKS = {"T1": (0, 1, 2), "T2": (3, 4, 5), "T3": (6, 7, 8, 9)}
LAMBDAS = [0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0, 1.2, 1.5]


def data(seed: int):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).reshape(-1, 64)
    y = torch.tensor(d.target, dtype=torch.long)
    idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(1000 + seed))
    x, y = x[idx], y[idx]
    return (x[:1000], y[:1000]), (x[1000:1297], y[1000:1297]), (x[1297:], y[1297:])


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def train(model: nn.Module, x, y, steps: int, opt: torch.optim.Optimizer, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        b = torch.randint(0, len(y), (64,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[b]), y[b]).backward()
        opt.step()
    return model.eval()


def evaluate(sd, x, y) -> dict[str, float]:
    model = mlp()
    model.load_state_dict({k: v for k, v in sd.items()})
    with torch.no_grad():
        pred = model(x).argmax(1)
    out = {t: float((pred[torch.isin(y, torch.tensor(c))] == y[torch.isin(y, torch.tensor(c))]).float().mean())
           for t, c in TASKS.items()}
    out["all"] = float((pred == y).float().mean())
    return out


def run_seed(seed: int) -> dict[str, dict[str, float]]:
    torch.manual_seed(seed)
    (xtr, ytr), (xva, yva), (xte, yte) = data(seed)
    base_m = mlp()
    train(base_m, xtr, ytr, 15, torch.optim.Adam(base_m.parameters(), lr=3e-3), seed)
    base = {k: v.detach().clone() for k, v in base_m.state_dict().items()}
    fts = {}
    for i, (t, classes) in enumerate(TASKS.items()):
        m = copy.deepcopy(base_m)
        sel = torch.isin(ytr, torch.tensor(classes))
        train(m, xtr[sel], ytr[sel], 60, torch.optim.SGD(m.parameters(), lr=0.05), seed * 10 + i)
        fts[t] = {k: v.detach().clone() for k, v in m.state_dict().items()}
    res: dict[str, dict[str, float]] = {"base": evaluate(base, xte, yte)}
    for t, sd in fts.items():
        res[f"fine-tune {t}"] = evaluate(sd, xte, yte)
    models = list(fts.values())
    res["mean of fine-tunes"] = evaluate(merge("mean", models, base), xte, yte)
    for label, method, params in [("task arithmetic", "task-arithmetic", {}), ("TIES (k=20%)", "ties", {"density": 0.2}),
                                  ("DARE (p=0.5)", "dare", {"density": 0.5})]:
        best = max(LAMBDAS, key=lambda lam: evaluate(
            merge(method, models, base, params={**params, "lambda": lam}, seed=seed), xva, yva)["all"])
        res[label] = evaluate(merge(method, models, base, params={**params, "lambda": best}, seed=seed), xte, yte)
        res[label]["lambda"] = best
    # aTLAS: one coefficient per tensor per task vector, learned on 10 validation images per class
    shots = torch.cat([torch.nonzero(yva == c).flatten()[:10] for c in range(10)])
    tvs = [TaskVector(sd, base) for sd in models]
    objective = classification_objective(mlp, [(xva[shots], yva[shots])])
    atlas = learn_coefficients(base, tvs, objective, steps=150, lr=0.05, init=0.3)
    res["aTLAS (per tensor)"] = evaluate(atlas.state_dict(), xte, yte)
    # task negation
    base_acc_va = evaluate(base, xva, yva)
    neg_target, neg_control, base_target, base_control = [], [], [], []
    for t, sd in fts.items():
        tau = TaskVector(sd, base)
        others = [o for o in TASKS if o != t]

        def control(acc: dict[str, float], others=others) -> float:
            return statistics.mean(acc[o] for o in others)

        ok = [lam for lam in LAMBDAS if control(evaluate(tau.apply_to(base, -lam), xva, yva)) >= 0.95 * control(base_acc_va)]
        lam = max(ok) if ok else 0.0
        acc = evaluate(tau.apply_to(base, -lam), xte, yte)
        neg_target.append(acc[t])
        neg_control.append(control(acc))
        base_target.append(res["base"][t])
        base_control.append(control(res["base"]))
    res["negation"] = {"base target": statistics.mean(base_target), "base control": statistics.mean(base_control),
                       "negated target": statistics.mean(neg_target), "negated control": statistics.mean(neg_control)}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--json", help="also write the per-seed results here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    runs = [run_seed(s) for s in args.seeds]
    seconds = time.perf_counter() - t0
    rows = [k for k in runs[0] if k != "negation"]
    cols = ["T1", "T2", "T3", "all"]
    print(f"| model | {' | '.join(cols)} |")
    print("|---|" + "---|" * len(cols))
    for r in rows:
        cells = []
        for c in cols:
            v = [run[r][c] * 100 for run in runs]
            cells.append(f"{statistics.mean(v):.1f} ± {statistics.stdev(v) if len(v) > 1 else 0.0:.1f}")
        lam = [run[r].get("lambda") for run in runs]
        extra = f" (λ = {', '.join(f'{x:g}' for x in lam)})" if lam[0] is not None else ""
        print(f"| {r}{extra} | {' | '.join(cells)} |")
    print()
    print("| task negation (mean over the 3 tasks) | target acc. | control acc. |")
    print("|---|---|---|")
    for who in ("base", "negated"):
        t = [run["negation"][f"{who} target"] * 100 for run in runs]
        c = [run["negation"][f"{who} control"] * 100 for run in runs]
        print(f"| {who} | {statistics.mean(t):.1f} ± {statistics.stdev(t) if len(t) > 1 else 0:.1f} "
              f"| {statistics.mean(c):.1f} ± {statistics.stdev(c) if len(c) > 1 else 0:.1f} |")
    print(f"\n{len(args.seeds)} seeds, {seconds:.0f} s wall on CPU ({torch.get_num_threads()} thread)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"seeds": args.seeds, "runs": runs, "seconds": seconds}, f, indent=2)


if __name__ == "__main__":
    main()
