"""``weightzoo report``: one self-contained HTML page of a zoo and of the learned runs trained on it."""

from __future__ import annotations

import argparse

from ._common import add_json, add_zoo, print_json, require_zoo


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "report",
        help="write one self-contained HTML report: zoo overview, lineage, filters, task vectors, results",
        description="One HTML file that opens offline (figures embedded as PNG, no remote scripts or styles): "
        "zoo overview with deduplication savings, the lineage graph (declared and inferred), filter "
        "statistics, task-vector similarity, and the metrics of learned runs (--runs) with mean ± std "
        "over seeds. A section without data says so.",
    )
    add_zoo(p)
    p.add_argument("--out", default="report.html", metavar="FILE", help="the HTML file to write (default report.html)")
    p.add_argument("--runs", nargs="*", default=[], metavar="DIR", help="run folders (runs/NAME, with seed-K/ inside)")
    p.add_argument("--title", default=None, help="page title")
    p.add_argument("--max-filter-models", type=int, default=40, help="models scanned for filter statistics (default 40)")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from weightzoo.analysis.report import build_report

    path, sections = build_report(require_zoo(args), args.out, runs=args.runs, title=args.title,
                                  max_filter_models=args.max_filter_models)
    if args.json:
        print_json({"path": str(path), "sections": [
            {"key": s.key, "title": s.title, "has_data": s.has_data, "figures": s.figures} for s in sections]})
    else:
        for s in sections:
            what = f"{s.figures} figure(s)" if s.figures else ("data" if s.has_data else "no data")
            print(f"{s.title:<20} {what}")
        print(path)
    return 0


__all__ = ["register", "run"]
