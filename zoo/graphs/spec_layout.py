"""Trace a ``weightzoo.arch/1`` spec (MLPs and CNNs, residual blocks) into its :class:`Layout`."""

from __future__ import annotations

from typing import Any

from weightzoo.errors import SpecError, UnsupportedLayerError

from .layout_types import Layout, NeuronGroup, ParamSlot, Skipped, StructEdges, set_group
from .vocab import ACTIVATION_IDS, Activation, EdgeType, NodeType, Norm, Pool


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
                act, param = self.pending_act
                set_group(self.groups, self.cur, act=act, act_param=param)
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
            set_group(self.groups, cur, mode="features")
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
            set_group(self.groups, self.cur, act=act, act_param=param)
        elif t == "dropout":
            return
        elif t == "flatten":
            if self.cur is not None and self.groups[self.cur].mode == "channels" and not self.pooled:
                self.flatten_pending = True
        elif t in ("global_avg_pool", "global_max_pool"):
            if self.cur is None or self.groups[self.cur].mode != "channels" or self.pooled:
                raise SpecError(f"{where}: global pooling needs a conv map before it")
            set_group(self.groups, self.cur, pool=Pool.AVG if t == "global_avg_pool" else Pool.MAX)
            self.pooled = True
        elif t == "sequential":
            self.walk(layer["layers"], path, f"{where}.layers")
        elif t == "residual":
            self.residual(layer, path, where)
        elif t == "unsupported":
            self.skipped.append(Skipped(layer["path"], layer["module"], tuple(layer["tensors"])))
            if self.cur is not None:
                set_group(self.groups, self.cur, fixed=True)
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
        set_group(self.groups, gi, norm=kind, norm_prefix=path, norm_affine=affine,
                  norm_after_act=g.act != Activation.NONE)
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


def trace_spec(spec: dict[str, Any]) -> Layout:
    tr = _Tracer()
    tr.walk(spec["layers"], "", "layers")
    param_groups = [g for g in tr.groups if g.kind != NodeType.INPUT]
    if tr.cur is None or not param_groups:
        raise SpecError("layers: the spec has no linear or conv layer (nothing to make a graph of)")
    last = tr.groups[tr.cur]
    if last.kind == NodeType.INPUT:
        raise SpecError("layers: the network ends on its input group")
    set_group(tr.groups, tr.cur, kind=NodeType.OUTPUT)
    slots = tuple(tr.slots)
    by_name = {s.name: s for s in slots}
    if len(by_name) != len(slots):
        raise SpecError("layers: two layers give the same tensor name")
    return Layout(spec, tuple(tr.groups), slots, tuple(tr.struct), tuple(tr.grouped), tuple(tr.group_norms),
                  tuple(tr.skipped), tr.n_nodes, tr.n_edges, by_name)


__all__ = ["trace_spec"]
