"""The neuron layout of a spec: which neuron groups exist and which tensor dims they index.

A :class:`Layout` is computed once per spec (and cached): it lists the neuron groups (input features or
channels, hidden layers, flattened features, outputs), every state-dict tensor with the group(s) its
dimensions index (its :class:`ParamSlot`), the residual identity connections, and the structural
constraints symmetries must respect (grouped convolutions, group norms, groups next to skipped layers).
:class:`~weightzoo.zoo.graphs.ParameterGraph` lays nodes and edges out from it, and
:mod:`weightzoo.zoo.symmetry` permutes weights through it, so both agree on what a neuron is.

MLP/CNN specs (``weightzoo.arch/1``) are traced here; transformer specs (``hf`` and ``torch``) are laid out
by :mod:`.transformer_layout` into the same structures (plus ``Layout.info`` for attention blocks).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch

from ...errors import SpecError, UnsupportedLayerError
from ..arch import HF_FORMAT, TORCH_FORMAT, validate_spec
from .vocab import ACTIVATION_IDS, Activation, EdgeType, NodeType, Norm, Pool


@dataclass
class NeuronGroup:
    """One layer of neurons (or channels): nodes ``start .. start + size - 1`` of the graph.

    ``index`` is the layer index the graph records. FLATTEN groups hold the ``size = C·spatial``
    features of a flattened map; feature ``c·spatial + p`` comes from channel ``c`` of ``channel_group``.
    """

    index: int
    size: int
    kind: NodeType
    start: int
    act: Activation = Activation.NONE
    act_param: float = 0.0
    pool: Pool = Pool.NONE
    norm: Norm = Norm.NONE
    norm_prefix: str = ""
    norm_affine: bool = False
    norm_after_act: bool = False
    channel_group: int | None = None
    spatial: int = 1
    fixed: bool = False  # next to a skipped layer: no symmetry may touch it
    mode: str = "features"  # "features" or "channels" (a conv map)
    head_dim: int = 0  # QUERY/KEY/VALUE/ATTENTION groups: dims per head (heads are read from ATTN_SCORE edges)


@dataclass(frozen=True)
class ParamSlot:
    """Where one state-dict tensor lives in the graph.

    Weights (``role="weight"``) are edges ``edge_start ..`` from ``in_group`` to ``out_group``, one per
    (out, in) pair inside each of ``groups`` blocks, in the tensor's row-major order; vectors are a
    ``node_values`` column of ``out_group``'s nodes; ``role="buffer"`` tensors (``num_batches_tracked``)
    are kept verbatim.

    Transformer slots add: ``transposed`` (the tensor is stored ``[in, out]``, GPT-2's Conv1D),
    ``flat`` (a conv whose whole kernel is the input, e.g. ViT's patch embedding: ``[out, C·kh·kw]``),
    ``out_parts`` (a fused tensor whose output rows are these groups in turn, e.g. ``c_attn`` = q|k|v),
    and the packed ``role="embedding"`` (table ``[rows, d]``: edges chunk → dim, ``in_group`` = the
    EMBEDDING chunks) and ``role="unembed"`` (output head ``[rows, d]``: edges dim → chunk), ``pack``
    rows per edge.
    """

    name: str
    role: str
    shape: tuple[int, ...]
    out_group: int | None = None
    in_group: int | None = None
    groups: int = 1
    edge_type: EdgeType | None = None
    edge_start: int = 0
    column: int = -1
    transposed: bool = False
    flat: bool = False
    out_parts: tuple[int, ...] = ()
    pack: int = 1


@dataclass(frozen=True)
class StructEdges:
    """Parameter-free edges: residual identities (channel i → i) or flatten fan-outs (c → c·spatial + p).

    Transformer patterns (``pattern``; ``head_dim`` = dh, ``rep`` = query heads per key/value head; edge
    ``k`` stands for query head ``h = k // dh``, dim ``j = k % dh``): ``"identity"``, ``"flatten"``,
    ``"q_head"`` (query (h, j) → head h), ``"k_head"`` (key (h // rep, j) → head h), ``"head_mix"``
    (head h → attention (h, j)), ``"v_mix"`` (value (h // rep, j) → attention (h, j)).
    """

    edge_type: EdgeType
    src_group: int
    dst_group: int
    edge_start: int
    count: int
    pattern: str = "identity"
    head_dim: int = 1
    rep: int = 1


@dataclass(frozen=True)
class Skipped:
    """A module the graph does not cover (``strict=False``): its path, type and tensor names."""

    path: str
    module: str
    tensors: tuple[str, ...]


@dataclass(frozen=True)
class Layout:
    """Groups, tensor slots and structural edges of one spec (see the module docstring)."""

    spec: dict[str, Any]
    groups: tuple[NeuronGroup, ...]
    slots: tuple[ParamSlot, ...]
    struct: tuple[StructEdges, ...]
    grouped: tuple[tuple[int, int, int], ...]  # (in_group, out_group, groups) of grouped convs
    group_norms: tuple[tuple[int, int], ...]  # (group, num_groups)
    skipped: tuple[Skipped, ...]
    num_nodes: int
    num_edges: int
    slot_by_name: dict[str, ParamSlot] = field(repr=False, compare=False)
    info: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # transformer structure

    @property
    def is_transformer(self) -> bool:
        """True for layouts of transformer specs (``hf`` / ``torch``), whose ``info`` lists the blocks."""
        return bool(self.info.get("transformer"))

    @cached_property
    def node_tensors(self) -> dict[str, torch.Tensor]:
        """Per-node descriptors: node_type, node_layer, node_pos, node_act, node_pool, node_norm (int64),
        act_param (float32)."""
        sizes = torch.tensor([g.size for g in self.groups])

        def per_group(values: list[float], dtype: torch.dtype) -> torch.Tensor:
            return torch.repeat_interleave(torch.tensor(values, dtype=dtype), sizes)

        pos = torch.full((self.num_nodes,), -1, dtype=torch.long)
        for g in self.groups:
            if g.kind in (NodeType.INPUT, NodeType.OUTPUT):
                pos[g.start : g.start + g.size] = torch.arange(g.size)
            elif g.kind == NodeType.FLATTEN:
                pos[g.start : g.start + g.size] = torch.arange(g.size) % g.spatial
            elif g.kind in (NodeType.EMBEDDING, NodeType.TIED_EMBEDDING):  # table rows are inputs: fixed
                pos[g.start : g.start + g.size] = torch.arange(g.size)
        return {
            "node_type": per_group([int(g.kind) for g in self.groups], torch.long),
            "node_layer": per_group([g.index for g in self.groups], torch.long),
            "node_pos": pos,
            "node_act": per_group([int(g.act) for g in self.groups], torch.long),
            "node_pool": per_group([int(g.pool) for g in self.groups], torch.long),
            "node_norm": per_group([int(g.norm) for g in self.groups], torch.long),
            "act_param": per_group([g.act_param for g in self.groups], torch.float32),
        }

    @cached_property
    def edge_tensors(self) -> dict[str, torch.Tensor]:
        """edge_index [2, E], edge_type [E] and edge_layer [E] (the destination group's layer), int64."""
        from .slot_edges import (
            edge_layer_of,
            edge_type_of,
            slot_edge_count,
            struct_edge_index,
            write_slot_edges,
        )

        edge_index = torch.empty(2, self.num_edges, dtype=torch.long)
        src, dst = edge_index[0], edge_index[1]
        etype = torch.empty(self.num_edges, dtype=torch.long)
        elayer = torch.empty(self.num_edges, dtype=torch.long)
        for s in self.slots:
            if s.edge_type is None:
                continue
            sl = slice(s.edge_start, s.edge_start + slot_edge_count(s))
            write_slot_edges(self, s, src[sl], dst[sl])
            for target, value in ((etype, edge_type_of(self, s)), (elayer, edge_layer_of(self, s))):
                if isinstance(value, int):
                    target[sl].fill_(value)
                else:
                    target[sl] = value
        for st in self.struct:
            sl = slice(st.edge_start, st.edge_start + st.count)
            src[sl], dst[sl] = struct_edge_index(self, st)
            etype[sl] = int(st.edge_type)
            elayer[sl] = self.groups[st.dst_group].index
        return {"edge_index": edge_index, "edge_type": etype, "edge_layer": elayer}


class _Tracer:
    """Walks a normalized spec once, creating groups, slots and structural edges in forward order."""

    def __init__(self) -> None:
        self.groups: list[NeuronGroup] = []
        self.slots: list[ParamSlot] = []
        self.struct: list[StructEdges] = []
        self.grouped: list[tuple[int, int, int]] = []
        self.group_norms: list[tuple[int, int]] = []
        self.skipped: list[Skipped] = []
        self.n_nodes = 0
        self.n_edges = 0
        self.cur: int | None = None
        self.pooled = False
        self.flatten_pending = False
        self.broken = False  # an unsupported layer came before: the next group is hidden and fixed
        self.pending_act: tuple[Activation, float] | None = None

    # groups --------------------------------------------------------------------------------------
    def new_group(self, size: int, kind: NodeType, mode: str, **kw: Any) -> int:
        g = NeuronGroup(index=len(self.groups), size=size, kind=kind, start=self.n_nodes, mode=mode, **kw)
        self.groups.append(g)
        self.n_nodes += size
        return g.index

    def ensure(self, size: int, mode: str) -> int:
        """The current group, creating the input group (or a fixed hidden one after a skip) if none."""
        if self.cur is None:
            kind = NodeType.HIDDEN if self.broken else NodeType.INPUT
            self.cur = self.new_group(size, kind, mode, fixed=self.broken)
            self.pooled = self.flatten_pending = False
            if self.pending_act is not None:
                g = self.groups[self.cur]
                g.act, g.act_param = self.pending_act
                self.pending_act = None
        return self.cur

    def features(self, size: int, where: str) -> int:
        """The group holding ``size`` dense features here (resolving a pending flatten)."""
        cur = self.ensure(size, "features")
        g = self.groups[cur]
        if g.mode == "channels":
            if not (self.pooled or self.flatten_pending):
                raise SpecError(f"{where}: a dense layer after a conv map needs flatten or global pooling first")
            if self.pooled or size == g.size:
                if size != g.size:
                    raise SpecError(f"{where}: expects {size} features, the pooled map has {g.size} channels")
            else:
                if size % g.size:
                    raise SpecError(f"{where}: {size} features is not a multiple of {g.size} channels")
                spatial = size // g.size
                f = self.new_group(size, NodeType.FLATTEN, "features", channel_group=g.index, spatial=spatial,
                                   fixed=g.fixed)
                self.add_struct(EdgeType.FLATTEN, g.index, f, size)
                self.cur = cur = f
            self.pooled = self.flatten_pending = False
            self.groups[cur].mode = "features"
            return cur
        if size != g.size:
            raise SpecError(f"{where}: expects {size} features, the previous layer gives {g.size}")
        return cur

    def add_struct(self, etype: EdgeType, src: int, dst: int, count: int) -> None:
        self.struct.append(StructEdges(etype, src, dst, self.n_edges, count))
        self.n_edges += count

    def vector(self, name: str, role: str, group: int, size: int, column: int) -> None:
        self.slots.append(ParamSlot(name, role, (size,), out_group=group, column=column))

    # layers --------------------------------------------------------------------------------------
    def walk(self, layers: list[dict[str, Any]], prefix: str, where: str) -> None:
        for i, layer in enumerate(layers):
            name = layer.get("name", str(i))
            self.layer(layer, f"{prefix}.{name}" if prefix else name, f"{where}[{i}]")

    def layer(self, layer: dict[str, Any], path: str, where: str) -> None:
        t = layer["type"]
        if t in ("linear", "conv1d", "conv2d"):
            self.param_layer(layer, path, where)
        elif t in ("batchnorm1d", "batchnorm2d", "layernorm", "groupnorm"):
            self.norm_layer(layer, path, where)
        elif t in ACTIVATION_IDS:
            act = ACTIVATION_IDS[t]
            if act == Activation.NONE:
                return
            param = float(layer.get("slope", layer.get("w0", 0.0)))
            if self.cur is None:
                self.pending_act = (act, param)
                return
            g = self.groups[self.cur]
            if g.act != Activation.NONE:
                raise UnsupportedLayerError(path, t, "two activations in a row on the same neurons")
            g.act, g.act_param = act, param
        elif t == "dropout":
            return
        elif t == "flatten":
            if self.cur is not None and self.groups[self.cur].mode == "channels" and not self.pooled:
                self.flatten_pending = True
        elif t in ("global_avg_pool", "global_max_pool"):
            if self.cur is None or self.groups[self.cur].mode != "channels" or self.pooled:
                raise SpecError(f"{where}: global pooling needs a conv map before it")
            self.groups[self.cur].pool = Pool.AVG if t == "global_avg_pool" else Pool.MAX
            self.pooled = True
        elif t == "sequential":
            self.walk(layer["layers"], path, f"{where}.layers")
        elif t == "residual":
            self.residual(layer, path, where)
        elif t == "unsupported":
            self.skipped.append(Skipped(layer["path"], layer["module"], tuple(layer["tensors"])))
            if self.cur is not None:
                self.groups[self.cur].fixed = True
            self.cur, self.broken = None, True
        else:  # pragma: no cover - validate_spec rejects unknown types
            raise SpecError(f"{where}: unknown layer type {t!r}")

    def param_layer(self, layer: dict[str, Any], path: str, where: str) -> None:
        t = layer["type"]
        n_in, n_out = layer["in"], layer["out"]
        if t == "linear":
            src = self.features(n_in, where)
            shape: tuple[int, ...] = (n_out, n_in)
            etype, groups, mode = EdgeType.LINEAR, 1, "features"
        else:
            src = self.ensure(n_in, "channels")
            g = self.groups[src]
            if g.mode != "channels" or self.pooled or self.flatten_pending:
                raise SpecError(f"{where}: a convolution needs a conv map (not dense features) as input")
            if g.size != n_in:
                raise SpecError(f"{where}: expects {n_in} channels, the previous layer gives {g.size}")
            groups = layer["groups"]
            shape = (n_out, n_in // groups, *layer["kernel"])
            etype = EdgeType.CONV1D if t == "conv1d" else EdgeType.CONV2D
            mode = "channels"
        dst = self.new_group(n_out, NodeType.HIDDEN, mode)
        n_edges = n_out * (n_in // groups)
        self.slots.append(ParamSlot(f"{path}.weight", "weight", shape, out_group=dst, in_group=src, groups=groups,
                                    edge_type=etype, edge_start=self.n_edges))
        self.n_edges += n_edges
        if groups > 1:
            self.grouped.append((src, dst, groups))
        if layer["bias"]:
            self.vector(f"{path}.bias", "bias", dst, n_out, 0)
        self.cur = dst

    def norm_layer(self, layer: dict[str, Any], path: str, where: str) -> None:
        t = layer["type"]
        if t == "layernorm":
            ns = layer["normalized_shape"]
            if len(ns) != 1:
                raise UnsupportedLayerError(path, "LayerNorm", "only LayerNorm over the last (feature) dim is covered")
            size, affine, kind = ns[0], layer["elementwise_affine"], Norm.LAYER
            gi = self.features(size, where)
        else:
            if t == "groupnorm":
                size, affine, kind = layer["num_channels"], layer["affine"], Norm.GROUP
            else:
                size, affine, kind = layer["num_features"], layer["affine"], Norm.BATCH
            gi = self.ensure(size, "features" if t == "batchnorm1d" else "channels")
            on_map = self.groups[gi].mode == "channels" and not (self.pooled or self.flatten_pending)
            if t == "batchnorm2d" and not on_map:
                raise SpecError(f"{where}: batchnorm2d needs a conv map before it")
            if not on_map:
                gi = self.features(size, where)
            if t == "groupnorm":
                self.group_norms.append((gi, layer["num_groups"]))
        g = self.groups[gi]
        if g.size != size:
            raise SpecError(f"{where}: normalizes {size} neurons, the previous layer gives {g.size}")
        if g.norm != Norm.NONE:
            raise UnsupportedLayerError(path, t, "two normalization layers on the same neurons")
        g.norm, g.norm_prefix, g.norm_affine = kind, path, affine
        g.norm_after_act = g.act != Activation.NONE
        if affine:
            self.vector(f"{path}.weight", "norm_weight", gi, size, 1)
            if kind != Norm.LAYER or layer["bias"]:
                self.vector(f"{path}.bias", "norm_bias", gi, size, 2)
        if kind == Norm.BATCH and layer["track_running_stats"]:
            self.vector(f"{path}.running_mean", "running_mean", gi, size, 3)
            self.vector(f"{path}.running_var", "running_var", gi, size, 4)
            self.slots.append(ParamSlot(f"{path}.num_batches_tracked", "buffer", (), out_group=gi))

    def residual(self, layer: dict[str, Any], path: str, where: str) -> None:
        first = layer["layers"][0]
        entry_size = first.get("in", first.get("num_features", first.get("num_channels")))
        if self.cur is None:
            if not isinstance(entry_size, int):
                raise SpecError(f"{where}: a residual block at the input must start with a linear/conv/norm layer")
            self.ensure(entry_size, "channels" if first["type"].startswith(("conv", "batchnorm2d")) else "features")
        if (self.pooled or self.flatten_pending) and isinstance(entry_size, int):
            self.features(entry_size, where)
        entry, state = self.cur, (self.pooled, self.flatten_pending)
        assert entry is not None
        self.walk(layer["layers"], f"{path}.block", f"{where}.layers")
        out = self.cur
        if out is None or out == entry or self.groups[out].index <= entry:
            raise SpecError(f"{where}.layers: a residual block needs a linear or conv layer in its branch")
        if self.groups[out].size != self.groups[entry].size and layer["shortcut"] is None:
            raise SpecError(f"{where}: the branch changes width {self.groups[entry].size} → "
                            f"{self.groups[out].size}; add a projection shortcut")
        src = entry
        if layer["shortcut"] is not None:
            self.cur, (self.pooled, self.flatten_pending) = entry, state
            self.walk(layer["shortcut"], f"{path}.shortcut", f"{where}.shortcut")
            src = self.cur  # type: ignore[assignment]
            if src is None or src == entry:
                raise SpecError(f"{where}.shortcut: a projection shortcut needs a linear or conv layer")
            if self.groups[src].size != self.groups[out].size:
                raise SpecError(f"{where}.shortcut: gives {self.groups[src].size} features, the branch {self.groups[out].size}")
        self.add_struct(EdgeType.RESIDUAL, src, out, self.groups[out].size)
        self.cur, self.pooled, self.flatten_pending = out, False, False


def _trace(spec: dict[str, Any]) -> Layout:
    tr = _Tracer()
    tr.walk(spec["layers"], "", "layers")
    param_groups = [g for g in tr.groups if g.kind != NodeType.INPUT]
    if tr.cur is None or not param_groups:
        raise SpecError("layers: the spec has no linear or conv layer (nothing to make a graph of)")
    last = tr.groups[tr.cur]
    if last.kind == NodeType.INPUT:
        raise SpecError("layers: the network ends on its input group")
    last.kind = NodeType.OUTPUT
    slots = tuple(tr.slots)
    by_name = {s.name: s for s in slots}
    if len(by_name) != len(slots):
        raise SpecError("layers: two layers give the same tensor name")
    return Layout(spec, tuple(tr.groups), slots, tuple(tr.struct), tuple(tr.grouped), tuple(tr.group_norms),
                  tuple(tr.skipped), tr.n_nodes, tr.n_edges, by_name)


_CACHE: OrderedDict[str, Layout] = OrderedDict()
_CACHE_SIZE = 256
_LOCK = threading.Lock()


#: Layouts with more edges than this are not cached: their edge tensors would pin hundreds of MB.
_CACHE_MAX_EDGES = 2_000_000


def layout_of(spec: Mapping[str, Any], names: Iterable[str] | None = None, *, pack: int = 1) -> Layout:
    """The (cached) :class:`Layout` of a spec.

    Args:
        spec: a ``weightzoo.arch/1`` spec, or a transformer spec (``{"format": "hf", "class", "config"}``
            of a Hugging Face snapshot, or ``{"format": "torch", ...}`` of ``nn.MultiheadAttention`` /
            ``nn.TransformerEncoderLayer``).
        names: the state dict's tensor names — required for transformer specs (which optional tensors,
            heads and prefixes a checkpoint has is read from them); ignored for ``weightzoo.arch/1``.
        pack: embedding-table rows per edge for transformer graphs (the edge window size).

    Raises :class:`~weightzoo.errors.SpecError` for malformed or inconsistent specs and
    :class:`~weightzoo.errors.UnsupportedLayerError` for architectures the graphs do not cover.
    """
    fmt = spec.get("format") if isinstance(spec, Mapping) else None
    transformer = fmt in (HF_FORMAT, TORCH_FORMAT)
    if transformer and names is None:
        raise SpecError("a transformer spec needs the state dict's tensor names to lay out its graph (names=...)")
    name_list = sorted(names) if transformer and names is not None else []
    try:
        key = json.dumps([spec, name_list, pack if transformer else 1], sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"a spec must be JSON-serialisable: {exc}") from exc
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
    norm = validate_spec(spec)
    if transformer:
        from .transformer_layout import transformer_layout

        layout = transformer_layout(norm, name_list, pack=pack)
    else:
        layout = _trace(norm)
    if layout.num_edges <= _CACHE_MAX_EDGES:
        with _LOCK:
            _CACHE[key] = layout
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    return layout


def flat_in_index(layout: Layout, group: int) -> tuple[int, int]:
    """(channel group, spatial) for a FLATTEN group; (group, 1) for any other."""
    g = layout.groups[group]
    if g.kind == NodeType.FLATTEN:
        assert g.channel_group is not None
        return g.channel_group, g.spatial
    return group, 1


__all__ = [
    "Layout", "NeuronGroup", "ParamSlot", "Skipped", "StructEdges", "flat_in_index", "layout_of",
]
