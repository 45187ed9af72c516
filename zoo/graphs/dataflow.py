r"""The neuron layout of ANY module, from the data flow of one recorded forward pass.

The eager recorder (:mod:`.recorder`, ``keep_args=True``) gives every operation with its arguments. This
module follows the *channel spaces* through them: each axis of each recorded tensor is either positional
(batch, tokens, pixels) or indexes the neurons of one or more neuron groups. A parameterised op reading
an axis gets its input group from it and creates its output group:

* ``nn.Linear`` / HF ``Conv1D`` / ``F.linear`` / ``x @ W``: the last axis; ``nn.Conv{1,2}d`` (grouped,
  depthwise, transposed): axis 1; ``nn.Embedding``: a table (EMBEDDING chunk nodes → dims);
* norms (batch, layer, group, RMS, instance): their parameters are node features of the channel group
  they normalise (a new group with NORM edges when that group already carries some), BatchNorm running
  statistics too;
* residual adds tie two spaces (RESIDUAL identity edges), gating products (squeeze-and-excitation) tie
  them with GATE edges, concatenations make an axis of several *segments* (SEGMENT edges into a concat
  group when a layer reads it), slices of a fused layer (``qkv.chunk(3)``) make part groups;
* reshapes split an axis into heads × head-dims (attention) or flatten a channel map into features
  (FLATTEN nodes, as neural graphs do); permutes and transposes move axes; pooling, padding and
  interpolation keep the channel axis;
* plain parameters used in ``forward`` (class tokens, position tables, layer-scale vectors) are tables
  bound to the channel space they broadcast over (PARAMETER chunk nodes → channels); parameters the pass
  never touches are isolated UNUSED nodes, so every tensor is in the graph and the round trip is exact.

The same pass collects the *symmetry constraints*: which groups must share a permutation (union-find
over adds, products, contractions such as :math:`qk^\top`, depthwise convs), which are split into heads
(whole-head permutations shared by q, k and v; q/k dims tied), which are concatenations or slices of
others (their permutation is the concatenation of their parts'), and which are fixed and why (network
inputs and outputs, an op whose effect on channels is not known, a constant or reshape that mixes
channels with positions). :mod:`weightzoo.zoo.symmetry.any_module` samples and applies permutations
from them. Anything not understood is conservative: it fixes the channels it touches, never guesses.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from weightzoo.errors import SpecError, UnsupportedLayerError

from .layout_types import Layout, NeuronGroup, ParamSlot, Skipped, StructEdges
from .ops import OpType
from .recorder import RawNode, Recording
from .slot_edges import slot_edge_count
from .vocab import Activation, EdgeType, NodeType, Norm, Pool

RECORDED_FORMAT = "weightzoo.recorded/1"

# an axis: a tuple of segments (group, part); part is "full", or for an axis split into heads "head"/"dim",
# or "split3"/"head3"/"dim3" for a fused q|k|v axis reshaped to (3, heads, head_dim)
Seg = tuple[int, str]
Axis = tuple[Seg, ...] | None

_UNARY_OPS = {OpType.RELU, OpType.GELU, OpType.SILU, OpType.TANH, OpType.SIGMOID, OpType.LEAKY_RELU,
              OpType.HARDSWISH, OpType.HARDSIGMOID, OpType.ELU, OpType.SOFTPLUS, OpType.MISH, OpType.SINE,
              OpType.SOFTMAX, OpType.DROPOUT, OpType.IDENTITY, OpType.EXP, OpType.LOG, OpType.NEG, OpType.CLAMP,
              OpType.SIN, OpType.SQRT, OpType.POW, OpType.NORMALIZE}
_UNARY_NAMES = {"abs", "erf", "erfc", "reciprocal", "sign", "floor", "ceil", "round", "exp2", "logsigmoid",
                "softsign", "hardshrink", "softshrink", "tanhshrink", "nan_to_num", "float_power", "trunc",
                "sgn", "gelu", "relu6", "selu", "celu", "silu", "sigmoid", "log_sigmoid", "square", "cos", "sinh",
                "cosh", "atan", "asin", "acos", "frac", "threshold"}
_BINARY_OPS = {OpType.ADD, OpType.SUB, OpType.MUL, OpType.DIV, OpType.WHERE}
_BINARY_NAMES = {"maximum", "minimum", "fmax", "fmin", "addcmul", "addcdiv", "lerp", "remainder", "fmod",
                 "atan2", "hypot", "copysign", "xlogy", "masked_fill"}
_REDUCE_NAMES = {"mean", "nanmean", "sum", "nansum", "var", "std", "amax", "amin", "norm", "logsumexp", "prod",
                 "all", "any", "max", "min", "var_mean", "std_mean", "count_nonzero", "vector_norm"}
_ORDER_NAMES = {"max", "min", "argmax", "argmin", "sort", "argsort", "topk", "cummax", "cummin", "cumsum",
                "cumprod", "kthvalue", "median", "mode"}
_POOL_OPS = {OpType.MAX_POOL, OpType.AVG_POOL, OpType.ADAPTIVE_AVG_POOL, OpType.ADAPTIVE_MAX_POOL,
             OpType.INTERPOLATE}
_MHA_SIGNATURE = inspect.signature(F.multi_head_attention_forward)
_SDPA_PARAMS = ("query", "key", "value", "attn_mask")


@dataclass
class _Value:
    """What the analysis knows about one recorded tensor: its shape and the space of each axis."""

    shape: tuple[int, ...]
    axes: list[Axis]
    inp: bool = False  # the network's input (or positional reshapes of it): layers reading it create INPUT groups
    node: int = -1


@dataclass
class Constraints:
    """Symmetry constraints between the groups of a recorded layout (JSON-able, saved with the graph)."""

    ties: list[tuple[int, int]] = field(default_factory=list)  # groups sharing one permutation
    head_ties: list[tuple[int, int]] = field(default_factory=list)  # groups sharing their head permutation
    heads: dict[int, int] = field(default_factory=dict)  # group -> number of heads its axis is split into
    parts: dict[int, list[int]] = field(default_factory=dict)  # group -> the groups it concatenates
    fixed: dict[int, str] = field(default_factory=dict)  # group -> why no permutation may move it
    heads_fixed: dict[int, str] = field(default_factory=dict)  # group -> why its heads may not move
    dims_fixed: dict[int, str] = field(default_factory=dict)  # group -> why dims inside its heads may not move
    bind: dict[str, list[int | None]] = field(default_factory=dict)  # tensor -> group of each axis
    #: group -> how ops read values carrying it, ``"<use>@<node that made the value>"`` (:func:`_use_of`;
    #: sign/scale symmetries need it)
    uses: dict[int, set[str]] = field(default_factory=dict)
    made: dict[int, int] = field(default_factory=dict)  # group -> the node of the dense layer that outputs it
    labels: list[str] = field(default_factory=list)  # group -> where it comes from (module path and op)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class _Builder:
    """One pass over a recording with ``keep_args`` (see the module docstring)."""

    def __init__(self, root: nn.Module, rec: Recording, pack: int) -> None:
        self.root, self.rec, self.pack = root, rec, pack
        self.groups: list[NeuronGroup] = []
        self.slots: list[ParamSlot] = []
        self.struct: list[StructEdges] = []
        self.grouped: list[tuple[int, int, int]] = []
        self.group_norms: list[tuple[int, int]] = []
        self.skipped: list[Skipped] = []
        self.breaks: list[dict[str, str]] = []
        self.unplaced: list[dict[str, Any]] = []  # parameters an op uses in a way the graph cannot show
        self.shared: list[str] = []
        self.c = Constraints()
        self.n_nodes = 0
        self.n_edges = 0
        self.values: dict[tuple[int, int], _Value] = {}
        self.placed: dict[int, list[int | None]] = {}  # param id -> binding of its axes
        self.cols: dict[int, set[int]] = {}
        self.composites: dict[tuple[Seg, ...], int] = {}
        self.split_parts: dict[tuple[int, tuple[int, ...]], list[int]] = {}
        self.input_groups: dict[tuple[int, int], int] = {}
        self.split3: dict[int, int] = {}  # fused q|k|v group -> heads
        self.flattened: dict[tuple[int, int], int] = {}  # (channel group, positions) -> FLATTEN group
        self.modules = dict(root.named_modules(remove_duplicate=False))
        self.tensors = dict(root.named_parameters(remove_duplicate=False))
        self.buffers = dict(root.named_buffers(remove_duplicate=False))
        self.sd_names = set(root.state_dict().keys())

    # --- groups ---------------------------------------------------------------------------------------
    def group(self, size: int, kind: NodeType, label: str, *, mode: str = "features", fixed: str | None = None,
              **kw: Any) -> int:
        g = NeuronGroup(index=len(self.groups), size=int(size), kind=kind, start=self.n_nodes, mode=mode, **kw)
        self.groups.append(g)
        self.n_nodes += int(size)
        self.c.labels.append(label)
        if fixed is not None:
            self.c.fixed.setdefault(g.index, fixed)
        return g.index

    def set(self, g: int, **changes: Any) -> None:
        from dataclasses import replace

        self.groups[g] = replace(self.groups[g], **changes)

    def fix(self, ax: Axis, reason: str) -> None:
        for g, part in ax or ():
            if part in ("head", "head3"):
                self.c.heads_fixed.setdefault(g, reason)
            elif part in ("dim", "dim3"):  # whole heads may still move (rotary tables are the same for every head)
                self.c.dims_fixed.setdefault(g, reason)
            else:
                self.c.fixed.setdefault(g, reason)

    def fix_value(self, v: _Value | None, reason: str) -> None:
        if v is not None:
            for ax in v.axes:
                self.fix(ax, reason)

    def struct_edges(self, etype: EdgeType, src: int, dst: int, count: int, *, src_offset: int = 0,
                     dst_offset: int = 0) -> None:
        self.struct.append(StructEdges(etype, src, dst, self.n_edges, count, src_offset=src_offset,
                                       dst_offset=dst_offset))
        self.n_edges += count

    def size(self, seg: Seg) -> int:
        g, part = seg
        n = self.groups[g].size
        h = self.c.heads.get(g, 1)
        if part in ("head", "head3"):
            return h
        if part in ("dim", "dim3"):
            return n // h
        if part == "split3":
            return 3
        return n

    def tie(self, a: Axis, b: Axis, reason: str) -> None:
        """Two axes that meet elementwise or in a contraction must be permuted alike."""
        if a is None and b is None:
            return
        if a is None or b is None:
            self.fix(a if a is not None else b, reason)
            return
        if len(a) == len(b) and all(self.size(x) == self.size(y) and x[1] == y[1] and
                                    (x[1] == "full" or self.groups[x[0]].size == self.groups[y[0]].size)
                                    for x, y in zip(a, b)):
            for (ga, pa), (gb, _) in zip(a, b):
                if ga == gb:
                    continue
                if pa == "head":
                    self.c.head_ties.append((ga, gb))
                else:
                    self.c.ties.append((ga, gb))
            return
        self.fix(a, reason)
        self.fix(b, reason)

    def need_group(self, v: _Value, axis: int, where: str) -> int:
        """The single group whose nodes an op reading ``axis`` of ``v`` takes as its inputs."""
        ax = v.axes[axis]
        n = v.shape[axis]
        if ax is None:
            if v.inp:
                ikey = (v.node, axis % len(v.shape))
                if ikey not in self.input_groups:
                    mode = "channels" if axis % len(v.shape) == 1 and len(v.shape) > 2 else "features"
                    self.input_groups[ikey] = self.group(n, NodeType.INPUT, "input", mode=mode, fixed="network input")
                return self.input_groups[ikey]
            self.breaks.append({"path": where, "reason": "the channels it reads come from an op whose effect on "
                                                         "channels is not known; its inputs start a fixed group"})
            return self.group(n, NodeType.HIDDEN, f"{where} (input after a break)", fixed="after a break")
        if len(ax) == 1 and ax[0][1] == "full":
            return ax[0][0]
        if all(p == "full" for _, p in ax):
            key = tuple(ax)
            if key not in self.composites:
                cg = self.group(n, NodeType.HIDDEN, f"{where} (concatenation)")
                off = 0
                for seg_g, _ in ax:
                    self.struct_edges(EdgeType.SEGMENT, seg_g, cg, self.groups[seg_g].size, dst_offset=off)
                    off += self.groups[seg_g].size
                self.c.parts[cg] = [seg_g for seg_g, _ in ax]
                self.composites[key] = cg
            return self.composites[key]
        self.fix(ax, f"{where} reads a head-split axis as features")
        self.breaks.append({"path": where, "reason": "reads an axis split into heads as one feature axis"})
        return self.group(n, NodeType.HIDDEN, f"{where} (input after a break)", fixed="after a break")

    # --- parameters -----------------------------------------------------------------------------------
    def pname(self, pid: int) -> str:
        return self.rec.param_names[pid][0]

    def bind(self, pid: int, binding: list[int | None], where: str) -> bool:
        """Record which group each axis of a parameter indexes; False if it was placed before (weight sharing:
        the new use is tied to the first)."""
        old = self.placed.get(pid)
        if old is None:
            self.placed[pid] = list(binding)
            for name in self.rec.param_names[pid]:
                self.c.bind[name] = list(binding)
            return True
        self.shared.append(f"{self.pname(pid)} (again at {where or '<root>'})")
        for a, b in zip(old, binding):
            if a is not None and b is not None and a != b:
                if self.groups[a].size == self.groups[b].size:
                    self.c.ties.append((a, b))
                else:
                    self.c.fixed.setdefault(a, "shared parameter")
                    self.c.fixed.setdefault(b, "shared parameter")
            elif (a is None) != (b is None):
                for g in (a, b):
                    if g is not None:
                        self.c.fixed.setdefault(g, f"parameter {self.pname(pid)} is shared with another layout")
        return False

    def vector(self, pid: int, g: int, role: str, column: int, where: str) -> None:
        """A per-channel vector (bias, norm weight/bias) as a node-feature column of group ``g`` (a table
        when that column is taken)."""
        if not self.bind(pid, [g], where):
            return
        name = self.pname(pid)
        used = self.cols.setdefault(g, set())
        if column in used:
            self.table(name, 0, g)
            return
        used.add(column)
        self.slots.append(ParamSlot(name, role, (self.groups[g].size,), out_group=g, column=column))

    def buffer_vector(self, name: str, g: int, role: str, column: int) -> None:
        used = self.cols.setdefault(g, set())
        self.c.bind[name] = [g]
        if column in used:
            self.table(name, 0, g)
            return
        used.add(column)
        self.slots.append(ParamSlot(name, role, (self.groups[g].size,), out_group=g, column=column))

    def table(self, name: str, axis: int, g: int, shape: tuple[int, ...] | None = None) -> None:
        """A plain tensor as PARAMETER chunks (``pack`` rows each) → the nodes of ``g`` along ``axis``."""
        shape = tuple(shape if shape is not None else self._shape(name))
        d = shape[axis] if shape else 1
        rows = math.prod(shape) // max(d, 1) if shape else 1
        chunks = self.group(_ceil_div(rows, self.pack), NodeType.PARAMETER, f"{name} (rows)", fixed="parameter rows")
        self.slots.append(ParamSlot(name, "table", shape, out_group=g, in_group=chunks, edge_type=EdgeType.PARAMETER,
                                    edge_start=self.n_edges, axis=axis % len(shape) if shape else -1,
                                    pack=self.pack))
        self.n_edges += _ceil_div(rows, self.pack) * d

    def isolated(self, name: str, kind: NodeType, reason: str) -> None:
        """A tensor no op could place: its own fixed nodes (one per last-axis entry), exact values as a table."""
        shape = self._shape(name)
        d = shape[-1] if shape else 1
        g = self.group(d, kind, f"{name} ({reason})", fixed=reason)
        self.table(name, -1, g, shape)
        self.c.bind.setdefault(name, [None] * len(shape))

    def _shape(self, name: str) -> tuple[int, ...]:
        t: torch.Tensor | None = self.tensors.get(name)
        if t is None:
            t = self.buffers[name]
        return tuple(int(s) for s in t.shape)

    def param_axes(self, ref: Any, target_ndim: int) -> list[int | None] | None:
        """For a parameter reference ``("p", id, ops, shape)`` used as an operand: the parameter axis each of
        the final tensor's axes (right-aligned to ``target_ndim``) comes from, ``None`` for broadcast/new
        axes; ``None`` when the ops between parameter and use are not understood."""
        _, pid, ops, final = ref
        shape = self._shape(self.pname(pid))
        if ops is None:
            return None
        amap: list[int | None] = list(range(len(shape)))
        cur = list(shape)
        for op in ops:
            name, rest, kw = op[0], op[1], op[2]
            if name in ("expand", "expand_as", "broadcast_to", "to", "contiguous", "float", "type_as", "detach",
                        "clone", "requires_grad"):
                if name in ("expand", "expand_as", "broadcast_to"):
                    new = op_shape(rest, kw)
                    if new is None:
                        return None
                    pad = len(new) - len(cur)
                    head: list[int | None] = [None] * pad
                    amap = head + amap
                    cur = [c if n == -1 else n for c, n in zip([1] * pad + cur, new)]
                    amap = [a if c > 1 and (a is None or shape[a] == c) else (a if c > 1 else None)
                            for a, c in zip(amap, cur)]
                continue
            if name in ("unsqueeze",):
                d = rest[0] if rest else kw.get("dim")
                if not isinstance(d, int):
                    return None
                d = d % (len(cur) + 1)
                amap.insert(d, None)
                cur.insert(d, 1)
                continue
            if name in ("view", "reshape", "squeeze", "flatten"):
                return None if final is None else _squeeze_map(shape, amap, cur, tuple(final))
            if name in ("t", "mt", "numpy_t") and len(cur) == 2:
                amap, cur = amap[::-1], cur[::-1]
                continue
            if name in ("transpose", "swapaxes", "swapdims"):
                d0, d1 = (rest + (None, None))[:2]
                if not isinstance(d0, int) or not isinstance(d1, int):
                    return None
                d0, d1 = d0 % len(cur), d1 % len(cur)
                amap[d0], amap[d1] = amap[d1], amap[d0]
                cur[d0], cur[d1] = cur[d1], cur[d0]
                continue
            if name == "permute":
                dims = rest[0] if len(rest) == 1 and isinstance(rest[0], tuple) else rest
                if not all(isinstance(d, int) for d in dims) or len(dims) != len(cur):
                    return None
                amap = [amap[d % len(cur)] for d in dims]
                cur = [cur[d % len(cur)] for d in dims]
                continue
            if name == "getitem" and final is not None:
                idx = rest[0] if rest else None
                sub = _simple_index(idx, len(cur))
                if sub is None:
                    return None
                new_map: list[int | None] = []
                for kind, i in sub:
                    if kind == "new":
                        new_map.append(None)
                    elif kind == "keep":
                        new_map.append(amap[i])
                    elif kind == "slice":
                        new_map.append(None)  # a partial slice: the axis no longer indexes whole channels
                amap = new_map
                cur = list(final) if len(final) == len(amap) else cur
                continue
            return None
        pad = target_ndim - len(amap)
        if pad < 0:
            return None
        out = [None] * pad + amap
        final_shape = [1] * pad + list(final or cur)
        return [a if s > 1 else None for a, s in zip(out, final_shape)]

    # --- the pass -------------------------------------------------------------------------------------
    def run(self) -> None:
        for i, node in enumerate(self.rec.nodes):
            seen = self.carried(node)
            try:
                self.node(i, node)
            except _Opaque as exc:
                self.opaque(i, node, str(exc))
            self.note_uses(i, node, seen)
        self.leftovers()

    def carried(self, node: RawNode) -> list[tuple[bool, int, int, int, bool, int]]:
        """(is the data argument, axis, rank, group, whole axis, node that made the value) for every group the
        node's inputs carry."""
        d = node.detail or {}
        args, kwargs = d.get("args", ()), d.get("kwargs", {})
        data = args[0] if args else next(iter(kwargs.values()), None)
        out = []
        for ref in _refs(d):
            v = self.value(ref) if ref[0] == "v" else None
            if v is None:
                continue
            for a, ax in enumerate(v.axes):
                segs = ax or ()
                for g, part in segs:
                    out.append((ref == data, a, len(v.shape), g, part == "full" and len(segs) == 1, v.node))
        return out

    def note_uses(self, i: int, node: RawNode, seen: list[tuple[bool, int, int, int, bool, int]]) -> None:
        """Record how node ``i`` reads each group its inputs carry (:attr:`Constraints.uses`)."""
        if not seen:
            return
        kept: set[int] = set()  # groups (or the channels of flattened groups) the outputs still carry whole
        for k in range(len(node.out_shapes)):
            v = self.values.get((i, k))
            for ax in (v.axes if v is not None else ()):
                if ax is not None and len(ax) == 1 and ax[0][1] == "full":
                    g = ax[0][0]
                    kept.add(g)
                    cg = self.groups[g].channel_group
                    if self.groups[g].kind == NodeType.FLATTEN and cg is not None:
                        kept.add(cg)
        for is_data, axis, rank, g, whole, src in seen:
            self.c.uses.setdefault(g, set()).add(f"{_use_of(node, is_data, axis, rank, whole, g in kept)}@{src}")

    def value(self, ref: Any) -> _Value | None:
        if isinstance(ref, tuple) and ref and ref[0] == "v":
            return self.values.get((ref[1], ref[2]))
        return None

    def set_out(self, i: int, k: int, v: _Value) -> None:
        node = self.rec.nodes[i]
        if k < len(node.out_shapes) and tuple(v.shape) != tuple(node.out_shapes[k]):
            raise _Opaque(f"shape bookkeeping lost at {node.fn}")
        v.node = i
        self.values[(i, k)] = v

    def opaque(self, i: int, node: RawNode, reason: str) -> None:
        """An op the analysis does not follow: its inputs' channels are fixed, its outputs have no spaces,
        and the parameters it uses are isolated (listed as skipped)."""
        for ref in _refs(node.detail):
            if ref[0] == "v":
                self.fix_value(self.value(ref), f"{node.fn} at {node.path or '<root>'}: {reason}")
        inp = all((self.value(r) is not None and self.value(r).inp) for r in _refs(node.detail) if r[0] == "v")  # type: ignore[union-attr]
        for k, shp in enumerate(node.out_shapes):
            self.values[(i, k)] = _Value(tuple(shp), [None] * len(shp), inp=inp and not node.param_ids, node=i)
        new = [pid for pid in node.param_ids if pid not in self.placed]
        if new:
            path = node.path
            mod = self.modules.get(path)
            names = tuple(n for pid in new for n in self.rec.param_names[pid])
            self.skipped.append(Skipped(path or "<root>", type(mod).__name__ if mod is not None else node.fn, names))
            self.unplaced.append({"path": path or "<root>", "module": type(mod).__name__ if mod is not None else "",
                                  "op": node.fn, "tensors": list(names), "reason": reason})
            for pid in new:
                self.placed[pid] = [None] * len(self._shape(self.pname(pid)))
                for n in self.rec.param_names[pid]:
                    self.c.bind[n] = list(self.placed[pid])
                self.isolated(self.pname(pid), NodeType.HIDDEN, f"used by {node.fn}: {reason}")

    def node(self, i: int, node: RawNode) -> None:
        d = node.detail or {}
        args, kwargs = d.get("args", ()), d.get("kwargs", {})
        if node.op is OpType.INPUT:
            shp = tuple(node.out_shapes[0])
            self.values[(i, 0)] = _Value(shp, [None] * len(shp), inp=True, node=i)
            return
        if node.op is OpType.OUTPUT:
            v = self.value(args[0]) if args else None
            if v is not None:
                for ax in v.axes:
                    if ax is not None and len(ax) == 1 and ax[0][1] == "full":
                        g = ax[0][0]
                        if self.groups[g].kind == NodeType.HIDDEN:
                            self.set(g, kind=NodeType.OUTPUT)
                self.fix_value(v, "network output")
            return
        if d.get("name") == "module":
            self.module_node(i, node, args, kwargs)
            return
        self.function_node(i, node, d["name"], args, kwargs)

    # --- leaf modules ---------------------------------------------------------------------------------
    def module_node(self, i: int, node: RawNode, args: Any, kwargs: Any) -> None:
        m = self.modules[node.path]
        x_ref = args[0] if args else next(iter(kwargs.values()), None)
        v = self.value(x_ref)
        if v is None and isinstance(x_ref, tuple) and x_ref and x_ref[0] == "c":
            # a constant input (position ids, relative-position buckets): like a network input
            v = _Value(tuple(x_ref[1]), [None] * len(x_ref[1]), inp=True, node=-2 - i)
        own = [(n, p) for n, p in m.named_parameters(recurse=True)]
        other_params = [pid for pid in node.param_ids if pid not in {id(p) for _, p in own}]
        if v is None:
            if node.param_ids or any(r[0] == "v" for r in _refs(node.detail)):
                raise _Opaque("its input is not a recorded tensor")
            raise _Opaque("no input")
        if other_params:
            raise _Opaque("uses parameters of other modules")
        prefix = f"{node.path}." if node.path else ""
        full = {n: prefix + n for n, _ in own}
        ids = {n: id(p) for n, p in own}
        if isinstance(m, nn.Linear) or (type(m).__name__ == "Conv1D" and hasattr(m, "nf")):
            in_major = not isinstance(m, nn.Linear)
            self.linear(i, v, -1, ids["weight"], ids.get("bias"), node.path, in_major=in_major)
        elif isinstance(m, nn.modules.conv._ConvNd):
            self.conv(i, v, m, ids["weight"], ids.get("bias"), node.path)
        elif isinstance(m, nn.Embedding):
            self.embedding(i, v, ids["weight"], node.path)
        elif node.op in (OpType.BATCH_NORM, OpType.LAYER_NORM, OpType.GROUP_NORM, OpType.RMS_NORM,
                         OpType.INSTANCE_NORM):
            self.norm(i, v, m, node, ids, full)
        elif isinstance(m, nn.PReLU):
            w = ids["weight"]
            n = m.num_parameters
            if n == 1:
                self.bind(w, [None], node.path)
                self.isolated(full["weight"], NodeType.PARAMETER, "a shared PReLU slope")
                self.set_out(i, 0, _Value(v.shape, list(v.axes), node=i))
            else:
                g = self.need_group(v, 1, node.path)
                if self.bind(w, [g], node.path):
                    self.table(full["weight"], 0, g)
                self.set_out(i, 0, _Value(v.shape, list(v.axes), node=i))
        elif not own:  # activations, identity
            self.activation(v, node.op)
            for k, shp in enumerate(node.out_shapes):
                self.set_out(i, k, _Value(tuple(shp), list(v.axes) if tuple(shp) == v.shape else [None] * len(shp),
                                          inp=v.inp, node=i))
        else:
            raise _Opaque(f"leaf module {type(m).__name__} is not covered")

    def activation(self, v: _Value, op: OpType) -> None:
        act = {OpType.RELU: Activation.RELU, OpType.GELU: Activation.GELU, OpType.SILU: Activation.SILU,
               OpType.TANH: Activation.TANH, OpType.SIGMOID: Activation.SIGMOID,
               OpType.LEAKY_RELU: Activation.LEAKY_RELU, OpType.SINE: Activation.SINE}.get(op)
        if act is None:
            return
        for ax in v.axes:
            if ax is not None and len(ax) == 1 and ax[0][1] == "full":
                g = ax[0][0]
                if self.groups[g].act == Activation.NONE:
                    self.set(g, act=act)

    def linear(self, i: int, v: _Value, axis: int, w: int, b: int | None, where: str, *, in_major: bool = False,
               etype: EdgeType = EdgeType.LINEAR) -> None:
        wshape = self._shape(self.pname(w))
        n_out = wshape[1] if in_major else wshape[0]
        gin = self.need_group(v, axis, where)
        out_shape = tuple(self.rec.nodes[i].out_shapes[0])
        gout = self.group(n_out, NodeType.HIDDEN, f"{where or '<root>'} ({'linear'})")
        self.c.made[gout] = i
        if self.bind(w, [gin, gout] if in_major else [gout, gin], where):
            self.slots.append(ParamSlot(self.pname(w), "weight", wshape, out_group=gout, in_group=gin,
                                        edge_type=etype, edge_start=self.n_edges, in_major=in_major))
            self.n_edges += wshape[0] * wshape[1]
        if b is not None:
            self.vector(b, gout, "bias", 0, where)
        axes = list(v.axes)
        axes[axis] = ((gout, "full"),)
        self.set_out(i, 0, _Value(out_shape, axes, node=i))

    def conv(self, i: int, v: _Value, m: nn.modules.conv._ConvNd, w: int, b: int | None, where: str) -> None:
        if len(m.kernel_size) > 2:
            raise UnsupportedLayerError(where, type(m).__name__, "3-D kernels do not fit a 2-D edge window")
        wshape = self._shape(self.pname(w))
        groups, transposed = int(m.groups), bool(m.transposed)
        gin = self.need_group(v, 1, where)
        gout = self.group(int(m.out_channels), NodeType.HIDDEN, f"{where} (conv)", mode="channels")
        self.c.made[gout] = i
        etype = EdgeType.CONV1D if len(m.kernel_size) == 1 else EdgeType.CONV2D
        if groups == 1:
            binding: list[int | None] = [gin, gout] if transposed else [gout, gin]
        else:
            self.grouped.append((gin, gout, groups))
            binding = [gin, None] if transposed else [gout, None]
            if groups == m.in_channels == m.out_channels:
                self.c.ties.append((gin, gout))  # depthwise: channel c only reads channel c
            else:
                why = f"grouped conv {where} ({groups} groups)"
                self.c.fixed.setdefault(gin, why)
                self.c.fixed.setdefault(gout, why)
        binding += [None] * (len(wshape) - 2)
        if self.bind(w, binding, where):
            self.slots.append(ParamSlot(self.pname(w), "weight", wshape, out_group=gout, in_group=gin, groups=groups,
                                        edge_type=etype, edge_start=self.n_edges, in_major=transposed))
            self.n_edges += wshape[0] * wshape[1]
        if b is not None:
            self.vector(b, gout, "bias", 0, where)
        axes = list(v.axes)
        axes[1] = ((gout, "full"),)
        for k in range(2, len(axes)):
            axes[k] = None
        self.set_out(i, 0, _Value(tuple(self.rec.nodes[i].out_shapes[0]), axes, node=i))

    def embedding(self, i: int, v: _Value, w: int, where: str) -> None:
        name = self.pname(w)
        vocab, d = self._shape(name)
        gout = self.group(d, NodeType.HIDDEN, f"{where} (embedding)")
        if self.bind(w, [None, gout], where):
            chunks = self.group(_ceil_div(vocab, self.pack), NodeType.EMBEDDING, f"{name} (rows)",
                                fixed="embedding rows")
            self.slots.append(ParamSlot(name, "embedding", (vocab, d), out_group=gout, in_group=chunks,
                                        edge_type=EdgeType.EMBEDDING, edge_start=self.n_edges, pack=self.pack))
            self.n_edges += _ceil_div(vocab, self.pack) * d
        self.fix_value(v, f"token ids read by {where}")
        self.set_out(i, 0, _Value(tuple(self.rec.nodes[i].out_shapes[0]), list(v.axes) + [((gout, "full"),)],
                                  node=i))

    def norm(self, i: int, v: _Value, m: nn.Module, node: RawNode, ids: dict[str, int], full: dict[str, str]) -> None:
        op, where = node.op, node.path
        size = None
        for n in ("weight", "bias"):
            if n in ids:
                size = self._shape(full[n])[0] if self._shape(full[n]) else None
                break
        nd = len(v.shape)
        if op in (OpType.BATCH_NORM, OpType.GROUP_NORM, OpType.INSTANCE_NORM):
            axis = 1 if nd > 1 else 0
        else:
            axis = nd - 1
            shape_ns = getattr(m, "normalized_shape", None)
            if isinstance(shape_ns, tuple) and len(shape_ns) > 1:
                raise _Opaque("layer norm over several axes")
            if getattr(m, "data_format", None) == "channels_first":  # HF ConvNextLayerNorm and the like
                axis = 1
            elif getattr(m, "data_format", None) == "channels_last":
                axis = nd - 1
            elif type(m).forward is not nn.LayerNorm.forward and isinstance(m, nn.LayerNorm):
                # a LayerNorm subclass with its own forward (channels-first LayerNorm2d): find the axis by size
                hits = [a for a in range(1, nd) if v.shape[a] == size]
                if len(hits) != 1:
                    raise _Opaque(f"cannot tell which axis {type(m).__name__} normalises")
                axis = hits[0]
        if size is not None and v.shape[axis] != size:
            raise _Opaque(f"{type(m).__name__} parameters do not match axis {axis}")
        kind = {OpType.BATCH_NORM: Norm.BATCH, OpType.LAYER_NORM: Norm.LAYER, OpType.GROUP_NORM: Norm.GROUP,
                OpType.RMS_NORM: Norm.RMS, OpType.INSTANCE_NORM: Norm.NONE}[op]
        g = self.need_group(v, axis, where)
        gr = self.groups[g]
        used = self.cols.get(g, set())
        if gr.norm != Norm.NONE or used & {1, 2, 3, 4}:
            ng = self.group(gr.size, NodeType.HIDDEN, f"{where} (norm)", mode=gr.mode)
            self.struct_edges(EdgeType.NORM, g, ng, gr.size)
            self.c.ties.append((g, ng))
            g = ng
        self.set(g, norm=kind, norm_prefix=where, norm_affine=bool(ids))
        if isinstance(m, nn.GroupNorm):
            self.group_norms.append((g, int(m.num_groups)))
            if 1 < m.num_groups < m.num_channels:
                self.c.fixed.setdefault(g, f"group norm {where} ({m.num_groups} groups)")
        for n, pid in ids.items():
            if n == "weight":
                self.vector(pid, g, "norm_weight", 1, where)
            elif n == "bias":
                self.vector(pid, g, "norm_bias", 2, where)
            elif self.bind(pid, [g], where):
                self.table(full[n], 0, g)
        prefix = f"{where}." if where else ""
        for col, b in ((3, "running_mean"), (4, "running_var")):
            if prefix + b in self.sd_names:
                self.buffer_vector(prefix + b, g, b, col)
        if prefix + "num_batches_tracked" in self.sd_names:
            self.slots.append(ParamSlot(prefix + "num_batches_tracked", "buffer", (), out_group=g))
            self.c.bind[prefix + "num_batches_tracked"] = []
        axes = list(v.axes)
        axes[axis] = ((g, "full"),)
        self.set_out(i, 0, _Value(tuple(node.out_shapes[0]), axes, node=i))

    # --- functions ------------------------------------------------------------------------------------
    def function_node(self, i: int, node: RawNode, name: str, args: Any, kwargs: Any) -> None:
        op = node.op
        refs = [r for r in _refs((args, kwargs)) if r[0] in ("v", "p")]
        data = [r for r in refs if r[0] == "v"]
        if any(self.value(r) is None for r in data):
            raise _Opaque("an input is not followed")
        if op is OpType.ATTENTION and node.attrs.get("attention") == "mha":
            self.mha(i, node, args, kwargs)
            return
        if op is OpType.ATTENTION:
            self.sdpa(i, node, args, kwargs)
            return
        if name == "linear" or (op is OpType.LINEAR and name == "linear"):
            x, w = args[0], _arg(args, kwargs, 1, "weight")
            b = _arg(args, kwargs, 2, "bias")
            v = self.value(x)
            if v is None or not _is_param(w) or (b is not None and not _is_param(b)) or w[2] != ():
                raise _Opaque("F.linear on something other than a parameter")
            self.linear(i, v, -1, w[1], b[1] if b is not None else None, node.path)
            return
        if name in ("embedding",):
            ids_ref, w = args[0], _arg(args, kwargs, 1, "weight")
            v = self.value(ids_ref)
            if v is None or not _is_param(w) or w[2] != ():
                raise _Opaque("F.embedding on something other than a parameter")
            self.embedding(i, v, w[1], node.path)
            return
        if op is OpType.MATMUL and name in ("matmul", "rmatmul", "mm", "bmm") and len(refs) == 2:
            self.matmul(i, node, name, args)
            return
        if name == "einsum" and len(refs) == 2 and args and isinstance(args[0], str):
            self.einsum(i, node, args)
            return
        if op in _UNARY_OPS or name in _UNARY_NAMES:
            if len(refs) == 1 and data:
                v = self.value(data[0])
                assert v is not None
                self.activation(v, op)
                if op is OpType.SOFTMAX or op is OpType.NORMALIZE:
                    pass  # equivariant along its axis: permuting the inputs permutes the outputs alike
                self.set_out(i, 0, _Value(tuple(node.out_shapes[0]), list(v.axes), inp=v.inp, node=i))
                return
            self.elementwise(i, node, args, kwargs)
            return
        if op in _BINARY_OPS or name in _BINARY_NAMES:
            self.elementwise(i, node, args, kwargs)
            return
        if name in _ORDER_NAMES and not (name in ("max", "min") and len([a for a in args if isinstance(a, int)]) == 0
                                         and len(node.out_shapes) == 1):
            if name in ("cumsum", "cumprod"):
                raise _Opaque("cumulative op")
            self.reduce(i, node, name, args, kwargs, order=True)
            return
        if name in _REDUCE_NAMES or op in (OpType.MEAN, OpType.SUM, OpType.GLOBAL_AVG_POOL, OpType.GLOBAL_MAX_POOL) \
                and name not in ("adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
                                 "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d"):
            self.reduce(i, node, name, args, kwargs, order=False)
            return
        if op in _POOL_OPS or op in (OpType.GLOBAL_AVG_POOL, OpType.GLOBAL_MAX_POOL) or op is OpType.PAD:
            self.spatial(i, node, name, args, kwargs)
            return
        if op in (OpType.FLATTEN, OpType.RESHAPE) or name in ("view", "reshape", "flatten", "unflatten", "squeeze",
                                                              "unsqueeze", "view_as", "reshape_as", "ravel"):
            self.reshape(i, node, args)
            return
        if op in (OpType.PERMUTE, OpType.TRANSPOSE):
            self.permute(i, node, name, args, kwargs)
            return
        if op is OpType.EXPAND:
            self.expand(i, node, name, args)
            return
        if op is OpType.CONCAT:
            self.concat(i, node, name, args, kwargs)
            return
        if op is OpType.SPLIT:
            self.split(i, node, name, args, kwargs)
            return
        if op is OpType.INDEX and name in ("getitem", "select", "narrow", "roll", "flip", "slice"):
            self.index(i, node, name, args, kwargs)
            return
        raise _Opaque(f"op {name!r} is not followed")

    def elementwise(self, i: int, node: RawNode, args: Any, kwargs: Any) -> None:
        out_shape = tuple(node.out_shapes[0])
        nd = len(out_shape)
        operands = [r for r in _refs((args, kwargs)) if r[0] in ("v", "p", "c")]
        vals = [(r, self.value(r)) for r in operands if r[0] == "v"]
        main = max(vals, key=lambda rv: (math.prod(rv[1].shape), -vals.index(rv)))[1]  # type: ignore[union-attr]
        axes: list[Axis] = [None] * nd
        mul = node.op in (OpType.MUL, OpType.DIV)
        # data operands: tie the spaces they share at each (right-aligned) axis
        for _, v in vals:
            assert v is not None
            pad = nd - len(v.shape)
            for a, ax in enumerate(v.axes):
                k = a + pad
                if v.shape[a] == 1 and out_shape[k] != 1:
                    continue  # broadcast along this axis
                if axes[k] is None and ax is not None:
                    axes[k] = ax
        for _, v in vals:
            assert v is not None
            pad = nd - len(v.shape)
            for a, ax in enumerate(v.axes):
                k = a + pad
                if v.shape[a] == 1 and out_shape[k] != 1:
                    continue
                if axes[k] is not None and ax is not axes[k]:
                    if ax is None:
                        self.fix(axes[k], f"meets an unknown axis at {node.fn} ({node.path or '<root>'})")
                        continue
                    self.tie(axes[k], ax, f"{node.fn} at {node.path or '<root>'} joins different layouts")
                    # edges showing the join: RESIDUAL for sums, GATE for products
                    src, dst = ax, axes[k]
                    assert dst is not None
                    if len(src) == 1 and len(dst) == 1 and src[0][1] == dst[0][1] == "full" and src[0][0] != dst[0][0]:
                        n = self.groups[dst[0][0]].size
                        if self.groups[src[0][0]].size == n:
                            self.struct_edges(EdgeType.GATE if mul else EdgeType.RESIDUAL, src[0][0], dst[0][0], n)
        # constants and parameters
        for r in operands:
            if r[0] == "c":
                shp = tuple(r[1])
                pad = nd - len(shp)
                for a, s in enumerate(shp):
                    if s > 1 and axes[a + pad] is not None:
                        self.fix(axes[a + pad], f"a constant that varies along the channels at {node.fn} "
                                                f"({node.path or '<root>'})")
            elif r[0] == "p":
                self.operand_param(r, axes, out_shape, node)
        self.set_out(i, 0, _Value(out_shape, axes, inp=all(v.inp for _, v in vals if v is not None) and not
                                  node.param_ids, node=i))
        del main

    def operand_param(self, r: Any, axes: list[Axis], out_shape: tuple[int, ...], node: RawNode) -> None:
        """A parameter (or a view of one) broadcast against data: a table bound to the channel axis it runs over."""
        pid = r[1]
        name = self.pname(pid)
        where = node.path
        pmap = self.param_axes(r, len(out_shape))
        pshape = self._shape(name)
        if pmap is None:
            final = tuple(r[3])
            pad = len(out_shape) - len(final)
            for a, s in enumerate(final):
                if s > 1 and 0 <= a + pad < len(axes) and axes[a + pad] is not None:
                    self.fix(axes[a + pad], f"{name} (reached through ops the analysis does not follow) varies "
                                            f"along the channels at {node.fn}")
            if pid not in self.placed:
                self.placed[pid] = [None] * len(pshape)
                for n in self.rec.param_names[pid]:
                    self.c.bind[n] = [None] * len(pshape)
                self.isolated(name, NodeType.PARAMETER, "a parameter used through ops the graph does not follow")
            return
        binding: list[int | None] = [None] * len(pshape)
        for k, pa in enumerate(pmap):
            if pa is None:
                continue
            ax = axes[k]
            if ax is None:
                continue
            if pshape[pa] != out_shape[k]:
                self.fix(ax, f"{name} is sliced along the channels")
                continue
            g = self.need_group(_Value(out_shape, axes), k, where) if not (len(ax) == 1 and ax[0][1] == "full") \
                else ax[0][0]
            if any(p != "full" for _, p in ax):
                continue
            binding[pa] = g
        if self.bind(pid, binding, where):
            bound = [a for a, g in enumerate(binding) if g is not None]
            if bound:
                self.table(name, bound[0], binding[bound[0]])  # type: ignore[arg-type]
            else:
                self.isolated(name, NodeType.PARAMETER, "a parameter that varies along no channel axis")

    def matmul(self, i: int, node: RawNode, name: str, args: Any) -> None:
        a_ref, b_ref = args[0], args[1]
        if name == "rmatmul":
            a_ref, b_ref = b_ref, a_ref
        out_shape = tuple(node.out_shapes[0])
        if _is_param(b_ref) and a_ref[0] == "v":
            v = self.value(a_ref)
            assert v is not None
            pm = self.param_axes(b_ref, 2)
            pshape = self._shape(self.pname(b_ref[1]))
            if pm is None or len(pshape) != 2 or len(b_ref[3]) != 2 or len(v.shape) < 2:
                raise _Opaque("x @ W with W reached through ops the analysis does not follow")
            k_axis, n_axis = pm[0] if pm[0] is not None else 1 - (pm[1] or 0), pm[1]
            if (k_axis, n_axis) == (0, 1):
                self.linear(i, v, -1, b_ref[1], None, node.path, in_major=True)
            else:
                self.linear(i, v, -1, b_ref[1], None, node.path, in_major=False)
            return
        if a_ref[0] != "v" or b_ref[0] != "v":
            raise _Opaque("matmul with a parameter on the left or a constant")
        va, vb = self.value(a_ref), self.value(b_ref)
        assert va is not None and vb is not None
        if len(va.shape) < 2 or len(vb.shape) < 2:
            raise _Opaque("matrix-vector product")
        why = f"contraction at {node.fn} ({node.path or '<root>'})"
        self.tie(va.axes[-1], vb.axes[-2], why)
        nd = len(out_shape)
        axes: list[Axis] = [None] * nd
        for v in (vb, va):  # batch axes: the right operand's spaces first (attn @ v keeps v's heads)
            pad = nd - len(v.shape)
            for a in range(len(v.shape) - 2):
                k = a + pad
                if v.shape[a] == 1:
                    continue
                if axes[k] is None:
                    axes[k] = v.axes[a]
                elif v.axes[a] is not None:
                    self.tie(axes[k], v.axes[a], why)
                else:
                    self.fix(axes[k], why)
        axes[-2], axes[-1] = va.axes[-2], vb.axes[-1]
        self.set_out(i, 0, _Value(out_shape, axes, node=i))

    def einsum(self, i: int, node: RawNode, args: Any) -> None:
        """Two-operand ``torch.einsum``: letters shared by both operands meet (tied, or contracted); output
        letters keep their operand's space. ``einsum(eq, x, W)`` with a 2-D parameter is a linear layer."""
        eq = args[0].replace(" ", "")
        ops = list(args[1:]) if len(args) > 2 else list(args[1]) if isinstance(args[1], tuple) else []
        if "->" not in eq or "." in eq or len(ops) != 2:
            raise _Opaque("einsum without an explicit two-operand equation")
        lhs, out_letters = eq.split("->")
        letters = lhs.split(",")
        if len(letters) != 2:
            raise _Opaque("einsum")
        (la, ra), (lb, rb) = (letters[0], ops[0]), (letters[1], ops[1])
        if ra[0] == "p" and rb[0] == "v":
            (la, ra), (lb, rb) = (lb, rb), (la, ra)
        out_shape = tuple(node.out_shapes[0])
        why = f"einsum at {node.path or '<root>'}"
        if ra[0] == "v" and _is_param(rb):
            v = self.value(ra)
            assert v is not None
            if len(lb) != 2 or rb[2] != () or len(la) != len(v.shape) or len(set(lb) & set(la)) != 1:
                raise _Opaque("einsum with a parameter that is not a matrix")
            shared = (set(lb) & set(la)).pop()
            new = next(c for c in lb if c != shared)
            if new not in out_letters or shared in out_letters or new in la:
                raise _Opaque("einsum with a parameter that is not a linear map")
            axis = la.index(shared)
            for c in la:  # the other axes must arrive in the output in order, the new one last
                if c != shared and c not in out_letters:
                    raise _Opaque("einsum that also reduces a data axis")
            if out_letters != "".join(c for c in la if c != shared) + new:
                raise _Opaque("einsum output order")
            if axis != len(la) - 1:
                raise _Opaque("einsum contracting a non-last axis")
            self.linear(i, v, -1, rb[1], None, node.path, in_major=lb.index(shared) == 0)
            return
        if ra[0] != "v" or rb[0] != "v":
            raise _Opaque("einsum with constants")
        va, vb = self.value(ra), self.value(rb)
        assert va is not None and vb is not None
        if len(la) != len(va.shape) or len(lb) != len(vb.shape) or len(out_letters) != len(out_shape):
            raise _Opaque("einsum")
        space: dict[str, Axis] = {}
        for lt, v in ((lb, vb), (la, va)):  # the right operand first, as matmul does for batch axes
            for c, ax, n in zip(lt, v.axes, v.shape):
                if n == 1:
                    continue
                if c in space:
                    if space[c] is not None or ax is not None:
                        self.tie(space[c], ax, why)
                else:
                    space[c] = ax
        axes = [space.get(c) if out_shape[k] > 1 else None for k, c in enumerate(out_letters)]
        self.set_out(i, 0, _Value(out_shape, axes, node=i))

    def sdpa(self, i: int, node: RawNode, args: Any, kwargs: Any) -> None:
        q, k, v = (self.value(_arg(args, kwargs, j, key)) for j, key in enumerate(_SDPA_PARAMS[:3]))
        if q is None or k is None or v is None:
            raise _Opaque("attention on untracked tensors")
        why = f"attention at {node.path or '<root>'}"
        mask = _arg(args, kwargs, 3, "attn_mask")
        self.tie(q.axes[-1], k.axes[-1], why)  # q·k over head dims
        if len(q.shape) >= 3:
            heads = [ax.axes[-3] for ax in (q, k, v)]
            if not (q.shape[-3] == k.shape[-3] == v.shape[-3]):
                for ax in heads:
                    self.fix(ax, f"{why}: key/value heads are shared by several query heads")
            else:
                self.tie(heads[0], heads[1], why)
                self.tie(heads[0], heads[2], why)
            self.attention_bias(mask, heads[0], q, why)
        for a in range(len(q.shape) - 3):
            self.fix(q.axes[a], why)
        axes = list(q.axes)
        axes[-1] = v.axes[-1]
        if len(axes) >= 3:
            axes[-3] = v.axes[-3]
            vd = v.axes[-1]
            hq, hkv = q.shape[-3], v.shape[-3]
            if hq != hkv:  # grouped-query attention: output head h reads value head h // (hq / hkv)
                axes[-3] = None
                if vd is not None and len(vd) == 1 and vd[0][1] == "dim" and hq % hkv == 0:
                    gv, dh = vd[0][0], v.shape[-1]
                    att = self.group(hq * dh, NodeType.ATTENTION, f"{node.path or '<root>'} (grouped-query output)")
                    self.struct.append(StructEdges(EdgeType.ATTN_MIX, gv, att, self.n_edges, hq * dh,
                                                   pattern="v_mix", head_dim=dh, rep=hq // hkv))
                    self.n_edges += hq * dh
                    self.c.heads[att] = hq
                    reason = f"{why}: value heads shared by several query heads"
                    self.c.fixed.setdefault(gv, reason)
                    self.c.fixed.setdefault(att, reason)
                    axes[-3], axes[-1] = ((att, "head"),), ((att, "dim"),)
        self.set_out(i, 0, _Value(tuple(node.out_shapes[0]), axes, node=i))

    def attention_bias(self, mask: Any, head_axis: Axis, q: _Value, why: str) -> None:
        """An additive mask/bias on the scores ``[..., heads, q, k]``: heads stay put where it varies over them."""
        if not isinstance(mask, tuple) or not mask:
            return
        if mask[0] == "v":
            vm = self.value(mask)
            if vm is None:
                self.fix(head_axis, f"{why}: an attention bias the analysis does not follow")
                return
            if len(vm.shape) >= 3 and vm.shape[-3] > 1:
                self.tie(head_axis, vm.axes[-3], f"{why}: an attention bias that varies over the heads")
            for a in range(len(vm.shape)):
                if a != len(vm.shape) - 3:
                    self.fix(vm.axes[a], f"{why}: attention bias")
        elif mask[0] in ("c", "p"):
            shp = tuple(mask[1]) if mask[0] == "c" else tuple(mask[3])
            if len(shp) >= 3 and shp[-3] > 1:
                self.fix(head_axis, f"{why}: an attention bias that varies over the heads")
        del q

    def mha(self, i: int, node: RawNode, args: Any, kwargs: Any) -> None:
        b = _MHA_SIGNATURE.bind(*args, **kwargs).arguments
        where = node.path
        q, k, v = (self.value(b[n]) for n in ("query", "key", "value"))
        if q is None or k is None or v is None:
            raise _Opaque("attention on untracked tensors")
        if b.get("use_separate_proj_weight") or b.get("bias_k") is not None or b.get("add_zero_attn"):
            raise _Opaque("separate/biased key-value projections")
        if not (b["query"] == b["key"] == b["value"]):
            raise _Opaque("cross-attention (different query/key/value tensors)")
        heads = int(b["num_heads"])
        w, wb = b["in_proj_weight"], b.get("in_proj_bias")
        ow, ob = b["out_proj_weight"], b.get("out_proj_bias")
        if not all(x is None or _is_param(x) for x in (w, wb, ow, ob)):
            raise _Opaque("projections that are not parameters")
        e = self._shape(self.pname(ow[1]))[0]
        gin = self.need_group(q, -1, where)
        qkv = self.group(3 * e, NodeType.HIDDEN, f"{where} (in_proj q|k|v)")
        parts = [self.group(e, t, f"{where} ({n})") for t, n in ((NodeType.QUERY, "q"), (NodeType.KEY, "k"),
                                                                  (NodeType.VALUE, "v"))]
        for j, p in enumerate(parts):
            self.struct_edges(EdgeType.SEGMENT, qkv, p, e, src_offset=j * e)
            self.c.heads[p] = heads
        self.c.parts[qkv] = parts
        self.c.ties.append((parts[0], parts[1]))
        self.c.head_ties.append((parts[0], parts[2]))
        wshape = self._shape(self.pname(w[1]))
        if self.bind(w[1], [qkv, gin], where):
            self.slots.append(ParamSlot(self.pname(w[1]), "weight", wshape, out_group=qkv, in_group=gin,
                                        edge_type=EdgeType.LINEAR, edge_start=self.n_edges))
            self.n_edges += wshape[0] * wshape[1]
        if wb is not None:
            self.vector(wb[1], qkv, "bias", 0, where)
        gout = self.group(e, NodeType.HIDDEN, f"{where} (out_proj)")
        if self.bind(ow[1], [gout, parts[2]], where):
            self.slots.append(ParamSlot(self.pname(ow[1]), "weight", (e, e), out_group=gout, in_group=parts[2],
                                        edge_type=EdgeType.ATTN_O, edge_start=self.n_edges))
            self.n_edges += e * e
        if ob is not None:
            self.vector(ob[1], gout, "bias", 0, where)
        axes = list(q.axes)
        axes[-1] = ((gout, "full"),)
        self.set_out(i, 0, _Value(tuple(node.out_shapes[0]), axes, node=i))
        for kk in range(1, len(node.out_shapes)):
            shp = tuple(node.out_shapes[kk])
            self.values[(i, kk)] = _Value(shp, [None] * len(shp), node=i)

    def reduce(self, i: int, node: RawNode, name: str, args: Any, kwargs: Any, *, order: bool) -> None:
        v = self.value(args[0])
        assert v is not None
        nd = len(v.shape)
        dims = _arg(args, kwargs, 1, "dim")
        if name in ("norm", "vector_norm"):
            dims = _arg(args, kwargs, 2 if name == "norm" else 2, "dim")
        if isinstance(dims, int):
            dims = (dims,)
        if dims is None or dims == ():
            red = list(range(nd))
        elif isinstance(dims, tuple) and all(isinstance(d, int) for d in dims):
            red = sorted({d % nd for d in dims})
        else:
            raise _Opaque("reduction over unknown dims")
        keep = bool(_arg(args, kwargs, 2, "keepdim", False)) if name not in ("norm", "vector_norm") else \
            bool(kwargs.get("keepdim", False))
        if order:
            for d in red:
                self.fix(v.axes[d], f"{name} at {node.path or '<root>'} depends on the order of the channels")
        for k, shp in enumerate(node.out_shapes):
            shp = tuple(shp)
            if len(shp) == nd:
                axes = [None if d in red else v.axes[d] for d in range(nd)]
            else:
                axes = [v.axes[d] for d in range(nd) if d not in red]
                if len(axes) != len(shp) or keep:
                    axes = [None] * len(shp)
            self.set_out(i, k, _Value(shp, axes, node=i))

    def spatial(self, i: int, node: RawNode, name: str, args: Any, kwargs: Any) -> None:
        """Pooling, interpolation and padding: act on the trailing (spatial) axes, keep the others."""
        v = self.value(args[0])
        assert v is not None
        nd = len(v.shape)
        out = tuple(node.out_shapes[0])
        if node.op is OpType.PAD:
            pad = _arg(args, kwargs, 1, "pad")
            if not isinstance(pad, tuple):
                raise _Opaque("pad widths")
            n = len(pad) // 2
            touched = [nd - 1 - j for j in range(n) if pad[2 * j] or pad[2 * j + 1]]
        else:
            dims = 3 if name.endswith("3d") else 2 if name.endswith("2d") else 1 if name.endswith("1d") else nd - 2
            touched = list(range(nd - dims, nd))
        for d in touched:
            self.fix(v.axes[d], f"{name} at {node.path or '<root>'} runs along the channels")
        if node.op in (OpType.GLOBAL_AVG_POOL, OpType.GLOBAL_MAX_POOL):
            for ax in v.axes:
                if ax is not None and len(ax) == 1 and ax[0][1] == "full":
                    g = ax[0][0]
                    self.set(g, pool=Pool.AVG if node.op is OpType.GLOBAL_AVG_POOL else Pool.MAX)
        axes = [None if d in touched else v.axes[d] for d in range(nd)] if len(out) == nd else None
        if axes is None:
            raise _Opaque("pooling changed the number of axes")
        for k, shp in enumerate(node.out_shapes):
            self.set_out(i, k, _Value(tuple(shp), list(axes) if len(shp) == nd else [None] * len(shp), inp=v.inp,
                                      node=i))

    def reshape(self, i: int, node: RawNode, args: Any) -> None:
        v = self.value(args[0])
        assert v is not None
        out = tuple(node.out_shapes[0])
        where = f"{node.fn} at {node.path or '<root>'}"
        blocks = _blocks(v.shape, out)
        if blocks is None:
            raise _Opaque("reshape")
        axes: list[Axis] = [None] * len(out)
        for ins, outs in blocks:
            spaced = [a for a in ins if v.axes[a] is not None and v.shape[a] > 1]
            big_out = [b for b in outs if out[b] > 1]
            big_in = [a for a in ins if v.shape[a] > 1]
            if not spaced:
                continue
            if len(big_in) == 1 and len(big_out) == 1:  # the axis survives (size-1 axes added or dropped)
                axes[big_out[0]] = v.axes[big_in[0]]
                continue
            if len(big_in) == 1 and len(big_out) in (2, 3):  # split
                ax = v.axes[big_in[0]]
                assert ax is not None
                if len(ax) == 1 and ax[0][1] == "full":
                    g = ax[0][0]
                    sizes = [out[b] for b in big_out]
                    if len(sizes) == 2:
                        self.set_heads(g, sizes[0], where)
                        axes[big_out[0]], axes[big_out[1]] = ((g, "head"),), ((g, "dim"),)
                        continue
                    if sizes[0] == 3:
                        axes[big_out[0]], axes[big_out[1]], axes[big_out[2]] = ((g, "split3"),), ((g, "head3"),), \
                            ((g, "dim3"),)
                        self.split3[g] = sizes[1]
                        continue
                self.fix(ax, f"{where} splits it in a way the analysis does not follow")
                continue
            if len(big_out) == 1 and len(spaced) >= 1:  # merge
                segs = [v.axes[a] for a in big_in]
                if len(big_in) == 2 and segs[0] is not None and segs[1] is not None and len(segs[0]) == 1 \
                        and len(segs[1]) == 1 and segs[0][0][0] == segs[1][0][0] \
                        and (segs[0][0][1], segs[1][0][1]) == ("head", "dim"):
                    axes[big_out[0]] = ((segs[0][0][0], "full"),)
                    continue
                first = v.axes[big_in[0]]
                if first is not None and spaced == [big_in[0]] and len(first) == 1 and first[0][1] == "full":
                    # channels first, then positions: neural-graph flattening (feature c·P + p)
                    c = first[0][0]
                    spatial = math.prod(v.shape[a] for a in big_in[1:])
                    fg = self.flattened.get((c, spatial))
                    if fg is None:
                        fg = self.group(self.groups[c].size * spatial, NodeType.FLATTEN, f"{where} (flatten)",
                                        channel_group=c, spatial=spatial)
                        self.struct_edges(EdgeType.FLATTEN, c, fg, self.groups[c].size * spatial)
                        self.flattened[(c, spatial)] = fg
                    axes[big_out[0]] = ((fg, "full"),)
                    continue
            for a in spaced:
                self.fix(v.axes[a], f"{where} mixes channels with other axes")
        self.set_out(i, 0, _Value(out, axes, inp=v.inp, node=i))

    def set_heads(self, g: int, h: int, where: str) -> None:
        old = self.c.heads.get(g)
        if old is not None and old != h:
            self.c.fixed.setdefault(g, f"{where}: split into {old} and {h} heads")
        self.c.heads[g] = h

    def permute(self, i: int, node: RawNode, name: str, args: Any, kwargs: Any) -> None:
        v = self.value(args[0])
        assert v is not None
        nd = len(v.shape)
        rest = args[1:]
        if name in ("permute",):
            dims = rest[0] if len(rest) == 1 and isinstance(rest[0], tuple) else rest or kwargs.get("dims")
            order = [d % nd for d in dims]
        elif name in ("movedim", "moveaxis"):
            src, dst = (rest + (kwargs.get("source"), kwargs.get("destination")))[:2]
            src, dst = (src,) if isinstance(src, int) else src, (dst,) if isinstance(dst, int) else dst
            order_l: list[int | None] = [None] * nd
            for s_, d_ in zip(src, dst):
                order_l[d_ % nd] = s_ % nd
            left = iter(a for a in range(nd) if a not in [s % nd for s in src])
            order = [o if o is not None else next(left) for o in order_l]
        elif name in ("t", "numpy_t") or (name == "mt"):
            order = list(range(nd))
            if nd >= 2:
                order[-1], order[-2] = order[-2], order[-1]
            if name != "mt" and nd > 2:
                order = order[::-1]
        else:
            d0, d1 = (rest + (kwargs.get("dim0"), kwargs.get("dim1")))[:2]
            order = list(range(nd))
            order[d0 % nd], order[d1 % nd] = order[d1 % nd], order[d0 % nd]
        self.set_out(i, 0, _Value(tuple(node.out_shapes[0]), [v.axes[o] for o in order], inp=v.inp, node=i))

    def expand(self, i: int, node: RawNode, name: str, args: Any) -> None:
        v = self.value(args[0])
        assert v is not None
        out = tuple(node.out_shapes[0])
        pad = len(out) - len(v.shape)
        axes: list[Axis] = [None for _ in range(pad)]
        axes += v.axes
        if len(axes) != len(out):
            raise _Opaque("expand")
        for k, ax in enumerate(axes):
            if ax is not None and out[k] != [1] * pad + list(v.shape) and ([1] * pad + list(v.shape))[k] != out[k]:
                self.fix(ax, f"{name} repeats it at {node.path or '<root>'}")
                axes[k] = None
        self.set_out(i, 0, _Value(out, axes, inp=v.inp, node=i))

    def concat(self, i: int, node: RawNode, name: str, args: Any, kwargs: Any) -> None:
        tensors = args[0] if args else kwargs.get("tensors")
        dim = _arg(args, kwargs, 1, "dim", 0)
        if name not in ("cat", "concat", "concatenate", "stack") or not isinstance(tensors, tuple) or \
                not isinstance(dim, int):
            raise _Opaque(f"{name}")
        out = tuple(node.out_shapes[0])
        nd = len(out)
        stack = name == "stack"
        d = dim % nd
        items = list(tensors)
        vals = [self.value(r) if r[0] == "v" else None for r in items]
        data = [v for v in vals if v is not None]
        if not data:
            raise _Opaque("no tracked input")
        axes: list[Axis] = [None] * nd
        why = f"{name} at {node.path or '<root>'}"
        # axes other than the concatenation axis meet elementwise
        for k in range(nd):
            if k == d:
                continue
            src = k if (not stack or k < d) else k - 1
            for v in data:
                ax = v.axes[src]
                if axes[k] is None and ax is not None:
                    axes[k] = ax
            for v in data:
                ax = v.axes[src]
                if axes[k] is not None and ax is not axes[k]:
                    self.tie(axes[k], ax, why)
        for r in items:
            if r[0] == "p":
                self.operand_param(r, axes, out, node)
            elif r[0] == "c":
                shp = tuple(r[1])
                for k in range(nd):
                    src = k if (not stack or k < d) else k - 1
                    if k != d and src < len(shp) and shp[src] > 1 and axes[k] is not None:
                        self.fix(axes[k], f"{why}: a constant joins the channels")
        if not stack:
            cat = [v.axes[d] if v is not None else None for v in vals]
            if all(ax is not None and all(p == "full" for _, p in ax) for ax in cat):
                axes[d] = tuple(seg for ax in cat for seg in ax)  # type: ignore[union-attr]
            else:
                for ax in cat:
                    self.fix(ax, f"{why} joins channels with positions or unknown axes")
        self.set_out(i, 0, _Value(out, axes, inp=all(v.inp for v in data), node=i))

    def part_groups(self, g: int, sizes: Sequence[int], where: str, kinds: Sequence[NodeType] | None = None) -> list[int]:
        key = (g, tuple(sizes))
        if key not in self.split_parts:
            parts, off = [], 0
            for j, n in enumerate(sizes):
                kind = kinds[j] if kinds else NodeType.HIDDEN
                p = self.group(n, kind, f"{where} (part {j})")
                self.struct_edges(EdgeType.SEGMENT, g, p, n, src_offset=off)
                off += n
                parts.append(p)
            self.c.parts[g] = parts
            self.split_parts[key] = parts
        return self.split_parts[key]

    def split(self, i: int, node: RawNode, name: str, args: Any, kwargs: Any) -> None:
        v = self.value(args[0])
        assert v is not None
        nd = len(v.shape)
        dim = _arg(args, kwargs, 2 if name in ("split", "chunk", "tensor_split", "split_with_sizes") else 1, "dim", 0)
        if name == "unbind":
            dim = _arg(args, kwargs, 1, "dim", 0)
        if not isinstance(dim, int):
            raise _Opaque(name)
        d = dim % nd
        ax = v.axes[d]
        where = f"{name} at {node.path or '<root>'}"
        outs = [tuple(s) for s in node.out_shapes]
        if ax is None:
            for k, shp in enumerate(outs):
                axes = list(v.axes) if len(shp) == nd else [a for j, a in enumerate(v.axes) if j != d]
                self.set_out(i, k, _Value(shp, axes, inp=v.inp, node=i))
            return
        if name == "unbind" and len(ax) == 1 and ax[0][1] == "split3":
            self.unbind3(i, v, d, ax[0][0], outs, where)
            return
        if name != "unbind" and len(ax) == 1 and ax[0][1] == "full" and all(len(s) == nd for s in outs):
            g = ax[0][0]
            parts = self.part_groups(g, [s[d] for s in outs], where)
            for k, shp in enumerate(outs):
                axes = list(v.axes)
                axes[d] = ((parts[k], "full"),)
                self.set_out(i, k, _Value(shp, axes, node=i))
            return
        self.fix(ax, f"{where} cuts the channels")
        for k, shp in enumerate(outs):
            axes = list(v.axes) if len(shp) == nd else [a for j, a in enumerate(v.axes) if j != d]
            if len(shp) == nd:
                axes[d] = None
            self.set_out(i, k, _Value(shp, axes, node=i))

    def unbind3(self, i: int, v: _Value, d: int, g: int, outs: list[tuple[int, ...]], where: str,
                only: int | None = None) -> None:
        """``qkv.reshape(B, N, 3, H, dh)`` then ``unbind``/``[j]`` on the 3-axis: q, k and v part groups."""
        heads = self.split3.get(g)
        if heads is None:
            raise _Opaque("fused q|k|v split")
        n = self.groups[g].size // 3
        parts = self.part_groups(g, [n, n, n], where, [NodeType.QUERY, NodeType.KEY, NodeType.VALUE])
        self.c.heads.pop(g, None)
        for p in parts:
            self.c.heads[p] = heads
        for k, shp in enumerate(outs):
            j = k if only is None else only
            p = parts[j]
            axes: list[Axis] = []
            for a, ax in enumerate(v.axes):
                if a == d:
                    continue
                if ax is not None and len(ax) == 1 and ax[0][0] == g and ax[0][1] in ("head3", "dim3"):
                    axes.append(((p, "head" if ax[0][1] == "head3" else "dim"),))
                else:
                    axes.append(ax)
            self.set_out(i, k, _Value(shp, axes, node=i))

    def index(self, i: int, node: RawNode, name: str, args: Any, kwargs: Any) -> None:
        v = self.value(args[0])
        assert v is not None
        nd = len(v.shape)
        out = tuple(node.out_shapes[0])
        where = f"{name} at {node.path or '<root>'}"
        if name in ("roll", "flip"):
            dims = _arg(args, kwargs, 2 if name == "roll" else 1, "dims")
            dims = (dims,) if isinstance(dims, int) else dims
            if not isinstance(dims, tuple):
                for ax in v.axes:
                    self.fix(ax, where)
                dims = tuple(range(nd))
            for dd in dims:
                self.fix(v.axes[dd % nd], f"{where} moves entries along the channels")
            self.set_out(i, 0, _Value(out, [None if a in [x % nd for x in dims] else ax for a, ax in enumerate(v.axes)],
                                      node=i))
            return
        if name == "select":
            dd, idx = _arg(args, kwargs, 1, "dim"), _arg(args, kwargs, 2, "index")
            sub = [("keep", a) for a in range(nd)]
            sub[dd % nd] = ("int", dd % nd) if isinstance(idx, int) else ("bad", dd % nd)
        elif name == "narrow":
            dd, start, length = _arg(args, kwargs, 1, "dim"), _arg(args, kwargs, 2, "start"), _arg(args, kwargs, 3, "length")
            sub = [("keep", a) for a in range(nd)]
            full = start == 0 and length == v.shape[dd % nd]
            sub[dd % nd] = ("keep", dd % nd) if full else ("slice", dd % nd)
        else:
            parsed = _simple_index(args[1] if len(args) > 1 else None, nd)
            if parsed is None:
                for ax in v.axes:
                    self.fix(ax, f"{where} with an index the analysis does not follow")
                self.set_out(i, 0, _Value(out, [None] * len(out), node=i))
                return
            sub = parsed
        axes: list[Axis] = []
        for kind, a in sub:
            if kind == "new":
                axes.append(None)
                continue
            ax = v.axes[a]
            if kind == "keep":
                axes.append(ax)
            elif kind == "int" and ax is not None and len(ax) == 1 and ax[0][1] == "split3":
                j = args[1] if isinstance(args[1], int) else [x for x in args[1] if isinstance(x, int)][0]
                rest = [(s_, b) for s_, b in sub if s_ != "new"]
                outs_k = [out]
                del rest
                self.unbind3_select(i, v, a, ax[0][0], outs_k, where, j)
                return
            elif kind == "int":
                self.fix(ax, f"{where} picks single channels")
            else:  # a partial slice or an unknown index
                self.fix(ax, f"{where} takes part of the channels")
                axes.append(None)
        if len(axes) != len(out):
            for ax in v.axes:
                self.fix(ax, where)
            axes = [None] * len(out)
        self.set_out(i, 0, _Value(out, axes, inp=v.inp, node=i))

    def unbind3_select(self, i: int, v: _Value, d: int, g: int, outs: list[tuple[int, ...]], where: str,
                       j: int) -> None:
        self.unbind3(i, v, d, g, outs, where, only=j)

    # --- the end ----------------------------------------------------------------------------------------
    def leftovers(self) -> None:
        """Tensors of the state dict no op placed: parameters never used (isolated UNUSED nodes) and buffers
        (kept verbatim)."""
        for g in self.split3:
            if g not in self.c.parts:
                self.c.fixed.setdefault(g, "reshaped to (3, heads, dims) but never split into q, k, v")
        placed_names = {n for pid in self.placed for n in self.rec.param_names[pid]}
        slot_names = {s.name for s in self.slots}
        for name in self.root.state_dict().keys():
            if name in slot_names:
                continue
            if name in self.tensors and name in placed_names:
                continue  # a second name of a tied parameter: an alias
            if name in self.tensors:
                t = self.tensors[name]
                first = next(n for n, p in self.tensors.items() if p is t)
                if first != name and first in slot_names:
                    continue
                self.c.bind[name] = [None] * t.dim()
                self.isolated(name, NodeType.UNUSED, "not used by the forward pass")
                slot_names.add(name)
                continue
            b = self.buffers.get(name)
            if b is not None and b.is_floating_point() and b.dim() >= 1:
                self.c.bind[name] = [None] * b.dim()
                self.isolated(name, NodeType.UNUSED, "a buffer")
            else:
                self.slots.append(ParamSlot(name, "buffer", tuple(int(s) for s in b.shape) if b is not None else ()))
                self.c.bind[name] = [None] * (b.dim() if b is not None else 0)
            slot_names.add(name)

    def aliases(self) -> dict[str, str]:
        slot_names = {s.name for s in self.slots}
        out: dict[str, str] = {}
        for names in self.rec.param_names.values():
            first = next((n for n in names if n in slot_names), None)
            if first is None:
                continue
            for n in names:
                if n != first and n in self.sd_names:
                    out[n] = first
        return out


class _Opaque(Exception):
    """An op the analysis does not follow (handled conservatively)."""


_CONTRACTING = {OpType.LINEAR: -1, OpType.CONV: 1, OpType.CONV_POINTWISE: 1, OpType.CONV_DILATED: 1}
_KEEPING = {OpType.RELU: "relu", OpType.LEAKY_RELU: "leaky_relu", OpType.TANH: "tanh", OpType.SINE: "sine",
            OpType.DROPOUT: "dropout", OpType.IDENTITY: "identity", OpType.MAX_POOL: "max_pool",
            OpType.ADAPTIVE_MAX_POOL: "max_pool", OpType.GLOBAL_MAX_POOL: "max_pool", OpType.AVG_POOL: "avg_pool",
            OpType.ADAPTIVE_AVG_POOL: "avg_pool", OpType.GLOBAL_AVG_POOL: "avg_pool", OpType.MEAN: "avg_pool",
            OpType.SUM: "avg_pool", OpType.FLATTEN: "layout", OpType.RESHAPE: "layout", OpType.PERMUTE: "layout",
            OpType.TRANSPOSE: "layout", OpType.BATCH_NORM: "norm", OpType.LAYER_NORM: "norm", OpType.GROUP_NORM: "norm",
            OpType.RMS_NORM: "norm", OpType.INSTANCE_NORM: "norm"}


def _use_of(node: RawNode, is_data: bool, axis: int, rank: int, whole: bool, kept: bool) -> str:
    """How one op reads a group on one axis of one input, for sign/scale symmetries:

    ``"contract"`` — the data input of a dense Linear/conv contracted along the group (a consumer layer);
    ``"relu"``, ``"leaky_relu"``, ``"tanh"``, ``"sine"``, ``"dropout"``, ``"identity"``, ``"max_pool"``,
    ``"avg_pool"`` (also means and sums over other axes), ``"layout"`` (reshape/flatten/permute), ``"norm"``
    (a norm whose output keeps the group) — an op acting on each channel alone (a norm: its affine part)
    whose output still carries the group whole; ``"other:<fn>"`` otherwise
    (adds, products, norms, attention, reductions over the channels, outputs, ops not followed ...).
    """
    if not whole:
        return f"other:{node.fn}"
    contracted = _CONTRACTING.get(node.op)
    if contracted is not None and is_data and node.param_ids and axis == (rank - 1 if contracted < 0 else contracted):
        return "contract"
    label = _KEEPING.get(node.op)
    if label is not None and kept and (is_data or label == "layout"):
        return label
    return f"other:{node.fn}"


def _refs(obj: Any, depth: int = 0) -> list[Any]:
    """Every tensor reference inside a described argument structure, in order."""
    out: list[Any] = []
    if isinstance(obj, tuple) and obj and obj[0] in ("v", "p", "c") and len(obj) in (2, 3, 4) and \
            (obj[0] != "c" or isinstance(obj[1], tuple)) and (obj[0] == "c" or isinstance(obj[1], int)):
        return [obj]
    if depth > 8:
        return out
    if isinstance(obj, tuple | list):
        for x in obj:
            out.extend(_refs(x, depth + 1))
    elif isinstance(obj, dict):
        for x in obj.values():
            out.extend(_refs(x, depth + 1))
    return out


def _is_param(ref: Any) -> bool:
    return isinstance(ref, tuple) and len(ref) == 4 and ref[0] == "p"


def _arg(args: Any, kwargs: Any, i: int, key: str, default: Any = None) -> Any:
    if isinstance(args, tuple) and len(args) > i:
        return args[i]
    if isinstance(kwargs, dict):
        return kwargs.get(key, default)
    return default


def op_shape(rest: Any, kw: Any) -> list[int] | None:
    if len(rest) == 1 and isinstance(rest[0], tuple):
        rest = rest[0]
    if rest and isinstance(rest[0], tuple) and rest[0] and rest[0][0] == "c":
        return list(rest[0][1])  # expand_as(other)
    if not all(isinstance(x, int) for x in rest):
        return None
    return list(rest)


def _squeeze_map(shape: Sequence[int], amap: list[int | None], cur: list[int], final: tuple[int, ...]
                 ) -> list[int | None] | None:
    """Axis map through a view/reshape that only adds or drops size-1 axes (else ``None``)."""
    big_cur = [(a, c) for a, c in zip(amap, cur) if c > 1]
    big_fin = [k for k, s in enumerate(final) if s > 1]
    if [c for _, c in big_cur] != [final[k] for k in big_fin]:
        return None
    out: list[int | None] = [None] * len(final)
    for (a, _), k in zip(big_cur, big_fin):
        out[k] = a
    del shape
    return out


def _simple_index(idx: Any, nd: int) -> list[tuple[str, int]] | None:
    """``x[...]`` with ints, slices, None and Ellipsis: per output axis ``("keep"|"slice"|"new", in_axis)`` plus
    ``("int", in_axis)`` entries for dropped axes; ``None`` for tensor (advanced) indices."""
    items = idx if isinstance(idx, tuple) and not (idx and idx[0] in ("v", "p", "c", "slice")) else (idx,)
    if any(isinstance(x, tuple) and x and x[0] in ("v", "p", "c") for x in items):
        return None
    n_real = sum(1 for x in items if x != "..." and x is not None)
    out: list[tuple[str, int]] = []
    a = 0
    for x in items:
        if x == "...":
            for _ in range(nd - n_real):
                out.append(("keep", a))
                a += 1
        elif x is None:
            out.append(("new", -1))
        elif isinstance(x, bool):
            return None
        elif isinstance(x, int):
            out.append(("int", a))
            a += 1
        elif isinstance(x, tuple) and x and x[0] == "slice":
            start, stop, step = x[1], x[2], x[3]
            full = start in (None, 0) and stop is None and step in (None, 1)
            out.append(("keep" if full else "slice", a))
            a += 1
        else:
            return None
    while a < nd:
        out.append(("keep", a))
        a += 1
    return out


def _blocks(shape_in: Sequence[int], shape_out: Sequence[int]) -> list[tuple[list[int], list[int]]] | None:
    """Group the axes of a reshape into blocks of equal products (size-1 axes join a neighbour)."""
    if math.prod(shape_in) != math.prod(shape_out):
        return None
    blocks: list[tuple[list[int], list[int]]] = []
    i = j = 0
    ni, no = len(shape_in), len(shape_out)
    while i < ni or j < no:
        bi: list[int] = []
        bo: list[int] = []
        pi = po = 1
        # take size-1 axes on their own
        if i < ni and shape_in[i] == 1 and (j >= no or shape_out[j] != 1):
            blocks.append(([i], []))
            i += 1
            continue
        if j < no and shape_out[j] == 1 and (i >= ni or shape_in[i] != 1):
            blocks.append(([], [j]))
            j += 1
            continue
        if i < ni:
            bi.append(i)
            pi *= shape_in[i]
            i += 1
        if j < no:
            bo.append(j)
            po *= shape_out[j]
            j += 1
        while pi != po:
            if pi < po and i < ni:
                bi.append(i)
                pi *= shape_in[i]
                i += 1
            elif po < pi and j < no:
                bo.append(j)
                po *= shape_out[j]
                j += 1
            else:
                return None
        blocks.append((bi, bo))
    return blocks


def build_plan(module: nn.Module, rec: Recording, *, pack: int, strict: bool = True,
               reference: str | None = None) -> dict[str, Any]:
    """The JSON-able recorded layout of ``module`` (see :func:`layout_from_plan`).

    Raises :class:`~weightzoo.errors.UnsupportedLayerError` naming the module when ``strict`` and some
    parameter is used by an op the graph cannot represent (with ``strict=False`` it becomes isolated nodes
    and is listed in ``skipped``).
    """
    b = _Builder(module, rec, pack)
    b.run()
    if strict and b.skipped:
        first, why = b.skipped[0], b.unplaced[0]
        raise UnsupportedLayerError(first.path, first.module,
                                    f"its parameters {list(first.tensors)[:4]} are used by op {why['op']!r} "
                                    f"({why['reason']}), which the graph cannot represent; pass strict=False to "
                                    "keep them as isolated nodes")
    slot_names = [s.name for s in b.slots]
    if len(set(slot_names)) != len(slot_names):
        raise SpecError(f"{type(module).__name__}: a tensor was placed twice in the graph")
    info = {"recorded": True, "aliases": b.aliases(), "breaks": b.breaks, "shared": b.shared, "unplaced": b.unplaced,
            "symmetry": _constraints_json(b.c)}
    return {"format": RECORDED_FORMAT, "module": reference or type(module).__name__, "pack": pack,
            "groups": [_group_json(g) for g in b.groups],
            "slots": [_slot_json(s) for s in b.slots],
            "struct": [_struct_json(s) for s in b.struct],
            "grouped": [list(x) for x in b.grouped], "group_norms": [list(x) for x in b.group_norms],
            "skipped": [{"path": s.path, "module": s.module, "tensors": list(s.tensors)} for s in b.skipped],
            "num_nodes": b.n_nodes, "num_edges": b.n_edges, "info": info}


def _group_json(g: NeuronGroup) -> dict[str, Any]:
    d = asdict(g)
    for k in ("kind", "act", "pool", "norm"):
        d[k] = int(d[k])
    return d


def _slot_json(s: ParamSlot) -> dict[str, Any]:
    d = asdict(s)
    d["shape"] = list(s.shape)
    d["edge_type"] = None if s.edge_type is None else int(s.edge_type)
    d["out_parts"] = list(s.out_parts)
    return d


def _struct_json(s: StructEdges) -> dict[str, Any]:
    d = asdict(s)
    d["edge_type"] = int(s.edge_type)
    return d


def _constraints_json(c: Constraints) -> dict[str, Any]:
    return {"ties": [list(t) for t in c.ties], "head_ties": [list(t) for t in c.head_ties],
            "heads": {str(k): v for k, v in c.heads.items()}, "parts": {str(k): v for k, v in c.parts.items()},
            "fixed": {str(k): v for k, v in c.fixed.items()},
            "heads_fixed": {str(k): v for k, v in c.heads_fixed.items()},
            "dims_fixed": {str(k): v for k, v in c.dims_fixed.items()},
            "bind": c.bind, "labels": c.labels, "uses": {str(k): sorted(v) for k, v in c.uses.items()},
            "made": {str(k): v for k, v in c.made.items()}}


def layout_from_plan(plan: dict[str, Any]) -> Layout:
    """Rebuild the :class:`Layout` a :func:`build_plan` describes (also from a saved graph's spec); checks
    that node and edge ranges add up, so a tampered file cannot index outside the graph."""
    try:
        groups = tuple(NeuronGroup(**{**g, "kind": NodeType(g["kind"]), "act": Activation(g["act"]),
                                      "pool": Pool(g["pool"]), "norm": Norm(g["norm"])}) for g in plan["groups"])
        slots = tuple(ParamSlot(**{**s, "shape": tuple(s["shape"]), "out_parts": tuple(s["out_parts"]),
                                   "edge_type": None if s["edge_type"] is None else EdgeType(s["edge_type"])})
                      for s in plan["slots"])
        struct = tuple(StructEdges(**{**s, "edge_type": EdgeType(s["edge_type"])}) for s in plan["struct"])
        skipped = tuple(Skipped(s["path"], s["module"], tuple(s["tensors"])) for s in plan["skipped"])
        n_nodes, n_edges = int(plan["num_nodes"]), int(plan["num_edges"])
        info = dict(plan["info"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SpecError(f"bad recorded layout: {exc}") from exc
    start = 0
    for k, g in enumerate(groups):
        if g.index != k or g.start != start or g.size < 0:
            raise SpecError("bad recorded layout: groups do not tile the nodes")
        start += g.size
    if start != n_nodes:
        raise SpecError("bad recorded layout: node count")
    spans = [(s.edge_start, slot_edge_count(s)) for s in slots if s.edge_type is not None]
    spans += [(s.edge_start, s.count) for s in struct]
    pos = 0
    for a, n in sorted(spans):
        if a != pos:
            raise SpecError("bad recorded layout: edge ranges do not tile the edges")
        pos += n
    if pos != n_edges:
        raise SpecError("bad recorded layout: edge count")
    for s in slots:
        for gi in (s.out_group, s.in_group):
            if gi is not None and not 0 <= gi < len(groups):
                raise SpecError(f"bad recorded layout: {s.name} points at group {gi}")
    by_name = {s.name: s for s in slots}
    return Layout(dict(plan), groups, slots, struct, tuple(tuple(x) for x in plan["grouped"]),  # type: ignore[misc]
                  tuple(tuple(x) for x in plan["group_norms"]), skipped, n_nodes, n_edges, by_name, info)  # type: ignore[arg-type]


def record_plan(module: nn.Module, example_input: Any = None, *, pack: int, strict: bool = True,
                reference: str | None = None) -> dict[str, Any]:
    """Record one forward pass of ``module`` (input derived as :meth:`ComputeGraph.record` does when not
    given) and build its recorded layout plan."""
    from weightzoo.zoo.arch.example_inputs import example_inputs

    from .recorder import record_eager

    args, kwargs = example_inputs(module, example_input, None)
    rec, _ = record_eager(module, args, kwargs, expand_attention=True, keep_args=True)
    return build_plan(module, rec, pack=pack, strict=strict, reference=reference)


__all__ = ["Constraints", "RECORDED_FORMAT", "build_plan", "layout_from_plan", "record_plan"]
