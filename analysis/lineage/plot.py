"""A figure of lineage: each family drawn as a layered tree, declared and inferred edges side by side.

Inferred edges are solid (colour by relation, width by confidence), declared ones dashed grey; an
inferred edge into a model whose declared parents do not include it is drawn dotted in orange
(a disagreement). matplotlib is imported here only.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

_COLOURS = {"finetune": "#1f77b4", "adapter": "#9467bd", "merge": "#d62728", "quantized": "#2ca02c",
            "duplicate": "#7f7f7f"}


def _layers(nodes: set[str], parents: Mapping[str, set[str]]) -> dict[str, int]:
    depth: dict[str, int] = {}

    def d(n: str, seen: frozenset[str] = frozenset()) -> int:
        if n in depth:
            return depth[n]
        ps = [p for p in parents.get(n, ()) if p not in seen]
        depth[n] = 0 if not ps else 1 + max(d(p, seen | {n}) for p in ps)
        return depth[n]

    for n in sorted(nodes):
        d(n)
    return depth


def plot_lineage(edges: Iterable[Mapping[str, Any]], path: str | os.PathLike[str] | None = None, *,
                 title: str | None = None, max_nodes: int = 400) -> Any:
    """Draw ``edges`` (``{child, parent, relation, source, confidence}``); save to ``path`` if given.

    Returns the matplotlib figure. Labels are the last path component of each name.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from weightzoo.zoo.formats.durable import atomic_path

    es = [dict(e) for e in edges][: max_nodes * 3]
    nodes = {e["child"] for e in es} | {e["parent"] for e in es}
    parents: dict[str, set[str]] = defaultdict(set)
    for e in es:
        if e.get("source", "declared") == "inferred" or not any(
                x.get("source") == "inferred" for x in es):  # layer by the inference when there is one
            parents[e["child"]].add(e["parent"])
    depth = _layers(nodes, parents)
    rows: dict[int, list[str]] = defaultdict(list)
    for n in sorted(nodes, key=lambda n: (depth[n], n)):
        rows[depth[n]].append(n)
    pos = {n: (i - (len(r) - 1) / 2 + (0.25 * (lvl % 2) if len(r) > 1 else 0.0), -lvl)
           for lvl, r in rows.items() for i, n in enumerate(r)}
    width = max((len(r) for r in rows.values()), default=1)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * width), max(3, 1.3 * (len(rows) + 1))))
    declared = {(e["child"], e["parent"]) for e in es if e.get("source", "declared") == "declared"}
    has_declared = {c for c, _ in declared}
    for e in es:
        (x0, y0), (x1, y1) = pos[e["parent"]], pos[e["child"]]
        if e.get("source", "declared") == "declared":
            ax.annotate("", (x1, y1), (x0, y0), arrowprops=dict(arrowstyle="->", color="grey", ls="--", lw=1, alpha=0.7))
            continue
        conf = e.get("confidence") or 0.5
        disagrees = e["child"] in has_declared and (e["child"], e["parent"]) not in declared
        colour = "#ff7f0e" if disagrees else _COLOURS.get(e["relation"], "black")
        ax.annotate("", (x1, y1), (x0, y0), arrowprops=dict(arrowstyle="-|>", color=colour, lw=0.8 + 2.5 * conf,
                                                            ls=":" if disagrees else "-", alpha=0.85))
    for n, (x, y) in pos.items():
        ax.text(x, y, n.rsplit("/", 1)[-1], ha="center", va="center", fontsize=6,
                bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="#444444", lw=0.5))
    handles = [plt.Line2D([], [], color=c, lw=2, label=r) for r, c in _COLOURS.items()]
    handles.append(plt.Line2D([], [], color="grey", ls="--", label="declared"))
    handles.append(plt.Line2D([], [], color="#ff7f0e", ls=":", lw=2, label="inferred, not declared"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_axis_off()
    ax.set_xlim(-width / 2 - 0.8, width / 2 + 0.8)
    ax.set_ylim(-len(rows) - 0.3, 0.6)
    if title:
        ax.set_title(title, fontsize=9)
    if path is not None:
        out = Path(path)
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=130, bbox_inches="tight", format=out.suffix.lstrip(".") or "png")
        plt.close(fig)
    return fig


__all__ = ["plot_lineage"]
