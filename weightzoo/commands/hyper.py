"""``weightzoo hyper``: train a graph hypernetwork on an architecture zoo, and predict parameters with it."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Any

from weightzoo.errors import HyperNetworkError, InvalidOptionError

from ._common import add_json, add_zoo, print_json
from .nowcast import add_eval_parser as add_nowcast_eval
from .nowcast import add_train_parser as add_nowcast_train

TASKS = ("digits",)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("hyper", help="graph hypernetworks: train a GHN on an architecture zoo, predict parameters",
                       description="Graph hypernetworks (GHN-2/GHN-3 style) over ComputeGraphs.")
    hsub = p.add_subparsers(dest="hyper_command", metavar="ACTION")

    t = hsub.add_parser("train", help="train a GHN on the archs zoo (one run per seed, runs/NAME/seed-K/)")
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--archs", metavar="ZOO", help="an archs zoo (weightzoo datasets build archs --zoo ZOO)")
    src.add_argument("--sample", type=int, metavar="N",
                     help="no zoo: sample N architectures with the archs generator (splits by hash/family)")
    t.add_argument("--task", default="digits", help=f"training task (default digits; valid: {', '.join(TASKS)})")
    t.add_argument("--out", required=True, metavar="DIR", help="run folder (seed-K/ subfolders, summary.json)")
    t.add_argument("--epochs", type=int, default=10, help="epochs over the training architectures (default 10)")
    t.add_argument("--max-minutes", type=float, default=None, help="stop a seed after this much wall time")
    t.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (default 0)")
    t.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    t.add_argument("--encoder", default="gated", help="gated (GHN-2, default) or transformer (GHN-3)")
    t.add_argument("--hidden", type=int, default=32, help="GHN hidden size (default 32)")
    t.add_argument("--meta-batch", type=int, default=8, help="architectures per step (default 8)")
    t.add_argument("--batch-size", type=int, default=64, help="images per step (default 64)")
    t.add_argument("--lr", type=float, default=2e-3, help="AdamW learning rate (default 2e-3)")
    t.add_argument("--reg", type=float, default=0.0, help="GHN-3 penalty weight on predicted ‖W‖ (default 0)")
    t.add_argument("--residual", action="store_true", help="predict θ0 + Δθ from the module's own init")
    t.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json(t)
    t.set_defaults(func=run_train)

    pr = hsub.add_parser("predict", help="predict an architecture's parameters and write them as safetensors")
    pr.add_argument("--ghn", required=True, metavar="DIR", help="a GHN folder, or a run folder (best seed)")
    pr.add_argument("--arch", required=True, metavar="ARCH",
                    help="zoo model name (with --zoo), spec JSON, Hugging Face config.json, or pkg.module:Class")
    pr.add_argument("--out", required=True, metavar="FILE", help="output .safetensors (full state dict)")
    add_zoo(pr)
    pr.add_argument("--strict", action="store_true", help="fail if some parameter cannot be predicted")
    add_json(pr)
    pr.set_defaults(func=run_predict)
    # nowcasting lives under `weightzoo nowcast`; the hypernetwork command names it too (same parsers)
    add_nowcast_train(hsub, "nowcast-train")
    add_nowcast_eval(hsub, "nowcast-eval")
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def run_train(args: argparse.Namespace) -> int:
    import torch

    from weightzoo.hyper.archs import ArchitecturePool
    from weightzoo.hyper.ghn import ENCODERS
    from weightzoo.hyper.train import TrainConfig, train_runs

    if args.task not in TASKS:
        raise InvalidOptionError(f"unknown task {args.task!r}; valid: {', '.join(TASKS)}")
    if args.encoder not in ENCODERS:
        raise InvalidOptionError(f"unknown encoder {args.encoder!r}; valid: {', '.join(ENCODERS)}")
    if args.archs is not None:
        pool = ArchitecturePool.from_zoo(args.archs)
    else:
        pool = ArchitecturePool.sample(args.sample, seed=0)
    config = TrainConfig(hidden=args.hidden, encoder=args.encoder, residual=args.residual, epochs=args.epochs,
                         meta_batch=args.meta_batch, batch_size=args.batch_size, lr=args.lr, reg=args.reg,
                         max_minutes=args.max_minutes, device=args.device)
    if os.environ.get("OMP_NUM_THREADS") is None:
        torch.set_num_threads(min(torch.get_num_threads(), 2))
    log = None if args.json else (lambda s: print(s, file=sys.stderr))
    summary = train_runs(pool, args.out, config, seeds=args.seeds, progress=not args.no_progress and not args.json,
                         resume=not args.no_resume, log=log)
    if args.json:
        print_json({"out": args.out, **summary})
    else:
        for name, r in summary["runs"].items():
            print(f"{name}: best validation accuracy {r['best_val_accuracy']:.4f} (epoch {r['best_epoch']}, "
                  f"{r['wall_seconds']:.0f} s, stopped: {r['stopped']})")
        print(f"best: {Path(args.out) / summary['best']}")
    return 0


def _module_from_ref(ref: str, zoo: str | None) -> tuple[Any, dict[str, Any] | None]:
    """Build the nn.Module an ARCH argument names (default initialisation), and its spec when it has one."""
    if ":" in ref and not os.path.exists(ref) and not ref.endswith(".json"):
        mod_name, _, cls_name = ref.partition(":")
        try:
            cls = getattr(importlib.import_module(mod_name), cls_name)
            return cls(), None
        except (ImportError, AttributeError, TypeError) as exc:
            raise HyperNetworkError(f"cannot build {ref!r} (pkg.module:Class, constructed with no arguments): "
                                    f"{exc}") from exc
    from weightzoo.zoo.arch import build_module
    from weightzoo.zoo.store import resolve_spec

    spec = resolve_spec(ref, zoo=zoo)
    return build_module(spec), spec


def run_predict(args: argparse.Namespace) -> int:
    from safetensors.torch import save_file

    from weightzoo.hyper.predict import predict_parameters
    from weightzoo.hyper.train import load_ghn, resolve_ghn_path
    from weightzoo.zoo.formats.durable import atomic_path
    from weightzoo.zoo.graphs import ComputeGraph

    ghn = load_ghn(args.ghn)
    ref = args.arch
    module, spec = _module_from_ref(ref, args.zoo)
    graph = ComputeGraph.record(module, spec=spec)  # the spec gives the example input (e.g. 1×8×8 images)
    result = predict_parameters(ghn, module, inplace=True, strict=args.strict, graph=graph)
    state = {k: v.detach().clone().contiguous() for k, v in result.module.state_dict().items()}
    with atomic_path(Path(args.out)) as tmp:
        save_file(state, tmp, metadata={"format": "pt", "weightzoo.hyper.ghn": str(resolve_ghn_path(args.ghn)),
                                        "weightzoo.hyper.arch": ref})
    report = result.report
    if args.json:
        print_json({"arch": ref, "out": args.out, "ghn": resolve_ghn_path(args.ghn), **report.to_dict()})
        return 0
    print(f"{ref}: predicted {len(report.predicted)} parameter tensor(s) ({report.fraction:.0%}) → {args.out}")
    for name, reason in report.kept.items():
        print(f"  kept {name}: {reason}")
    if report.buffers:
        print(f"  {len(report.buffers)} buffer(s) (e.g. BatchNorm running statistics) kept: recalibrate them on "
              "training data (weightzoo.hyper.recalibrate_bn)")
    return 0
