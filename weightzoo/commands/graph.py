"""``weightzoo graph``: build a model's ParameterGraph and save it as safetensors (+ JSON metadata)."""

from __future__ import annotations

import argparse

from weightzoo.errors import InvalidOptionError

from ._common import add_json, add_zoo, print_json, resolve_model_ref

KINDS = ("parameter", "compute")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "graph",
        help="build a model's graph (ParameterGraph: a node per neuron, an edge per weight) and save it",
        description="Build the ParameterGraph of a zoo model (from its stored spec and weights) or of a checkpoint "
        "(with --spec) and write it as one safetensors file. Prints nodes, edges and parameters covered.",
    )
    p.add_argument("model", metavar="MODEL", help="zoo model name (with --zoo) or checkpoint path")
    add_zoo(p)
    p.add_argument("--kind", default="parameter", help=f"graph kind (default parameter; valid: {', '.join(KINDS)})")
    p.add_argument("--out", metavar="FILE", help="write the graph here (FILE.safetensors)")
    p.add_argument("--spec", metavar="SPEC.json", help="architecture spec of a checkpoint path (zoo models have theirs)")
    p.add_argument("--max-kernel", type=int, nargs="+", metavar="K", default=None,
                   help="kernel window every edge is padded to: K or KH KW (default 7 7; 1 1 for transformers)")
    p.add_argument("--edge-storage", choices=["padded", "kernels"], default="padded",
                   help="--out file layout: padded kernel windows (format v1, default) or unpadded kernels per "
                        "tensor (about the size of the weights)")
    p.add_argument("--skip-unsupported", action="store_true",
                   help="leave out layers the graph does not cover (listed) instead of failing")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from weightzoo.zoo.graphs import ParameterGraph
    from weightzoo.zoo.store import Zoo, load_state_dict, resolve_spec

    if args.kind not in KINDS:
        raise InvalidOptionError(f"unknown graph kind {args.kind!r}; valid: {', '.join(KINDS)}")
    if args.kind == "compute":  # ComputeGraph: operations of the architecture (see _compute_cli.py)
        from ._compute_cli import run_compute
        return run_compute(args)
    if args.max_kernel is not None and (len(args.max_kernel) not in (1, 2) or min(args.max_kernel) < 1):
        raise InvalidOptionError("--max-kernel takes one or two positive ints (K or KH KW)")
    max_kernel = None if args.max_kernel is None else (args.max_kernel[0], args.max_kernel[-1])
    kind, ref = resolve_model_ref(args.model, args.zoo)
    zoo = Zoo.open(args.zoo, create=False) if kind == "zoo" else None
    try:
        spec = resolve_spec(ref, zoo=zoo, spec=args.spec)
        weights = zoo.state_dict(ref) if zoo is not None else load_state_dict(ref)
        graph = ParameterGraph.from_spec(spec, weights, max_kernel=max_kernel, strict=not args.skip_unsupported,
                                         metadata={"model": str(ref)})
    finally:
        if zoo is not None:
            zoo.close()
    if args.out:
        graph.save(args.out, edge_storage=args.edge_storage)
    summary = {"model": ref, "kind": args.kind, **graph.summary(), "out": args.out}
    if args.json:
        print_json(summary)
        return 0
    skipped = f", skipped {len(graph.skipped)} module(s)" if graph.skipped else ""
    where = f" → {args.out}" if args.out else ""
    print(f"{ref}: {summary['nodes']} nodes, {summary['edges']} edges, {summary['parameters']} parameters covered"
          f"{skipped}{where}")
    return 0
