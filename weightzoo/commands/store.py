"""Store commands: ingest, ls, show, export, rm, gc, verify (``lineage`` lives in :mod:`.lineage`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from weightzoo.errors import InvalidOptionError

from ._common import add_executor, add_json, add_zoo, print_json, ray_choice, require_zoo, wants_workers


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ingest", help="ingest checkpoints (files, snapshot folders) into a zoo")
    p.add_argument("paths", nargs="+", metavar="PATH")
    add_zoo(p, required=True)
    p.add_argument("--name", help="model name (one PATH only; default: the file or folder stem)")
    p.add_argument("--revision", help="revision id (stored as NAME@REVISION)")
    p.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE",
                   help="free-form metadata; VALUE parsed as JSON when it is JSON (repeatable)")
    p.add_argument("--replace", action="store_true", help="replace models of the same name")
    p.add_argument("--batch", action="store_true", help="ingest all PATHs in one pack and one transaction "
                   "(with workers: one transaction, a pack per worker task)")
    add_executor(p)
    p.add_argument("--per-task", type=int, default=1, metavar="N",
                   help="with workers: checkpoints per task, one pack each (default 1)")
    add_json(p)
    p.set_defaults(func=_ingest)

    p = sub.add_parser("ls", help="list the models in a zoo")
    add_zoo(p, required=True)
    p.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="catalogue column or metadata filter, e.g. library=transformers, epoch=20, name='org/*'")
    add_json(p)
    p.set_defaults(func=_ls)

    p = sub.add_parser("show", help="show one model: catalogue record and tensor table")
    p.add_argument("model", metavar="MODEL")
    add_zoo(p, required=True)
    p.add_argument("--tensors", action="store_true", help="print the full tensor table")
    add_json(p)
    p.set_defaults(func=_show)

    p = sub.add_parser("export", help="write a zoo model to a safetensors file (or shards)")
    p.add_argument("model", metavar="MODEL")
    add_zoo(p, required=True)
    p.add_argument("--out", required=True, help="FILE.safetensors, or a folder with --max-shard-size")
    p.add_argument("--max-shard-size", type=_size, help="shard by bytes, e.g. 2GB")
    add_json(p)
    p.set_defaults(func=_export)

    p = sub.add_parser("rm", help="remove models from a zoo (bytes are reclaimed by gc)")
    p.add_argument("models", nargs="+", metavar="MODEL")
    add_zoo(p, required=True)
    add_json(p)
    p.set_defaults(func=_rm)

    p = sub.add_parser("gc", help="reclaim packs no model points at")
    add_zoo(p, required=True)
    add_json(p)
    p.set_defaults(func=_gc)

    p = sub.add_parser("verify", help="re-hash every tensor; find orphan packs, missing blobs, rows without data")
    add_zoo(p, required=True)
    p.add_argument("--repair", action="store_true", help="remove orphan packs and temporary files")
    p.add_argument("--quick", action="store_true", help="skip re-hashing the bytes")
    add_json(p)
    p.set_defaults(func=_verify)


def _size(text: str) -> int:
    from weightzoo.zoo.formats.writer import parse_size

    try:
        return parse_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 500MB, 2GB, 1GiB)") from None


def _parse_kv(pairs: list[str], what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidOptionError(f"{what} {pair!r} is not KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
        except RecursionError:
            raise InvalidOptionError(f"{what} {key[:40]!r}: the JSON value is nested too deeply") from None
    return out


def _open(args: argparse.Namespace, create: bool = False):  # noqa: ANN202 - Zoo, imported lazily
    from weightzoo.zoo.store import Zoo

    return Zoo.open(require_zoo(args), create=create)


def _record_line(m: Any) -> str:
    flag = "" if m.ingested else "  [metadata-only]"
    if m.nonfinite_tensors:
        flag += f"  [{m.nonfinite_tensors} tensors with NaN/Inf]"
    return f"{m.ref}  {m.parameter_count:,} params  {m.nbytes / 1e6:.1f} MB  {m.format or ''}{flag}"


def _ingest(args: argparse.Namespace) -> int:
    if args.name and len(args.paths) > 1:
        raise InvalidOptionError("--name takes one PATH only")
    meta = _parse_kv(args.meta, "--meta")
    with _open(args, create=True) as zoo:
        items = [dict(source=p, name=args.name, revision=args.revision, metadata=meta, replace=args.replace)
                 for p in args.paths]
        if wants_workers(args):  # workers stage packs; this process alone commits the catalogue
            from weightzoo.zoo.store.staging import ingest_parallel

            recs = ingest_parallel(zoo, items, workers=args.workers, ray=ray_choice(args), per_task=args.per_task,
                                   atomic=args.batch)
        elif args.batch:
            recs = zoo.ingest_many(items)
        else:
            recs = [zoo.ingest_many([it])[0] for it in items]
    if args.json:
        print_json([r.to_dict() for r in recs])
    else:
        for r in recs:
            print(f"ingested {_record_line(r)}")
    return 0


def _ls(args: argparse.Namespace) -> int:
    filters = _parse_kv(args.filter, "--filter")
    with _open(args) as zoo:
        models = zoo.models(**filters)
    if args.json:
        print_json([m.to_dict() for m in models])
    else:
        for m in models:
            print(_record_line(m))
        print(f"{len(models)} models", file=sys.stderr)
    return 0


def _show(args: argparse.Namespace) -> int:
    with _open(args) as zoo:
        rec = zoo.model(args.model)
        tensors = zoo.tensors(args.model)
        lineage = zoo.lineage(rec.name, depth=1)  # edges are recorded between names (repo ids)
    if args.json:
        d = rec.to_dict()
        d["tensors"] = [dict(name=t.name, dtype=t.dtype, shape=list(t.shape), hash=t.hash,
                             nan_count=t.nan_count, inf_count=t.inf_count) for t in tensors]
        d["lineage"] = lineage
        print_json(d)
        return 0
    print(_record_line(rec))
    for key in ("source", "repo_id", "library", "model_type", "architecture", "license"):
        if getattr(rec, key):
            print(f"  {key}: {getattr(rec, key)}")
    if rec.tags:
        print(f"  tags: {', '.join(rec.tags)}")
    print(f"  spec: {'yes (' + str(rec.spec.get('format')) + ')' if rec.spec else 'none'}")
    for k, v in rec.metadata.items():
        print(f"  meta {k}: {json.dumps(v)}")
    for e in lineage:
        conf = f" {e['confidence']:.2f}" if e.get("confidence") is not None else ""
        print(f"  lineage: {e['child']} <-{e['relation']}- {e['parent']} [{e['source']}{conf}]")
    shown = tensors if args.tensors else tensors[:10]
    print(f"  {len(tensors)} tensors:")
    for t in shown:
        nf = f"  NaN={t.nan_count} Inf={t.inf_count}" if (t.nan_count or t.inf_count) else ""
        print(f"    {t.name}  {t.dtype}  {list(t.shape)}{nf}")
    if len(shown) < len(tensors):
        print(f"    ... {len(tensors) - len(shown)} more (--tensors)")
    return 0


def _export(args: argparse.Namespace) -> int:
    from weightzoo.zoo.formats.writer import save_state_dict

    # One catalogue snapshot for the whole export (a concurrent --replace cannot mix two revisions), and
    # every tensor checked against its hash (damaged bytes never leave the zoo silently).
    with _open(args) as zoo, zoo.read_snapshot():
        rec = zoo.model(args.model)
        files = save_state_dict(zoo.state_dict(rec.ref, verify=True), args.out, max_shard_bytes=args.max_shard_size,
                                metadata={"weightzoo.model": rec.ref})
    if args.json:
        print_json({"model": rec.ref, "files": [str(f) for f in files]})
    else:
        print(f"exported {rec.ref} to {', '.join(map(str, files))}")
    return 0


def _rm(args: argparse.Namespace) -> int:
    with _open(args) as zoo:
        removed = [zoo.rm(m).ref for m in args.models]
    if args.json:
        print_json({"removed": removed})
    else:
        print(f"removed {', '.join(removed)} (run `weightzoo gc` to reclaim space)")
    return 0


def _gc(args: argparse.Namespace) -> int:
    with _open(args) as zoo:
        res = zoo.gc()
    if args.json:
        print_json(res)
    else:
        print(f"removed {res['packs_removed']} packs and {res['blobs_removed']} blobs, freed {res['bytes_freed'] / 1e6:.1f} MB")
    return 0


def _verify(args: argparse.Namespace) -> int:
    with _open(args) as zoo:
        rep = zoo.verify(repair=args.repair, rehash=not args.quick)
    if args.json:
        print_json(rep.to_dict())
    else:
        print(f"checked {rep.models} models, {rep.tensors} tensors, re-hashed {rep.blobs_checked} blobs")
        for label, items in [("bad hash", rep.bad_hashes), ("missing blob", rep.missing_blobs),
                             ("missing pack", rep.missing_packs), ("row without data", rep.rows_without_data),
                             ("orphan pack", rep.orphan_packs), ("temporary file", rep.temp_files),
                             ("repaired", rep.repaired)]:
            for x in items:
                print(f"  {label}: {x}")
        print("clean" if rep.clean else "CORRUPT")
    return 0 if rep.clean else 1
