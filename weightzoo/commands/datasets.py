"""``weightzoo datasets``: build benchmark zoos from real training runs, list them, import published zoos."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from weightzoo.errors import InvalidOptionError

from ._common import add_executor, add_json, add_zoo, print_json, ray_choice, require_zoo


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("datasets", help="build benchmark zoos (digits-cnn, digits-inr, ...) or import published ones",
                       description="Build reproducible benchmark zoos by really training networks on scikit-learn "
                       "digits, list the recipes, or import the Small CNN Zoo, Model Zoos and INR folders.")
    dsub = p.add_subparsers(dest="datasets_command", metavar="SUBCOMMAND")

    b = dsub.add_parser("build", help="build (or resume) a dataset into a zoo")
    b.add_argument("name", metavar="NAME", help="digits-cnn, digits-cnn-wild, digits-mlp, digits-inr, digits-lineage or archs")
    add_zoo(b, required=True)
    b.add_argument("--size", type=int, default=None, help="networks / images / trees / architectures "
                   "(default: the dataset's default size)")
    b.add_argument("--seed", type=int, default=0, help="zoo seed (default 0)")
    add_executor(b)
    b.add_argument("--epochs", type=str, default=None,
                   help="digits-cnn(-wild), digits-mlp: checkpoint epochs, comma-separated (default 0,1,2,4,8,12); "
                   "archs: training epochs of the trained fraction (default 2)")
    b.add_argument("--trajectory-every", type=int, default=None, metavar="K",
                   help="digits-cnn(-wild), digits-mlp: also store the parameters every K optimizer steps "
                   "(dense trajectories for nowcasting)")
    b.add_argument("--fits", type=int, default=None, help="digits-inr: fits per image (default 10)")
    b.add_argument("--resolution", type=int, choices=(16, 28), default=None, help="digits-inr: 16 or 28 (default 16)")
    b.add_argument("--target-psnr", type=float, default=None, help="digits-inr: target PSNR in dB (default 40)")
    b.add_argument("--shared-init", action="store_true", help="digits-inr: fit f of every image starts from the "
                   "same weights (makes the task easy for non-equivariant models)")
    b.add_argument("--trained-fraction", type=float, default=None, help="archs: share trained on digits (default 0.25)")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json(b)
    b.set_defaults(func=run_build)

    ls = dsub.add_parser("list", help="the datasets weightzoo can build (and, with --zoo, their manifests there)")
    add_zoo(ls)
    add_json(ls)
    ls.set_defaults(func=run_list)

    im = dsub.add_parser("import", help="import a published zoo layout")
    im.add_argument("kind", metavar="KIND", choices=("small-cnn-zoo", "model-zoo", "inr"),
                    help="small-cnn-zoo (folder with weights.npy, metrics.csv, layout.csv), model-zoo (Ray Tune "
                    "trial folders) or inr (a splits JSON)")
    im.add_argument("path", metavar="PATH")
    add_zoo(im, required=True)
    im.add_argument("--prefix", default=None, help="model name prefix (default: the kind)")
    add_json(im)
    im.set_defaults(func=run_import)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if args.epochs is not None:
        try:
            epochs = tuple(int(e) for e in args.epochs.split(","))
        except ValueError as exc:
            raise InvalidOptionError(f"--epochs: expected comma-separated integers, got {args.epochs!r}") from exc
        opts["epochs"] = epochs[0] if args.name == "archs" and len(epochs) == 1 else epochs
    for key in ("fits", "resolution", "target_psnr", "trained_fraction", "trajectory_every"):
        if getattr(args, key) is not None:
            opts[key] = getattr(args, key)
    if args.shared_init:
        opts["shared_init"] = True
    return opts


def run_build(args: argparse.Namespace) -> int:
    from weightzoo.datasets.registry import build

    report = build(args.name, require_zoo(args), size=args.size, seed=args.seed, workers=args.workers,
                   progress=not args.no_progress, ray=ray_choice(args), **_options(args))
    d = report.to_dict()
    if args.json:
        print_json(d)
    else:
        mean = d["unit_seconds_mean"]
        per = f", {mean:.2f} s per unit" if mean is not None else ""
        retried = f", {d['retries']} retried after a lost worker" if d["retries"] else ""
        print(f"{args.name}: {d['units_built']} units built, {d['units_skipped']} already present, "
              f"{d['models_ingested']} models ingested in {d['wall_seconds']:.1f} s{per} ({d['executor']}"
              f"{retried}); manifest {d['manifest']}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from pathlib import Path

    from weightzoo.datasets.builder import read_manifest
    from weightzoo.datasets.registry import describe

    rows = describe()
    if args.zoo:
        for r in rows:
            if (Path(args.zoo) / "manifests" / f"{r['name']}.json").is_file():
                m = read_manifest(args.zoo, r["name"])
                r["built"] = {"size": m["size"], "seed": m["seed"], "models": m["models"], "complete": m["complete"],
                              "splits": {k: len(v) for k, v in m["splits"].items()}}
    if args.json:
        print_json(rows)
        return 0
    for r in rows:
        built = r.get("built")
        extra = (f"  [built: size {built['size']}, seed {built['seed']}, {built['models']} models"
                 f"{'' if built['complete'] else ', incomplete'}]") if built else ""
        print(f"{r['name']:<16} default {r['default_size']:>5} {r['size_unit']:<13} {r['description']}{extra}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from weightzoo.datasets import importers

    table: dict[str, Callable[..., list[str]]] = {
        "small-cnn-zoo": importers.import_small_cnn_zoo, "model-zoo": importers.import_model_zoo,
        "inr": importers.import_inr_folder}
    fn = table[args.kind]
    names = fn(args.path, require_zoo(args), prefix=args.prefix or args.kind)
    if args.json:
        print_json({"kind": args.kind, "models": names})
    else:
        print(f"imported {len(names)} models from {args.path} ({args.kind})")
    return 0
