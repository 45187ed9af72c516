r"""ComputeGraph: a network as a graph of its operations, for graph hypernetworks and architecture retrieval.

A node per operation (convolution by kind, linear, embedding, norms, attention, elementwise and shape ops,
pooling, activations ...; ids from :mod:`~weightzoo.zoo.graphs.ops`, ``OP_VOCAB_VERSION`` 1) with the
module path, the names and shapes of the parameters it owns and the shape of its output; data-flow edges
from producer to consumer; and, as in GHN-2 (Knyazev et al., 2021), *virtual edges* joining every pair
of nodes within shortest-path distance :math:`d(u, v) \le c` (default :math:`c = 50`), with the
distance as edge attribute (GHN-2 weights their messages by :math:`1/d`).

Recorded from one eager forward pass on a small example input (see :mod:`.recorder`), or from a
``torch.export`` graph (``backend="export"``). A coverage report names the node owning each parameter
and lists the parameters no node owns.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from weightzoo.errors import CheckpointError, ComputeGraphError
from weightzoo.zoo.arch.example_inputs import example_inputs
from weightzoo.zoo.formats.durable import atomic_path

from .io import read_graph_file
from .ops import OP_VOCAB_VERSION, OpType
from .recorder import RawNode, Recording, record_eager, record_export

if TYPE_CHECKING:
    import networkx as nx
    from torch_geometric.data import Data

GRAPH_FORMAT = "weightzoo.compute_graph/1"
DEFAULT_CUTOFF = 50
MAX_RANK = 6  #: shapes are stored padded with -1 to this many axes (longer shapes keep their last axes)
BACKENDS = ("eager", "export")
DIRECTIONS = ("forward", "undirected")


@dataclass(frozen=True)
class OpNode:
    """One operation: its type, the function or module class that did it, where, and what it owns."""

    op: OpType
    fn: str
    path: str
    params: tuple[tuple[str, tuple[int, ...]], ...]
    out_shape: tuple[int, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def param_count(self) -> int:
        return sum(int(np.prod(s)) for _, s in self.params)


@dataclass(frozen=True)
class Coverage:
    """Which node owns each parameter of the module.

    Attributes:
        owners: parameter name → index of the first node that used it (tied weights: every name).
        unowned: parameters no node used (never called in the forward pass, or consumed by nothing).
        shared: parameters used by more than one node (weights shared across calls) → node indices.
    """

    owners: Mapping[str, int]
    unowned: tuple[str, ...]
    shared: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return len(self.owners) + len(self.unowned)

    @property
    def fraction(self) -> float:
        """Share of parameter names owned by a node (1.0 for a module without parameters)."""
        return 1.0 if self.total == 0 else len(self.owners) / self.total

    @property
    def complete(self) -> bool:
        return not self.unowned


def _resolve(value: str, valid: tuple[str, ...], what: str) -> str:
    if value not in valid:
        raise ComputeGraphError(f"ComputeGraph: unknown {what} {value!r}; valid: {', '.join(valid)}")
    return value


def shortest_path_edges(edge_index: torch.Tensor | np.ndarray, num_nodes: int, cutoff: int = DEFAULT_CUTOFF,
                        *, directed: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    r"""All pairs :math:`(u, v)`, :math:`u \ne v`, with shortest-path distance :math:`1 \le d(u, v) \le c`.

    A breadth-first search from every node at once on sparse matrices: frontier :math:`F_d` (row = source)
    grows as :math:`F_{d+1} = (F_d A) \setminus R_d` with :math:`R_d` the pairs already reached, so time and
    memory are linear in the number of pairs found, never :math:`N \times N`. On the undirected graph the
    frontier only needs the last two levels (a neighbour of a node at distance :math:`d` is at
    :math:`d - 1`, :math:`d` or :math:`d + 1`).

    Args:
        edge_index (LongTensor or ndarray): ``[2, E]`` edges (source, target).
        num_nodes (int): number of nodes.
        cutoff (int): largest distance kept (default 50, as GHN-2).
        directed (bool): follow edges forward (default) or ignore their direction.

    Returns:
        ``(index [2, V], dist [V])``, sorted by source then target.
    """
    if not isinstance(cutoff, int) or cutoff < 1:
        raise ComputeGraphError(f"ComputeGraph: cutoff must be an int >= 1, got {cutoff!r}")
    ei = edge_index.numpy() if isinstance(edge_index, torch.Tensor) else np.asarray(edge_index)
    n = int(num_nodes)
    if n == 0 or ei.size == 0:
        return torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    keep = ei[0] != ei[1]
    src, dst = ei[0][keep], ei[1][keep]
    if not directed:
        src, dst = np.concatenate([src, dst]), np.concatenate([dst, src])
    adj = sp.csr_matrix((np.ones(src.size, dtype=np.int32), (src, dst)), shape=(n, n))
    adj.sum_duplicates()
    adj.data[:] = 1
    eye = sp.identity(n, dtype=np.int32, format="csr")
    frontier, previous, reached = eye, eye, eye
    rows, cols, dists = [], [], []
    for d in range(1, cutoff + 1):
        step = frontier @ adj
        step.data[:] = 1
        seen = (frontier + previous) if not directed else reached
        new = step - step.multiply(seen).sign()
        new.eliminate_zeros()
        if new.nnz == 0:
            break
        coo = new.tocoo()
        rows.append(coo.row)
        cols.append(coo.col)
        dists.append(np.full(coo.nnz, d, dtype=np.int64))
        if directed:
            reached = reached + new
        previous, frontier = frontier, new
    if not rows:
        return torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    r, c, dd = np.concatenate(rows), np.concatenate(cols), np.concatenate(dists)
    order = np.lexsort((c, r))
    index = torch.from_numpy(np.stack([r[order], c[order]]).astype(np.int64))
    return index, torch.from_numpy(dd[order])


class ComputeGraph:
    """A network's operations as a graph (see the module docstring).

    Build with :meth:`record` (any ``nn.Module``) or :meth:`from_spec`; read back with :meth:`load`.

    Attributes:
        nodes (list[OpNode]): operations in execution (topological) order.
        edge_index (LongTensor): ``[2, E]`` data-flow edges, producer → consumer.
        virtual_edge_index (LongTensor): ``[2, V]`` pairs within ``cutoff`` hops (``direction``).
        virtual_edge_dist (LongTensor): ``[V]`` their shortest-path distances (1 = a data-flow edge).
        coverage (Coverage): owner node of every parameter, and the parameters no node owns.
        cutoff (int), direction (str), backend (str), spec (dict | None), metadata (dict).
    """

    def __init__(self, nodes: list[OpNode], edge_index: torch.Tensor, coverage: Coverage, *,
                 cutoff: int = DEFAULT_CUTOFF, direction: str = "forward", backend: str = "eager",
                 spec: dict[str, Any] | None = None, input_shapes: list[tuple[int, ...]] | None = None,
                 metadata: dict[str, Any] | None = None,
                 virtual: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        self.nodes = list(nodes)
        self.edge_index = edge_index.to(torch.long).reshape(2, -1)
        self.coverage = coverage
        self.cutoff = cutoff
        self.direction = _resolve(direction, DIRECTIONS, "direction")
        self.backend = backend
        self.spec = spec
        self.input_shapes = [tuple(s) for s in (input_shapes or [])]
        self.metadata = dict(metadata or {})
        if virtual is None:
            virtual = shortest_path_edges(self.edge_index, len(self.nodes), cutoff,
                                          directed=self.direction == "forward")
        self.virtual_edge_index, self.virtual_edge_dist = virtual

    # --- building ---------------------------------------------------------------------------------------

    @classmethod
    def record(cls, module: nn.Module, example_input: Any = None, *, spec: Mapping[str, Any] | None = None,
               backend: str = "eager", strict: bool = False, expand_attention: bool = False,
               cutoff: int = DEFAULT_CUTOFF, direction: str = "forward",
               metadata: dict[str, Any] | None = None) -> ComputeGraph:
        """Record the operations of one forward pass of ``module``.

        Args:
            module (nn.Module): the network (weights are irrelevant; its train/eval flags are restored).
            example_input: a tensor, a tuple of positional tensors, or a dict of keyword arguments. Default:
                derived from ``spec["input_shape"]`` (batch 1), from a Hugging Face config (token ids of
                ``min(max_position_embeddings, 16)`` tokens; images of ``image_size``, else 32×32), or
                from the first parametric layer (Linear → ``in_features``, Conv → 32-pixel maps).
            spec (dict, optional): the module's architecture spec (kept with the graph).
            backend (str): ``"eager"`` (default: hooks + ``TorchFunctionMode``) or ``"export"``
                (``torch.export``; attention is always expanded there).
            strict (bool): raise :class:`~weightzoo.errors.ComputeGraphError` when some parameter is owned
                by no node (default ``False``: they are listed in ``coverage.unowned``).
            expand_attention (bool): record attention modules as their projections, matmuls and softmax
                instead of one ``ATTENTION`` node (default ``False``).
            cutoff (int): virtual-edge distance cutoff (default 50). direction (str): ``"forward"``
                (default, as GHN-2) or ``"undirected"``.
        """
        if not isinstance(module, nn.Module):
            raise ComputeGraphError(f"ComputeGraph.record needs an nn.Module, got {type(module).__name__}")
        backend = _resolve(backend, BACKENDS, "backend")
        _resolve(direction, DIRECTIONS, "direction")
        args, kwargs = example_inputs(module, example_input, spec)
        if backend == "eager":
            rec, _ = record_eager(module, args, kwargs, expand_attention=expand_attention)
        else:
            rec, _ = record_export(module, args, kwargs)
        nodes, edge_index, coverage = _assemble(rec)
        if strict and coverage.unowned:
            shown = ", ".join(coverage.unowned[:5]) + (" ..." if len(coverage.unowned) > 5 else "")
            raise ComputeGraphError(
                f"{len(coverage.unowned)} parameter(s) of {type(module).__name__} are owned by no node "
                f"(not used in the forward pass): {shown}; pass strict=False to list them in coverage.unowned",
                kind=type(module).__name__, unowned=list(coverage.unowned))
        meta = {"module": type(module).__name__, **(metadata or {})}
        return cls(nodes, edge_index, coverage, cutoff=cutoff, direction=direction, backend=backend,
                   spec=None if spec is None else dict(spec), input_shapes=rec.input_shapes, metadata=meta)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], example_input: Any = None, **kwargs: Any) -> ComputeGraph:
        """Build the module an architecture spec describes (``build_module``) and record it."""
        from weightzoo.zoo.arch import build_module

        return cls.record(build_module(spec), example_input, spec=spec, **kwargs)

    # --- views ------------------------------------------------------------------------------------------

    @property
    def num_nodes(self) -> int:
        return len(self.nodes)

    @property
    def op(self) -> torch.Tensor:
        """``[N]`` op type ids."""
        return torch.tensor([int(n.op) for n in self.nodes], dtype=torch.long)

    def op_names(self) -> list[str]:
        """Op type names in node order (``["INPUT", "CONV", "BATCH_NORM", "RELU", ...]``)."""
        return [n.op.name for n in self.nodes]

    def main_path(self) -> list[int]:
        """Node indices of the longest input → output path (the trunk of a ResNet, not its shortcuts)."""
        n = self.num_nodes
        if n == 0:
            return []
        preds: list[list[int]] = [[] for _ in range(n)]
        for s, t in self.edge_index.t().tolist():
            preds[t].append(s)
        length, back = [0] * n, [-1] * n
        for v in range(n):  # nodes are in topological order
            for u in preds[v]:
                if length[u] + 1 > length[v] or (length[u] + 1 == length[v] and u > back[v]):
                    length[v], back[v] = length[u] + 1, u
        outs = [i for i, node in enumerate(self.nodes) if node.op is OpType.OUTPUT] or [n - 1]
        v = max(outs, key=lambda i: (length[i], i))
        path = [v]
        while back[v] >= 0:
            v = back[v]
            path.append(v)
        return path[::-1]

    def _padded(self, shapes: list[tuple[int, ...]]) -> torch.Tensor:
        out = torch.full((len(shapes), MAX_RANK), -1, dtype=torch.long)
        for i, s in enumerate(shapes):
            s = tuple(s)[-MAX_RANK:]
            if s:
                out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        return out

    def param_shape(self) -> torch.Tensor:
        """``[N, 6]`` shape of each node's first (main) parameter, ``-1``-padded (all ``-1``: none)."""
        return self._padded([n.params[0][1] if n.params else () for n in self.nodes])

    def out_shape(self) -> torch.Tensor:
        """``[N, 6]`` output shape of each node (batch axis included), ``-1``-padded."""
        return self._padded([n.out_shape for n in self.nodes])

    def summary(self) -> dict[str, Any]:
        return {"nodes": self.num_nodes, "edges": int(self.edge_index.shape[1]),
                "virtual_edges": int(self.virtual_edge_index.shape[1]), "cutoff": self.cutoff,
                "parameters": len(self.coverage.owners), "unowned": list(self.coverage.unowned),
                "coverage": self.coverage.fraction, "backend": self.backend,
                "unknown_ops": sorted({str(n.attrs.get("fn", n.fn)) for n in self.nodes if n.op is OpType.OTHER})}

    def __repr__(self) -> str:
        return (f"ComputeGraph(nodes={self.num_nodes}, edges={self.edge_index.shape[1]}, "
                f"virtual_edges={self.virtual_edge_index.shape[1]}, coverage={self.coverage.fraction:.0%})")

    # --- exports ----------------------------------------------------------------------------------------

    def to_pyg(self) -> Data:
        """A ``torch_geometric.data.Data``: ``x`` = op ids ``[N]`` (for an embedding table), ``param_shape``
        and ``out_shape`` ``[N, 6]``, ``param_count`` ``[N]``, ``edge_index`` (data flow),
        ``virtual_edge_index`` and ``virtual_edge_attr`` ``[V, 1]`` (float distances)."""
        from torch_geometric.data import Data

        return Data(x=self.op, edge_index=self.edge_index.clone(), param_shape=self.param_shape(),
                    out_shape=self.out_shape(),
                    param_count=torch.tensor([n.param_count for n in self.nodes], dtype=torch.long),
                    virtual_edge_index=self.virtual_edge_index.clone(),
                    virtual_edge_attr=self.virtual_edge_dist.to(torch.float32).view(-1, 1),
                    num_nodes=self.num_nodes)

    def to_networkx(self) -> nx.DiGraph:
        """A ``networkx.DiGraph`` of the data flow; nodes carry ``op``, ``fn``, ``path``, ``params``, ``out_shape``."""
        import networkx as nx

        g = nx.DiGraph()
        for i, n in enumerate(self.nodes):
            g.add_node(i, op=n.op.name, fn=n.fn, path=n.path, params=[p for p, _ in n.params],
                       out_shape=n.out_shape)
        g.add_edges_from(self.edge_index.t().tolist())
        return g

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write one safetensors file: tensors (op ids, shapes, edges, virtual edges) plus the nodes,
        coverage, spec and metadata as JSON in ``__metadata__`` (no pickles). Durable and atomic (:mod:`weightzoo.zoo.formats.durable`)."""
        from safetensors.torch import save_file

        path = Path(path)
        tensors = {"op": self.op, "param_shape": self.param_shape(), "out_shape": self.out_shape(),
                   "edge_index": self.edge_index.contiguous(),
                   "virtual_edge_index": self.virtual_edge_index.contiguous(),
                   "virtual_edge_dist": self.virtual_edge_dist.contiguous()}
        nodes = [{"op": n.op.name, "fn": n.fn, "path": n.path, "params": [[p, list(s)] for p, s in n.params],
                  "out_shape": list(n.out_shape), "attrs": dict(n.attrs)} for n in self.nodes]
        cov = {"owners": dict(self.coverage.owners), "unowned": list(self.coverage.unowned),
               "shared": {k: list(v) for k, v in self.coverage.shared.items()}}
        meta = {"format": GRAPH_FORMAT, "op_vocab_version": str(OP_VOCAB_VERSION), "nodes": json.dumps(nodes),
                "coverage": json.dumps(cov), "cutoff": str(self.cutoff), "direction": self.direction,
                "backend": self.backend, "spec": json.dumps(self.spec),
                "input_shapes": json.dumps([list(s) for s in self.input_shapes]),
                "metadata": json.dumps(self.metadata, default=str)}
        with atomic_path(path) as tmp:
            save_file(tensors, tmp, metadata=meta)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ComputeGraph:
        """Read a graph written by :meth:`save`; raises :class:`~weightzoo.errors.CheckpointError` on a file
        that is not one (or was written with another op vocabulary version)."""
        meta, tensors = read_graph_file(path)
        if meta.get("format") != GRAPH_FORMAT:
            raise CheckpointError(path, f"not a compute graph (format {meta.get('format')!r}, expected {GRAPH_FORMAT!r})")
        if meta.get("op_vocab_version") != str(OP_VOCAB_VERSION):
            raise CheckpointError(path, f"op vocabulary version {meta.get('op_vocab_version')} is not "
                                        f"{OP_VOCAB_VERSION} (this weightzoo's)")
        try:
            raw_nodes = json.loads(meta["nodes"])
            nodes = [OpNode(OpType[d["op"]], d["fn"], d["path"], tuple((p, tuple(s)) for p, s in d["params"]),
                            tuple(d["out_shape"]), d["attrs"]) for d in raw_nodes]
            cov = json.loads(meta["coverage"])
            coverage = Coverage(cov["owners"], tuple(cov["unowned"]), {k: tuple(v) for k, v in cov["shared"].items()})
            edge_index, vindex, vdist = tensors["edge_index"], tensors["virtual_edge_index"], tensors["virtual_edge_dist"]
            n = len(nodes)
            for name, ei in (("edge_index", edge_index), ("virtual_edge_index", vindex)):
                if ei.dim() != 2 or ei.shape[0] != 2 or (ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= n)):
                    raise ValueError(f"{name} does not index {n} nodes")
            if vdist.shape != (vindex.shape[1],) or not torch.equal(tensors["op"], torch.tensor(
                    [int(x.op) for x in nodes], dtype=torch.long)):
                raise ValueError("tensors disagree with the node list")
            return cls(nodes, edge_index, coverage, cutoff=int(meta["cutoff"]), direction=meta["direction"],
                       backend=meta["backend"], spec=json.loads(meta["spec"]),
                       input_shapes=[tuple(s) for s in json.loads(meta["input_shapes"])],
                       metadata=json.loads(meta["metadata"]), virtual=(vindex, vdist))
        except (KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(path, f"bad compute graph metadata: {exc}") from exc


def _assemble(rec: Recording) -> tuple[list[OpNode], torch.Tensor, Coverage]:
    """Prune dead operations, renumber, and compute edges and coverage.

    A node is kept when it is an input or output, owns parameters, or feeds a kept node (operations whose
    result is never used — shape bookkeeping, unused branches — are dropped).
    """
    raw: list[RawNode] = rec.nodes
    keep = [n.op in (OpType.INPUT, OpType.OUTPUT) or bool(n.param_ids) for n in raw]
    for i in range(len(raw) - 1, -1, -1):
        if keep[i] and raw[i].op is not OpType.INPUT:
            for j in raw[i].inputs:
                keep[j] = True
    new_index: dict[int, int] = {}
    for i, k in enumerate(keep):
        if k:
            new_index[i] = len(new_index)
    nodes, src, dst = [], [], []
    owners: dict[str, int] = {}
    users: dict[int, list[int]] = {}
    for i, n in enumerate(raw):
        if not keep[i]:
            continue
        j = new_index[i]
        nodes.append(OpNode(n.op, n.fn, n.path, tuple(n.params), n.out_shapes[0] if n.out_shapes else (), n.attrs))
        for u in n.inputs:
            if u in new_index:
                src.append(new_index[u])
                dst.append(j)
        for pid in n.param_ids:
            users.setdefault(pid, []).append(j)
    shared: dict[str, tuple[int, ...]] = {}
    for pid, names in rec.param_names.items():
        if pid in users:
            for name in names:
                owners[name] = users[pid][0]
                if len(set(users[pid])) > 1:
                    shared[name] = tuple(sorted(set(users[pid])))
    unowned = tuple(sorted(name for pid, names in rec.param_names.items() if pid not in users for name in names))
    edge_index = torch.tensor([src, dst], dtype=torch.long) if src else torch.zeros(2, 0, dtype=torch.long)
    return nodes, edge_index, Coverage(owners, unowned, shared)


__all__ = ["BACKENDS", "ComputeGraph", "Coverage", "DEFAULT_CUTOFF", "GRAPH_FORMAT", "OpNode",
           "example_inputs", "shortest_path_edges"]
