r"""Neuron layouts of transformers: embeddings, the residual stream, attention heads, (gated) MLPs, heads.

The graph of a transformer (vocabulary v2) is built from the same pieces as an MLP's — neuron groups,
tensor slots, parameter-free structural edges — so :class:`~weightzoo.zoo.graphs.ParameterGraph`, its
round trip and its files work unchanged. The construction:

* **Residual stream**: one STREAM group of ``d`` nodes shared by every block. Embeddings and every
  block's output projection write into it (a write group of ``d`` neurons carrying the projection's
  bias, joined to the stream by RESIDUAL identity edges); every normalization reads from it (NORM
  identity edges into a group of ``d`` nodes carrying the norm's weight/bias). Post-LN models (BERT)
  also add RESIDUAL edges from the normalized features a sublayer read back into the stream.
* **Embedding tables** ``[rows, d]`` in a packed form: one EMBEDDING node per ``K`` consecutive rows
  (``K`` = the edge window ``kh·kw``), one EMBEDDING edge per (chunk, stream dim) whose feature holds the
  chunk's ``K`` entries of that dim (zero-padded in the last chunk). Exact, ``rows·d`` values and
  ``2·⌈rows/K⌉·d`` indices — at ``K = 1`` it is one input node per vocabulary entry.
* **Attention**: QUERY (``H·dh``), KEY and VALUE (``Hkv·dh``) groups fed by ATTN_Q/K/V edges; one HEAD
  node per query head, fed by every query dim of the head and every key dim of its key/value head
  (ATTN_SCORE); an ATTENTION group (``H·dh``) fed by its head and by the value dims of its key/value head
  (ATTN_MIX); ATTN_O edges into the output projection's neurons. Grouped-query attention shows as a
  key/value node reaching ``H / Hkv`` heads. Like every hidden node, these have position −1, so node
  features stay equivariant under head and within-head permutations (the heads are read from the
  edges); rotary embeddings mark the QUERY/KEY nodes (activation ROTARY, ``act_param`` = θ).
* **MLP**: hidden neurons with the activation; gated MLPs (SwiGLU) have gate and up groups joined by
  GATE identity edges (gate neuron ``i`` multiplies up neuron ``i``).
* **Heads**: a pooler/classifier is a Linear into OUTPUT nodes; an untied LM head is packed like an
  embedding (UNEMBED edges into ``⌈V/K⌉`` OUTPUT chunk nodes); a tied head is stored once, in the
  word-embedding nodes, whose type becomes TIED_EMBEDDING (``Layout.info["aliases"]`` maps the head's
  name to the table's, so a state dict that had both names gets both back).

``Layout.info`` lists the attention blocks, MLP hidden groups and the residual-stream groups for
:mod:`weightzoo.zoo.symmetry.transformer`, and each tensor's block for the per-layer views.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from weightzoo.errors import SpecError

from .layout_types import Layout, NeuronGroup, ParamSlot, Skipped, StructEdges, set_group
from .slot_edges import slot_edge_count
from .vocab import Activation, EdgeType, NodeType, Norm


class TransformerBuilder:
    """Creates groups, slots and structural edges in forward order; family code calls its methods.

    Args:
        names: the checkpoint's tensor names (optional tensors — biases, heads, buffers — are taken
            when present; required ones missing raise :class:`~weightzoo.errors.SpecError`).
        pack: embedding rows per edge (the edge window size).
    """

    def __init__(self, names: Iterable[str], pack: int, family: str) -> None:
        if pack < 1:
            raise ValueError(f"TransformerBuilder: pack must be >= 1, got {pack}")
        self.names = set(names)
        self.pack = pack
        self.groups: list[NeuronGroup] = []
        self.slots: list[ParamSlot] = []
        self.struct: list[StructEdges] = []
        self.used: set[str] = set()
        self.n_nodes = 0
        self.n_edges = 0
        self.block = -1  # -1: embeddings; 0..L-1: blocks; set to L for the final norm and heads
        self.info: dict[str, Any] = {"transformer": True, "family": family, "attention": [], "mlp": [],
                                     "stream": [], "stream_permutable": False, "aliases": {}, "tied": False,
                                     "rotary": None, "slot_block": {}, "group_block": {}, "struct_block": [],
                                     "pack": pack}

    # --- primitives ------------------------------------------------------------------------------
    def has(self, name: str) -> bool:
        return name in self.names

    def need(self, name: str) -> None:
        if name not in self.names:
            raise SpecError(f"state dict has no tensor {name!r}, which a {self.info['family']} model with this "
                            "config has (wrong config, or a checkpoint of another architecture?)")

    def group(self, size: int, kind: NodeType, **kw: Any) -> int:
        if size < 1:
            raise SpecError(f"{self.info['family']}: a layer of {size} neurons (check the config's sizes)")
        g = NeuronGroup(index=len(self.groups), size=size, kind=kind, start=self.n_nodes, **kw)
        self.groups.append(g)
        self.n_nodes += size
        self.info["group_block"][g.index] = self.block
        return g.index

    def _add(self, slot: ParamSlot) -> None:
        if slot.name in self.used:
            raise SpecError(f"tensor {slot.name!r} is laid out twice")
        self.slots.append(slot)
        self.used.add(slot.name)
        self.info["slot_block"][slot.name] = self.block
        self.n_edges += slot_edge_count(slot)

    def edges(self, etype: EdgeType, src: int, dst: int, count: int, pattern: str = "identity", head_dim: int = 1,
              rep: int = 1) -> None:
        self.struct.append(StructEdges(etype, src, dst, self.n_edges, count, pattern, head_dim, rep))
        self.info["struct_block"].append(self.block)
        self.n_edges += count

    def weight(self, name: str, shape: tuple[int, ...], src: int, dst: int | tuple[int, ...], etype: EdgeType, *,
               transposed: bool = False, flat: bool = False) -> None:
        self.need(name)
        parts = dst if isinstance(dst, tuple) else ()
        out = parts[0] if parts else dst
        self._add(ParamSlot(name, "weight", tuple(shape), out_group=out, in_group=src, edge_type=etype,  # type: ignore[arg-type]
                            edge_start=self.n_edges, transposed=transposed, flat=flat, out_parts=parts))

    def vector(self, name: str, role: str, group: int | tuple[int, ...], column: int, *, required: bool = False) -> bool:
        """A bias / norm parameter as a node-value column (taken only when present unless ``required``)."""
        if not self.has(name):
            if required:
                self.need(name)
            return False
        parts = group if isinstance(group, tuple) else ()
        gi = parts[0] if parts else group
        size = sum(self.groups[p].size for p in parts) if parts else self.groups[gi].size  # type: ignore[index]
        self._add(ParamSlot(name, role, (size,), out_group=gi, column=column, out_parts=parts))  # type: ignore[arg-type]
        return True

    def linear(self, prefix: str, src: int, dst: int | tuple[int, ...], etype: EdgeType = EdgeType.LINEAR, *,
               transposed: bool = False, weight: str | None = None, bias: str | None = None) -> None:
        """``prefix.weight`` (``[out, in]``, or ``[in, out]`` if transposed) and ``prefix.bias`` if present."""
        n_in = self.groups[src].size
        parts = dst if isinstance(dst, tuple) else (dst,)
        n_out = sum(self.groups[p].size for p in parts)
        self.weight(weight or f"{prefix}.weight", (n_in, n_out) if transposed else (n_out, n_in), src, dst, etype,
                    transposed=transposed)
        self.vector(bias or f"{prefix}.bias", "bias", dst, 0)

    def buffer(self, name: str, shape: tuple[int, ...]) -> None:
        """A non-parameter tensor some checkpoints carry (kept verbatim), when present."""
        if self.has(name):
            self._add(ParamSlot(name, "buffer", shape))

    def chunks(self, rows: int, kind: NodeType = NodeType.EMBEDDING) -> int:
        """The node group of a packed table with ``rows`` rows: ``⌈rows / pack⌉`` nodes."""
        return self.group(-(-rows // self.pack), kind)

    def table(self, name: str, shape: tuple[int, ...], chunk_group: int, feature_group: int, role: str = "embedding") -> None:
        """A packed table ``[..., rows, d]``: ``embedding`` (chunks → features) or ``unembed`` (features → chunks)."""
        self.need(name)
        etype = EdgeType.EMBEDDING if role == "embedding" else EdgeType.UNEMBED
        src, dst = (chunk_group, feature_group) if role == "embedding" else (feature_group, chunk_group)
        self._add(ParamSlot(name, role, tuple(shape), out_group=dst, in_group=src, edge_type=etype,
                            edge_start=self.n_edges, pack=self.pack))

    # --- transformer pieces ----------------------------------------------------------------------
    def stream(self, size: int) -> int:
        g = self.group(size, NodeType.STREAM)
        self.info["stream"].append(g)
        return g

    def write(self, src: int, stream: int) -> None:
        """Add ``src``'s features into the residual stream (RESIDUAL identity edges)."""
        self.edges(EdgeType.RESIDUAL, src, stream, self.groups[stream].size)
        if src not in self.info["stream"]:
            self.info["stream"].append(src)

    def norm(self, prefix: str, src: int, kind: Norm) -> int:
        """A LayerNorm/RMSNorm over ``src``'s features: its own ``d`` nodes (weight, bias as node values)."""
        g = self.group(self.groups[src].size, NodeType.HIDDEN, norm=kind, norm_prefix=prefix, norm_affine=True)
        self.edges(EdgeType.NORM, src, g, self.groups[src].size)
        # early BERT checkpoints name LayerNorm parameters gamma/beta (transformers renames them on load)
        w, b = ("gamma", "beta") if not self.has(f"{prefix}.weight") and self.has(f"{prefix}.gamma") else ("weight", "bias")
        self.vector(f"{prefix}.{w}", "norm_weight", g, 1, required=True)
        self.vector(f"{prefix}.{b}", "norm_bias", g, 2)
        self.info["stream"].append(g)
        return g

    def attention(self, read: int, *, heads: int, kv_heads: int, head_dim: int, out: int,
                  q: str | None = None, k: str | None = None, v: str | None = None, o: str,
                  qkv: tuple[str, str] | None = None, transposed: bool = False, rotary: float | None = None,
                  out_kind: NodeType = NodeType.HIDDEN) -> int:
        """Multi-head (grouped-query) self-attention reading ``read``; returns its output-projection group.

        ``q``/``k``/``v``/``o`` are Linear prefixes; ``qkv = (weight name, bias name)`` is a fused
        projection whose output rows are q|k|v.
        """
        if heads % kv_heads:
            raise SpecError(f"{self.info['family']}: {heads} attention heads are not a multiple of {kv_heads} "
                            "key/value heads")
        act = {"act": Activation.ROTARY, "act_param": float(rotary)} if rotary is not None else {}
        gq = self.group(heads * head_dim, NodeType.QUERY, head_dim=head_dim, **act)
        gk = self.group(kv_heads * head_dim, NodeType.KEY, head_dim=head_dim, **act)
        gv = self.group(kv_heads * head_dim, NodeType.VALUE, head_dim=head_dim)
        if qkv is not None:
            self.linear("", read, (gq, gk, gv), EdgeType.ATTN_Q, transposed=transposed, weight=qkv[0], bias=qkv[1])
        else:
            for prefix, g, et in ((q, gq, EdgeType.ATTN_Q), (k, gk, EdgeType.ATTN_K), (v, gv, EdgeType.ATTN_V)):
                self.linear(prefix, read, g, et, transposed=transposed)  # type: ignore[arg-type]
        gh = self.group(heads, NodeType.HEAD)
        ga = self.group(heads * head_dim, NodeType.ATTENTION, head_dim=head_dim)
        n, rep = heads * head_dim, heads // kv_heads
        self.edges(EdgeType.ATTN_SCORE, gq, gh, n, "q_head", head_dim, rep)
        self.edges(EdgeType.ATTN_SCORE, gk, gh, n, "k_head", head_dim, rep)
        self.edges(EdgeType.ATTN_MIX, gh, ga, n, "head_mix", head_dim, rep)
        self.edges(EdgeType.ATTN_MIX, gv, ga, n, "v_mix", head_dim, rep)
        go = self.group(out, out_kind)
        self.linear(o, ga, go, EdgeType.ATTN_O, transposed=transposed)
        self.info["attention"].append({"block": self.block, "q": gq, "k": gk, "v": gv, "head": gh, "attn": ga,
                                       "o": go, "heads": heads, "kv_heads": kv_heads, "head_dim": head_dim,
                                       "rotary": rotary is not None})
        if rotary is not None:
            self.info["rotary"] = float(rotary)
        return go

    def mlp(self, read: int, *, inner: int, up: str, down: str, act: Activation, gate: str | None = None,
            transposed: bool = False, out_kind: NodeType = NodeType.HIDDEN) -> int:
        """A (gated) MLP reading ``read``; returns its down-projection group (``d`` neurons with the bias)."""
        if gate is not None:
            gg = self.group(inner, NodeType.HIDDEN, act=act)
            self.linear(gate, read, gg, transposed=transposed)
            gu = self.group(inner, NodeType.HIDDEN)
            self.linear(up, read, gu, transposed=transposed)
            self.edges(EdgeType.GATE, gg, gu, inner)
            hidden = [gg, gu]
        else:
            gu = self.group(inner, NodeType.HIDDEN, act=act)
            self.linear(up, read, gu, transposed=transposed)
            hidden = [gu]
        gd = self.group(self.groups[read].size, out_kind)
        self.linear(down, gu, gd, transposed=transposed)
        self.info["mlp"].append({"block": self.block, "hidden": hidden})
        return gd

    def head_table(self, name: str, alias_of: str | None, tied: bool, read: int, rows: int, d: int,
                   embedding_group: int) -> None:
        """An LM head: tied (stored once in the word embedding; ``name`` an alias when present) or packed."""
        if tied:
            self.info["tied"] = True
            set_group(self.groups, embedding_group, kind=NodeType.TIED_EMBEDDING)
            if self.has(name) and alias_of is not None:
                self.info["aliases"][name] = alias_of
                self.used.add(name)
        else:
            out = self.chunks(rows, NodeType.OUTPUT)
            self.table(name, (rows, d), out, read, role="unembed")

    def finish(self, spec: dict[str, Any]) -> Layout:
        """The :class:`Layout`; tensors nobody took become ``skipped`` entries (one per parent module)."""
        left = sorted(self.names - self.used)
        by_parent: dict[str, list[str]] = {}
        for n in left:
            by_parent.setdefault(n.rsplit(".", 1)[0] if "." in n else "", []).append(n)
        skipped = tuple(Skipped(p, f"{self.info['family']}:unknown", tuple(ns)) for p, ns in by_parent.items())
        slots = tuple(self.slots)
        return Layout(spec, tuple(self.groups), slots, tuple(self.struct), (), (), skipped, self.n_nodes,
                      self.n_edges, {s.name: s for s in slots}, self.info)


__all__ = ["TransformerBuilder"]
