"""Pictures of small ParameterGraphs (networkx + matplotlib, imported lazily)."""

from __future__ import annotations

import os
from typing import Any

import torch

from .parameter_graph import ParameterGraph
from .vocab import Activation, EdgeType, NodeType

_NODE_COLORS = {NodeType.INPUT: "#4c72b0", NodeType.HIDDEN: "#8c8c8c", NodeType.OUTPUT: "#c44e52",
                NodeType.FLATTEN: "#dd8452", NodeType.EMBEDDING: "#64b5cd", NodeType.STREAM: "#937860",
                NodeType.QUERY: "#da8bc3", NodeType.KEY: "#8172b3", NodeType.VALUE: "#ccb974",
                NodeType.HEAD: "#000000", NodeType.ATTENTION: "#55a868", NodeType.TIED_EMBEDDING: "#1f77b4"}
_EDGE_COLORS = {EdgeType.LINEAR: "#55a868", EdgeType.CONV1D: "#8172b3", EdgeType.CONV2D: "#8172b3",
                EdgeType.RESIDUAL: "#c44e52", EdgeType.FLATTEN: "#dd8452", EdgeType.EMBEDDING: "#64b5cd",
                EdgeType.ATTN_Q: "#da8bc3", EdgeType.ATTN_K: "#8172b3", EdgeType.ATTN_V: "#ccb974",
                EdgeType.ATTN_O: "#55a868", EdgeType.ATTN_SCORE: "#000000", EdgeType.ATTN_MIX: "#4c4c4c",
                EdgeType.NORM: "#937860", EdgeType.GATE: "#dd8452", EdgeType.UNEMBED: "#64b5cd"}


def draw_parameter_graph(graph: ParameterGraph, path: str | os.PathLike[str] | None = None, *, ax: Any = None,
                         title: str | None = None, limit: int = 2_000) -> Any:
    """Draw a ParameterGraph layer by layer: x = layer index, neurons stacked vertically.

    Node colour = node type, edge colour = edge type, edge width ∝ the edge's kernel norm. Labels show
    each layer's activation. Returns the matplotlib axes; saves a PNG when ``path`` is given. Graphs
    above ``limit`` nodes + edges go through :meth:`ParameterGraph.to_networkx`'s size guard.
    """
    import matplotlib

    if ax is None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import networkx as nx
    from matplotlib.lines import Line2D

    g = graph.to_networkx(limit=limit)
    pos = {}
    for grp in graph.layout.groups:
        for k in range(grp.size):
            pos[grp.start + k] = (grp.index, (grp.size - 1) / 2 - k)
    if ax is None:
        width = 1.6 * len(graph.layout.groups) + 2
        height = max(4.0, 0.28 * max(grp.size for grp in graph.layout.groups) + 1.5)
        _, ax = plt.subplots(figsize=(width, height), dpi=120)
    norms = graph.edge_attr.to(torch.float32).norm(dim=1)
    norms = (norms / norms.max().clamp_min(1e-12)).tolist()
    etypes = graph.edge_type.tolist()
    # edges in the graph's own order (networkx iterates by adjacency, which would scramble the styles)
    src, dst = graph.edge_index.tolist()
    for residual in (False, True):
        idx = [i for i, t in enumerate(etypes) if (t == EdgeType.RESIDUAL) == residual]
        if not idx:
            continue
        style = {"arrows": True, "arrowstyle": "-", "connectionstyle": "arc3,rad=-0.25"} if residual else {"arrows": False}
        nx.draw_networkx_edges(g, pos, edgelist=[(src[i], dst[i]) for i in idx], ax=ax, alpha=0.6,
                               edge_color=[_EDGE_COLORS[EdgeType(etypes[i])] for i in idx],
                               width=[0.3 + 2.2 * norms[i] for i in idx], **style)
    ntypes = graph.node_type.tolist()
    nx.draw_networkx_nodes(g, pos, ax=ax, node_size=60, node_color=[_NODE_COLORS[NodeType(t)] for t in ntypes],
                           edgecolors="black", linewidths=0.4)
    top = max(grp.size for grp in graph.layout.groups) / 2 + 0.6
    for grp in graph.layout.groups:
        act = Activation(grp.act).name.lower() if grp.act != Activation.NONE else ""
        extra = [x for x in (act, grp.norm.name.lower() + " norm" if grp.norm.value else "",
                             "global " + grp.pool.name.lower() + " pool" if grp.pool.value else "") if x]
        ax.text(grp.index, top, f"{NodeType(grp.kind).name.lower()} {grp.index}\n" + "\n".join(extra),
                ha="center", va="bottom", fontsize=7)
    handles = [Line2D([], [], color=c, lw=2, label=t.name.lower()) for t, c in _EDGE_COLORS.items()
               if t != EdgeType.CONV1D and int(t) in etypes]
    handles += [Line2D([], [], marker="o", ls="", color=c, label=t.name.lower() + " node")
                for t, c in _NODE_COLORS.items() if int(t) in ntypes]
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, -0.12), ncol=len(handles), fontsize=7,
              frameon=False)
    ax.set_title(title or f"ParameterGraph: {graph.num_nodes} nodes, {graph.num_edges} edges, "
                 f"{graph.num_parameters} parameters", fontsize=9)
    ax.set_ylim(-top - 0.5, top + 2.0)
    ax.axis("off")
    if path is not None:
        ax.figure.savefig(path, bbox_inches="tight")
        plt.close(ax.figure)
    return ax


__all__ = ["draw_parameter_graph"]
