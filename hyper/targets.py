r"""What a graph hypernetwork predicts for one ComputeGraph: one *target* per parameter tensor.

Every parameter a :class:`~weightzoo.zoo.graphs.ComputeGraph` node owns becomes a
:class:`ParameterTarget`: its name and shape, the node that owns it, its *kind* (which fixes how a
decoded tensor is scaled), its fan-in and the gain of the activation that follows the node in the
graph. Kinds:

==========  ================================================================  ===========================
kind        what                                                              scale of the prediction
==========  ================================================================  ===========================
weight      conv kernels, linear and attention projections (≥ 2-D, op-owned)  :math:`\sqrt{\beta/\text{fan-in}}`
bias        1-D parameter of a conv / linear / attention node                 :math:`\le 1/\sqrt{\text{fan-in}}`
norm_weight γ of a norm layer                                                 :math:`1 + \tanh(\cdot)`
norm_bias   β of a norm layer                                                 :math:`\tanh(\cdot)`
embedding   token / position embedding tables (``EMBEDDING`` op)              unit RMS (exempt from fan-in)
table       plain parameters (class tokens, position tables, layer scales)    RMS 0.02 (exempt)
==========  ================================================================  ===========================

:math:`\beta` is the squared gain (``torch.nn.init.calculate_gain``) of the first activation reached
downstream of the node through shape, pooling, norm and merge operations (2 for ReLU, 1 when a
parametric op or the output comes first), as GHN-2 scales by :math:`\sqrt{\beta/\text{fan-in}}`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from weightzoo.zoo.graphs import ComputeGraph, OpType

KINDS: tuple[str, ...] = ("weight", "bias", "norm_weight", "norm_bias", "embedding", "table")
_NORMS = {OpType.BATCH_NORM, OpType.LAYER_NORM, OpType.GROUP_NORM, OpType.RMS_NORM, OpType.INSTANCE_NORM}
_PROJECTIONS = {OpType.CONV, OpType.CONV_POINTWISE, OpType.CONV_DEPTHWISE, OpType.CONV_GROUPED,
                OpType.CONV_DILATED, OpType.CONV_TRANSPOSE, OpType.LINEAR, OpType.ATTENTION, OpType.MATMUL}
# ops a signal passes through on its way to the next activation (the gain is that activation's)
_PASS = {OpType.ADD, OpType.SUB, OpType.CONCAT, OpType.SPLIT, OpType.INDEX, OpType.MAX_POOL, OpType.AVG_POOL,
         OpType.ADAPTIVE_AVG_POOL, OpType.ADAPTIVE_MAX_POOL, OpType.GLOBAL_AVG_POOL, OpType.GLOBAL_MAX_POOL,
         OpType.DROPOUT, OpType.IDENTITY, OpType.FLATTEN, OpType.RESHAPE, OpType.PERMUTE, OpType.TRANSPOSE,
         OpType.EXPAND, OpType.PAD, OpType.INTERPOLATE, OpType.MEAN, OpType.SUM, *_NORMS}
_GAINS = {OpType.RELU: 2.0, OpType.LEAKY_RELU: 2.0 / (1 + 0.01**2), OpType.PRELU: 2.0 / (1 + 0.25**2),
          OpType.TANH: (5 / 3) ** 2, OpType.ELU: 2.0,
          OpType.GELU: 2.0, OpType.SILU: 2.0, OpType.MISH: 2.0, OpType.HARDSWISH: 2.0, OpType.SIGMOID: 1.0,
          OpType.HARDSIGMOID: 1.0, OpType.SOFTPLUS: 1.0, OpType.SINE: 1.0}
KIND_IDS = {k: i for i, k in enumerate(KINDS)}


@dataclass(frozen=True)
class ParameterTarget:
    """One parameter tensor to predict.

    Attributes:
        name (str): its name in the module's ``state_dict``.
        shape (tuple[int, ...]): its shape.
        node (int): index of the owning ComputeGraph node.
        slot (int): position among the node's parameters (0 = its main weight).
        kind (str): one of :data:`KINDS`.
        fan_in (int): inputs per output unit (in-channels per group × kernel size; 1 for 1-D).
        gain (float): squared gain β of the activation that follows.
    """

    name: str
    shape: tuple[int, ...]
    node: int
    slot: int
    kind: str
    fan_in: int
    gain: float

    @property
    def scale(self) -> float:
        """The GHN-2 scale :math:`\\sqrt{\\beta/\\text{fan-in}}` of a predicted weight."""
        return math.sqrt(self.gain / max(self.fan_in, 1))


def _kind(op: OpType, slot: int, shape: tuple[int, ...]) -> str:
    if op in _NORMS:
        return "norm_weight" if slot == 0 and len(shape) == 1 else "norm_bias" if len(shape) == 1 else "table"
    if op is OpType.EMBEDDING:
        return "embedding" if len(shape) >= 2 else "table"
    if op in _PROJECTIONS:
        return "weight" if len(shape) >= 2 else "bias"
    return "table"


def _fan_in(op: OpType, shape: tuple[int, ...]) -> int:
    if len(shape) < 2:
        return 1
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    if op is OpType.CONV_TRANSPOSE:  # weight is (in, out/groups, *k)
        return shape[0] * receptive
    return shape[1] * receptive


def downstream_gains(graph: ComputeGraph) -> list[float]:
    """β of each node: the squared gain of the first activation downstream (1.0 when none is reached)."""
    n = graph.num_nodes
    succ: list[list[int]] = [[] for _ in range(n)]
    for s, t in graph.edge_index.t().tolist():
        succ[s].append(t)
    ops = [node.op for node in graph.nodes]
    memo: dict[int, float] = {}

    def reach(v: int) -> float:  # gain seen by the output of node v (iterative over the DAG, memoised)
        stack, order, queued = [v], [], set()
        while stack:
            u = stack.pop()
            if u in memo or u in queued:
                continue
            queued.add(u)
            order.append(u)
            stack.extend(w for w in succ[u] if ops[w] in _PASS and not graph.nodes[w].params or ops[w] in _NORMS)
        for u in sorted(order, reverse=True):  # node ids are topological: successors first
            gains = []
            for w in succ[u]:
                if ops[w] in _GAINS:
                    gains.append(_GAINS[ops[w]])
                elif (ops[w] in _PASS and not graph.nodes[w].params) or ops[w] in _NORMS:
                    gains.append(memo.get(w, 1.0))
                else:
                    gains.append(1.0)
            memo[u] = max(gains) if gains else 1.0
        return memo[v]

    return [reach(i) if graph.nodes[i].params else 1.0 for i in range(n)]


def targets_of(graph: ComputeGraph) -> list[ParameterTarget]:
    """The parameters a GHN predicts for ``graph``: every one some node owns (first owner for tied weights),
    in node order."""
    gains = downstream_gains(graph)
    out: list[ParameterTarget] = []
    seen: set[str] = set()
    owners = graph.coverage.owners
    for i, node in enumerate(graph.nodes):
        main = tuple(int(s) for s in node.params[0][1]) if node.params else ()
        for slot, (name, shape) in enumerate(node.params):
            if name in seen or owners.get(name) != i:
                continue
            seen.add(name)
            shape = tuple(int(s) for s in shape)
            kind = _kind(node.op, slot, shape)
            fan_in = _fan_in(node.op, main if kind == "bias" else shape)
            out.append(ParameterTarget(name, shape, i, slot, kind, fan_in, gains[i]))
    return out


def _bucket(v: int) -> int:
    """Quantise a dimension: 0 = absent, 1..8 exact, then two buckets per octave (max 63)."""
    if v <= 0:
        return 0
    if v <= 8:
        return v
    return min(63, 8 + int(round(2 * math.log2(v / 8))))


SHAPE_BUCKETS = 64


def shape_codes(graph: ComputeGraph) -> torch.Tensor:
    """``[N, 4]`` quantised (out, in, kh, kw) of each node's main parameter (GHN-2's shape embedding input)."""
    rows = []
    for node in graph.nodes:
        shape = tuple(node.params[0][1]) if node.params else ()
        dims = list(shape[:2]) + [0] * (2 - min(2, len(shape)))
        kernel = list(shape[2:])
        if len(kernel) > 2:
            kernel = [math.prod(kernel[:-1]), kernel[-1]]
        dims += kernel + [0] * (2 - len(kernel))
        rows.append([_bucket(int(d)) for d in dims])
    return torch.tensor(rows, dtype=torch.long).reshape(-1, 4)


__all__ = ["KINDS", "KIND_IDS", "ParameterTarget", "SHAPE_BUCKETS", "downstream_gains", "shape_codes", "targets_of"]
