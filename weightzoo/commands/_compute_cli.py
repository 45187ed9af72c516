"""``weightzoo graph MODEL --kind compute``: record a model's ComputeGraph and save it as safetensors.

A compute graph depends on the architecture only, so no weights are read: the architecture comes from
``--spec SPEC.json``, the zoo entry's spec (or its Hugging Face config), a spec JSON file given as
MODEL, or the ``config.json`` of a checkpoint folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from weightzoo.errors import SpecError

from ._common import load_spec_file, print_json, resolve_model_ref


def _spec_of(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    from weightzoo.zoo.arch import hf_spec

    spec = load_spec_file(args.spec) if getattr(args, "spec", None) else None
    kind, ref = resolve_model_ref(args.model, getattr(args, "zoo", None))
    if spec is not None:
        return ref, spec
    if kind == "zoo":
        from weightzoo.zoo.store import Zoo

        with Zoo.open(args.zoo, create=False) as zoo:
            record = zoo.model(ref)
        if record.spec is not None:
            return ref, dict(record.spec)
        if record.config:
            return ref, hf_spec(record.config)
        raise SpecError(f"model {ref!r} has neither an architecture spec nor a config in the zoo; pass --spec SPEC.json")
    path = Path(ref)
    if path.is_file() and path.suffix == ".json":
        obj = load_spec_file(ref)
        if "format" in obj:
            return ref, obj
        if obj.get("architectures"):  # a bare HF config.json
            return ref, hf_spec(obj)
    from weightzoo.zoo.formats import open_checkpoint

    with open_checkpoint(ref) as ckpt:
        config = ckpt.config
    if config:
        return ref, hf_spec(config)
    raise SpecError(f"{ref} has no architecture (no config.json): pass --spec SPEC.json")


def run_compute(args: argparse.Namespace) -> int:
    """Build the ComputeGraph of MODEL, write it to ``--out`` when given, print a summary."""
    from weightzoo.zoo.graphs.compute_graph import ComputeGraph

    ref, spec = _spec_of(args)
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
