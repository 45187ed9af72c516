"""Node labels and numeric node features of a :class:`~weightzoo.zoo.graphs.ComputeGraph`, shared by every
retrieval encoder so that they all see an architecture the same way.

Two label schemes (strings, so that they hash stably across processes):

* **op** — the operation type, plus the kernel, stride and dilation of a convolution
  (``CONV:k3x3``, ``CONV_DEPTHWISE:k5x5:s2``): what a width-scaled copy keeps.
* **shape** — the op label plus the width bucket ``round(log2 C)`` of its output (``C`` = channels of a
  4-D feature map, else the last axis): what tells a wide network from a narrow one.

Numeric features (for the learned encoder) are scale-free: logarithms of widths and parameter counts,
kernel sides, strides and dilations.
"""

from __future__ import annotations

import math
from collections import Counter

import torch

from weightzoo.zoo.graphs import ComputeGraph, OpNode, OpType

NUM_OPS = max(int(o) for o in OpType) + 1
#: columns of :func:`numeric_features`
NUMERIC_COLUMNS = ("log2_width", "kernel", "stride", "dilation", "grouped", "log10_params", "rank")


def _ints(value: object) -> list[int]:
    if isinstance(value, int):
        return [value]
    if isinstance(value, list | tuple):
        return [int(v) for v in value if isinstance(v, int | float)]
    return []


def op_label(node: OpNode) -> str:
    """``OP`` or ``OP:k3x3[:s2][:d2]`` (convolutions, and any op whose attributes record a kernel)."""
    label = node.op.name
    kernel = _ints(node.attrs.get("kernel"))
    if kernel:
        label += ":k" + "x".join(map(str, kernel))
        stride, dilation = _ints(node.attrs.get("stride")), _ints(node.attrs.get("dilation"))
        if stride and max(stride) > 1:
            label += f":s{max(stride)}"
        if dilation and max(dilation) > 1:
            label += f":d{max(dilation)}"
    return label


def width(node: OpNode) -> int:
    """Channels of a 4-D (or 5-D) output, else its last axis; 0 for a scalar."""
    shape = node.out_shape
    if len(shape) >= 4:
        return int(shape[1])
    return int(shape[-1]) if shape else 0


def shape_label(node: OpNode) -> str:
    """``op_label`` plus ``|c<round(log2 width)>``."""
    w = width(node)
    return f"{op_label(node)}|c{round(math.log2(w)) if w > 0 else 0}"


def op_counts(graph: ComputeGraph) -> Counter[str]:
    """How many nodes of each :class:`OpType` the graph has (by name)."""
    return Counter(n.op.name for n in graph.nodes)


def parameter_count(graph: ComputeGraph) -> int:
    """Parameters owned by the graph's nodes (a weight shared by several calls counted once per owner node)."""
    return sum(n.param_count for n in graph.nodes)


def numeric_features(graph: ComputeGraph) -> torch.Tensor:
    """``[N, 7]`` scale-free node features (columns :data:`NUMERIC_COLUMNS`)."""
    rows = []
    for n in graph.nodes:
        kernel = _ints(n.attrs.get("kernel"))
        stride, dilation = _ints(n.attrs.get("stride")), _ints(n.attrs.get("dilation"))
        groups = n.attrs.get("groups")
        rows.append([math.log2(width(n) + 1) / 10.0, (max(kernel) if kernel else 0) / 7.0,
                     (max(stride) if stride else 1) - 1.0, (max(dilation) if dilation else 1) - 1.0,
                     float(isinstance(groups, int) and groups > 1), math.log10(n.param_count + 1) / 7.0,
                     len(n.out_shape) / 6.0])
    if not rows:
        return torch.zeros(0, len(NUMERIC_COLUMNS))
    return torch.tensor(rows, dtype=torch.float32)


__all__ = ["NUMERIC_COLUMNS", "NUM_OPS", "numeric_features", "op_counts", "op_label", "parameter_count", "shape_label",
           "width"]
