"""``weightzoo merge``: merge checkpoints or zoo models tensor by tensor (TIES, DARE, task arithmetic, ...).

Torch and the merge code are imported inside :func:`_merge`, so the parser builds fast.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from weightzoo.errors import InvalidOptionError

from ._common import add_json, add_zoo, print_json, resolve_model_ref

METHOD_CHOICES = ("ties", "dare", "dare-ties", "task-arithmetic", "linear", "mean", "slerp")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "merge",
        help="merge models (ties, dare, dare-ties, task-arithmetic, linear, mean, slerp), streaming per tensor",
        description="Merge fine-tunes of one base tensor by tensor. MODEL/BASE are checkpoint paths or zoo "
        "names (with --zoo). OUT is a .safetensors file, a folder (shards with --max-shard-size) or zoo:NAME.",
    )
    p.add_argument("--config", metavar="YAML", help="a mergekit-style recipe (replaces --method/--base/--models)")
    p.add_argument("--method", help=f"one of {', '.join(METHOD_CHOICES)}")
    p.add_argument("--base", metavar="BASE", help="the base model the fine-tunes started from")
    p.add_argument("--models", nargs="+", metavar="MODEL", default=[], help="the models to merge")
    p.add_argument("--weights", nargs="+", type=float, metavar="W", help="one weight per model (default 1)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="method parameter: density=0.2, lambda=1.0, normalize=true, t=0.5 (repeatable; "
                   "density may be a comma list, one per model)")
    p.add_argument("--seed", type=int, help="seed of DARE's random masks (default 0)")
    p.add_argument("--trim", choices=("tensor", "global"), help="TIES trimming: per tensor (default) or global")
    p.add_argument("--dtype", help="output dtype of floating tensors: bf16, f16, f32 (default: the base's)")
    p.add_argument("--missing", choices=("error", "skip", "keep-base"), default="error",
                   help="base tensors a model lacks: fail (default), leave out, or keep the base's")
    p.add_argument("--align", action="store_true",
                   help="permute every model to match the first (Git Re-Basin weight matching) before merging")
    p.add_argument("--max-shard-size", metavar="SIZE", help="shard the output by bytes, e.g. 2GB (OUT is a folder)")
    p.add_argument("--out", required=True, metavar="OUT", help="FILE.safetensors, FOLDER, or zoo:NAME")
    add_zoo(p)
    add_json(p)
    p.set_defaults(func=_merge)


def parse_param(text: str) -> tuple[str, Any]:
    """``key=value`` with value read as bool, number, comma list of numbers, or string."""
    if "=" not in text:
        raise InvalidOptionError(f"--param {text!r}: expected KEY=VALUE")
    key, raw = (s.strip() for s in text.split("=", 1))
    low = raw.lower()
    if low in ("true", "yes", "on"):
        return key, True
    if low in ("false", "no", "off"):
        return key, False
    try:
        if "," in raw:
            return key, [float(x) for x in raw.split(",")]
        return key, float(raw)
    except ValueError:
        return key, raw


def _merge(args: argparse.Namespace) -> int:
    from weightzoo.analysis.merge_config import MergeConfig, load_merge_config, resolve_dtype
    from weightzoo.analysis.merging import merge, resolve_method, save_merged

    t0 = time.perf_counter()
    if args.config:
        if args.method or args.base or args.models:
            raise InvalidOptionError("--config replaces --method/--base/--models; give one or the other")
        cfg = load_merge_config(args.config)
    else:
        if not args.method or not args.models:
            raise InvalidOptionError("merge needs --method and --models (or --config YAML)")
        params = dict(parse_param(p) for p in args.param)
        cfg = MergeConfig(resolve_method(args.method), list(args.models), args.base, args.weights, params)
    if args.config and args.param:
        cfg.params.update(dict(parse_param(p) for p in args.param))
    if args.weights and args.config:
        cfg.weights = list(args.weights)
    if args.dtype:
        cfg.dtype = resolve_dtype(args.dtype)
    if args.seed is not None:
        cfg.seed = args.seed
    if args.trim:
        cfg.trim = args.trim

    zoo_dir = args.zoo
    refs = {}
    parents: list[str] = []
    for ref in ([cfg.base] if cfg.base else []) + cfg.models:
        kind, value = resolve_model_ref(ref, zoo_dir)
        refs[ref] = value
        if kind == "zoo":
            parents.append(value)
    out = str(args.out)
    if out.startswith("zoo:") and not zoo_dir:
        raise InvalidOptionError("--out zoo:NAME needs --zoo DIR")
    zoo = None
    if zoo_dir and (parents or out.startswith("zoo:")):
        from weightzoo.zoo.store import Zoo

        zoo = Zoo.open(zoo_dir, create=out.startswith("zoo:"))
    try:
        merged = merge(cfg.method, [refs[m] for m in cfg.models], refs[cfg.base] if cfg.base else None,
                       weights=cfg.weights, params=cfg.params, seed=cfg.seed, trim=cfg.trim, dtype=cfg.dtype,
                       missing=args.missing, zoo=zoo, align=args.align)
        where = save_merged(merged, out, zoo=zoo, max_shard_size=args.max_shard_size,
                            parents=list(dict.fromkeys(parents)))
    finally:
        if zoo is not None:
            zoo.close()
    summary = {**merged.summary(), "out": where, "seconds": round(time.perf_counter() - t0, 3)}
    if args.json:
        print_json(summary)
    else:
        dest = where.get("files") or [f"zoo {where.get('zoo')}: {where.get('model')}"]
        rep = merged.report
        sys.stdout.write(f"merged {len(cfg.models)} model(s) with {merged.method}: {summary['tensors']} tensors "
                         f"({summary['merged_tensors']} merged, {len(rep.passthrough)} passed through) "
                         f"in {summary['seconds']} s -> {', '.join(map(str, dest))}\n")
        if rep.kept_base or rep.skipped:
            sys.stdout.write(f"missing tensors ({rep.policy}): {json.dumps(rep.summary()['missing'])}\n")
    return 0
