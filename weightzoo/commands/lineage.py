"""``weightzoo lineage``: declared and inferred lineage of a model; ``--infer`` recovers it from the weights."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from weightzoo.errors import InvalidOptionError

from ._common import add_json, add_zoo, print_json, require_zoo


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("lineage", help="a model's ancestors and descendants, declared and inferred; --infer recovers "
                       "lineage from the weights",
                       description="Print MODEL's ancestors and descendants with the relation, the source (declared "
                       "by a card, a builder or a user; or inferred from the weights), the confidence and the evidence "
                       "of each edge, and where declared and inferred parents disagree. --infer recovers the lineage "
                       "of the whole zoo from the weights (families, fine-tunes, merges, quantised copies, adapters) "
                       "and stores it beside the declared edges.")
    p.add_argument("model", metavar="MODEL", nargs="?", help="the model (optional with --infer)")
    add_zoo(p, required=True)
    p.add_argument("--direction", choices=["up", "down", "both"], default="both")
    p.add_argument("--source", choices=["declared", "inferred"], default=None, help="follow only edges of this source")
    p.add_argument("--add-parent", metavar="PARENT", help="record PARENT as a (declared) parent of MODEL")
    p.add_argument("--relation", default="finetune", help="relation for --add-parent (finetune, adapter, merge, quantized)")
    p.add_argument("--infer", action="store_true", help="infer lineage from the weights of every ingested model and "
                   "store it (replacing the previous inference; declared edges are never touched)")
    p.add_argument("--models", metavar="GLOB", default=None, help="with --infer: only models whose name matches GLOB")
    p.add_argument("--no-store", action="store_true", help="with --infer: print the inference, do not store it")
    p.add_argument("--hide-declared", action="store_true", help="with --infer: do not calibrate the direction on "
                   "declared edges (e.g. to test the inference against them)")
    p.add_argument("--direction-prior", choices=["auto", "medoid", "kurtosis", "time"], default="auto",
                   help="with --infer: how edges are directed (default auto: Hub upload time, else kurtosis calibrated on "
                   "declared edges, else away from each family's medoid)")
    p.add_argument("--figure", metavar="PATH", help="draw the lineage (MODEL's family, or every inferred family) to "
                   "PATH (.png, .svg, .pdf)")
    add_json(p)
    p.set_defaults(func=run)


def _short(e: dict[str, Any]) -> str:
    ev = e.get("evidence") or {}
    keys = ("distance", "relative_distance", "runner_up", "coefficient", "relative_residual", "bits", "effective_ranks",
            "direction", "source", "method")
    parts = []
    for k in keys:
        if k in ev and ev[k] is not None:
            v = ev[k]
            parts.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
    return ", ".join(parts)


def _disagreements(edges: list[dict[str, Any]]) -> dict[str, tuple[set[str], set[str]]]:
    """child → (declared parents, inferred parents) where a child has both kinds and they differ."""
    by: dict[str, dict[str, set[str]]] = {}
    for e in edges:
        by.setdefault(e["child"], {"declared": set(), "inferred": set()})[e["source"]].add(e["parent"])
    return {c: (s["declared"], s["inferred"]) for c, s in by.items()
            if s["declared"] and s["inferred"] and s["declared"] != s["inferred"]}


def run(args: argparse.Namespace) -> int:
    from weightzoo.zoo.store import Zoo

    if not args.model and not args.infer:
        raise InvalidOptionError("lineage needs MODEL, or --infer to recover the zoo's lineage from the weights")
    if args.add_parent and not args.model:
        raise InvalidOptionError("--add-parent needs MODEL")
    result = None
    with Zoo.open(require_zoo(args), create=False) as zoo:
        if args.add_parent:
            zoo.add_lineage(args.model, args.add_parent, args.relation)
        if args.infer:
            from weightzoo.analysis.lineage import infer_lineage

            refs = [m.ref for m in zoo.models(ingested=True, **({"name": args.models} if args.models else {}))]
            result = infer_lineage(zoo, models=refs, store=not args.no_store, use_declared=not args.hide_declared,
                                   direction=args.direction_prior, progress=not args.json and sys.stderr.isatty())
        if args.model:
            edges = zoo.lineage(args.model, direction=args.direction, source=args.source)
            if result is not None and args.no_store:  # show the fresh inference, not the stored one
                inferred = [e.to_dict() for e in result.edges]
                names = {args.model} | {e["child"] for e in edges} | {e["parent"] for e in edges}
                edges = [e for e in edges if e["source"] != "inferred"] + [
                    e for e in inferred if e["child"] in names or e["parent"] in names]
        else:
            edges = [e.to_dict() for e in result.edges] if result is not None else []
            if result is not None and not args.hide_declared:
                edges += zoo.lineage_edges(source="declared")
    if args.figure:
        from weightzoo.analysis.lineage.plot import plot_lineage

        plot_lineage(edges, args.figure, title=args.model or "inferred lineage")
    if args.json:
        if args.model or result is None:
            print_json(edges)
        else:
            d = result.to_dict()
            d["disagreements"] = {c: {"declared": sorted(a), "inferred": sorted(b)}
                                  for c, (a, b) in _disagreements(edges).items()}
            print_json(d)
        return 0
    if result is not None:
        n_rel: dict[str, int] = {}
        for e in result.edges:
            n_rel[e.relation] = n_rel.get(e.relation, 0) + 1
        fams = [f for f in result.families if len(f) > 1]
        print(f"inferred {len(result.edges)} edges ({', '.join(f'{v} {k}' for k, v in sorted(n_rel.items())) or 'none'}) "
              f"over {result.models} models in {len(fams)} families (+{len(result.families) - len(fams)} singletons); "
              f"{result.pairs_compared} of {result.models * (result.models - 1) // 2} pairs compared; "
              f"{result.seconds:.1f}s{'' if args.no_store else '; stored as inferred lineage'}")
        if not args.model:
            for e in result.edges:
                print(f"  {e.child}  --{e.relation}-->  {e.parent}  [inferred {e.confidence:.2f}]  {_short(e.to_dict())}")
    if args.model:
        if not edges:
            print(f"{args.model}: no lineage recorded")
        for e in edges:
            conf = f" {e['confidence']:.2f}" if e.get("confidence") is not None else ""
            ev = _short(e)
            print(f"{e['child']}  --{e['relation']}-->  {e['parent']}  [{e['source']}{conf}]" + (f"  {ev}" if ev else ""))
    for child, (said, found) in sorted(_disagreements(edges).items()):
        print(f"disagree: {child}: declared {', '.join(sorted(said))}; inferred {', '.join(sorted(found))}")
    return 0
