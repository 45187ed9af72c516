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
  pooling, normalization — all ids from :mod:`~weightzoo.zoo.graphs.vocab` (``VOCAB_VERSION`` 1).

Values are kept exactly (float32, or float64 when a tensor is float64; every narrower float embeds
exactly) with each tensor's dtype, so :meth:`ParameterGraph.to_state_dict` is bit-exact. Memory is
linear in the number of weights: ``E·prod(max_kernel)`` edge values plus ``2E`` indices, no dense N×N.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ...errors import (
    CheckpointError,
    GraphTooLargeError,
    KernelTooLargeError,
    ShapeMismatchError,
    SpecError,
    UnsupportedLayerError,
)
from ..arch import spec_from_module
from ..dtypes import dtype_from_code, dtype_from_torch
from .layout import Layout, Skipped, layout_of
from .vocab import NODE_FEATURE_COLUMNS, NODE_VALUE_COLUMNS, VOCAB_VERSION, EdgeType

if TYPE_CHECKING:
    import networkx as nx
    from torch_geometric.data import Data

GRAPH_FORMAT = "weightzoo.parameter_graph/1"
DEFAULT_MAX_KERNEL = (7, 7)
NETWORKX_LIMIT = 20_000


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
        edge_attr (Tensor): ``[E, kh·kw]`` edge values (float32, float64 if a tensor was float64).
        node_values (Tensor): ``[N, 5]`` bias / norm weight / norm bias / running mean / running var.
        dtypes (dict[str, str]): each covered tensor's dtype code (``F32``, ``BF16`` ...).
        buffers (dict[str, Tensor]): integer buffers kept verbatim (``num_batches_tracked``).
        skipped (list[Skipped]): modules left out (only with ``strict=False``), with their tensor names.
        metadata (dict): free-form JSON-able metadata saved with the graph.

    Shapes:
        ``edge_index`` ``[2, E]``, ``edge_type``/``edge_layer`` ``[E]``, ``node_type``/``node_layer``/
        ``node_pos``/``node_act`` ``[N]``.
    """

    def __init__(self, layout: Layout, *, edge_attr: torch.Tensor, node_values: torch.Tensor,
                 max_kernel: tuple[int, int], dtypes: dict[str, str], buffers: dict[str, torch.Tensor],
                 metadata: dict[str, Any] | None = None) -> None:
        kh, kw = max_kernel
        if edge_attr.shape != (layout.num_edges, kh * kw) or node_values.shape != (layout.num_nodes, 5):
            raise ShapeMismatchError(
                f"ParameterGraph: edge_attr {tuple(edge_attr.shape)} / node_values {tuple(node_values.shape)} do not "
                f"fit the spec ({layout.num_edges} edges × {kh * kw}, {layout.num_nodes} nodes × 5)")
        self._layout = layout
        self.spec = layout.spec
        self.max_kernel = max_kernel
        self.edge_attr = edge_attr
        self.node_values = node_values
        self.dtypes = dtypes
        self.buffers = buffers
        self.skipped: list[Skipped] = list(layout.skipped)
        self.metadata = dict(metadata or {})

    # --- construction ----------------------------------------------------------------------------
    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor], *,
                  max_kernel: int | tuple[int, int] = DEFAULT_MAX_KERNEL, strict: bool = True,
                  metadata: dict[str, Any] | None = None) -> ParameterGraph:
        """The graph of the network ``spec`` describes, with the weights of ``state_dict``.

        Args:
            spec: a ``weightzoo.arch/1`` spec (see :mod:`weightzoo.zoo.arch`).
            state_dict: name → tensor (a lazy mapping is fine: each tensor is read once).
            max_kernel: kernel window (int or (height, width); default 7×7). Larger kernels raise
                :class:`~weightzoo.errors.KernelTooLargeError`.
            strict: if ``True`` (default), ``"unsupported"`` layers in the spec raise
                :class:`~weightzoo.errors.UnsupportedLayerError`; otherwise they land in ``graph.skipped``.
        """
        layout = layout_of(spec)
        if strict and layout.skipped:
            first = layout.skipped[0]
            raise UnsupportedLayerError(first.path or "<root>", first.module, "pass strict=False to skip it")
        mk = _max_kernel(max_kernel)
        kh, kw = mk
        expected = {s.name for s in layout.slots}
        skipped_names = {n for s in layout.skipped for n in s.tensors}
        keys = set(state_dict.keys())
        missing = sorted(expected - keys)
        extra = sorted(keys - expected - skipped_names)
        if missing or extra:
            raise SpecError(f"state dict does not match the spec: missing {missing[:5]}"
                            f"{'...' if len(missing) > 5 else ''}, unexpected {extra[:5]}{'...' if len(extra) > 5 else ''}")
        tensors = {s.name: state_dict[s.name] for s in layout.slots}
        wide = any(t.dtype == torch.float64 for t in tensors.values())
        store = torch.float64 if wide else torch.float32
        edge_attr = torch.zeros(layout.num_edges, kh, kw, dtype=store)
        node_values = torch.zeros(layout.num_nodes, 5, dtype=store)
        dtypes: dict[str, str] = {}
        buffers: dict[str, torch.Tensor] = {}
        bad = [(s.name, tuple(s.shape), tuple(tensors[s.name].shape)) for s in layout.slots
               if tuple(tensors[s.name].shape) != s.shape]
        if bad:
            raise ShapeMismatchError(f"state dict shapes differ from the spec: {bad[:3]}", bad)
        groups = layout.groups
        for s in layout.slots:
            t = tensors[s.name].detach()
            try:
                dtypes[s.name] = dtype_from_torch(t.dtype).code
            except KeyError as exc:
                raise SpecError(f"tensor {s.name!r}: {exc}") from None
            if s.role == "buffer":
                buffers[s.name] = t.clone()
                continue
            if not t.is_floating_point():
                raise SpecError(f"tensor {s.name!r} has dtype {t.dtype}; graphs hold floating-point parameters")
            if s.role == "weight":
                k = tuple(s.shape[2:]) or (1,)
                kr, kc = (1, k[0]) if len(k) == 1 else k
                if kr > kh or kc > kw:
                    raise KernelTooLargeError(s.name.rsplit(".", 1)[0], (kr, kc), mk)
                n = s.shape[0] * s.shape[1]
                r0, c0 = (kh - kr) // 2, (kw - kc) // 2
                edge_attr[s.edge_start : s.edge_start + n, r0 : r0 + kr, c0 : c0 + kc] = t.reshape(n, kr, kc)
            else:
                g = groups[s.out_group]  # type: ignore[index]
                node_values[g.start : g.start + g.size, s.column] = t
        for st in layout.struct:
            edge_attr[st.edge_start : st.edge_start + st.count, kh // 2, kw // 2] = 1
        return cls(layout, edge_attr=edge_attr.reshape(layout.num_edges, kh * kw), node_values=node_values,
                   max_kernel=mk, dtypes=dtypes, buffers=buffers, metadata=metadata)

    @classmethod
    def from_module(cls, module: nn.Module, *, max_kernel: int | tuple[int, int] = DEFAULT_MAX_KERNEL,
                    strict: bool = True, metadata: dict[str, Any] | None = None) -> ParameterGraph:
        """The graph of an ``nn.Sequential``-style module (its spec from
        :func:`~weightzoo.zoo.arch.spec_from_module`, its weights from ``state_dict()``).

        With ``strict=False`` unsupported modules are skipped (listed in ``graph.skipped`` with their
        path, type and tensors; the graph starts a fresh, fixed group of nodes after each) instead of
        raising :class:`~weightzoo.errors.UnsupportedLayerError`.
        """
        spec = spec_from_module(module, strict=strict)
        return cls.from_spec(spec, module.state_dict(), max_kernel=max_kernel, strict=strict, metadata=metadata)

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
        return {"nodes": self.num_nodes, "edges": self.num_edges, "parameters": self.num_parameters,
                "max_kernel": list(self.max_kernel), "vocab_version": VOCAB_VERSION,
                "edge_types": {e.name.lower(): counts[int(e)] for e in EdgeType},
                "skipped": [{"path": s.path, "module": s.module, "tensors": list(s.tensors)} for s in self.skipped]}

    # --- back to weights -------------------------------------------------------------------------
    def to_state_dict(self) -> dict[str, torch.Tensor]:
        """The covered tensors, bit-exactly as given (same names, order, shapes and dtypes)."""
        kh, kw = self.max_kernel
        attr = self.edge_attr.reshape(self.num_edges, kh, kw)
        out: dict[str, torch.Tensor] = {}
        groups = self._layout.groups
        for s in self._layout.slots:
            if s.role == "buffer":
                out[s.name] = self.buffers[s.name].clone()
                continue
            dtype = dtype_from_code(self.dtypes[s.name]).torch
            if s.role == "weight":
                k = tuple(s.shape[2:]) or (1,)
                kr, kc = (1, k[0]) if len(k) == 1 else k
                n = s.shape[0] * s.shape[1]
                r0, c0 = (kh - kr) // 2, (kw - kc) // 2
                t = attr[s.edge_start : s.edge_start + n, r0 : r0 + kr, c0 : c0 + kc].reshape(s.shape)
            else:
                g = groups[s.out_group]  # type: ignore[index]
                t = self.node_values[g.start : g.start + g.size, s.column]
            out[s.name] = t.to(dtype).contiguous() if t.dtype != dtype else t.clone().contiguous()
        return out

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
        centre = (kh // 2) * kw + kw // 2
        g.add_edges_from((s, d, {"type": t, "layer": lay, "weight": k[centre], "kernel": k})
                         for s, d, t, lay, k in zip(ei[0], ei[1], et, el, kernels))
        return g

    # --- files -----------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the graph as one safetensors file (tensors) with the spec, vocab version, max_kernel,
        dtypes and metadata as JSON in its ``__metadata__``. Atomic: temp file + ``os.replace``."""
        from safetensors.torch import save_file

        tensors = {"edge_attr": self.edge_attr.contiguous(), "node_values": self.node_values.contiguous(),
                   **{k: v.contiguous() for k, v in self._layout.edge_tensors.items()},
                   **{k: v.contiguous() for k, v in self._layout.node_tensors.items()},
                   **{f"buffer.{k}": v.contiguous() for k, v in self.buffers.items()}}
        meta = {"format": GRAPH_FORMAT, "vocab_version": str(VOCAB_VERSION), "spec": json.dumps(self.spec),
                "max_kernel": json.dumps(list(self.max_kernel)), "dtypes": json.dumps(self.dtypes),
                "node_value_columns": json.dumps(list(NODE_VALUE_COLUMNS)), "metadata": json.dumps(self.metadata)}
        target = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata=meta)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ParameterGraph:
        """Read a graph written by :meth:`save`; raises :class:`~weightzoo.errors.CheckpointError` when
        the file is not one, has another vocab version, or disagrees with its own spec."""
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - safe_open has no __iter__
        except FileNotFoundError:
            raise
        except Exception as exc:  # safetensors raises its own error types for malformed files
            raise CheckpointError(path, f"not a readable safetensors file: {exc}") from exc
        if meta.get("format") != GRAPH_FORMAT:
            raise CheckpointError(path, f"not a ParameterGraph file (format {meta.get('format')!r})")
        if meta.get("vocab_version") != str(VOCAB_VERSION):
            raise CheckpointError(path, f"vocab version {meta.get('vocab_version')} (this weightzoo reads {VOCAB_VERSION})")
        try:
            spec, mk = json.loads(meta["spec"]), _max_kernel(json.loads(meta["max_kernel"]))
            dtypes, metadata = json.loads(meta["dtypes"]), json.loads(meta.get("metadata", "{}"))
            layout = layout_of(spec)
        except (KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(path, f"bad graph metadata: {exc}") from exc
        if set(dtypes) != {s.name for s in layout.slots}:
            raise CheckpointError(path, "dtypes do not list the spec's tensors")
        for k, v in layout.edge_tensors.items():
            if k not in tensors or not torch.equal(tensors[k], v):
                raise CheckpointError(path, f"{k} does not match the graph's spec")
        buffers = {k[len("buffer."):]: v for k, v in tensors.items() if k.startswith("buffer.")}
        try:
            return cls(layout, edge_attr=tensors["edge_attr"], node_values=tensors["node_values"], max_kernel=mk,
                       dtypes=dtypes, buffers=buffers, metadata=metadata)
        except (KeyError, ShapeMismatchError) as exc:
            raise CheckpointError(path, f"graph tensors do not fit the spec: {exc}") from exc


__all__ = ["DEFAULT_MAX_KERNEL", "GRAPH_FORMAT", "NETWORKX_LIMIT", "ParameterGraph"]
