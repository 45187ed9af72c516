"""The frozen records of a neuron layout: neuron groups, tensor slots, structural edges, skipped modules.

A :class:`Layout` lists the neuron groups (input features or channels, hidden layers, flattened features,
outputs), every state-dict tensor with the group(s) its dimensions index (its :class:`ParamSlot`), the
residual identity connections, and the structural constraints symmetries must respect (grouped
convolutions, group norms, groups next to skipped layers). Layouts are cached and shared, so every record
is frozen; builders change a group with :func:`set_group` (``dataclasses.replace``) while they build.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import torch

from .vocab import Activation, EdgeType, NodeType, Norm, Pool


@dataclass(frozen=True)
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

    Recorded layouts (:mod:`.dataflow`) add ``role="table"`` (a plain parameter such as a class token,
    position table or layer scale: edges from its PARAMETER chunk nodes, ``pack`` rows each, to the nodes
    of the channel space its ``axis`` runs over) and ``in_major`` weights.

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
    axis: int = -1  #: ``role="table"``: the tensor axis whose entries are the ``out_group`` nodes
    in_major: bool = False  #: a weight stored ``[in, out/groups, k...]`` (transposed conv, ``x @ W``)


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
    src_offset: int = 0  #: identity edges from nodes ``src_offset ..`` of the source group (a slice of it)
    dst_offset: int = 0  #: identity edges into nodes ``dst_offset ..`` of the destination (a concat segment)


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


def set_group(groups: list[NeuronGroup], index: int, **changes: Any) -> NeuronGroup:
    """Replace ``groups[index]`` by a copy with ``changes`` (for layout builders; groups are frozen)."""
    groups[index] = replace(groups[index], **changes)
    return groups[index]


def flat_in_index(layout: Layout, group: int) -> tuple[int, int]:
    """(channel group, spatial) for a FLATTEN group; (group, 1) for any other."""
    g = layout.groups[group]
    if g.kind == NodeType.FLATTEN:
        assert g.channel_group is not None
        return g.channel_group, g.spatial
    return group, 1


__all__ = ["Layout", "NeuronGroup", "ParamSlot", "Skipped", "StructEdges", "flat_in_index", "set_group"]
