"""Bounded views of ParameterGraphs too large to build whole: a seeded edge sample, or one block at a time.

A 7B-parameter model has ~7·10⁹ edges: its full graph (32 bytes of indices per edge) does not fit in
memory, and a metanetwork could not process it anyway. As NiNo does for billion-parameter models, these
views compute only the edges they keep — straight from the layout, reading each tensor once from a lazy
state dict (a zoo entry) and keeping only the sampled entries — so memory is bounded by the view.

* :func:`sampled_view` — every node (exact node features), and ``max_edges`` edges drawn uniformly
  without replacement (seeded), with their exact values.
* :func:`layer_views` — one view per block (embeddings, each transformer block, final norm + heads; for
  MLP/CNN specs one per layer): every edge of the block and the nodes they touch.

Each :class:`GraphView` keeps ``node_id`` / ``edge_id`` (the node and edge numbers in the full graph), so
its values map back to the full ParameterGraph.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from weightzoo.errors import GraphTooLargeError, SpecError

from .layout import Layout, ParamSlot, layout_of
from .parameter_graph import (
    DEFAULT_MAX_KERNEL,
    TRANSFORMER_MAX_KERNEL,
    _max_kernel,
    _place,
    is_transformer_spec,
)
from .slot_edges import (
    edge_layer_of,
    edge_type_of,
    matrix_dims,
    slot_edge_count,
    slot_edge_index,
    struct_edge_index,
    table_dims,
)

if TYPE_CHECKING:
    from torch_geometric.data import Data


@dataclass
class GraphView:
    """A subgraph of a ParameterGraph (local node numbering; ``node_id``/``edge_id`` are the global ones).

    Shapes: ``x`` ``[n, 12]`` (:data:`~.vocab.NODE_FEATURE_COLUMNS`), ``edge_index`` ``[2, m]``,
    ``edge_attr`` ``[m, kh·kw]``, ``edge_type``/``edge_layer``/``edge_id`` ``[m]``, ``node_id`` ``[n]``.
    """

    kind: str
    label: str
    x: torch.Tensor
    edge_index: torch.Tensor
    edge_attr: torch.Tensor
    edge_type: torch.Tensor
    edge_layer: torch.Tensor
    node_id: torch.Tensor
    edge_id: torch.Tensor
    total_edges: int
    max_kernel: tuple[int, int]

    @property
    def num_nodes(self) -> int:
        return int(self.node_id.numel())

    @property
    def num_edges(self) -> int:
        return int(self.edge_id.numel())

    def __repr__(self) -> str:
        return (f"GraphView({self.kind} {self.label!r}: nodes={self.num_nodes}, edges={self.num_edges} of "
                f"{self.total_edges})")

    def to_pyg(self, *, ids: bool = False) -> Data:
        """A ``torch_geometric.data.Data`` with the same fields as :meth:`ParameterGraph.to_pyg` (so views
        and full graphs batch together); ``ids=True`` adds ``node_id`` and ``edge_id``."""
        from torch_geometric.data import Data

        cols = {"node_type": 10, "node_layer": 8, "node_pos": 9, "node_act": 11}
        extra = {"node_id": self.node_id, "edge_id": self.edge_id} if ids else {}
        return Data(x=self.x, edge_index=self.edge_index, edge_attr=self.edge_attr.to(torch.float32),
                    **{k: self.x[:, c].to(torch.long) for k, c in cols.items()}, edge_type=self.edge_type,
                    edge_layer=self.edge_layer, num_nodes=self.num_nodes, **extra)


def _setup(spec: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor],
           max_kernel: int | tuple[int, int] | None) -> tuple[Layout, tuple[int, int]]:
    transformer = is_transformer_spec(spec)
    mk = _max_kernel(max_kernel if max_kernel is not None
                     else TRANSFORMER_MAX_KERNEL if transformer else DEFAULT_MAX_KERNEL)
    layout = layout_of(spec, sorted(state_dict.keys()) if transformer else None, pack=mk[0] * mk[1])
    missing = sorted({s.name for s in layout.slots} - set(state_dict.keys()))
    if missing:
        raise SpecError(f"state dict does not match the spec: missing {missing[:5]}")
    return layout, mk


def _node_features(layout: Layout, state_dict: Mapping[str, torch.Tensor], mk: tuple[int, int]) -> torch.Tensor:
    """``[N, 12]`` node features of the full graph: only the (small) vector slots are read."""
    node_values = torch.zeros(layout.num_nodes, 5, dtype=torch.float64)
    for s in layout.slots:
        if s.role not in ("weight", "embedding", "unembed", "buffer"):
            _place(torch.empty(0), node_values, layout, s, state_dict[s.name].detach().to(torch.float64), mk)
    nt = layout.node_tensors
    cats = [nt[k].to(torch.float32).unsqueeze(1)
            for k in ("act_param", "node_layer", "node_pos", "node_type", "node_act", "node_pool", "node_norm")]
    return torch.cat([node_values.to(torch.float32), *cats], dim=1)


def _edge_values(s: ParamSlot, t: torch.Tensor, local: torch.Tensor, mk: tuple[int, int]) -> torch.Tensor:
    """``[len(local), kh·kw]`` values of a slot's edges at ``local`` offsets (float64, exact)."""
    kh, kw = mk
    out = torch.zeros(len(local), kh, kw, dtype=torch.float64)
    t = t.detach()
    if s.role in ("embedding", "unembed"):
        rows, d, _ = table_dims(s)
        table = t.reshape(rows, d)
        r = (local // d).unsqueeze(1) * s.pack + torch.arange(s.pack)
        j = (local % d).unsqueeze(1).expand_as(r)
        ok = r < rows
        flat = torch.zeros(len(local), s.pack, dtype=torch.float64)
        flat[ok] = table[r[ok], j[ok]].to(torch.float64)
        return flat
    n_out, n_in = matrix_dims(s)
    o, i = local // n_in, local % n_in
    if s.transposed or s.flat or t.dim() == 2:
        m = t.t() if s.transposed else t.reshape(n_out, n_in)
        out[:, (kh - 1) // 2, (kw - 1) // 2] = m[o, i].to(torch.float64)
    else:
        k = tuple(s.shape[2:])
        kr, kc = (1, k[0]) if len(k) == 1 else k
        r0, c0 = (kh - kr) // 2, (kw - kc) // 2
        out[:, r0: r0 + kr, c0: c0 + kc] = t.reshape(n_out * n_in, kr, kc)[local].to(torch.float64)
    return out.reshape(len(local), kh * kw)


def _collect(layout: Layout, state_dict: Mapping[str, torch.Tensor], mk: tuple[int, int],
             pick: dict[int, torch.Tensor], pick_struct: dict[int, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """(src, dst, attr, type, layer, edge ids) of the picked local edges of each slot / struct set."""
    kh, kw = mk
    parts: list[tuple[torch.Tensor, ...]] = []
    wide = False
    for si, local in pick.items():
        s = layout.slots[si]
        t = state_dict[s.name]
        wide = wide or t.dtype == torch.float64
        src, dst = slot_edge_index(layout, s, local)
        et, el = edge_type_of(layout, s), edge_layer_of(layout, s)
        et_t = et[local] if isinstance(et, torch.Tensor) else torch.full((len(local),), et)
        el_t = el[local] if isinstance(el, torch.Tensor) else torch.full((len(local),), el)
        parts.append((src, dst, _edge_values(s, t, local, mk), et_t, el_t, s.edge_start + local))
        del t
    for sti, local in pick_struct.items():
        st = layout.struct[sti]
        src, dst = struct_edge_index(layout, st, local)
        attr = torch.zeros(len(local), kh * kw, dtype=torch.float64)
        attr[:, ((kh - 1) // 2) * kw + (kw - 1) // 2] = 1
        parts.append((src, dst, attr, torch.full((len(local),), int(st.edge_type)),
                      torch.full((len(local),), layout.groups[st.dst_group].index), st.edge_start + local))
    if not parts:
        e = torch.empty(0, dtype=torch.long)
        return e, e, torch.empty(0, kh * kw, dtype=torch.float32), e, e, e
    cols = list(zip(*parts))
    cat = [torch.cat(c) for c in cols]
    order = torch.argsort(cat[5])
    out = [c[order] for c in cat]
    out[2] = out[2] if wide else out[2].to(torch.float32)  # every narrower float is exact in float32
    return tuple(out)


def _sample_ids(total: int, m: int, g: torch.Generator) -> torch.Tensor:
    """``m`` distinct sorted ints in ``[0, total)`` drawn uniformly, in O(m) memory."""
    if m >= total:
        return torch.arange(total)
    ids = torch.empty(0, dtype=torch.long)
    while len(ids) < m:
        ids = torch.unique(torch.cat([ids, torch.randint(0, total, (m - len(ids) + m // 8 + 16,), generator=g)]))
    keep = torch.randperm(len(ids), generator=g)[:m]
    return torch.sort(ids[keep]).values


def sampled_view(spec: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor], max_edges: int, *, seed: int = 0,
                 max_kernel: int | tuple[int, int] | None = None) -> GraphView:
    """Every node and ``max_edges`` edges drawn uniformly without replacement (seeded), values exact.

    Memory is O(nodes + max_edges) plus the largest tensor read; tensors none of whose edges were drawn
    are not read.
    """
    if max_edges < 1:
        raise ValueError(f"sampled_view: max_edges must be >= 1, got {max_edges}")
    layout, mk = _setup(spec, state_dict, max_kernel)
    ids = _sample_ids(layout.num_edges, max_edges, torch.Generator().manual_seed(seed))
    pick, pick_struct = {}, {}
    for si, s in enumerate(layout.slots):
        n = slot_edge_count(s)
        if n:
            lo, hi = torch.searchsorted(ids, torch.tensor([s.edge_start, s.edge_start + n])).tolist()
            if hi > lo:
                pick[si] = ids[lo:hi] - s.edge_start
    for sti, st in enumerate(layout.struct):
        lo, hi = torch.searchsorted(ids, torch.tensor([st.edge_start, st.edge_start + st.count])).tolist()
        if hi > lo:
            pick_struct[sti] = ids[lo:hi] - st.edge_start
    src, dst, attr, et, el, eid = _collect(layout, state_dict, mk, pick, pick_struct)
    return GraphView("sample", f"seed {seed}", _node_features(layout, state_dict, mk), torch.stack([src, dst]),
                     attr, et, el, torch.arange(layout.num_nodes), eid,
                     layout.num_edges, mk)


def layer_views(spec: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor], *,
                max_kernel: int | tuple[int, int] | None = None, max_edges: int | None = None) -> Iterator[GraphView]:
    """One view per block, in forward order: ``embeddings``, ``block 0`` …, ``head`` (transformers), or
    one per weight layer (MLP/CNN specs). Each holds every edge of its block and the nodes they touch.

    Raises :class:`~weightzoo.errors.GraphTooLargeError` for a block with more than ``max_edges`` edges
    (use :func:`sampled_view` for those).
    """
    layout, mk = _setup(spec, state_dict, max_kernel)
    info = layout.info
    slot_block = {si: int(info["slot_block"][s.name] if layout.is_transformer else s.out_group)  # type: ignore[arg-type]
                  for si, s in enumerate(layout.slots) if slot_edge_count(s)}
    struct_block = {sti: info["struct_block"][sti] if layout.is_transformer else st.dst_group
                    for sti, st in enumerate(layout.struct)}
    feats = _node_features(layout, state_dict, mk)
    blocks = sorted(set(slot_block.values()) | set(struct_block.values()))
    last = max(blocks) if blocks else 0
    for b in blocks:
        pick = {si: torch.arange(slot_edge_count(layout.slots[si])) for si, bb in slot_block.items() if bb == b}
        pick_struct = {sti: torch.arange(layout.struct[sti].count) for sti, bb in struct_block.items() if bb == b}
        n = sum(len(v) for v in pick.values()) + sum(len(v) for v in pick_struct.values())
        label = ("embeddings" if b == -1 else "head" if b == last and layout.is_transformer and b > 0
                 and not any(a["block"] == b for a in info["attention"]) else f"block {b}")
        if max_edges is not None and n > max_edges:
            raise GraphTooLargeError(f"{label} has {n} edges (> max_edges={max_edges}); use sampled_view for it")
        src, dst, attr, et, el, eid = _collect(layout, state_dict, mk, pick, pick_struct)
        nodes = torch.unique(torch.cat([src, dst]))
        local = torch.searchsorted(nodes, torch.stack([src, dst]))
        yield GraphView("layer", label, feats[nodes], local, attr, et, el, nodes,
                        eid, layout.num_edges, mk)


__all__ = ["GraphView", "layer_views", "sampled_view"]
