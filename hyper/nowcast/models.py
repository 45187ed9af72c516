r"""Nowcasters: from the last ``c`` parameter states, predict the parameters ``horizon`` steps ahead.

All three share one interface — :meth:`NowcasterBase.predict` takes a :class:`~.index.ParameterIndex` and
a ``[c, P]`` history (states ``spacing`` optimizer steps apart) and returns the ``[P]`` nowcast — and
one training target, the per-tensor scaled delta of :mod:`.features`:

* :class:`Nowcaster` — NiNo style (Knyazev et al., ICLR 2025): a per-scalar encoder of the trajectory
  features, pooled onto the network's ParameterGraph (edge = weight or conv kernel, node = neuron with
  its bias/norm parameters), ``layers`` rounds of edge-featured message passing in both directions,
  and a per-scalar decoder that reads the scalar's own code and its edge's or node's state.
* :class:`MLPNowcaster` — the WNN+ style baseline: the same per-scalar encoder and decoder, no graph.
* :class:`LinearNowcaster` — linear extrapolation: the least-squares slope of each scalar's history
  times the horizon, times one gain fitted on the training trajectories (1 by default).

Symmetry: every nowcaster is equivariant to hidden-neuron permutations of the network (permuting the
history's neurons permutes the nowcast the same way): features are per scalar with per-tensor scales,
embeddings are by node/edge *type* and kernel position only, and messages are mean-aggregated.
The graph nowcaster also reacts to the wiring (a permutation of one layer's rows alone, which is not a
symmetry, changes its nowcast beyond the permutation); the baselines do not.

Shapes (a batch of graphs concatenated): features ``[P, c]``, sites ``[P]``, ``edge_index`` ``[2, E]``,
``node_type`` ``[N]`` → scaled deltas ``[P]``.

All three save and load as safetensors + JSON config (``save_pretrained`` / ``from_pretrained`` of
``huggingface_hub.PyTorchModelHubMixin``); :func:`load_nowcaster` opens any of them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from weightzoo.errors import ConfigError, SpecError

from .features import history_features
from .index import EDGE, NODE, ParameterIndex

WINDOW = 49  # 7×7 kernel window of the graphs nowcasters read
N_POSITIONS = WINDOW + 5 + 1  # kernel positions, node-value columns, "outside the graph"
N_TYPES = 32  # room for the graph vocabulary's node and edge types
CLIP = 50.0  # predictions beyond this many history scales are cut (a diverging input never explodes)


@dataclass
class NowcastBatch:
    """Several networks' histories concatenated (site/edge/node indices offset per network)."""

    features: torch.Tensor
    scale: torch.Tensor
    site_kind: torch.Tensor
    site_elem: torch.Tensor
    site_pos: torch.Tensor
    edge_index: torch.Tensor
    edge_type: torch.Tensor
    node_type: torch.Tensor
    target: torch.Tensor | None = None

    @property
    def num_nodes(self) -> int:
        return int(self.node_type.numel())

    @property
    def num_edges(self) -> int:
        return int(self.edge_type.numel())


def make_batch(items: Sequence[tuple[ParameterIndex, torch.Tensor, torch.Tensor | None]]) -> NowcastBatch:
    """Collate ``(index, history [c, P], future state [P] or None)`` triples into one batch."""
    feats, scales, kinds, elems, poss, eis, ets, nts, targets = [], [], [], [], [], [], [], [], []
    n_off = e_off = 0
    for index, states, future in items:
        if states.shape[-1] != index.num_params:
            raise SpecError(f"history has {states.shape[-1]} parameters, the network {index.num_params}")
        f, s = history_features(states, index.tensor_id, index.num_tensors)
        feats.append(f)
        scales.append(s)
        kinds.append(index.site_kind)
        elems.append(index.site_elem + torch.where(index.site_kind == EDGE, e_off, n_off))
        poss.append(index.site_pos)
        eis.append(index.edge_index + n_off)
        ets.append(index.edge_type)
        nts.append(index.node_type)
        if future is not None:
            targets.append((future.to(torch.float32) - states[-1].to(torch.float32)) / s)
        n_off += index.num_nodes
        e_off += index.num_edges
    return NowcastBatch(torch.cat(feats), torch.cat(scales), torch.cat(kinds), torch.cat(elems), torch.cat(poss),
                        torch.cat(eis, dim=1), torch.cat(ets), torch.cat(nts),
                        torch.cat(targets) if len(targets) == len(items) else None)


class NowcasterBase(nn.Module):
    """What every nowcaster shares: its trajectory geometry and :meth:`predict`.

    Args:
        history: ``c``, the number of past states read (``>= 2``).
        spacing: optimizer steps between two history states (``>= 1``).
        horizon: optimizer steps ahead of the last state that the nowcast targets (``>= 1``).
    """

    kind = ""

    def __init__(self, history: int, spacing: int, horizon: int) -> None:
        super().__init__()
        for name, v, lo in (("history", history, 2), ("spacing", spacing, 1), ("horizon", horizon, 1)):
            if not isinstance(v, int) or v < lo:
                raise ConfigError(f"{type(self).__name__}: {name} must be an int >= {lo}, got {v!r}")
        self.history, self.spacing, self.horizon = history, spacing, horizon

    def forward_scaled(self, batch: NowcastBatch) -> torch.Tensor:
        """``[P]`` scaled deltas (the learning target's units) of a batch."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, index: ParameterIndex, states: torch.Tensor) -> torch.Tensor:
        """The ``[P]`` nowcast of the network whose last ``c`` states (``[c, P]``, oldest first) are given."""
        if states.dim() != 2 or states.shape[0] != self.history:
            raise ConfigError(f"{type(self).__name__} reads {self.history} states, got {tuple(states.shape)}")
        was = self.training
        self.eval()
        batch = make_batch([(index, states, None)])
        delta = self.forward_scaled(batch).clamp(-CLIP, CLIP)
        self.train(was)
        return states[-1].to(torch.float32) + delta * batch.scale

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "history": self.history, "spacing": self.spacing, "horizon": self.horizon,
                "parameters": sum(p.numel() for p in self.parameters())}


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class _ScalarCodec(nn.Module):
    """Per-scalar encoder ``φ(features) + pos[site]`` and decoder ``ψ([code, context]) → delta``."""

    def __init__(self, history: int, hidden: int, context: int) -> None:
        super().__init__()
        self.encode = _mlp([history, hidden, hidden])
        self.position = nn.Embedding(N_POSITIONS, hidden)
        self.decode = _mlp([hidden + context, hidden, 1])
        self.context = context

    def codes(self, batch: NowcastBatch) -> torch.Tensor:
        return self.encode(batch.features) + self.position(batch.site_pos.clamp(max=N_POSITIONS - 1))

    def out(self, codes: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        x = codes if context is None else torch.cat([codes, context], dim=1)
        return self.decode(x).squeeze(1)


class MLPNowcaster(NowcasterBase, PyTorchModelHubMixin):
    """WNN+ style baseline: a per-scalar MLP on the scaled history and the scalar's kernel position."""

    kind = "mlp"

    def __init__(self, history: int = 5, spacing: int = 10, horizon: int = 40, hidden: int = 32) -> None:
        super().__init__(history, spacing, horizon)
        self.hidden = hidden
        self.codec = _ScalarCodec(history, hidden, 0)

    def forward_scaled(self, batch: NowcastBatch) -> torch.Tensor:
        return self.codec.out(self.codec.codes(batch), None)


def _pool(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Mean of ``values`` rows into ``size`` slots (empty slots stay 0)."""
    out = values.new_zeros(size, values.shape[1]).index_add_(0, index, values)
    count = torch.zeros(size, dtype=values.dtype).index_add_(0, index, torch.ones_like(index, dtype=values.dtype))
    return out / count.clamp(min=1).unsqueeze(1)


class _GraphLayer(nn.Module):
    r"""One round: node update from messages along and against the edges, then an edge update.

    .. math::
        h_v \leftarrow \mathrm{LN}\big(h_v + W[\mathrm{conv}_{\rightarrow}(h, e)_v, \mathrm{conv}_{\leftarrow}(h, e)_v]\big),
        \quad e_{uv} \leftarrow \mathrm{LN}\big(e_{uv} + \mathrm{MLP}[e_{uv}, h_u, h_v]\big)

    with mean-aggregating edge-featured convolutions (``torch_geometric.nn.GeneralConv``), so it is
    equivariant to node relabellings.
    """

    def __init__(self, hidden: int) -> None:
        super().__init__()
        from torch_geometric.nn import GeneralConv

        self.forward_conv = GeneralConv(hidden, hidden, in_edge_channels=hidden, aggr="mean")
        self.backward_conv = GeneralConv(hidden, hidden, in_edge_channels=hidden, aggr="mean")
        self.node_mix = _mlp([2 * hidden, hidden, hidden])
        self.edge_mlp = _mlp([3 * hidden, hidden, hidden])
        self.node_norm = nn.LayerNorm(hidden)
        self.edge_norm = nn.LayerNorm(hidden)

    def forward(self, h: torch.Tensor, edge_index: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fwd = self.forward_conv(h, edge_index, e)
        bwd = self.backward_conv(h, edge_index.flip(0), e)
        h = self.node_norm(h + self.node_mix(torch.cat([fwd, bwd], dim=1)))
        src, dst = edge_index
        e = self.edge_norm(e + self.edge_mlp(torch.cat([e, h[src], h[dst]], dim=1)))
        return h, e


LAYERS = ("edge-update", "pyg-general")


class Nowcaster(NowcasterBase, PyTorchModelHubMixin):
    """The graph nowcaster (NiNo style; see the module docstring).

    Args:
        history, spacing, horizon: see :class:`NowcasterBase` (defaults 5, 10, 40).
        hidden: width of scalar codes and node/edge states (default 32).
        layers: message-passing rounds (default 3).
        layer: ``"edge-update"`` (default): :class:`~weightzoo.metanets.layers.edge_update_conv.EdgeUpdateConv`
            with mean and max aggregation; ``"pyg-general"``: two ``torch_geometric`` ``GeneralConv``
            (along and against the edges, mean aggregation) and an edge MLP (:class:`_GraphLayer`).
    """

    kind = "graph"

    def __init__(self, history: int = 5, spacing: int = 10, horizon: int = 40, hidden: int = 32,
                 layers: int = 3, layer: str = "edge-update") -> None:
        super().__init__(history, spacing, horizon)
        if not isinstance(layers, int) or layers < 1:
            raise ConfigError(f"Nowcaster: layers must be an int >= 1, got {layers!r}")
        if layer not in LAYERS:
            raise ConfigError(f"Nowcaster: unknown layer {layer!r}; valid: {', '.join(LAYERS)}")
        self.hidden, self.num_layers, self.layer = hidden, layers, layer
        self.codec = _ScalarCodec(history, hidden, hidden)
        self.node_type = nn.Embedding(N_TYPES, hidden)
        self.edge_type = nn.Embedding(N_TYPES, hidden)
        if layer == "edge-update":
            from weightzoo.metanets.layers.edge_update_conv import EdgeUpdateConv

            self.layers = nn.ModuleList(EdgeUpdateConv(hidden, aggregators=("mean", "max"), scalers=("identity",))
                                        for _ in range(layers))
        else:
            self.layers = nn.ModuleList(_GraphLayer(hidden) for _ in range(layers))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "layer": self.layer}

    def forward_scaled(self, batch: NowcastBatch) -> torch.Tensor:
        codes = self.codec.codes(batch)
        on_edge = batch.site_kind == EDGE
        on_node = batch.site_kind == NODE
        e = _pool(codes[on_edge], batch.site_elem[on_edge], batch.num_edges) + self.edge_type(batch.edge_type)
        h = _pool(codes[on_node], batch.site_elem[on_node], batch.num_nodes) + self.node_type(batch.node_type)
        for layer in self.layers:
            h, e = layer(h, batch.edge_index, e)
        context = codes.new_zeros(codes.shape)
        context[on_edge] = e[batch.site_elem[on_edge]]
        context[on_node] = h[batch.site_elem[on_node]]
        return self.codec.out(codes, context)


class LinearNowcaster(NowcasterBase, PyTorchModelHubMixin):
    r"""Linear extrapolation: :math:`\theta + g\,\hat b\,\tfrac{\text{horizon}}{\text{spacing}}` with
    :math:`\hat b` each scalar's least-squares slope over the history (per ``spacing`` steps) and one
    gain :math:`g` (fitted on training trajectories by :func:`~.training.fit_gain`; 1 = plain
    extrapolation)."""

    kind = "linear"

    def __init__(self, history: int = 5, spacing: int = 10, horizon: int = 40, gain: float = 1.0) -> None:
        super().__init__(history, spacing, horizon)
        self.gain = float(gain)

    def unit_forward(self, batch: NowcastBatch) -> torch.Tensor:
        """The scaled nowcast with gain 1."""
        c = self.history
        t = torch.arange(c, dtype=torch.float32) - (c - 1)
        offsets = torch.cat([batch.features[:, : c - 1], batch.features.new_zeros(len(batch.features), 1)], dim=1)
        tc = t - t.mean()
        slope = (offsets - offsets.mean(1, keepdim=True)) @ tc / (tc * tc).sum()
        return slope * (self.horizon / self.spacing)

    def forward_scaled(self, batch: NowcastBatch) -> torch.Tensor:
        return self.gain * self.unit_forward(batch)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "gain": self.gain}


KINDS: dict[str, type[NowcasterBase]] = {"graph": Nowcaster, "mlp": MLPNowcaster, "linear": LinearNowcaster}


def load_nowcaster(path: str | os.PathLike[str]) -> NowcasterBase:
    """Any nowcaster saved with ``save_pretrained`` (its kind is read from ``nowcast.json``)."""
    folder = Path(path)
    meta = folder / "nowcast.json"
    if not meta.is_file():
        raise ConfigError(f"{folder}: not a nowcaster folder (no nowcast.json)")
    try:
        kind = json.loads(meta.read_text(encoding="utf-8"))["kind"]
        cls = KINDS[kind]
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"{meta}: bad nowcaster metadata ({exc}); kinds: {', '.join(KINDS)}") from None
    model: NowcasterBase = cls.from_pretrained(folder)  # type: ignore[attr-defined]
    return model


def save_nowcaster(model: NowcasterBase, path: str | os.PathLike[str]) -> Path:
    """``save_pretrained`` plus ``nowcast.json`` (kind and geometry) so :func:`load_nowcaster` finds the class."""
    from weightzoo.zoo.formats.durable import write_json_atomic

    folder = Path(path)
    model.save_pretrained(folder)  # type: ignore[attr-defined,operator]
    write_json_atomic(folder / "nowcast.json", model.describe())
    return folder


__all__ = ["KINDS", "LinearNowcaster", "MLPNowcaster", "Nowcaster", "NowcastBatch", "NowcasterBase",
           "load_nowcaster", "make_batch", "save_nowcaster"]
