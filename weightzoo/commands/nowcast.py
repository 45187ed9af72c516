"""``weightzoo nowcast``: train nowcasters on trajectory zoos and measure the steps they save."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from weightzoo.errors import ConfigError

from ._common import add_json, add_zoo, print_json, require_zoo


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("nowcast", help="train nowcasters on trajectory zoos and evaluate the steps they save",
                       description="Nowcasting (NiNo style): a graph network reads a network's last parameter states "
                       "and predicts them steps ahead; NowcastOptimizer jumps there during training.")
    nsub = p.add_subparsers(dest="nowcast_command", metavar="SUBCOMMAND")
    add_train_parser(nsub, "train")
    add_eval_parser(nsub, "eval")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def add_train_parser(sub: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
    """``nowcast train`` (also ``hyper nowcast-train``: one parser, two names)."""
    t = sub.add_parser(name, help="train graph / MLP / linear nowcasters on a trajectory zoo")
    add_zoo(t, required=True)
    t.add_argument("--dataset", default="digits-cnn", help="a dataset built with --trajectory-every (default digits-cnn)")
    t.add_argument("--out", required=True, metavar="DIR", help="run folder (OUT/seed<k>/<kind>/)")
    t.add_argument("--kinds", nargs="+", default=["graph", "mlp", "linear"], choices=("graph", "mlp", "linear"))
    t.add_argument("--seeds", nargs="+", type=int, default=[0])
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget per learned model")
    t.add_argument("--history", type=int, default=5, help="past states read (default 5)")
    t.add_argument("--spacing", type=int, default=10, help="steps between past states (default 10)")
    t.add_argument("--horizon", type=int, default=40, help="steps ahead to predict (default 40)")
    t.add_argument("--hidden", type=int, default=32)
    t.add_argument("--layers", type=int, default=3)
    t.add_argument("--layer", default="edge-update", choices=("edge-update", "pyg-general"),
                   help="graph layer: metanets.layers EdgeUpdateConv (default) or torch_geometric GeneralConv")
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--batch", type=int, default=8, help="networks per training batch")
    t.add_argument("--optimizers", nargs="+", default=None, help="only trajectories of these optimizers (e.g. adam)")
    t.add_argument("--device", default="cpu", choices=("cpu",), help="cpu (the only device these small graphs need)")
    t.add_argument("--no-progress", action="store_true")
    add_json(t)
    t.set_defaults(func=run_train)


def add_eval_parser(sub: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
    """``nowcast eval`` (also ``hyper nowcast-eval``)."""
    e = sub.add_parser(name, help="steps to Adam's final validation loss with and without nowcasting")
    e.add_argument("run", metavar="RUN", help="a run folder written by `weightzoo nowcast train`")
    e.add_argument("--task", default="digits-cnn", choices=("digits-cnn", "digits-cnn-wild", "digits-mlp", "digits-subset"))
    e.add_argument("--seeds", nargs="+", type=int, default=None, help="nowcaster seeds (default: all in RUN)")
    e.add_argument("--networks", type=int, default=6, help="evaluation networks per seed (default 6)")
    e.add_argument("--steps", type=int, default=400, help="Adam steps; the target is Adam's loss there (default 400)")
    e.add_argument("--eval-every", type=int, default=10)
    e.add_argument("--every", type=int, default=None, help="steps between nowcasts (default: as soon as possible)")
    e.add_argument("--out", default=None, metavar="FILE", help="also write the full results (curves included) as JSON")
    add_json(e)
    e.set_defaults(func=run_eval)


def run_train(args: argparse.Namespace) -> int:
    import torch

    from weightzoo.hyper.nowcast.training import train_nowcasters

    torch.set_num_threads(1)
    summary = train_nowcasters(require_zoo(args), args.dataset, args.out, seeds=args.seeds, kinds=args.kinds,
                               history=args.history, spacing=args.spacing, horizon=args.horizon, hidden=args.hidden,
                               layers=args.layers, layer=args.layer, epochs=args.epochs, lr=args.lr, batch=args.batch,
                               max_minutes=args.max_minutes, optimizers=args.optimizers,
                               progress=not args.no_progress)
    if args.json:
        print_json(summary)
    else:
        s = summary["settings"]
        print(f"trained {', '.join(s['kinds'])} for seeds {s['seeds']} on {s['train_examples']} examples "
              f"({s['val_examples']} validation) in {summary['wall_seconds']:.1f} s → {args.out}")
        for k, v in summary["val_loss"].items():
            print(f"  {k:<16} val loss {v['loss']:.4f}  relative error {v['relative_error']:.3f}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    import torch

    from weightzoo.hyper.nowcast.evaluate import speedup, summarize
    from weightzoo.hyper.nowcast.models import load_nowcaster
    from weightzoo.zoo.formats.durable import write_json_atomic

    torch.set_num_threads(1)
    root = Path(args.run)
    seeds = args.seeds if args.seeds is not None else sorted(
        int(d.name[4:]) for d in root.glob("seed*") if d.is_dir() and d.name[4:].isdigit())
    if not seeds:
        raise ConfigError(f"{root}: no seed<k>/ folders; train with `weightzoo nowcast train --out {root}`")
    per_seed: list[dict[str, Any]] = []
    for seed in seeds:
        kinds = sorted(d.name for d in (root / f"seed{seed}").iterdir() if (d / "nowcast.json").is_file())
        if not kinds:
            raise ConfigError(f"{root}/seed{seed}: no trained nowcasters")
        nowcasters = {k: load_nowcaster(root / f"seed{seed}" / k) for k in kinds}
        per_seed.append(speedup(nowcasters, args.task, seed=seed, networks=args.networks, steps=args.steps,
                                eval_every=args.eval_every, every=args.every))
    summary = summarize(per_seed)
    if args.out:
        write_json_atomic(args.out, {"summary": summary, "per_seed": per_seed})
    if args.json:
        print_json(summary)
        return 0
    print(f"{args.task}: steps to Adam's loss after {args.steps} steps; seeds {seeds}, {args.networks} networks each, "
          f"{summary['wall_seconds']:.0f} s")
    for m, v in summary["methods"].items():
        extra = ""
        if m != "adam":
            extra = f"  misses {v['misses']}, diverged {v['diverged']}, nowcasts applied {v['applied']}/{v['attempted']}"
            if "vs_linear" in v:
                ci = v["vs_linear"]["ci95"]
                extra += f"  vs linear {v['vs_linear']['mean']:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]"
        print(f"  {m:<8} fewer steps {100 * v['reduction_mean']:6.1f} % ± {100 * v['reduction_std']:.1f}  "
              f"final accuracy {v['final_accuracy_mean']:.3f}{extra}")
    return 0


__all__ = ["register"]
