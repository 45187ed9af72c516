"""``weightzoo stats``: weight statistics per tensor (or per layer) of models or a whole zoo."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from weightzoo.errors import InvalidOptionError

from ._common import add_executor, add_json, add_zoo, print_json, ray_choice, resolve_model_ref


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "stats",
        help="weight statistics: moments, norms, spectral norm, stable/effective rank, NaN/Inf",
        description="One row per model×tensor (or per layer with --layers): mean, std, skewness, excess "
        "kurtosis, L1/L2/Linf, near-zero share, spectral norm, stable rank, effective rank, NaN/Inf counts.",
    )
    p.add_argument("model", nargs="*", metavar="MODEL", help="checkpoint paths or zoo model names")
    add_zoo(p)
    p.add_argument("--all", action="store_true", help="every ingested model of the zoo")
    p.add_argument("--layers", action="store_true", help="aggregate tensors into layers")
    p.add_argument("--eps", type=float, default=0.01, help="near-zero ε: |w| < ε·max|w| (default 0.01)")
    add_executor(p)
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from weightzoo.analysis.stats import StatsError, layer_stats, stats_many

    if args.all:
        if not args.zoo:
            raise StatsError("stats --all needs --zoo DIR")
        from weightzoo.zoo.store import Zoo

        with Zoo.open(args.zoo, create=False) as z:
            refs = [("zoo", m.ref) for m in z.models(ingested=True)]
    else:
        if not args.model:
            raise InvalidOptionError("stats needs MODEL arguments (or --all with --zoo)")
        refs = [resolve_model_ref(m, args.zoo) for m in args.model]
    jobs: list[tuple[str, str]] = []
    for (kind, value), label in zip(refs, [r[1] for r in refs] if args.all else args.model):
        jobs.append((label, value if kind == "zoo" else str(Path(value).resolve())))
    zoo_jobs = any(kind == "zoo" for kind, _ in refs)
    # one model per task, on processes or Ray (--workers, --ray); in-process by default
    rows: list[Any] = stats_many(jobs, zoo=args.zoo if zoo_jobs else None, workers=args.workers or 1,
                                 ray=ray_choice(args), eps=args.eps, progress=not args.json)
    out = layer_stats(rows) if args.layers else [r.as_dict() for r in rows]
    if args.json:
        print_json(out)
        return 0
    if not out:
        print("no floating-point tensors")
        return 0
    key = "layer" if args.layers else "tensor"
    print(f"{'model':<20} {key:<36} {'numel':>10} {'mean':>9} {'std':>9} {'kurt':>8} {'σ1':>8} {'srank':>7} {'erank':>7} {'~0':>6} {'nan':>4} {'inf':>4}")
    for r in out:
        print(
            f"{str(r['model'])[:20]:<20} {str(r[key])[:36]:<36} {r['numel']:>10} {_f(r.get('mean'))} {_f(r.get('std'))} "
            f"{_f(r.get('kurtosis'), 8)} {_f(r.get('spectral_norm'), 8)} {_f(r.get('stable_rank'), 7)} "
            f"{_f(r.get('effective_rank'), 7)} {_f(r.get('near_zero'), 6, 2)} {r['nan_count']:>4} {r['inf_count']:>4}"
        )
    return 0


def _f(v: Any, width: int = 9, prec: int = 4) -> str:
    return f"{'-':>{width}}" if v is None else f"{v:>{width}.{prec}g}"


__all__ = ["register", "run"]
