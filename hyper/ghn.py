r"""GHN: a graph hypernetwork that predicts the parameters of any module from its ComputeGraph.

GHN-2 (Knyazev et al., 2021) and GHN-3 (Knyazev et al., 2023), on our
:class:`~weightzoo.zoo.graphs.ComputeGraph`:

1. node embeddings: the op type (:class:`~weightzoo.zoo.graphs.OpType`, one table for every
   architecture) plus four quantised-shape embeddings of the node's main parameter (out, in, kh, kw);
2. a graph encoder from :mod:`weightzoo.metanets.layers`: ``"gated"`` (GHN-2's gated GNN, forward and
   backward sweeps with virtual edges) or ``"transformer"`` (GHN-3's graph transformer with degree and
   shortest-path-distance biases);
3. per parameter: the owning node's state plus an embedding of its slot and kind, through an MLP, into
   the low-rank :class:`~.decoder.ShapeDecoder`, then scaled by fan-in and the gain of the activation
   that follows (:func:`~.decoder.scale_prediction`).

With ``residual=True`` a prediction is added to the module's own initialisation,
:math:`\theta = \theta_0 + \Delta\theta` (MIP).

Checkpoints are safetensors + ``config.json`` through ``PyTorchModelHubMixin``
(``save_pretrained`` / ``from_pretrained``, a local folder or a Hub repo id).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from weightzoo.errors import HyperNetworkError
from weightzoo.metanets.layers.gated_gnn import GatedGNN
from weightzoo.metanets.layers.graph_transformer import GraphTransformer
from weightzoo.zoo.graphs import OP_VOCAB_VERSION, ComputeGraph, OpType

from .decoder import ShapeDecoder
from .graph_input import GraphInput
from .predict import predict_parameters
from .targets import KIND_IDS, KINDS, SHAPE_BUCKETS

ENCODERS: tuple[str, ...] = ("gated", "transformer")
_MAX_SLOTS = 8


class GHN(nn.Module, PyTorchModelHubMixin, library_name="weightzoo", tags=["weightzoo", "graph-hypernetwork"]):
    r"""A graph hypernetwork (see the module docstring).

    Args:
        hidden (int): node embedding size (default 64).
        encoder (str): ``"gated"`` (GHN-2, default) or ``"transformer"`` (GHN-3).
        layers (int): transformer layers, or gated-GNN rounds (default 1 for gated, 3 for transformer when
            left at ``None``).
        heads (int): attention heads of the transformer (default 4).
        rank (int): CP rank of the decoder (default 16).
        max_dist (int): virtual-edge distance cutoff read by the encoder (default 50).
        residual (bool): predict :math:`\Delta\theta` added to the module's initialisation (default ``False``).
        op_vocab_version (int): the op vocabulary the embeddings were trained on (checked on load).

    Shapes: ``forward`` takes a list of :class:`GraphInput` and returns one ``{name: tensor}`` per graph.
    """

    def __init__(self, hidden: int = 64, encoder: str = "gated", layers: int | None = None, heads: int = 4,
                 rank: int = 16, max_dist: int = 50, residual: bool = False,
                 op_vocab_version: int = OP_VOCAB_VERSION) -> None:
        super().__init__()
        if encoder not in ENCODERS:
            raise HyperNetworkError(f"GHN: unknown encoder {encoder!r}; valid: {', '.join(ENCODERS)}")
        if int(op_vocab_version) != OP_VOCAB_VERSION:
            raise HyperNetworkError(f"GHN: trained on op vocabulary {op_vocab_version}, this weightzoo has "
                                    f"{OP_VOCAB_VERSION}")
        if hidden < 1 or rank < 1:
            raise HyperNetworkError(f"GHN: hidden and rank must be >= 1, got {hidden}, {rank}")
        self.hidden, self.encoder_name, self.residual = hidden, encoder, bool(residual)
        self.op_embed = nn.Embedding(max(int(o) for o in OpType) + 1, hidden)
        self.shape_embed = nn.ModuleList(nn.Embedding(SHAPE_BUCKETS, hidden) for _ in range(4))
        self.encoder: nn.Module
        if encoder == "gated":
            self.encoder = GatedGNN(hidden, rounds=layers or 1, max_dist=max_dist)
        else:
            self.encoder = GraphTransformer(hidden, layers=layers or 3, heads=heads, max_dist=max_dist)
        self.slot_embed = nn.Embedding(_MAX_SLOTS, hidden)
        self.kind_embed = nn.Embedding(len(KINDS), hidden)
        self.param_mlp = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.ReLU(),
                                       nn.Linear(hidden, hidden))
        self.log_scale = nn.Linear(hidden, 1)
        nn.init.zeros_(self.log_scale.weight)
        # start below the fan-in scale: cells sum branches, so BN-free networks blow up at exactly sqrt(β/fan_in)
        nn.init.constant_(self.log_scale.bias, -0.5)
        self.decoder = ShapeDecoder(hidden, rank=rank)

    # --- the network --------------------------------------------------------------------------------

    def encode(self, inputs: Sequence[GraphInput]) -> torch.Tensor:
        """Node states of all graphs, concatenated: ``[sum N_i, hidden]``."""
        dev = self.op_embed.weight.device
        ops, shapes, edges, vidx, vdist = [], [], [], [], []
        offset = 0
        for g in inputs:
            ops.append(g.op)
            shapes.append(g.shape)
            edges.append(g.edge_index + offset)
            vidx.append(g.virtual_index + offset)
            vdist.append(g.virtual_dist)
            offset += g.num_nodes
        op = torch.cat(ops).to(dev)
        shape = torch.cat(shapes).to(dev)
        x = self.op_embed(op) + sum(emb(shape[:, i]) for i, emb in enumerate(self.shape_embed))
        ei, vi, vd = torch.cat(edges, 1).to(dev), torch.cat(vidx, 1).to(dev), torch.cat(vdist).to(dev)
        if isinstance(self.encoder, GatedGNN):
            return self.encoder(x, vi, vd)
        return self.encoder(x, ei, vi, vd)

    def forward(self, inputs: Sequence[GraphInput],
                init: Sequence[Mapping[str, torch.Tensor]] | None = None) -> list[dict[str, torch.Tensor]]:
        """Predicted parameters of each graph's targets (``init``: the θ₀ of ``residual`` GHNs)."""
        if self.residual and init is None:
            raise HyperNetworkError("a residual GHN needs each module's initial parameters (init=...)")
        h = self.encode(inputs)
        nodes, slots, kinds, targets, owner = [], [], [], [], []
        offset = 0
        for gi, g in enumerate(inputs):
            for t in g.targets:
                nodes.append(offset + t.node)
                slots.append(min(t.slot, _MAX_SLOTS - 1))
                kinds.append(KIND_IDS[t.kind])
                targets.append(t)
                owner.append(gi)
            offset += g.num_nodes
        out: list[dict[str, torch.Tensor]] = [{} for _ in inputs]
        if not targets:
            return out
        dev = h.device
        z = h[torch.tensor(nodes, device=dev)] + self.slot_embed(torch.tensor(slots, device=dev)) \
            + self.kind_embed(torch.tensor(kinds, device=dev))
        z = z + self.param_mlp(z)
        values = self.decoder(z, targets, self.log_scale(z).squeeze(1))
        for j, (t, value) in enumerate(zip(targets, values, strict=True)):
            if self.residual and init is not None:
                value = init[owner[j]][t.name].to(value) + value
            out[owner[j]][t.name] = value
        return out

    def penalty(self, predicted: Sequence[Mapping[str, torch.Tensor]]) -> torch.Tensor:
        r"""GHN-3's regulariser :math:`\sum \lVert W \rVert_F` over predicted weights, averaged over graphs."""
        total = [sum((v.norm() for v in p.values()), torch.zeros(())) for p in predicted]
        return torch.stack(total).mean() if total else torch.zeros(())

    # --- checkpoints ------------------------------------------------------------------------------------

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: str | None, cache_dir: str | Path | None,
                         force_download: bool, local_files_only: bool, token: str | bool | None,
                         map_location: str = "cpu", strict: bool = True, **model_kwargs: Any) -> GHN:
        """Load ``model.safetensors`` strictly (every tensor present, none extra); never a pickle.

        Overrides the mixin's loader, which prints to stdout, loads non-strictly and falls back to
        ``pytorch_model.bin`` on the Hub.
        """
        from huggingface_hub import hf_hub_download
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        if os.path.isdir(model_id):
            path = os.path.join(model_id, "model.safetensors")
        else:
            path = hf_hub_download(repo_id=model_id, filename="model.safetensors", revision=revision,
                                   cache_dir=cache_dir, force_download=force_download, token=token,
                                   local_files_only=local_files_only)
        try:
            model = cls(**model_kwargs)
            model.load_state_dict(load_file(path, device=str(map_location)), strict=True)
        except (OSError, RuntimeError, TypeError, ValueError, SafetensorError) as exc:
            raise HyperNetworkError(f"{model_id}: not a loadable GHN checkpoint: {exc}") from exc
        return model

    # --- the user-facing API -----------------------------------------------------------------------------

    def predict(self, module: nn.Module, *, inplace: bool = False, example_input: Any = None,
                graph: ComputeGraph | None = None) -> nn.Module:
        """``module`` (a copy unless ``inplace``) with every parameter its ComputeGraph covers predicted.

        See :func:`weightzoo.hyper.predict_parameters` for the coverage report and the options.
        """
        return predict_parameters(self, module, inplace=inplace, example_input=example_input, graph=graph).module

    def extra_repr(self) -> str:
        return f"encoder={self.encoder_name!r}, residual={self.residual}"


__all__ = ["ENCODERS", "GHN"]
