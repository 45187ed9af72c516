"""``weightzoo retrieve``: which architectures of a zoo resemble mine? Index, search, train the learned
encoder, evaluate the encoders, predict accuracy from the architecture (see docs/analysis.md)."""

from __future__ import annotations

import argparse
from typing import Any

from weightzoo.errors import InvalidOptionError

from ._common import add_json, add_zoo, print_json, require_zoo

ENCODER_CHOICES = ("ops", "wl", "learned")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "retrieve",
        help="find the architectures of a zoo most similar to a model, spec, config.json or pkg.module:Class",
        description="Architecture retrieval over a zoo's ComputeGraphs. QUERY is a zoo model, a spec JSON, a "
        "Hugging Face config.json (or a checkpoint folder with one), or pkg.module:Class (built without arguments on "
        "the meta device). Actions besides searching: --build-index, --train-encoder, --evaluate, --predict-accuracy.",
    )
    p.add_argument("query", metavar="QUERY", nargs="?", help="what to search for")
    add_zoo(p)
    p.add_argument("-k", type=int, default=10, help="results (default 10)")
    p.add_argument("--encoder", default="wl", help=f"encoder (default wl; valid: {', '.join(ENCODER_CHOICES)})")
    p.add_argument("--encoder-run", metavar="DIR", help="trained learned encoder (from --train-encoder)")
    p.add_argument("--spec", metavar="SPEC.json", help="architecture of a checkpoint-path QUERY")
    p.add_argument("--no-update", action="store_true", help="search the stored index as is (no incremental update)")
    act = p.add_mutually_exclusive_group()
    act.add_argument("--build-index", action="store_true", help="build or update the zoo's index for --encoder")
    act.add_argument("--train-encoder", action="store_true", help="train the learned encoder contrastively")
    act.add_argument("--evaluate", action="store_true", help="retrieval metrics of every encoder on the zoo")
    act.add_argument("--predict-accuracy", action="store_true",
                     help="predict trained architectures' test accuracy from the architecture (Kendall tau)")
    p.add_argument("--out", metavar="DIR", help="--train-encoder / --predict-accuracy: output folder")
    p.add_argument("--epochs", type=int, default=None, help="--train-encoder/--predict-accuracy: epochs")
    p.add_argument("--max-minutes", type=float, default=None, help="--train-encoder: wall-clock budget")
    p.add_argument("--seed", type=int, default=0, help="seed of learned parts (default 0)")
    p.add_argument("--seeds", type=int, default=3, help="--predict-accuracy: seeds (default 3)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_json(p)
    p.set_defaults(func=run)


def _encoders(args: argparse.Namespace, names: tuple[str, ...]) -> list[Any]:
    from weightzoo.analysis.retrieval import resolve_encoder

    return [resolve_encoder(n, run=args.encoder_run) for n in names]


def run(args: argparse.Namespace) -> int:
    if args.encoder not in ENCODER_CHOICES:
        raise InvalidOptionError(f"unknown encoder {args.encoder!r}; valid: {', '.join(ENCODER_CHOICES)}")
    if args.k < 1:
        raise InvalidOptionError(f"-k must be >= 1, got {args.k}")
    zoo = require_zoo(args)
    if args.build_index:
        return _build(args, zoo)
    if args.train_encoder:
        return _train(args, zoo)
    if args.evaluate:
        return _evaluate(args, zoo)
    if args.predict_accuracy:
        return _predict(args, zoo)
    if not args.query:
        raise InvalidOptionError("retrieve needs a QUERY (or one of --build-index, --train-encoder, --evaluate, "
                                 "--predict-accuracy)")
    return _search(args, zoo)


def _search(args: argparse.Namespace, zoo: str) -> int:
    from weightzoo.analysis.retrieval import retrieve

    (enc,) = _encoders(args, (args.encoder,))
    matches = retrieve(args.query, zoo, args.k, encoder=enc, spec=args.spec, build=not args.no_update)
    if args.json:
        print_json({"query": args.query, "encoder": args.encoder, "results": [m.to_dict() for m in matches]})
        return 0
    print(f"{args.query} — {len(matches)} most similar ({args.encoder} encoder):")
    for m in matches:
        diff = ", ".join(f"{op} {d:+d}" for op, d in m.differing_ops.items()) or "same op counts"
        print(f"{m.rank:>3}. {m.model}  similarity {m.similarity:.3f}  family {m.family or '-'}  ({diff})")
    return 0


def _build(args: argparse.Namespace, zoo: str) -> int:
    from weightzoo.analysis.retrieval import build_index

    (enc,) = _encoders(args, (args.encoder,))
    report = build_index(zoo, enc, progress=not args.no_progress)
    if args.json:
        print_json(report.to_dict())
        return 0
    print(f"{report.path}: {len(report.index)} architectures ({len(report.added)} added, {report.kept} kept, "
          f"{len(report.removed)} removed, {len(report.skipped)} skipped)")
    for name, why in list(report.skipped.items())[:10]:
        print(f"  skipped {name}: {why}")
    return 0


def _evaluate(args: argparse.Namespace, zoo: str) -> int:
    from weightzoo.analysis.retrieval import evaluate_zoo

    names = ("ops", "wl") + (("learned",) if args.encoder_run else ())
    results = evaluate_zoo(zoo, _encoders(args, names), k=args.k)
    if args.json:
        print_json({"k": args.k, "results": [r.to_dict() for r in results]})
        return 0
    keys = [f"mrr@{args.k}", f"map@{args.k}", f"ndcg@{args.k}", f"precision@{args.k}", "r_precision"]
    print(f"{'group':<10} {'encoder':<8} {'models':>6} " + " ".join(f"{k:>13}" for k in keys))
    for r in results:
        print(f"{r.group:<10} {r.encoder:<8} {r.size:>6} " + " ".join(f"{r.metrics[k]:>13.3f}" for k in keys)
              + ("" if r.metrics["queries"] else "  (no query has a relevant item)"))
    return 0


def _train(args: argparse.Namespace, zoo: str) -> int:
    from weightzoo.analysis.retrieval import train_encoder

    if not args.out:
        raise InvalidOptionError("--train-encoder needs --out DIR (the run folder)")
    result = train_encoder(zoo, args.out, epochs=args.epochs or 30, max_minutes=args.max_minutes, seed=args.seed,
                           progress=not args.no_progress)
    if args.json:
        print_json(result.to_dict())
        return 0
    print(f"{result.path}: {result.epochs} epochs in {result.wall_s:.0f} s, best validation MAP@10 "
          f"{result.best_val_map:.3f} (epoch {result.best_epoch}); use --encoder learned --encoder-run {result.path}")
    return 0


def _predict(args: argparse.Namespace, zoo: str) -> int:
    from weightzoo.analysis.retrieval import predict_accuracy

    if args.seeds < 1:
        raise InvalidOptionError(f"--seeds must be >= 1, got {args.seeds}")
    seeds = list(range(args.seed, args.seed + args.seeds))
    result = predict_accuracy(zoo, seeds=seeds, epochs=args.epochs or 60)
    if args.json:
        print_json(result.to_dict())
        return 0
    print(f"Kendall tau on {result.test_size} held-out architectures (trained on {result.train_size}), "
          f"seeds {seeds}:")
    for name, (mean, std) in result.summary().items():
        print(f"  {name:<7} {mean:+.3f} ± {std:.3f}")
    print("WL subtree features with the largest ridge coefficients (accuracy ↑ / ↓):")
    for f in result.top_features:
        print(f"  {f['weight']:+.4f}  {f['description']}")
    return 0
