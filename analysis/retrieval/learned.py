r"""A learned architecture encoder: :class:`~weightzoo.metanets.layers.graph_encoder.GraphEncoder` over
ComputeGraphs, trained contrastively on a zoo (NAR-style instance discrimination, without NAR's motif stage).

Training (:func:`train_encoder`): every training architecture gets ``views`` augmented views
(:func:`~.augment.architecture_view`: width/depth jitter, op swaps within its family), recorded once and
cached in the zoo; each step draws two graphs per architecture of a batch (the original or a view) and
minimises the NT-Xent loss (SimCLR; Chen et al., 2020)

.. math::
    \ell_i = -\log \frac{\exp(s(z_i, z_{i^+}) / \tau)}{\sum_{j \ne i} \exp(s(z_i, z_j) / \tau)}

over the :math:`2B` unit-norm embeddings (cosine :math:`s`, temperature :math:`\tau`; negatives: the
other architectures of the batch). Early stopping keeps the epoch with the best validation MAP@10
(relevance = same family) on the ``val`` split. Seeded; CPU by default.

A run folder holds ``model.safetensors`` + ``config.json`` (``PyTorchModelHubMixin``: ``save_pretrained`` /
``from_pretrained``, Hub-loadable) and ``training.json`` (settings, per-epoch metrics, wall time). No pickles.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from weightzoo.errors import RetrievalError
from weightzoo.metanets.layers.graph_encoder import GraphEncoder
from weightzoo.zoo.formats.durable import atomic_path, write_json_atomic
from weightzoo.zoo.graphs import ComputeGraph
from weightzoo.zoo.store import ZooLike, resolve_spec, using_zoo

from .augment import architecture_view
from .build import family_of, graph_cache
from .encoder import DenseEncoder
from .labels import NUM_OPS, NUMERIC_COLUMNS, numeric_features, width
from .metrics import retrieval_metrics
from .query import graph_of_spec

EDGE_FEATURES = 1  #: log2 of the width of the tensor an edge carries (its source's output)


def graph_tensors(graph: ComputeGraph) -> dict[str, torch.Tensor]:
    """``op [N]``, ``x [N, 7]``, ``edge_index [2, E]``, ``edge_attr [E, 1]`` of one graph."""
    ei = graph.edge_index.to(torch.long)
    widths = torch.tensor([math.log2(width(n) + 1) / 10.0 for n in graph.nodes], dtype=torch.float32)
    return {"op": graph.op.clamp(0, NUM_OPS - 1), "x": numeric_features(graph), "edge_index": ei,
            "edge_attr": widths[ei[0]].view(-1, 1) if ei.numel() else torch.zeros(0, EDGE_FEATURES)}


def collate(items: Sequence[dict[str, torch.Tensor]]) -> dict[str, Any]:
    """One disjoint-union batch (edge indices offset, a ``batch`` vector), PyG style without padding."""
    offsets = np.cumsum([0] + [len(t["op"]) for t in items])
    return {"op": torch.cat([t["op"] for t in items]), "x": torch.cat([t["x"] for t in items]),
            "edge_index": torch.cat([t["edge_index"] + int(o) for t, o in zip(items, offsets, strict=False)], dim=1),
            "edge_attr": torch.cat([t["edge_attr"] for t in items]),
            "batch": torch.cat([torch.full((len(t["op"]),), i, dtype=torch.long) for i, t in enumerate(items)]),
            "num_graphs": len(items)}


class ArchitectureEncoderNet(nn.Module, PyTorchModelHubMixin):  # type: ignore[misc]
    """GraphEncoder + unit-norm output: a ComputeGraph batch (:func:`collate`) → ``[B, out_dim]``.

    Args:
        dim (int): hidden width (default 64). out_dim (int): embedding width (default 64).
        layers (int): message-passing rounds (default 3).
    """

    def __init__(self, dim: int = 64, out_dim: int = 64, layers: int = 3) -> None:
        super().__init__()
        self.encoder = GraphEncoder(NUM_OPS, len(NUMERIC_COLUMNS), EDGE_FEATURES, dim=dim, out_dim=out_dim,
                                    layers=layers)

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        z = self.encoder(batch["op"], batch["x"], batch["edge_index"], batch["edge_attr"], batch["batch"],
                         batch["num_graphs"])
        return F.normalize(z, dim=-1)


def _embed(net: ArchitectureEncoderNet, tensors: Sequence[dict[str, torch.Tensor]], batch_size: int = 64) -> np.ndarray:
    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(tensors), batch_size):
            out.append(net(collate(tensors[i:i + batch_size])).numpy())
    return np.concatenate(out) if out else np.zeros((0, net.encoder.out_dim), dtype=np.float32)


class LearnedEncoder(DenseEncoder):
    """A trained :class:`ArchitectureEncoderNet` as a retrieval encoder (load with :meth:`load`)."""

    name = "learned"
    version = 1

    def __init__(self, net: ArchitectureEncoderNet, run_hash: str) -> None:
        self.net, self.run_hash = net.eval(), run_hash

    @classmethod
    def load(cls, run: str | os.PathLike[str]) -> LearnedEncoder:
        """The encoder saved in a :func:`train_encoder` run folder."""
        path = Path(run)
        weights = path / "model.safetensors"
        if not weights.is_file() or not (path / "config.json").is_file():
            raise RetrievalError(f"{path} is not a trained encoder run (no model.safetensors + config.json); "
                                 "train one: weightzoo retrieve --train-encoder --zoo DIR --out RUN")
        from safetensors.torch import load_file

        digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
        # what from_pretrained does for a local folder, without its print() to stdout (it would break --json)
        try:
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
            net = ArchitectureEncoderNet(**{k: int(config[k]) for k in ("dim", "out_dim", "layers") if k in config})
            net.load_state_dict(load_file(str(weights)), strict=True)
        except (OSError, ValueError, TypeError, RuntimeError) as exc:
            raise RetrievalError(f"{path}: unreadable encoder run: {exc}") from exc
        return cls(net, digest)

    def settings(self) -> dict[str, Any]:
        enc = self.net.encoder
        return {"weights": self.run_hash, "dim": enc.dim, "out_dim": enc.out_dim, "layers": len(enc.convs)}

    def encode(self, graphs: Sequence[ComputeGraph]) -> np.ndarray:
        return _embed(self.net, [graph_tensors(g) for g in graphs])

    def __repr__(self) -> str:
        return f"LearnedEncoder(weights={self.run_hash})"


@dataclass
class TrainResult:
    """A finished :func:`train_encoder` run: where it is, its best epoch and validation MAP@10, history."""

    path: Path
    seed: int
    epochs: int
    best_epoch: int
    best_val_map: float
    wall_s: float
    history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


def _split_names(records: Sequence[Any], split: str) -> list[Any]:
    return [r for r in records if r.metadata.get("split") == split]


def train_encoder(zoo: ZooLike, out: str | os.PathLike[str], *, epochs: int = 30, max_minutes: float | None = None,
                  seed: int = 0, views: int = 2, batch_size: int = 32, lr: float = 1e-3, temperature: float = 0.1,
                  dim: int = 64, layers: int = 3, view_seed: int = 0, progress: bool = False) -> TrainResult:
    """Train the learned encoder on ``zoo``'s ``train`` split (validation: its ``val`` split); see the module
    docstring. Views are seeded by ``view_seed`` (shared across model seeds), the model and batches by ``seed``."""
    from tqdm.auto import tqdm

    if epochs < 1 or views < 1 or batch_size < 2 or not temperature > 0:
        raise RetrievalError(f"train_encoder: need epochs >= 1, views >= 1, batch_size >= 2, temperature > 0; got "
                             f"{epochs}, {views}, {batch_size}, {temperature}")
    start = time.perf_counter()
    with using_zoo(zoo) as z:
        records = z.models()
        train, val = _split_names(records, "train"), _split_names(records, "val")
        if len(train) < 2 or len(val) < 2:
            raise RetrievalError(f"train_encoder needs models with metadata split 'train' and 'val' (the archs zoo); "
                                 f"found {len(train)} and {len(val)}")
        cache = graph_cache(z.path)
        pools: list[list[dict[str, torch.Tensor]]] = []
        for r in tqdm(train, desc="views", disable=not progress, unit="arch"):
            spec = resolve_spec(r.name, zoo=z)
            rng = np.random.default_rng([view_seed, int(hashlib.sha256(r.name.encode()).hexdigest()[:8], 16)])
            specs = [spec] + [architecture_view(spec, rng, family_of(r)) for _ in range(views)]
            pools.append([graph_tensors(graph_of_spec(s, cache=cache)) for s in specs])
        val_tensors = [graph_tensors(graph_of_spec(resolve_spec(r.name, zoo=z), cache=cache)) for r in val]
        val_families = [family_of(r) for r in val]
    torch.manual_seed(seed)
    gen = np.random.default_rng(seed)
    net = ArchitectureEncoderNet(dim=dim, out_dim=dim, layers=layers)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    out = Path(out)
    history: list[dict[str, float]] = []
    best = (-1.0, -1)
    best_state: dict[str, torch.Tensor] | None = None
    for epoch in tqdm(range(1, epochs + 1), desc="epochs", disable=not progress):
        net.train()
        order = gen.permutation(len(pools))
        losses = []
        for i in range(0, len(order) - 1, batch_size):
            idx = order[i:i + batch_size]
            if len(idx) < 2:
                continue
            pairs = [gen.choice(len(pools[j]), size=2, replace=False) for j in idx]
            items = [pools[j][a] for j, (a, _) in zip(idx, pairs, strict=True)]
            items += [pools[j][b] for j, (_, b) in zip(idx, pairs, strict=True)]
            z_all = net(collate(items))
            sim = z_all @ z_all.t() / temperature
            sim.fill_diagonal_(float("-inf"))
            n = len(idx)
            target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
            loss = F.cross_entropy(sim, target)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 10.0)
            opt.step()
            losses.append(loss.item())
        emb = _embed(net, val_tensors)
        val_map = retrieval_metrics(emb @ emb.T, val_families, k=10)["map@10"]
        history.append({"epoch": epoch, "loss": float(np.mean(losses)) if losses else float("nan"), "val_map@10": val_map})
        if best_state is None or val_map > best[0]:  # NaN (no val query with a relevant item) keeps the first
            best = (val_map, epoch)
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        if max_minutes is not None and time.perf_counter() - start > 60 * max_minutes:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    result = TrainResult(out, seed, len(history), best[1], best[0], time.perf_counter() - start, history)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, folder=True) as tmp:
        net.save_pretrained(str(tmp))
        write_json_atomic(tmp / "training.json", {
            **result.to_dict(), "settings": {"views": views, "batch_size": batch_size, "lr": lr,
                                             "temperature": temperature, "dim": dim, "layers": layers,
                                             "view_seed": view_seed, "max_minutes": max_minutes}})
    return result


__all__ = ["ArchitectureEncoderNet", "EDGE_FEATURES", "LearnedEncoder", "TrainResult", "collate", "graph_tensors",
           "train_encoder"]
