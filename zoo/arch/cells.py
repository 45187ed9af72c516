r"""Cell-based architectures (DARTS / DeepNets-1M style): spec format ``weightzoo.cells/1`` ⇄ ``nn.Module``.

A network is a stem, a sequence of cells and a head (global average pooling, linear). Every cell reads
the outputs of the two previous cells, :math:`s_0` and :math:`s_1`, brings both to ``C`` channels with
a 1×1 conv (stride 2 for :math:`s_0` after a reduction), and computes intermediate nodes; node *j* sums
one operation applied to each of its inputs (index 0 = :math:`s_0`, 1 = :math:`s_1`, 2 + *k* = node
*k* < *j*). The cell's output concatenates all nodes and projects them back to ``C`` channels (1×1
conv). A *reduce* cell applies its operations to :math:`s_0`/:math:`s_1` with stride 2.

Spec::

    {"format": "weightzoo.cells/1", "input_shape": [1, 8, 8], "num_classes": 10, "norm": "bn" | "none",
     "stem": {"channels": 16, "kernel": 3},
     "genotype": {"normal": [[["sep3", 0], ["id", 1]], [["conv3", 2], ["attn", 0]]],
                  "reduce": [[["max3", 0], ["conv5", 1]]]},
     "cells": [{"type": "normal", "channels": 16}, {"type": "reduce", "channels": 32}, ...]}

Operations (:data:`OPS`): ``conv3``/``conv5`` (ReLU-conv-norm), ``sep3``/``sep5`` (ReLU-depthwise-
pointwise-norm), ``dil3`` (dilated separable, dilation 2), ``max3``/``avg3`` (3×3 pooling), ``attn``
(single-head self-attention over spatial positions, 1×1 q/k/v/out projections), ``id`` (identity; a
ReLU-1×1 conv-norm when it must reduce) and ``zero``. Parameter names are deterministic
(``stem.0.weight``, ``cells.<i>.pre0.1.weight``, ``cells.<i>.edges.<e>.<k>.weight``, ``head.weight``), so
``build_cells(spec).load_state_dict(stored, strict=True)`` works for every stored model.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from weightzoo.errors import SpecError

CELLS_FORMAT = "weightzoo.cells/1"
OPS: tuple[str, ...] = ("conv3", "conv5", "sep3", "sep5", "dil3", "max3", "avg3", "attn", "id", "zero")
NORMS: tuple[str, ...] = ("bn", "none")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate_cells_spec(spec: Any) -> dict[str, Any]:
    """Check a ``weightzoo.cells/1`` spec and return a normalized deep copy (``SpecError`` naming the key)."""
    if not isinstance(spec, Mapping) or spec.get("format") != CELLS_FORMAT:
        raise SpecError(f"format: expected {CELLS_FORMAT!r}")
    allowed = {"format", "input_shape", "num_classes", "norm", "stem", "genotype", "cells"}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise SpecError(f"unknown top-level key(s) {unknown}; valid: {sorted(allowed)}")
    s = copy.deepcopy(dict(spec))
    shape = s.get("input_shape")
    if not isinstance(shape, list | tuple) or len(shape) != 3 or not all(_is_int(x) and x >= 1 for x in shape):
        raise SpecError(f"input_shape: expected [channels, height, width] of positive ints, got {shape!r}")
    s["input_shape"] = list(shape)
    if not _is_int(s.get("num_classes")) or s["num_classes"] < 1:
        raise SpecError(f"num_classes: expected a positive int, got {s.get('num_classes')!r}")
    s.setdefault("norm", "bn")
    if s["norm"] not in NORMS:
        raise SpecError(f"norm: expected one of {NORMS}, got {s['norm']!r}")
    stem = s.get("stem")
    if not isinstance(stem, Mapping) or not _is_int(stem.get("channels")) or stem["channels"] < 1 \
            or stem.get("kernel") not in (1, 3, 5, 7):
        raise SpecError(f"stem: expected {{'channels': positive int, 'kernel': 1, 3, 5 or 7}}, got {stem!r}")
    s["stem"] = {"channels": stem["channels"], "kernel": stem["kernel"]}
    geno = s.get("genotype")
    if not isinstance(geno, Mapping):
        raise SpecError("genotype: expected {'normal': [...], 'reduce': [...]}")
    cells = s.get("cells")
    if not isinstance(cells, list | tuple) or not cells:
        raise SpecError("cells: expected a non-empty list of {'type': 'normal'|'reduce', 'channels': int}")
    for i, c in enumerate(cells):
        if not isinstance(c, Mapping) or c.get("type") not in geno or not _is_int(c.get("channels")) or c["channels"] < 1:
            raise SpecError(f"cells[{i}]: expected {{'type': one of {sorted(geno)}, 'channels': positive int}}, got {c!r}")
    s["cells"] = [{"type": c["type"], "channels": c["channels"]} for c in cells]
    for kind, nodes in geno.items():
        if kind not in ("normal", "reduce"):
            raise SpecError(f"genotype.{kind}: cell types are 'normal' and 'reduce'")
        if not isinstance(nodes, list | tuple) or not nodes:
            raise SpecError(f"genotype.{kind}: expected a non-empty list of nodes")
        for j, node in enumerate(nodes):
            if not isinstance(node, list | tuple) or not node:
                raise SpecError(f"genotype.{kind}[{j}]: a node is a non-empty list of [op, input] pairs")
            for e, edge in enumerate(node):
                if (not isinstance(edge, list | tuple) or len(edge) != 2 or edge[0] not in OPS
                        or not _is_int(edge[1]) or not 0 <= edge[1] < 2 + j):
                    raise SpecError(f"genotype.{kind}[{j}][{e}]: expected [op in {OPS}, input in 0..{1 + j}], got {edge!r}")
    s["genotype"] = {k: [[[op, int(src)] for op, src in node] for node in nodes] for k, nodes in geno.items()}
    reductions = sum(c["type"] == "reduce" for c in s["cells"])
    if min(s["input_shape"][1:]) < 2 ** reductions:
        raise SpecError(f"cells: {reductions} reductions need inputs of at least {2 ** reductions} pixels, "
                        f"got {s['input_shape']}")
    return s


# --- modules -------------------------------------------------------------------------------------


def _norm(kind: str, c: int) -> nn.Module:
    return nn.BatchNorm2d(c) if kind == "bn" else nn.Identity()


class Zero(nn.Module):
    """The ``zero`` operation: zeros of the (possibly strided) input's shape."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


class SpatialSelfAttention(nn.Module):
    r"""Single-head self-attention over the :math:`HW` positions of a feature map.

    .. math:: y = W_o\, V\, \mathrm{softmax}(Q^\top K / \sqrt{d}),\quad Q = W_q x,\ K = W_k x,\ V = W_v x

    with 1×1-conv projections (:math:`d = \max(4, C/4)` for queries and keys). With ``stride`` 2 the
    input is average-pooled 2×2 first.

    Shapes: input (N, C, H, W) → output (N, C, H/stride, W/stride).
    """

    def __init__(self, channels: int, stride: int = 1) -> None:
        super().__init__()
        d = max(4, channels // 4)
        self.stride, self.d = stride, d
        self.q = nn.Conv2d(channels, d, 1)
        self.k = nn.Conv2d(channels, d, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = nn.functional.avg_pool2d(x, self.stride, ceil_mode=True)
        n, c, h, w = x.shape
        q, k, v = self.q(x).flatten(2), self.k(x).flatten(2), self.v(x).flatten(2)
        attn = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(self.d), dim=-1)  # (N, HW, HW)
        return self.out((v @ attn.transpose(1, 2)).view(n, c, h, w))


def make_op(op: str, c: int, stride: int, norm: str) -> nn.Module:
    """One cell operation on ``c`` channels (see :data:`OPS`)."""
    if op in ("conv3", "conv5"):
        k = int(op[-1])
        return nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, k, stride, k // 2, bias=norm == "none"), _norm(norm, c))
    if op in ("sep3", "sep5", "dil3"):
        k, dil = (3, 2) if op == "dil3" else (int(op[-1]), 1)
        pad = dil * (k - 1) // 2
        return nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, k, stride, pad, dilation=dil, groups=c, bias=False),
                             nn.Conv2d(c, c, 1, bias=norm == "none"), _norm(norm, c))
    if op == "max3":
        return nn.MaxPool2d(3, stride, 1)
    if op == "avg3":
        return nn.AvgPool2d(3, stride, 1, count_include_pad=False)
    if op == "attn":
        return nn.Sequential(SpatialSelfAttention(c, stride), _norm(norm, c))
    if op == "id":
        if stride == 1:
            return nn.Identity()
        return nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, 1, stride, bias=norm == "none"), _norm(norm, c))
    if op == "zero":
        return Zero(stride)
    raise SpecError(f"unknown cell operation {op!r}; valid: {', '.join(OPS)}")


class Cell(nn.Module):
    """One cell: preprocess :math:`s_0, s_1` to ``C`` channels, compute the nodes, concat and project."""

    def __init__(self, nodes: list[list[list[Any]]], c0: int, c1: int, c: int, *, reduce: bool,
                 reduce_prev: bool, norm: str) -> None:
        super().__init__()
        self.nodes = [[(str(op), int(src)) for op, src in node] for node in nodes]
        self.pre0 = nn.Sequential(nn.ReLU(), nn.Conv2d(c0, c, 1, 2 if reduce_prev else 1, bias=norm == "none"),
                                  _norm(norm, c))
        self.pre1 = nn.Sequential(nn.ReLU(), nn.Conv2d(c1, c, 1, bias=norm == "none"), _norm(norm, c))
        self.edges = nn.ModuleList(make_op(op, c, 2 if reduce and src < 2 else 1, norm)
                                   for node in self.nodes for op, src in node)
        self.proj = nn.Sequential(nn.Conv2d(c * len(self.nodes), c, 1, bias=norm == "none"), _norm(norm, c))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        e = 0
        for node in self.nodes:
            total = None
            for _op, src in node:
                y = self.edges[e](states[src])
                total = y if total is None else total + y
                e += 1
            states.append(total)  # type: ignore[arg-type]
        return self.proj(torch.cat(states[2:], 1))


class CellNetwork(nn.Module):
    """A stem, cells and a global-pooling linear head, built from a ``weightzoo.cells/1`` spec.

    Shapes: input (N, *input_shape) → logits (N, num_classes).
    """

    def __init__(self, spec: Mapping[str, Any]) -> None:
        super().__init__()
        s = validate_cells_spec(spec)
        norm, cin = s["norm"], s["input_shape"][0]
        cs, k = s["stem"]["channels"], s["stem"]["kernel"]
        self.stem = nn.Sequential(nn.Conv2d(cin, cs, k, 1, k // 2, bias=norm == "none"), _norm(norm, cs))
        c0 = c1 = cs
        reduce_prev = False
        cells = []
        for cell in s["cells"]:
            reduce = cell["type"] == "reduce"
            cells.append(Cell(s["genotype"][cell["type"]], c0, c1, cell["channels"], reduce=reduce,
                              reduce_prev=reduce_prev, norm=norm))
            c0, c1, reduce_prev = c1, cell["channels"], reduce
        self.cells = nn.ModuleList(cells)
        self.head = nn.Linear(c1, s["num_classes"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.head(s1.mean((2, 3)))


def build_cells(spec: Mapping[str, Any]) -> nn.Module:
    """The ``nn.Module`` of a ``weightzoo.cells/1`` spec (PyTorch default initialisation)."""
    return CellNetwork(spec)


def op_counts(spec: Mapping[str, Any]) -> dict[str, int]:
    """How many times each operation occurs over all cells of the network."""
    s = validate_cells_spec(spec)
    counts = dict.fromkeys(OPS, 0)
    for cell in s["cells"]:
        for node in s["genotype"][cell["type"]]:
            for op, _ in node:
                counts[op] += 1
    return counts


__all__ = ["CELLS_FORMAT", "Cell", "CellNetwork", "NORMS", "OPS", "SpatialSelfAttention", "Zero", "build_cells",
           "make_op", "op_counts", "validate_cells_spec"]
