r"""Weisfeiler–Lehman subtree features of compute graphs (Shervashidze et al., 2011; as NAS-BOWL,
Ru et al., 2021, "Interpretable neural architecture search via Bayesian optimisation with WL kernels").

Each node starts from its label (:func:`~.labels.op_label` and :func:`~.labels.shape_label`); iteration
:math:`i` relabels a node by hashing its label with the sorted multiset of its neighbours' labels
(networkx ``weisfeiler_lehman_subgraph_hashes``), once along the data flow (successors: what a node
feeds) and once against it (predecessors: what feeds it). A graph is the bag of all labels of
iterations :math:`0..h`; an index weights the bag by tf-idf over its corpus (sub-linear term frequency
:math:`1 + \log c`, :math:`\mathrm{idf} = \log\frac{1 + n}{1 + \mathrm{df}} + 1`) and compares by cosine.
The kernel is invariant to node relabelling (isomorphic graphs get equal bags).

networkx changed its hash values in 3.5: the version is part of the fingerprint, so an index built with
another networkx is rebuilt rather than silently compared.
"""

from __future__ import annotations

import warnings
from collections import Counter
from typing import Any

import networkx as nx

from weightzoo.zoo.graphs import ComputeGraph

from .encoder import Encoder
from .labels import op_label, shape_label

SCHEMES = ("op", "shape")


class WLEncoder(Encoder):
    """WL subtree token counts on op and shape labels, both edge directions.

    Args:
        iterations (int): WL depth :math:`h` (default 3).
        schemes (tuple[str, ...]): label schemes (default ``("op", "shape")``).
    """

    name = "wl"
    version = 1
    kind = "sparse"

    def __init__(self, iterations: int = 3, schemes: tuple[str, ...] = SCHEMES) -> None:
        if not isinstance(iterations, int) or iterations < 0:
            raise ValueError(f"WLEncoder: iterations must be an int >= 0, got {iterations!r}")
        bad = [s for s in schemes if s not in SCHEMES]
        if bad or not schemes:
            raise ValueError(f"WLEncoder: unknown label scheme(s) {bad}; valid: {', '.join(SCHEMES)}")
        self.iterations, self.schemes = iterations, tuple(schemes)
        self._descriptions: dict[str, str] = {}

    def settings(self) -> dict[str, Any]:
        return {"iterations": self.iterations, "schemes": list(self.schemes), "networkx": nx.__version__}

    def tokens(self, graph: ComputeGraph) -> Counter[str]:
        """Counts of ``<scheme>0:<label>`` and ``<scheme><f|b><i>:<hash>`` tokens (``i`` = 1..h)."""
        out: Counter[str] = Counter()
        g = nx.DiGraph()
        for i, node in enumerate(graph.nodes):
            g.add_node(i, op=op_label(node), shape=shape_label(node))
        g.add_edges_from(graph.edge_index.t().tolist())
        for scheme in self.schemes:
            for i in g.nodes:
                out[f"{scheme}0:{g.nodes[i][scheme]}"] += 1
            if self.iterations == 0:
                continue
            for tag, view in (("f", g), ("b", g.reverse(copy=False))):
                with warnings.catch_warnings():  # the 3.5 hash change is recorded in settings()["networkx"]
                    warnings.simplefilter("ignore", UserWarning)
                    hashes = nx.weisfeiler_lehman_subgraph_hashes(view, node_attr=scheme,
                                                                  iterations=self.iterations, digest_size=8)
                for v, hs in hashes.items():
                    for it, h in enumerate(hs, start=1):
                        tok = f"{scheme}{tag}{it}:{h}"
                        out[tok] += 1
                        if tok not in self._descriptions:
                            where = "outputs" if tag == "f" else "inputs"
                            self._descriptions[tok] = (f"{it}-hop subtree of {where} rooted at {g.nodes[v][scheme]} "
                                                       f"(e.g. {graph.nodes[v].path or graph.nodes[v].fn})")
        return out

    def describe(self, token: str) -> str:
        """``"CONV:k3x3"`` for a label token; ``"2-hop subtree of inputs rooted at ADD (e.g. cells.1)"`` for
        a hash this encoder has seen (an index stores the descriptions of its vocabulary)."""
        if token in self._descriptions:
            return self._descriptions[token]
        head, _, rest = token.partition(":")
        return rest if head.endswith("0") else token

    @property
    def descriptions(self) -> dict[str, str]:
        return dict(self._descriptions)

    def __repr__(self) -> str:
        return f"WLEncoder(iterations={self.iterations}, schemes={self.schemes})"


__all__ = ["SCHEMES", "WLEncoder"]
