"""Hub commands: ``crawl`` (the Hugging Face Hub into a zoo) and ``serve-hub`` (a local Hub mirror)."""

from __future__ import annotations

import argparse
import sys

from weightzoo.errors import InvalidOptionError

from ._common import add_executor, add_json, add_zoo, print_json, ray_choice, require_zoo


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("crawl", help="crawl the Hugging Face Hub (or a mirror) into a zoo: headers, metadata, lineage",
                       description="List models with huggingface_hub, record each one's card, config, files and "
                       "tensor table (read from safetensors headers with range requests; no weights move unless "
                       "--download) and its declared lineage. Rerun the same command to resume.")
    p.add_argument("--search", help="substring of the repo id")
    p.add_argument("--author", help="user or organisation")
    p.add_argument("--library", help="library tag, e.g. transformers, peft, diffusers")
    p.add_argument("--pipeline-tag", help="task, e.g. text-classification")
    p.add_argument("--tag", action="append", default=[], metavar="TAG",
                   help="tag filter (repeatable), e.g. base_model:bert-base-uncased")
    p.add_argument("--sort", choices=["downloads", "likes", "created_at", "last_modified", "trending_score"])
    p.add_argument("--limit", type=int, help="stop after N listed models")
    p.add_argument("--revision", help="crawl this revision of each model instead of main")
    p.add_argument("--download", action="store_true", help="download the weights (HF cache) and ingest them")
    p.add_argument("--include", action="append", metavar="PATTERN",
                   help="with --download: only weight files matching this glob (repeatable)")
    p.add_argument("--allow-pickle", action="store_true",
                   help="with --download: ingest pickle-only repos too (read with weights_only)")
    p.add_argument("--max-params", type=int, help="skip models with more parameters")
    p.add_argument("--workers", type=int, default=8, help="concurrent network workers (default 8)")
    p.add_argument("--endpoint", help="Hub endpoint (default $HF_ENDPOINT, else https://huggingface.co)")
    p.add_argument("--cache-dir", help="HF cache for --download (default: the shared cache)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_executor(p, workers=False)
    add_zoo(p, required=True)
    add_json(p)
    p.set_defaults(func=_crawl)

    p = sub.add_parser("serve-hub", help="serve a folder of snapshots (or a zoo) with the Hub's HTTP API",
                       description="A Hub-compatible mirror: point HF_ENDPOINT (or `weightzoo crawl --endpoint`) at "
                       "the printed URL. DIR holds <org>/<name>/ snapshot folders; --zoo serves a zoo's models.")
    p.add_argument("dir", nargs="?", metavar="DIR", help="folder of <org>/<name>/ repositories")
    p.add_argument("--zoo", metavar="DIR", help="serve the ingested models of this zoo instead")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (0 picks a free one and prints it)")
    p.add_argument("--token", action="append", default=[], help="bearer token that may read gated/private repos")
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    p.add_argument("--fault", action="append", default=[], metavar="SPEC",
                   help="inject a fault, e.g. rate-limit:path=/resolve/,every=3 (repeatable)")
    p.add_argument("--page-size", type=int, default=100, help="models per listing page (default 100)")
    p.set_defaults(func=_serve)


def _crawl(args: argparse.Namespace) -> int:
    from weightzoo.zoo.hub import crawl

    summary = crawl(require_zoo(args), search=args.search, author=args.author, library=args.library,
                    pipeline_tag=args.pipeline_tag, tags=args.tag, sort=args.sort, limit=args.limit,
                    revision=args.revision, download=args.download, include=args.include,
                    allow_pickle=args.allow_pickle, workers=args.workers, endpoint=args.endpoint,
                    max_params=args.max_params, progress=not (args.no_progress or args.json),
                    cache_dir=args.cache_dir, ray=ray_choice(args))
    if args.json:
        print_json(summary.to_dict())
    else:
        print(summary)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from weightzoo.zoo.hub.mirror import Fault, HubMirror

    if (args.dir is None) == (args.zoo is None):
        raise InvalidOptionError("serve-hub needs a folder of repositories (DIR) or --zoo DIR, not both")
    mirror = HubMirror(args.dir, zoo=args.zoo, host=args.host, port=args.port, tokens=args.token,
                       latency=args.latency, faults=[Fault.parse(s) for s in args.fault], page_size=args.page_size)
    print(f"serving {len(mirror.repos)} repositories at {mirror.url}  (export HF_ENDPOINT={mirror.url})", flush=True)
    try:
        mirror.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        mirror.stop()
    return 0
