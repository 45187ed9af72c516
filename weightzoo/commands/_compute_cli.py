"""``weightzoo graph MODEL --kind compute``: record a model's ComputeGraph and save it as safetensors.

A compute graph depends on the architecture only, so no weights are read: the architecture comes from
``--spec SPEC.json``, the zoo entry's spec (or its Hugging Face config), a spec JSON file given as
MODEL, or the ``config.json`` of a checkpoint folder.
"""

from __future__ import annotations

import argparse
import contextlib

from ._common import print_json, resolve_model_ref


def run_compute(args: argparse.Namespace) -> int:
    """Build the ComputeGraph of MODEL, write it to ``--out`` when given, print a summary."""
    from weightzoo.zoo.graphs.compute_graph import ComputeGraph
    from weightzoo.zoo.store import Zoo, resolve_spec

    kind, ref = resolve_model_ref(args.model, getattr(args, "zoo", None))
    with Zoo.open(args.zoo, create=False) if kind == "zoo" else contextlib.nullcontext() as zoo:
        spec = resolve_spec(ref, zoo=zoo, spec=getattr(args, "spec", None))
    graph = ComputeGraph.from_spec(spec, strict=not getattr(args, "skip_unsupported", False),
                                   metadata={"model": str(ref)})
    out = getattr(args, "out", None)
    if out:
        graph.save(out)
    summary = {"model": ref, "kind": "compute", **graph.summary(), "out": out}
    if getattr(args, "json", False):
        print_json(summary)
        return 0
    where = f" → {out}" if out else ""
    print(f"{ref}: {summary['nodes']} operations, {summary['edges']} edges, {summary['virtual_edges']} virtual edges "
          f"(cutoff {graph.cutoff}), {summary['parameters']} parameters covered ({graph.coverage.fraction:.0%})"
          f"{where}")
    return 0
