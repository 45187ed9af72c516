"""Where each tensor's edges go: the (src, dst) node ids of weight, packed-table and structural edges.

Shared by :class:`~.layout.Layout` (which materialises every edge once) and the sampled / per-layer
views of :mod:`.views` (which compute only the edges they keep, so huge models never need the full list).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from weightzoo.errors import SpecError

from .vocab import EdgeType, NodeType

if TYPE_CHECKING:
    from .layout import Layout, ParamSlot, StructEdges


def matrix_dims(s: ParamSlot) -> tuple[int, int]:
    """(rows, columns) of a weight slot as a matrix of edges: (out, in per group)."""
    if s.transposed:
        return s.shape[1], s.shape[0]
    if s.flat:
        n = 1
        for d in s.shape[1:]:
            n *= d
        return s.shape[0], n
    return s.shape[0], s.shape[1]


def table_dims(s: ParamSlot) -> tuple[int, int, int]:
    """(rows, dim, chunks) of a packed embedding/unembedding/table slot (``chunks = ceil(rows / pack)``)."""
    d = s.shape[s.axis] if s.shape else 1
    rows = 1
    for x in s.shape:
        rows *= x
    rows //= max(d, 1)
    return rows, d, -(-rows // s.pack)


def slot_edge_count(s: ParamSlot) -> int:
    """How many edges a weight/embedding slot owns (0 for node-feature and buffer slots)."""
    if s.role in _TABLES:
        _, d, chunks = table_dims(s)
        return chunks * d
    if s.role != "weight":
        return 0
    n_out, n_in = matrix_dims(s)
    return n_out * n_in


def out_nodes(layout: Layout, s: ParamSlot) -> torch.Tensor:
    """Global node ids of a slot's output rows, in tensor order (fused slots span several groups)."""
    parts: tuple[int, ...] = s.out_parts or (s.out_group,)  # type: ignore[assignment]
    return torch.cat([torch.arange(layout.groups[p].start, layout.groups[p].start + layout.groups[p].size)
                      for p in parts])


_TABLES = ("embedding", "unembed", "table")
_FUSED_TYPES = {NodeType.QUERY: EdgeType.ATTN_Q, NodeType.KEY: EdgeType.ATTN_K, NodeType.VALUE: EdgeType.ATTN_V}


def edge_type_of(layout: Layout, s: ParamSlot) -> int | torch.Tensor:
    """The edge type id(s) of a slot's edges (a fused q|k|v slot gives each part its own type)."""
    if not s.out_parts:
        return int(s.edge_type)  # type: ignore[arg-type]
    n_in = matrix_dims(s)[1]
    return torch.cat([torch.full((layout.groups[p].size * n_in,),
                                 int(_FUSED_TYPES.get(layout.groups[p].kind, s.edge_type)))  # type: ignore[arg-type]
                      for p in s.out_parts])


def edge_layer_of(layout: Layout, s: ParamSlot) -> int | torch.Tensor:
    """The layer index recorded on a slot's edges (its destination group's)."""
    if not s.out_parts:
        return layout.groups[s.out_group].index  # type: ignore[index]
    n_in = matrix_dims(s)[1]
    return torch.cat([torch.full((layout.groups[p].size * n_in,), layout.groups[p].index) for p in s.out_parts])


def _rows_cols(rows: int, cols: int, local: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column of each entry of a row-major ``rows × cols`` matrix (all, or at ``local`` offsets)."""
    if local is None:  # repeat is several times faster than integer division on tens of millions of edges
        return torch.arange(rows).repeat_interleave(cols), torch.arange(cols).repeat(rows)
    return local // cols, local % cols


def slot_edge_index(layout: Layout, s: ParamSlot, local: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(src, dst) global node ids of a slot's edges, all of them or those at ``local`` offsets.

    Edges are in the row-major order of the ``[out, in]`` matrix (``[chunk, dim]`` for packed tables).
    """
    if s.in_major:
        dst_, src_ = slot_edge_index(layout, _swapped(s), local)
        return src_, dst_
    in_g = layout.groups[s.in_group]  # type: ignore[index]
    if s.role in _TABLES:
        _, d, chunks = table_dims(s)
        chunk, dim = _rows_cols(chunks, d, local)
        out_g = layout.groups[s.out_group]  # type: ignore[index]
        if s.role != "unembed":
            return in_g.start + chunk, out_g.start + dim
        return in_g.start + dim, out_g.start + chunk
    n_out, n_in = matrix_dims(s)
    o, j = _rows_cols(n_out, n_in, local)
    dst = out_nodes(layout, s)[o] if s.out_parts else layout.groups[s.out_group].start + o  # type: ignore[index]
    if s.groups == 1:
        return in_g.start + j, dst
    block = o // (n_out // s.groups)
    return in_g.start + block * n_in + j, dst


def write_slot_edges(layout: Layout, s: ParamSlot, src: torch.Tensor, dst: torch.Tensor) -> None:
    """Write all of a slot's (src, dst) node ids into the given 1-D views, in place.

    Same result as :func:`slot_edge_index`, as broadcast writes into ``[rows, cols]`` views: no
    temporaries of the slot's size (this is what makes graphs of 10⁷–10⁸ weights cheap to lay out).
    """
    if s.in_major:  # rows are inputs: the same pattern with the roles of source and destination swapped
        write_slot_edges(layout, _swapped(s), dst, src)
        return
    in_g = layout.groups[s.in_group]  # type: ignore[index]
    if s.role in _TABLES:
        _, d, chunks = table_dims(s)
        out_g = layout.groups[s.out_group]  # type: ignore[index]
        chunk_v = src if s.role != "unembed" else dst
        dim_v = dst if s.role != "unembed" else src
        chunk_start, dim_start = (in_g.start, out_g.start) if s.role != "unembed" else (out_g.start, in_g.start)
        chunk_v.view(chunks, d).copy_(torch.arange(chunk_start, chunk_start + chunks).unsqueeze(1).expand(chunks, d))
        dim_v.view(chunks, d).copy_(torch.arange(dim_start, dim_start + d).expand(chunks, d))
        return
    n_out, n_in = matrix_dims(s)
    rows = out_nodes(layout, s) if s.out_parts else torch.arange(layout.groups[s.out_group].start,  # type: ignore[index]
                                                                  layout.groups[s.out_group].start + n_out)  # type: ignore[index]
    dst.view(n_out, n_in).copy_(rows.unsqueeze(1).expand(n_out, n_in))
    cols = torch.arange(in_g.start, in_g.start + n_in)
    if s.groups == 1:
        src.view(n_out, n_in).copy_(cols.expand(n_out, n_in))
    else:
        block = torch.arange(n_out) // (n_out // s.groups) * n_in
        torch.add(block.unsqueeze(1), cols, out=src.view(n_out, n_in))


def _swapped(s: ParamSlot) -> ParamSlot:
    from dataclasses import replace

    return replace(s, in_group=s.out_group, out_group=s.in_group, in_major=False)


def struct_edge_index(layout: Layout, st: StructEdges, local: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(src, dst) global node ids of parameter-free edges (see :class:`StructEdges` for the patterns)."""
    sg, dg = layout.groups[st.src_group], layout.groups[st.dst_group]
    k = torch.arange(st.count) if local is None else local
    if st.pattern == "identity" and st.edge_type != EdgeType.FLATTEN:
        return sg.start + st.src_offset + k, dg.start + st.dst_offset + k
    if st.edge_type == EdgeType.FLATTEN:
        return sg.start + k // dg.spatial, dg.start + k
    dh = st.head_dim
    h, j = k // dh, k % dh
    kv = (h // st.rep) * dh + j
    if st.pattern == "q_head":
        return sg.start + k, dg.start + h
    if st.pattern == "k_head":
        return sg.start + kv, dg.start + h
    if st.pattern == "head_mix":
        return sg.start + h, dg.start + k
    if st.pattern == "v_mix":
        return sg.start + kv, dg.start + k
    raise SpecError(f"unknown structural edge pattern {st.pattern!r}")


__all__ = [
    "edge_layer_of", "edge_type_of", "matrix_dims", "out_nodes", "slot_edge_count", "slot_edge_index",
    "struct_edge_index", "table_dims", "write_slot_edges",
]
