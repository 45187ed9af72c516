r"""ParameterGraph: a network as a graph with a node per neuron and an edge per weight (format v1).

The construction follows graph metanetworks (Lim et al., 2024) and neural graphs (Kofinas et al., 2024):

* one node per input feature/channel, hidden neuron/channel and output; biases and normalization
  parameters (weight, bias, running mean/var) are node features (:data:`~.vocab.NODE_VALUE_COLUMNS`);
* one edge per weight, from input neuron to output neuron. A conv kernel is *one* edge whose feature is
  the kernel placed in the centre of a ``max_kernel`` window (default 7×7, offset ``(K - k) // 2`` per
  axis) and flattened row-major; 1-D kernels sit in the window's centre row, Linear weights and the
  parameter-free edges (residual identities, flatten fan-outs, value 1) at the centre pixel, so a 1×1
  conv and a Linear layer look alike;
* grouped/depthwise convs only have edges inside their groups; a residual block adds identity edges
  (type RESIDUAL) from its input (or its projection shortcut's output) to its output neurons;
* flattening a C×H×W map adds one FLATTEN node per flattened feature ``c·HW + p``, fed by channel ``c``
  (position = ``p``); global pooling feeds the channel nodes straight into the dense layer (the pooling
  kind is a node feature);
* node descriptors: layer index, position (inputs/outputs; −1 for hidden), node type, activation,
  pooling, normalization — all ids from :mod:`~weightzoo.zoo.graphs.vocab`.

Transformers (``hf`` specs of Hugging Face snapshots, ``nn.MultiheadAttention``,
``nn.TransformerEncoderLayer``; vocabulary v2) are laid out by :mod:`.transformer_layout`: a residual
stream shared by all blocks, packed embedding tables, attention heads as HEAD nodes, gated MLPs, tied
heads stored once. Their default edge window is 1×1 (no conv kernels); pass ``max_kernel`` to batch
them with CNN graphs.

Values are kept exactly (float32, or float64 when a tensor is float64; every narrower float embeds
exactly) with each tensor's dtype, so :meth:`ParameterGraph.to_state_dict` is bit-exact. Memory is
linear in the number of weights, no dense N×N: edge features are kept per kernel size (about one copy of the
weights, :mod:`.edge_kernels`) and padded to ``E·prod(max_kernel)`` values only when ``edge_attr`` is read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from weightzoo.errors import (
    CheckpointError,
    ComputeGraphError,
    GraphTooLargeError,
    KernelTooLargeError,
    ShapeMismatchError,
    SpecError,
    UnsupportedLayerError,
)
from weightzoo.zoo.arch import HF_FORMAT, TORCH_FORMAT, spec_from_module
from weightzoo.zoo.formats.dtypes import dtype_from_code, dtype_from_torch
from weightzoo.zoo.formats.durable import atomic_path

from .dataflow import RECORDED_FORMAT
from .edge_kernels import EdgeKernels, KernelRun
from .io import read_graph_file
from .layout import Layout, ParamSlot, Skipped, layout_of
from .slot_edges import matrix_dims, out_nodes, slot_edge_count, table_dims
from .vocab import (
    COMPATIBLE_VOCAB_VERSIONS,
    NODE_FEATURE_COLUMNS,
    NODE_VALUE_COLUMNS,
    VOCAB_VERSION,
    EdgeType,
    NodeType,
)

if TYPE_CHECKING:
    import networkx as nx
    from torch_geometric.data import Data

GRAPH_FORMAT = "weightzoo.parameter_graph/1"
#: the same file with edge features per kernel size (``save(..., edge_storage="kernels")``)
GRAPH_FORMAT_KERNELS = "weightzoo.parameter_graph.kernels/1"
EDGE_STORAGES = ("padded", "kernels")
DEFAULT_MAX_KERNEL = (7, 7)
#: Default edge window of transformer graphs: every weight is one value (ViT's patch conv is a Linear).
TRANSFORMER_MAX_KERNEL = (1, 1)
NETWORKX_LIMIT = 20_000


def is_transformer_spec(spec: Mapping[str, Any]) -> bool:
    """True for ``hf`` and ``torch`` specs (laid out by :mod:`.transformer_layout`)."""
    return isinstance(spec, Mapping) and spec.get("format") in (HF_FORMAT, TORCH_FORMAT)


def _place(edge_attr: torch.Tensor, node_values: torch.Tensor, layout: Layout, s: ParamSlot, t: torch.Tensor,
           mk: tuple[int, int]) -> None:
    """Write tensor ``t`` of slot ``s`` into the graph's edge/node values (``edge_attr`` is ``[E, kh, kw]``)."""
    kh, kw = mk
    if s.role in ("embedding", "unembed", "table"):
        rows, d, chunks = table_dims(s)
        table = (t.movedim(s.axis, -1) if s.role == "table" and t.dim() else t).reshape(rows, d)
        if chunks * s.pack != rows:
            table = torch.cat([table, table.new_zeros(chunks * s.pack - rows, d)])
        n = chunks * d
        edge_attr[s.edge_start: s.edge_start + n] = table.reshape(chunks, kh, kw, d).permute(0, 3, 1, 2).reshape(n, kh, kw)
    elif s.role == "weight":
        if s.transposed or s.flat:
            n_out, n_in = matrix_dims(s)
            m = t.t() if s.transposed else t.reshape(n_out, n_in)
            edge_attr[s.edge_start: s.edge_start + n_out * n_in, (kh - 1) // 2, (kw - 1) // 2] = m.reshape(-1)
            return
        k = tuple(s.shape[2:]) or (1,)
        kr, kc = (1, k[0]) if len(k) == 1 else k
        if kr > kh or kc > kw:
            raise KernelTooLargeError(s.name.rsplit(".", 1)[0], (kr, kc), mk)
        n = s.shape[0] * s.shape[1]
        r0, c0 = (kh - kr) // 2, (kw - kc) // 2
        edge_attr[s.edge_start: s.edge_start + n, r0: r0 + kr, c0: c0 + kc] = t.reshape(n, kr, kc)
    elif s.out_parts:
        node_values[out_nodes(layout, s), s.column] = t.to(node_values.dtype)
    else:
        g = layout.groups[s.out_group]  # type: ignore[index]
        node_values[g.start: g.start + g.size, s.column] = t


def _take(edge_attr: torch.Tensor, node_values: torch.Tensor, layout: Layout, s: ParamSlot,
          mk: tuple[int, int]) -> torch.Tensor:
    """The inverse of :func:`_place`: slot ``s``'s tensor (in the graph's value dtype) from the graph."""
    kh, kw = mk
    if s.role in ("embedding", "unembed", "table"):
        rows, d, chunks = table_dims(s)
        n = chunks * d
        table = edge_attr[s.edge_start: s.edge_start + n].reshape(chunks, d, kh * kw).permute(0, 2, 1)
        flat = table.reshape(chunks * s.pack, d)[:rows]
        if s.role == "table" and s.shape:
            moved = list(s.shape)
            moved.append(moved.pop(s.axis))
            return flat.reshape(moved).movedim(-1, s.axis)
        return flat.reshape(s.shape)
    if s.role == "weight":
        if s.transposed or s.flat:
            n_out, n_in = matrix_dims(s)
            m = edge_attr[s.edge_start: s.edge_start + n_out * n_in, (kh - 1) // 2, (kw - 1) // 2].reshape(n_out, n_in)
            return m.t() if s.transposed else m.reshape(s.shape)
        k = tuple(s.shape[2:]) or (1,)
        kr, kc = (1, k[0]) if len(k) == 1 else k
        n = s.shape[0] * s.shape[1]
        r0, c0 = (kh - kr) // 2, (kw - kc) // 2
        return edge_attr[s.edge_start: s.edge_start + n, r0: r0 + kr, c0: c0 + kc].reshape(s.shape)
    if s.out_parts:
        return node_values[out_nodes(layout, s), s.column]
    g = layout.groups[s.out_group]  # type: ignore[index]
    return node_values[g.start: g.start + g.size, s.column]


_EDGE_ROLES = ("weight", "embedding", "unembed", "table")
#: Graphs whose padded ``edge_attr`` has at most this many values are padded while they are built (the
#: direct format-v1 placement): at that size per-kernel storage saves no memory worth having and its
#: per-tensor bookkeeping would cost small graphs (thousands per second in a zoo) about a quarter of their speed.
PAD_AT_BUILD_VALUES = 1 << 20


def _slot_kernel(s: ParamSlot, mk: tuple[int, int]) -> tuple[int, int]:
    """The ``(kr, kc)`` kernel each edge of an edge slot carries (tables fill the window; a Linear weight is 1×1)."""
    if s.role != "weight":
        return mk
    if s.transposed or s.flat:
        return (1, 1)
    k = tuple(s.shape[2:]) or (1,)
    kr, kc = (1, k[0]) if len(k) == 1 else k
    if kr > mk[0] or kc > mk[1]:
        raise KernelTooLargeError(s.name.rsplit(".", 1)[0], (kr, kc), mk)
    return (kr, kc)


def _kernel_run(layout: Layout, s: ParamSlot, t: torch.Tensor, mk: tuple[int, int]) -> KernelRun:
    """Slot ``s``'s edges as one run of unpadded kernels (what :func:`_place` writes, in a window the
    kernel's size)."""
    kr, kc = _slot_kernel(s, mk)
    n = slot_edge_count(s)
    dtype = torch.float64 if t.dtype == torch.float64 else torch.float32
    if s.role == "weight":  # row-major [out, in(, k...)]: already the run's order (what _place writes)
        vals = (t.t() if s.transposed else t).reshape(n, kr * kc).to(dtype, copy=True)
        return KernelRun(s.edge_start, n, (kr, kc), vals)
    buf = torch.empty(n, kr, kc, dtype=dtype)
    _place(buf, buf, layout, replace(s, edge_start=0), t, (kr, kc))
    return KernelRun(s.edge_start, n, (kr, kc), buf.view(n, kr * kc))


def _kernel_spans(layout: Layout, mk: tuple[int, int]) -> list[tuple[int, int, tuple[int, int]]]:
    """(first edge, count, kernel) of every tensor's edges and every structural edge block, by first edge."""
    spans = [(s.edge_start, slot_edge_count(s), _slot_kernel(s, mk)) for s in layout.slots
             if s.role in _EDGE_ROLES and slot_edge_count(s)]
    spans += [(st.edge_start, st.count, (1, 1)) for st in layout.struct if st.count]
    return sorted(spans)


def _kernels_from_file(path: Any, meta: Mapping[str, str], tensors: Mapping[str, torch.Tensor], layout: Layout,
                       mk: tuple[int, int]) -> EdgeKernels:
    """The :class:`EdgeKernels` of a ``kernels`` graph file, checked against the layout its spec gives."""
    try:
        rows = json.loads(meta["edge_kernels"])
        dtype = {"F32": torch.float32, "F64": torch.float64}[meta["edge_dtype"]]
        runs = [KernelRun(int(a), int(n), (int(kr), int(kc)), tensors[f"kernels.{i}"] if stored else None)
                for i, (a, n, kr, kc, stored) in enumerate(rows)]
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(path, f"bad edge kernels: {exc!r}") from exc
    struct_starts = {st.edge_start for st in layout.struct}
    if [(r.start, r.count, r.kernel) for r in runs] != _kernel_spans(layout, mk):
        raise CheckpointError(path, "edge kernels do not match the graph's spec")
    for r in runs:
        if r.values is None and r.start not in struct_starts:
            raise CheckpointError(path, f"edge kernels at edge {r.start} have no values")
        if r.values is not None and (r.values.dtype not in (torch.float32, dtype) or r.values.dim() != 2):
            raise CheckpointError(path, f"edge kernels at edge {r.start} are {r.values.dtype}, "
                                        f"{tuple(r.values.shape)}")
    try:
        return EdgeKernels(layout.num_edges, mk, runs, dtype)
    except ValueError as exc:
        raise CheckpointError(path, str(exc)) from exc


def needs_recording(spec: Mapping[str, Any]) -> bool:
    """True for specs whose graph comes from recording the rebuilt module (class references, ``transformers``
    families without a fast path): no layout follows from the spec alone."""
    from weightzoo.zoo.arch import CLASS_FORMAT

    from .hf_families import FAMILIES

    fmt = spec.get("format") if isinstance(spec, Mapping) else None
    if fmt == CLASS_FORMAT:
        return True
    config = spec.get("config") if fmt == HF_FORMAT else None
    return isinstance(config, Mapping) and config.get("model_type") not in FAMILIES


def _max_kernel(max_kernel: int | tuple[int, ...] | list[int]) -> tuple[int, int]:
    mk = (max_kernel, max_kernel) if isinstance(max_kernel, int) else tuple(max_kernel)
    if len(mk) != 2 or not all(isinstance(k, int) and k >= 1 for k in mk):
        raise ValueError(f"ParameterGraph: max_kernel must be an int or (height, width) >= 1, got {max_kernel!r}")
    return (mk[0], mk[1])


class ParameterGraph:
    """A network's parameters as a graph (see the module docstring for the construction).

    Build with :meth:`from_spec` (spec + state dict, e.g. a zoo entry) or :meth:`from_module`.

    Attributes:
        spec (dict): the normalized architecture spec.
        max_kernel (tuple[int, int]): the kernel window every edge feature is padded to.
        edge_attr (Tensor): ``[E, kh·kw]`` edge values (float32, float64 if a tensor was float64), padded
            on first read (see :attr:`edge_storage`, :meth:`edge_kernels`).
        node_values (Tensor): ``[N, 5]`` bias / norm weight / norm bias / running mean / running var.
        dtypes (dict[str, str]): each covered tensor's dtype code (``F32``, ``BF16`` ...).
        buffers (dict[str, Tensor]): integer buffers kept verbatim (``num_batches_tracked``).
        skipped (list[Skipped]): modules left out (only with ``strict=False``), with their tensor names.
        metadata (dict): free-form JSON-able metadata saved with the graph.

    Shapes:
        ``edge_index`` ``[2, E]``, ``edge_type``/``edge_layer`` ``[E]``, ``node_type``/``node_layer``/
        ``node_pos``/``node_act`` ``[N]``.
    """

    def __init__(self, layout: Layout, *, edge_attr: torch.Tensor | None = None, node_values: torch.Tensor,
                 max_kernel: tuple[int, int], dtypes: dict[str, str], buffers: dict[str, torch.Tensor],
                 metadata: dict[str, Any] | None = None, aliases: dict[str, str] | None = None,
                 order: list[str] | None = None, names: list[str] | None = None,
                 kernels: EdgeKernels | None = None) -> None:
        kh, kw = max_kernel
        if (edge_attr is None) == (kernels is None):
            raise ValueError("ParameterGraph: give exactly one of edge_attr (padded) and kernels (per kernel size)")
        shape = tuple(edge_attr.shape) if edge_attr is not None else (kernels.num_edges, kh * kw)  # type: ignore[union-attr]
        if (shape != (layout.num_edges, kh * kw) or node_values.shape != (layout.num_nodes, 5)
                or (kernels is not None and kernels.window != (kh, kw))):
            raise ShapeMismatchError(
                f"ParameterGraph: edge_attr {shape} / node_values {tuple(node_values.shape)} do not "
                f"fit the spec ({layout.num_edges} edges × {kh * kw}, {layout.num_nodes} nodes × 5)")
        self._layout = layout
        self.spec = layout.spec
        self.max_kernel = max_kernel
        self._edge_attr = edge_attr
        self._kernels = kernels
        self.node_values = node_values
        self.dtypes = dtypes
        self.buffers = buffers
        self.skipped: list[Skipped] = list(layout.skipped)
        self.metadata = dict(metadata or {})
        #: second names of tied tensors the state dict had (e.g. ``lm_head.weight`` → the word embedding)
        self.aliases = dict(aliases or {})
        self.order = list(order) if order is not None else [s.name for s in layout.slots]
        self._names = names  # the tensor names a transformer layout was built from (saved with the graph)

    # --- construction ----------------------------------------------------------------------------
    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor], *,
                  max_kernel: int | tuple[int, int] | None = None, strict: bool = True,
                  metadata: dict[str, Any] | None = None, max_edges: int | None = None) -> ParameterGraph:
        """The graph of the network ``spec`` describes, with the weights of ``state_dict``.

        Args:
            spec: a ``weightzoo.arch/1`` spec (see :mod:`weightzoo.zoo.arch`), the ``hf`` spec a zoo records
                for a Hugging Face snapshot, or a ``torch`` spec (:func:`.hf_families.module_spec`).
            state_dict: name → tensor. A lazy mapping (a zoo entry) is read one tensor at a time, so peak
                memory is the graph plus the largest tensor.
            max_kernel: kernel window (int or (height, width)); default 7×7, and 1×1 for transformers.
                Larger kernels raise :class:`~weightzoo.errors.KernelTooLargeError`.
            strict: if ``True`` (default), layers/tensors the graph does not cover raise
                :class:`~weightzoo.errors.UnsupportedLayerError`; otherwise they land in ``graph.skipped``.
            max_edges: refuse (with :class:`~weightzoo.errors.GraphTooLargeError`, before allocating) graphs
                with more edges; :func:`~weightzoo.zoo.graphs.sampled_view` and
                :func:`~weightzoo.zoo.graphs.layer_views` give bounded views of such models instead.
        """
        if needs_recording(spec):  # a class reference, or a transformers family without a fast path
            return cls._from_rebuilt(spec, state_dict, max_kernel=max_kernel, strict=strict, metadata=metadata)
        transformer = is_transformer_spec(spec)
        mk = _max_kernel(max_kernel if max_kernel is not None
                         else TRANSFORMER_MAX_KERNEL if transformer else DEFAULT_MAX_KERNEL)
        kh, kw = mk
        keys = list(state_dict.keys())
        names = sorted(keys) if transformer else None
        if spec.get("format") == RECORDED_FORMAT and spec.get("pack") != kh * kw:
            raise SpecError(f"this recorded layout packs {spec.get('pack')} table rows per edge; build it with a "
                            f"max_kernel of that many pixels (this one has {kh * kw}), or record it again")
        layout = layout_of(spec, names, pack=kh * kw)
        if strict and layout.skipped:
            first = layout.skipped[0]
            hint = (f"tensors {list(first.tensors)[:4]} are not covered; pass strict=False to skip them"
                    if transformer else "pass strict=False to skip it")
            raise UnsupportedLayerError(first.path or "<root>", first.module, hint)
        if max_edges is not None and layout.num_edges > max_edges:
            raise GraphTooLargeError(
                f"ParameterGraph would have {layout.num_edges} edges (> max_edges={max_edges}); use "
                "weightzoo.zoo.graphs.sampled_view(spec, state_dict, max_edges=...) for a seeded edge sample or "
                "layer_views(...) for one block at a time")
        expected = {s.name for s in layout.slots}
        keyset = set(keys)
        aliases = {a: t for a, t in layout.info.get("aliases", {}).items() if a in keyset}
        skipped_names = {n for s in layout.skipped for n in s.tensors}
        missing = sorted(expected - keyset)
        extra = sorted(keyset - expected - skipped_names - set(aliases))
        if missing or extra:
            raise SpecError(f"state dict does not match the spec: missing {missing[:5]}"
                            f"{'...' if len(missing) > 5 else ''}, unexpected {extra[:5]}{'...' if len(extra) > 5 else ''}")
        # edge features per kernel size, padded to the window only when edge_attr is read (edge_kernels.py);
        # small graphs are padded right away
        runs: list[KernelRun] = []
        eager = layout.num_edges * kh * kw <= PAD_AT_BUILD_VALUES
        edge_attr = torch.zeros(layout.num_edges, kh, kw, dtype=torch.float32) if eager else None
        value_dtype = torch.float32
        node_values = torch.zeros(layout.num_nodes, 5, dtype=torch.float32)
        dtypes: dict[str, str] = {}
        buffers: dict[str, torch.Tensor] = {}
        for s in layout.slots:  # one tensor at a time: lazy state dicts never hold the whole model
            t = state_dict[s.name].detach()
            if tuple(t.shape) != s.shape:
                raise ShapeMismatchError(f"state dict shapes differ from the spec: {s.name} has {tuple(t.shape)}, "
                                         f"the spec says {s.shape}", [(s.name, s.shape, tuple(t.shape))])
            try:
                dtypes[s.name] = dtype_from_torch(t.dtype).code
            except KeyError as exc:
                raise SpecError(f"tensor {s.name!r}: {exc}") from None
            if s.role == "buffer":
                buffers[s.name] = t.clone()
                continue
            if not t.is_floating_point():
                raise SpecError(f"tensor {s.name!r} has dtype {t.dtype}; graphs hold floating-point parameters")
            if t.dtype == torch.float64 and value_dtype != torch.float64:
                value_dtype, node_values = torch.float64, node_values.to(torch.float64)
                edge_attr = edge_attr.to(torch.float64) if edge_attr is not None else None
            if edge_attr is not None:
                _place(edge_attr, node_values, layout, s, t, mk)
            elif s.role in _EDGE_ROLES:
                runs.append(_kernel_run(layout, s, t, mk))
            else:
                _place(node_values, node_values, layout, s, t, mk)
            del t
        for alias, target in aliases.items():
            a, b = state_dict[alias], state_dict[target]
            if a.dtype != b.dtype or not torch.equal(a, b):
                raise SpecError(f"{alias!r} should be tied to {target!r} (config tie_word_embeddings) but differs; "
                                "set tie_word_embeddings=false in the config")
            dtypes[alias] = dtypes[target]
        covered = expected | set(aliases)
        kernels = None
        if edge_attr is not None:
            for st in layout.struct:
                edge_attr[st.edge_start: st.edge_start + st.count, (kh - 1) // 2, (kw - 1) // 2] = 1  # a Linear's pixel
            edge_attr = edge_attr.reshape(layout.num_edges, kh * kw)
        else:
            runs += [KernelRun(st.edge_start, st.count, (1, 1), None) for st in layout.struct]  # value 1, centre
            kernels = EdgeKernels(layout.num_edges, mk, [r for r in runs if r.count], value_dtype)
        return cls(layout, edge_attr=edge_attr, kernels=kernels, node_values=node_values, max_kernel=mk,
                   dtypes=dtypes, buffers=buffers, metadata=metadata, aliases=aliases,
                   order=[k for k in keys if k in covered], names=names)

    @classmethod
    def from_module(cls, module: nn.Module, example_input: Any = None, *,
                    max_kernel: int | tuple[int, int] | None = None, strict: bool = True,
                    metadata: dict[str, Any] | None = None, recorded: bool | None = None) -> ParameterGraph:
        """The graph of ANY ``nn.Module``.

        Modules the fast paths cover keep them: ``nn.Sequential`` models of spec layers
        (:func:`~weightzoo.zoo.arch.spec_from_module`), ``nn.MultiheadAttention`` /
        ``nn.TransformerEncoderLayer`` and ``transformers`` models of the families of :mod:`.hf_families`.
        Every other module — a class with its own ``forward``: residuals, attention, concatenations, gates,
        plain parameters — is laid out from the data flow of one recorded forward pass (:mod:`.dataflow`);
        the layout is kept in ``graph.spec`` (format ``weightzoo.recorded/1``), so saved graphs load
        without the module.

        Args:
            module: the network.
            example_input: a tensor, a tuple of positional tensors or a dict of keyword arguments for the
                recorded pass; derived as :meth:`ComputeGraph.record` does when not given.
            max_kernel: kernel window (default 7×7; 1×1 for the transformer fast path).
            strict: raise :class:`~weightzoo.errors.UnsupportedLayerError` (naming the module and why) when a
                parameter is used by an op the graph cannot represent; with ``False`` such parameters become
                isolated nodes listed in ``graph.skipped`` (the round trip stays exact). For ``nn.Sequential``
                models with unsupported layers ``strict=False`` keeps the spec path, which skips them.
            recorded: force (``True``) or forbid (``False``) the recorded path; default: fast path first.
        """
        from .hf_families import covered_module_spec, module_spec

        fast_error: UnsupportedLayerError | None = None  # why a fast path refused a module it should cover
        if recorded is not True:
            try:
                module_spec(module)
            except UnsupportedLayerError as exc:
                fast_error = exc
            tspec = covered_module_spec(module)
            if tspec is not None:
                return cls.from_spec(tspec, module.state_dict(), max_kernel=max_kernel, strict=strict,
                                     metadata=metadata)
            try:
                spec = spec_from_module(module, strict=True)
            except UnsupportedLayerError as exc:
                if type(module) is nn.Sequential:
                    fast_error = exc
                if recorded is False or (not strict and type(module) is nn.Sequential):
                    spec = spec_from_module(module, strict=strict)
                    return cls.from_spec(spec, module.state_dict(), max_kernel=max_kernel, strict=strict,
                                         metadata=metadata)
            else:
                return cls.from_spec(spec, module.state_dict(), max_kernel=max_kernel, strict=strict,
                                     metadata=metadata)
        try:
            return cls._recorded(module, example_input, max_kernel, strict, metadata)
        except ComputeGraphError as exc:
            if fast_error is not None:  # the recorder cannot run it either: the fast path's reason is the clearer one
                raise fast_error from exc
            raise

    @classmethod
    def _from_rebuilt(cls, spec: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor], *,
                      max_kernel: int | tuple[int, int] | None, strict: bool,
                      metadata: dict[str, Any] | None) -> ParameterGraph:
        """Build the module a spec names (``build_module``), load the weights and record its graph."""
        from weightzoo.zoo.arch import build_module

        module = build_module(spec)
        try:
            module.load_state_dict({k: state_dict[k] for k in state_dict.keys()}, strict=True)
        except RuntimeError as exc:
            raise SpecError(f"the weights do not fit {spec.get('class')}: {exc}") from exc
        shape = spec.get("input_shape")
        example = None if not shape else torch.randn(1, *shape, generator=torch.Generator().manual_seed(0))
        return cls.from_module(module.eval(), example, max_kernel=max_kernel, strict=strict, metadata=metadata,
                               recorded=True)

    @classmethod
    def _recorded(cls, module: nn.Module, example_input: Any, max_kernel: int | tuple[int, int] | None,
                  strict: bool, metadata: dict[str, Any] | None) -> ParameterGraph:
        from weightzoo.zoo.arch import class_reference

        from .dataflow import record_plan

        mk = _max_kernel(max_kernel if max_kernel is not None else DEFAULT_MAX_KERNEL)
        plan = record_plan(module, example_input, pack=mk[0] * mk[1], strict=strict,
                           reference=class_reference(module))
        return cls.from_spec(plan, module.state_dict(), max_kernel=mk, strict=strict, metadata=metadata)

    # --- views -----------------------------------------------------------------------------------
    @property
    def layout(self) -> Layout:
        """Neuron groups and tensor slots shared by every graph of this spec."""
        return self._layout

    @property
    def num_nodes(self) -> int:
        return self._layout.num_nodes

    @property
    def num_edges(self) -> int:
        return self._layout.num_edges

    @property
    def num_parameters(self) -> int:
        """Number of parameter and buffer entries the graph covers (what ``to_state_dict`` returns)."""
        n = 0
        for s in self._layout.slots:
            size = 1
            for d in s.shape:
                size *= d
            n += size
        return n

    @property
    def edge_attr(self) -> torch.Tensor:
        """``[E, kh·kw]`` edge features (format v1: each kernel centred in the ``max_kernel`` window).

        Built graphs keep their edge features per kernel size (:meth:`edge_kernels`; graphs with at most
        :data:`PAD_AT_BUILD_VALUES` padded values are padded while built); the padded tensor is written the
        first time it is read, and from then on it is the graph's edge storage (writes to it are seen by
        :meth:`to_state_dict`)."""
        if self._edge_attr is None:
            assert self._kernels is not None
            self._edge_attr, self._kernels = self._kernels.padded(), None
        return self._edge_attr

    @edge_attr.setter
    def edge_attr(self, value: torch.Tensor) -> None:
        kh, kw = self.max_kernel
        if tuple(value.shape) != (self.num_edges, kh * kw):
            raise ShapeMismatchError(f"ParameterGraph: edge_attr must be [{self.num_edges}, {kh * kw}], "
                                     f"got {tuple(value.shape)}")
        self._edge_attr, self._kernels = value, None

    @property
    def edge_storage(self) -> str:
        """``"kernels"`` while the edge features are stored per kernel size, ``"padded"`` once
        :attr:`edge_attr` has been read (and for small graphs and graphs loaded from a file)."""
        return "kernels" if self._kernels is not None else "padded"

    def edge_kernels(self) -> dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]]:
        """The edge features grouped by kernel size, unpadded: ``{(kr, kc): (edge ids [n], values [n, kr·kc])}``.

        Every edge appears once (Linear weights and 1×1 convs under ``(1, 1)``, 3×3 convs under ``(3, 3)``,
        packed tables under the full window; parameter-free edges under ``(1, 1)`` with value 1). Padding
        ``values`` centred into the window gives :attr:`edge_attr`'s rows ``edge ids``."""
        return self._edge_kernels().by_kernel()

    def _edge_kernels(self) -> EdgeKernels:
        if self._kernels is not None:
            return self._kernels
        return EdgeKernels.from_padded(self.edge_attr, self.max_kernel, _kernel_spans(self._layout, self.max_kernel))

    def _padded_edge_attr(self) -> torch.Tensor:
        """:attr:`edge_attr` without keeping it (for writing a file from a graph stored per kernel size)."""
        return self._edge_attr if self._edge_attr is not None else self._kernels.padded()  # type: ignore[union-attr]

    def __getattr__(self, name: str) -> torch.Tensor:
        # edge_index, edge_type, node_type ...: shared, read-only views of the layout's tensors.
        if name.startswith("_"):
            raise AttributeError(name)
        layout = self.__dict__.get("_layout")
        if layout is not None:
            if name in ("edge_index", "edge_type", "edge_layer"):
                return layout.edge_tensors[name]
            if name in layout.node_tensors:
                return layout.node_tensors[name]
        raise AttributeError(f"'ParameterGraph' object has no attribute {name!r}")

    def __repr__(self) -> str:
        return (f"ParameterGraph(nodes={self.num_nodes}, edges={self.num_edges}, parameters={self.num_parameters}, "
                f"max_kernel={self.max_kernel})")

    def summary(self) -> dict[str, Any]:
        """Counts for reports and the CLI: nodes, edges, parameters covered, edge types, skipped modules."""
        counts = torch.bincount(self.edge_type, minlength=len(EdgeType)).tolist()
        out = {"nodes": self.num_nodes, "edges": self.num_edges, "parameters": self.num_parameters,
               "max_kernel": list(self.max_kernel), "vocab_version": VOCAB_VERSION,
               "edge_types": {e.name.lower(): counts[int(e)] for e in EdgeType},
               "skipped": [{"path": s.path, "module": s.module, "tensors": list(s.tensors)} for s in self.skipped]}
        info = self._layout.info
        if info.get("recorded"):
            unused = [s.name for s in self._layout.slots if s.role == "table" and s.out_group is not None
                      and self._layout.groups[s.out_group].kind == NodeType.UNUSED]
            out["recorded"] = {"module": self.spec.get("module"), "breaks": list(info.get("breaks", [])),
                               "shared": list(info.get("shared", [])), "unused": unused,
                               "unplaced": list(info.get("unplaced", [])),
                               "aliases": dict(self.aliases)}
        if info.get("transformer"):
            blocks = info["attention"]
            out["transformer"] = {
                "family": info["family"], "blocks": len(blocks), "heads": blocks[0]["heads"] if blocks else None,
                "kv_heads": blocks[0]["kv_heads"] if blocks else None, "head_dim": blocks[0]["head_dim"] if blocks else None,
                "rotary_theta": info["rotary"], "tied_embeddings": info["tied"], "aliases": dict(self.aliases),
                "embedding_rows_per_node": info["pack"]}
        return out

    # --- back to weights -------------------------------------------------------------------------
    def to_state_dict(self) -> dict[str, torch.Tensor]:
        """The covered tensors, bit-exactly as given (same names, order, shapes and dtypes; a tied tensor
        given under two names comes back under both, as two equal tensors)."""
        kh, kw = self.max_kernel
        kernels = self._kernels
        attr = self.edge_attr.reshape(self.num_edges, kh, kw) if kernels is None else None
        out: dict[str, torch.Tensor] = {}
        for s in self._layout.slots:
            if s.role == "buffer":
                out[s.name] = self.buffers[s.name].clone()
                continue
            dtype = dtype_from_code(self.dtypes[s.name]).torch
            if attr is not None or s.role not in _EDGE_ROLES:
                t = _take(attr, self.node_values, self._layout, s, self.max_kernel)  # type: ignore[arg-type]
            else:  # read the slot's unpadded run
                assert kernels is not None
                kr, kc = _slot_kernel(s, self.max_kernel)
                n = slot_edge_count(s)
                vals = kernels.run_at(s.edge_start).values if n else torch.empty(0, kr * kc)
                t = _take(vals.view(n, kr, kc), self.node_values, self._layout,  # type: ignore[union-attr]
                          replace(s, edge_start=0), (kr, kc))
            out[s.name] = t.to(dtype).contiguous() if t.dtype != dtype else t.clone().contiguous()
        for alias, target in self.aliases.items():
            out[alias] = out[target].clone()
        return {k: out[k] for k in self.order}

    # --- PyG / networkx --------------------------------------------------------------------------
    def node_features(self) -> torch.Tensor:
        """``[N, 12]`` float32 node features, columns :data:`~.vocab.NODE_FEATURE_COLUMNS`."""
        nt = self._layout.node_tensors
        cats = [nt[k].to(torch.float32).unsqueeze(1)
                for k in ("act_param", "node_layer", "node_pos", "node_type", "node_act", "node_pool", "node_norm")]
        return torch.cat([self.node_values.to(torch.float32), *cats], dim=1)

    def to_pyg(self) -> Data:
        """A ``torch_geometric.data.Data``: ``x`` (:meth:`node_features`), ``edge_index``, ``edge_attr``
        (float32 ``[E, kh·kw]``), plus ``node_type``, ``node_layer``, ``node_pos``, ``node_act``,
        ``edge_type``, ``edge_layer`` (int64). Graphs of any architectures with the same ``max_kernel``
        collate with ``Batch.from_data_list``."""
        from torch_geometric.data import Data

        nt = self._layout.node_tensors
        return Data(x=self.node_features(), edge_index=self.edge_index, edge_attr=self.edge_attr.to(torch.float32),
                    node_type=nt["node_type"], node_layer=nt["node_layer"], node_pos=nt["node_pos"],
                    node_act=nt["node_act"], edge_type=self.edge_type, edge_layer=self.edge_layer,
                    num_nodes=self.num_nodes)

    def to_networkx(self, *, force: bool = False, limit: int = NETWORKX_LIMIT) -> nx.MultiDiGraph:
        """A ``networkx.MultiDiGraph`` (node attrs: the feature columns; edge attrs: type, layer, kernel).

        Refuses graphs with more than ``limit`` nodes + edges (networkx holds a dict per edge) unless
        ``force=True``.
        """
        import networkx as nx

        size = self.num_nodes + self.num_edges
        if size > limit and not force:
            raise GraphTooLargeError(
                f"ParameterGraph has {self.num_nodes} nodes and {self.num_edges} edges (> limit {limit}); "
                "pass force=True (or a larger limit) to convert it to networkx anyway")
        g = nx.MultiDiGraph()
        x = self.node_features().tolist()
        g.add_nodes_from((i, dict(zip(NODE_FEATURE_COLUMNS, row))) for i, row in enumerate(x))
        ei = self.edge_index.tolist()
        et, el = self.edge_type.tolist(), self.edge_layer.tolist()
        kernels = self.edge_attr.to(torch.float32).tolist()
        kh, kw = self.max_kernel
        centre = ((kh - 1) // 2) * kw + (kw - 1) // 2  # where Linear weights and identities sit
        g.add_edges_from((s, d, {"type": t, "layer": lay, "weight": k[centre], "kernel": k})
                         for s, d, t, lay, k in zip(ei[0], ei[1], et, el, kernels))
        return g

    # --- files -----------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], *, edge_storage: str = "padded") -> None:
        """Write the graph as one safetensors file (tensors) with the spec, vocab version, max_kernel,
        dtypes and metadata as JSON in its ``__metadata__``. Durable and atomic (:mod:`weightzoo.zoo.formats.durable`).

        Args:
            edge_storage: ``"padded"`` (default; format ``weightzoo.parameter_graph/1``: the ``[E, kh·kw]``
                ``edge_attr``) or ``"kernels"`` (format ``weightzoo.parameter_graph.kernels/1``: one tensor of
                unpadded kernels per tensor slot and no edge structure, which the spec gives — about the
                size of the weights; :meth:`load` reads both).
        """
        from safetensors.torch import save_file

        if edge_storage not in EDGE_STORAGES:
            raise ValueError(f"ParameterGraph.save: edge_storage must be one of {EDGE_STORAGES}, got {edge_storage!r}")
        # kernel files leave out edge_index/edge_type/edge_layer (32 bytes per edge): the spec gives them
        edges = self._layout.edge_tensors if edge_storage == "padded" else {}
        tensors = {"node_values": self.node_values.contiguous(),
                   **{k: v.contiguous() for k, v in edges.items()},
                   **{k: v.contiguous() for k, v in self._layout.node_tensors.items()},
                   **{f"buffer.{k}": v.contiguous() for k, v in self.buffers.items()}}
        extra: dict[str, str] = {}
        if edge_storage == "padded":
            tensors["edge_attr"] = self._padded_edge_attr().contiguous()
        else:
            ek = self._edge_kernels()
            runs = sorted(ek.runs, key=lambda r: r.start)
            tensors.update({f"kernels.{i}": r.values.contiguous() for i, r in enumerate(runs) if r.values is not None})
            extra = {"edge_kernels": json.dumps([[r.start, r.count, *r.kernel, r.values is not None] for r in runs]),
                     "edge_dtype": "F64" if ek.dtype == torch.float64 else "F32"}
        meta = {"format": GRAPH_FORMAT if edge_storage == "padded" else GRAPH_FORMAT_KERNELS, **extra,
                "vocab_version": str(VOCAB_VERSION), "spec": json.dumps(self.spec),
                "max_kernel": json.dumps(list(self.max_kernel)), "dtypes": json.dumps(self.dtypes),
                "node_value_columns": json.dumps(list(NODE_VALUE_COLUMNS)), "metadata": json.dumps(self.metadata),
                "order": json.dumps(self.order), "aliases": json.dumps(self.aliases), "names": json.dumps(self._names)}
        with atomic_path(path) as tmp:
            save_file(tensors, tmp, metadata=meta)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ParameterGraph:
        """Read a graph written by :meth:`save`; raises :class:`~weightzoo.errors.CheckpointError` when
        the file is not one, has another vocab version, or disagrees with its own spec."""
        meta, tensors = read_graph_file(path)
        if meta.get("format") not in (GRAPH_FORMAT, GRAPH_FORMAT_KERNELS):
            raise CheckpointError(path, f"not a ParameterGraph file (format {meta.get('format')!r})")
        if meta.get("vocab_version") not in {str(v) for v in COMPATIBLE_VOCAB_VERSIONS}:
            raise CheckpointError(path, f"vocab version {meta.get('vocab_version')} (this weightzoo reads "
                                        f"{', '.join(map(str, COMPATIBLE_VOCAB_VERSIONS))})")
        try:
            spec, mk = json.loads(meta["spec"]), _max_kernel(json.loads(meta["max_kernel"]))
            dtypes, metadata = json.loads(meta["dtypes"]), json.loads(meta.get("metadata", "{}"))
            aliases, names = json.loads(meta.get("aliases", "{}")), json.loads(meta.get("names", "null"))
            order = json.loads(meta["order"]) if "order" in meta else None
            layout = layout_of(spec, names, pack=mk[0] * mk[1])
        except (KeyError, ValueError, TypeError, SpecError, UnsupportedLayerError) as exc:
            raise CheckpointError(path, f"bad graph metadata: {exc}") from exc
        if set(dtypes) != {s.name for s in layout.slots} | set(aliases):
            raise CheckpointError(path, "dtypes do not list the spec's tensors")
        kernel_file = meta["format"] == GRAPH_FORMAT_KERNELS
        if kernel_file and any(k in tensors for k in ("edge_index", "edge_type", "edge_layer")):
            raise CheckpointError(path, "a kernel graph file carries no edge structure (its spec gives it)")
        for k, v in ({} if kernel_file else layout.edge_tensors).items():
            if k not in tensors or not torch.equal(tensors[k], v):
                raise CheckpointError(path, f"{k} does not match the graph's spec")
        buffers = {k[len("buffer."):]: v for k, v in tensors.items() if k.startswith("buffer.")}
        kernels = _kernels_from_file(path, meta, tensors, layout, mk) if kernel_file else None
        try:
            return cls(layout, edge_attr=tensors["edge_attr"] if kernels is None else None, kernels=kernels,
                       node_values=tensors["node_values"], max_kernel=mk, dtypes=dtypes, buffers=buffers,
                       metadata=metadata, aliases=aliases, order=order, names=names)
        except (KeyError, ShapeMismatchError) as exc:
            raise CheckpointError(path, f"graph tensors do not fit the spec: {exc}") from exc


__all__ = ["DEFAULT_MAX_KERNEL", "EDGE_STORAGES", "GRAPH_FORMAT", "GRAPH_FORMAT_KERNELS", "NETWORKX_LIMIT",
           "PAD_AT_BUILD_VALUES", "TRANSFORMER_MAX_KERNEL", "ParameterGraph", "is_transformer_spec", "needs_recording"]
