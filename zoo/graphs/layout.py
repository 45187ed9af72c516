"""The neuron layout of a spec: which neuron groups exist and which tensor dims they index.

A :class:`Layout` is computed once per spec (and cached): it lists the neuron groups (input features or
channels, hidden layers, flattened features, outputs), every state-dict tensor with the group(s) its
dimensions index (its :class:`ParamSlot`), the residual identity connections, and the structural
constraints symmetries must respect (grouped convolutions, group norms, groups next to skipped layers).
:class:`~weightzoo.zoo.graphs.ParameterGraph` lays nodes and edges out from it, and
:mod:`weightzoo.zoo.symmetry` permutes weights through it, so both agree on what a neuron is.

The records live in :mod:`.layout_types`; MLP/CNN specs (``weightzoo.arch/1``) are traced by
:mod:`.spec_layout`, transformer specs (``hf`` and ``torch``) by :mod:`.hf_families` into the same
structures (plus ``Layout.info`` for attention blocks). :func:`layout_of` picks the builder and caches.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from weightzoo.errors import SpecError
from weightzoo.zoo.arch import HF_FORMAT, TORCH_FORMAT, validate_spec

from .dataflow import RECORDED_FORMAT, layout_from_plan
from .hf_families import build_family
from .layout_types import Layout, NeuronGroup, ParamSlot, Skipped, StructEdges, flat_in_index
from .spec_layout import trace_spec

_CACHE: OrderedDict[str, Layout] = OrderedDict()
_CACHE_SIZE = 256
_LOCK = threading.Lock()


#: Layouts with more edges than this are not cached: their edge tensors would pin hundreds of MB.
_CACHE_MAX_EDGES = 2_000_000


def layout_of(spec: Mapping[str, Any], names: Iterable[str] | None = None, *, pack: int = 1) -> Layout:
    """The (cached) :class:`Layout` of a spec.

    Args:
        spec: a ``weightzoo.arch/1`` spec, a recorded layout (``weightzoo.recorded/1``, see
            :mod:`.dataflow`; the layout is in the spec), or a transformer spec (``{"format": "hf", "class", "config"}``
            of a Hugging Face snapshot, or ``{"format": "torch", ...}`` of ``nn.MultiheadAttention`` /
            ``nn.TransformerEncoderLayer``).
        names: the state dict's tensor names — required for transformer specs (which optional tensors,
            heads and prefixes a checkpoint has is read from them); ignored for ``weightzoo.arch/1``.
        pack: embedding-table rows per edge for transformer graphs (the edge window size).

    Raises :class:`~weightzoo.errors.SpecError` for malformed or inconsistent specs and
    :class:`~weightzoo.errors.UnsupportedLayerError` for architectures the graphs do not cover.
    """
    fmt = spec.get("format") if isinstance(spec, Mapping) else None
    if fmt == RECORDED_FORMAT:  # the layout is in the spec (recorded from a module's forward pass)
        return layout_from_plan(dict(spec))
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
        layout = build_family(norm, name_list, pack)
    else:
        layout = trace_spec(norm)
    if layout.num_edges <= _CACHE_MAX_EDGES:
        with _LOCK:
            _CACHE[key] = layout
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    return layout


__all__ = [
    "Layout", "NeuronGroup", "ParamSlot", "Skipped", "StructEdges", "flat_in_index", "layout_of",
]
