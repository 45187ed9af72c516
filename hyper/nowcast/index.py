"""Where each trainable scalar of a network sits in its ParameterGraph: the map every nowcaster reads.

A network's trainable parameters are flattened in ``named_parameters()`` order into one vector of ``P``
scalars (a *trajectory state*). :class:`ParameterIndex` records, for every scalar, its tensor and its
*site* in the network's :class:`~weightzoo.zoo.graphs.ParameterGraph`: an edge (a weight, at a position
of the ``max_kernel`` window) or a node (a bias / normalization column). Models then move between the
flat vector and graph elements with gathers and scatters, so memory stays linear in ``P`` (no dense
N×N, no padded per-graph tensors).

The map is found by building the graph once from a float64 state dict whose entries are their own flat
indices (plus 2, so 0 marks padding and 1 the parameter-free residual/flatten edges): exact for any
architecture the graph covers, with no second copy of the layout logic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from weightzoo.errors import SpecError, WeightzooError

#: site kinds
NONE, EDGE, NODE = 0, 1, 2


@dataclass(frozen=True)
class ParameterIndex:
    """The flat layout of a network's trainable parameters and their graph sites.

    Attributes:
        names, shapes: the trainable tensors, in ``named_parameters()`` order.
        tensor_id: ``[P]`` int64, the tensor of each scalar (per-tensor scaling).
        site_kind: ``[P]`` int64, :data:`NONE` (outside the graph), :data:`EDGE` or :data:`NODE`.
        site_elem: ``[P]`` int64, the edge or node index (0 for ``NONE``).
        site_pos: ``[P]`` int64, the kernel-window position (edges, ``0 .. K-1``), ``K + column`` (nodes)
            or ``K + 5`` (outside the graph).
        edge_index: ``[2, E]``; edge_type ``[E]``; node_type ``[N]`` (empty without a graph).
        window: ``K``, the kernel window size of the graph (``kh·kw``).
        graph_reason: why there is no graph (``None`` when there is one).

    Symmetry: a hidden-neuron permutation of the network relabels nodes and edges and moves scalars
    between sites of the same kind and position, so models built on this index are equivariant to it.
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    tensor_id: torch.Tensor
    site_kind: torch.Tensor
    site_elem: torch.Tensor
    site_pos: torch.Tensor
    edge_index: torch.Tensor
    edge_type: torch.Tensor
    node_type: torch.Tensor
    window: int
    graph_reason: str | None = None

    @property
    def num_params(self) -> int:
        return int(self.tensor_id.numel())

    @property
    def num_tensors(self) -> int:
        return len(self.names)

    @property
    def num_nodes(self) -> int:
        return int(self.node_type.numel())

    @property
    def num_edges(self) -> int:
        return int(self.edge_type.numel())

    @property
    def has_graph(self) -> bool:
        return self.graph_reason is None

    def flatten(self, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The ``[P]`` float32 vector of ``state``'s trainable tensors (a state dict or ``named_parameters``)."""
        try:
            return torch.cat([state[n].detach().reshape(-1).to(torch.float32) for n in self.names])
        except KeyError as exc:
            raise SpecError(f"state has no tensor {exc.args[0]!r} (expected {list(self.names)[:4]}...)") from None

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Name → tensor views of a ``[P]`` vector (the inverse of :meth:`flatten`)."""
        out, start = {}, 0
        for n, shape in zip(self.names, self.shapes):
            size = 1
            for d in shape:
                size *= d
            out[n] = flat[start:start + size].reshape(shape)
            start += size
        return out

    @classmethod
    def from_module(cls, module: nn.Module, *, spec: Mapping[str, Any] | None = None, example_input: Any = None,
                    max_kernel: int | tuple[int, int] = 7) -> ParameterIndex:
        """The index of ``module``; its graph from ``spec`` (e.g. a zoo entry's) or from the module itself
        (:meth:`ParameterGraph.from_module <weightzoo.zoo.graphs.ParameterGraph.from_module>`: fast paths for
        specs and covered families, else one recorded forward pass on ``example_input`` — derived when
        ``None`` — so class-based modules with residuals, gates or plain parameters get their graph too).

        ``max_kernel`` is the graph's kernel window (7×7 for every network, transformers included, so
        kernel positions mean the same to a nowcaster everywhere). Modules the ParameterGraph cannot lay out (e.g. a class-based module whose ``forward`` a spec
        cannot see) get an index without a graph; ``graph_reason`` says why.
        """
        from weightzoo.zoo.graphs import ParameterGraph

        params = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        names = tuple(n for n, _ in params)
        shapes = tuple(tuple(p.shape) for _, p in params)
        sizes = [p.numel() for _, p in params]
        total = sum(sizes)
        tensor_id = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes, dtype=torch.long))
        codes: dict[str, torch.Tensor] = {}
        start = 0
        offsets = {}
        for (n, _), size in zip(params, sizes):
            offsets[n] = start
            start += size
        for n, t in module.state_dict(keep_vars=False).items():
            if n in offsets:
                codes[n] = (torch.arange(t.numel(), dtype=torch.float64) + offsets[n] + 2).reshape(t.shape)
            elif t.is_floating_point():
                codes[n] = torch.zeros(t.shape, dtype=torch.float64)
            else:
                codes[n] = t.clone()
        reason: str | None = None
        graph = None
        try:
            if spec is not None:
                graph = ParameterGraph.from_spec(spec, codes, max_kernel=max_kernel, strict=False)
            else:
                graph = _graph_of_module(module, codes, example_input, max_kernel)
        except WeightzooError as exc:  # typed refusals of the graph builders (unsupported op, no input ...)
            reason = f"{type(module).__name__}: {exc}"
        kind = torch.zeros(total, dtype=torch.long)
        elem = torch.zeros(total, dtype=torch.long)
        if graph is None:
            window = 1
            pos = torch.full((total,), window + 5, dtype=torch.long)
            empty = torch.zeros(0, dtype=torch.long)
            return cls(names, shapes, tensor_id, kind, elem, pos, torch.zeros(2, 0, dtype=torch.long), empty, empty,
                       window, reason or "no graph")
        window = int(graph.edge_attr.shape[1])
        pos = torch.full((total,), window + 5, dtype=torch.long)
        ea = graph.edge_attr.to(torch.float64)
        nv = graph.node_values.to(torch.float64)
        for table, k, width, offset in ((ea, EDGE, window, 0), (nv, NODE, 5, window)):
            flat = table.reshape(-1)
            hit = (flat >= 2).nonzero().squeeze(1)
            target = (flat[hit] - 2).round().long()
            kind[target] = k
            elem[target] = hit // width
            pos[target] = hit % width + offset
        return cls(names, shapes, tensor_id, kind, elem, pos, graph.edge_index.clone(), graph.edge_type.clone(),
                   graph.node_type.clone(), window, None)


def _graph_of_module(module: nn.Module, codes: dict[str, torch.Tensor], example_input: Any,
                     max_kernel: int | tuple[int, int]) -> Any:
    from weightzoo.zoo.graphs import ParameterGraph

    # The module's own graph gives the spec (a recorded one for class-based modules); the index graph is
    # then that spec filled with the code state dict.
    spec = ParameterGraph.from_module(module, example_input, max_kernel=max_kernel, strict=False).spec
    return ParameterGraph.from_spec(spec, codes, max_kernel=max_kernel, strict=False)


__all__ = ["EDGE", "NODE", "NONE", "ParameterIndex"]
