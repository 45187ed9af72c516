r"""Equivariant weight-space editing of implicit neural representations (INRs).

The task (NFN, DWSNets, neural graphs): given the weights :math:`\theta` of an INR of an image
:math:`I = f_\theta(\text{grid})`, predict weights :math:`\theta'` whose render matches an edited image
:math:`T(I)` — dilated, eroded, contrast-changed (:data:`EDITS`). Every model predicts a residual in
normalised units and the harness applies it to the raw weights,

.. math:: \theta' = \theta + s \odot \Delta(\theta / s), \qquad
          \mathcal{L} = \tfrac{1}{P}\lVert f_{\theta'}(\text{grid}) - T(f_\theta(\text{grid}))\rVert^2

where :math:`s` holds each parameter's training-split scale (:class:`~weightzoo.metanets.data.GraphNormalizer`,
per layer and tensor kind) and the loss is the pixel MSE of the render (the target is the edit of the
input INR's own render, so any INR zoo works without the images it was fitted to).

Models (``EDIT_MODELS``):

* ``gmn`` — :class:`~weightzoo.metanets.models.gmn.GraphMetanetwork` with equivariant edge and node heads:
  :math:`\Delta` of each weight from its edge's final state and its two neurons, of each bias from its
  neuron. The edit of a hidden-permuted INR is the permuted edit (tested).
* ``np`` — :class:`~weightzoo.metanets.models.editors.NPEditor` (NP-equivariant weight-space layers).
* ``mlp`` — :class:`~weightzoo.metanets.models.editors.FlatEditor` (all parameters → all edits).
* ``identity`` — no edit (:math:`\theta' = \theta`): the floor every edit must beat.

Renders run the architecture's module (``build_module(spec)``) under ``torch.func.functional_call``,
vmapped over the batch, so any spec whose input is a coordinate vector (``input_shape`` ``[D]``) works;
:class:`EditSpace` locates every parameter in the ParameterGraph (where the graph models read and write
it). One architecture per run.

``edit_train(zoo, EditConfig(...), seeds, out)`` writes, per seed, ``model.safetensors`` + ``config.json``,
``metrics.json`` (validation and test render MSE with bootstrap 95 % intervals, PSNR, the identity edit's
MSE on the same networks, epochs, wall and CPU seconds), ``predictions.json`` (per-network MSE, read by
:func:`weightzoo.metanets.report.compare`) and ``renders.safetensors`` (inputs, targets and predictions of
the first test networks, for figures). Seeded, early-stopped on validation MSE, resumable per epoch.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from weightzoo.errors import InvalidOptionError, UnsupportedLayerError
from weightzoo.zoo.formats.durable import atomic_path, write_json_atomic
from weightzoo.zoo.graphs import ParameterGraph
from weightzoo.zoo.graphs.vocab import NODE_VALUE_COLUMNS

from .data import GraphDataset, GraphNormalizer
from .features import chain_shapes, parameters_in_layout_order
from .metrics import edit_metrics

EDIT_MODELS = ("gmn", "np", "mlp", "identity")
#: Baselines of the editing comparison (the reference of ``metanet report`` is the best of them by validation).
EDIT_BASELINES = ("identity", "mlp", "np")
RENDERS_SAVED = 16


def _dilate(img: torch.Tensor) -> torch.Tensor:
    return nn.functional.max_pool2d(img, 3, stride=1, padding=1)


def _erode(img: torch.Tensor) -> torch.Tensor:
    return -nn.functional.max_pool2d(-img, 3, stride=1, padding=1)


def _contrast(img: torch.Tensor) -> torch.Tensor:
    return (0.5 + 2.0 * (img - 0.5)).clamp(0.0, 1.0)


#: Image edits ``[B, 1, H, W] → [B, 1, H, W]`` for signals in [0, 1]: grey dilation and erosion with a 3 × 3
#: square (max / min filter), and contrast doubled around mid-grey (clipped to [0, 1]).
EDITS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"dilate": _dilate, "erode": _erode, "contrast": _contrast}


def apply_edit(name: str, images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Edit ``images`` (``[B, resolution²]``, row-major) with :data:`EDITS` ``[name]``; same shape back."""
    if name not in EDITS:
        raise InvalidOptionError(f"unknown edit {name!r}; valid: {', '.join(EDITS)}")
    b = images.shape[0]
    return EDITS[name](images.reshape(b, 1, resolution, resolution)).reshape(b, -1)


class EditSpace:
    """Where each parameter of one architecture sits in its ParameterGraph, and its normalisation scale.

    Parameters are numbered in layout order (:func:`~weightzoo.metanets.features.parameters_in_layout_order`,
    ``P`` in all). Built by placing the numbers themselves as parameter values and reading back the PyG
    graph's ``edge_attr`` (flattened, ``E·W`` values) and node value columns (``N·C``): ``position[p]`` is
    parameter ``p``'s index in ``cat(edge_attr.flatten(), x[:, :C].flatten())`` and ``scale[p]`` its
    :class:`GraphNormalizer` scale. Raises :class:`~weightzoo.errors.UnsupportedLayerError` if a parameter
    has no place in the graph.
    """

    def __init__(self, graph: ParameterGraph, normalizer: GraphNormalizer) -> None:
        params = parameters_in_layout_order(graph)
        self.spec = graph.spec
        self.names = list(params)
        self.shapes = [tuple(t.shape) for t in params.values()]
        self.sizes = [t.numel() for t in params.values()]
        self.num_params = sum(self.sizes)
        if self.num_params >= 1 << 21:
            raise UnsupportedLayerError("<root>", "network", f"{self.num_params} parameters: editing locates "
                                        "parameters by float32 ids, exact below 2**21")
        sd = graph.to_state_dict()
        ids = torch.arange(self.num_params, dtype=torch.float32) + 1.25
        start = 0
        for name, shape, n in zip(self.names, self.shapes, self.sizes):
            sd[name] = ids[start:start + n].reshape(shape)
            start += n
        placed = ParameterGraph.from_spec(graph.spec, sd, max_kernel=graph.max_kernel).to_pyg()
        self.edges, self.window = placed.edge_attr.shape
        self.nodes, self.columns = placed.x.shape[0], len(NODE_VALUE_COLUMNS)
        values = self._flat(placed)
        hit = (values >= 1) & ((values - 0.25 - torch.round(values - 0.25)).abs() < 1e-3)
        pid = torch.round(values[hit] - 1.25).long()
        position = torch.full((self.num_params,), -1, dtype=torch.long)
        position[pid] = hit.nonzero().reshape(-1)
        if bool((position < 0).any()):
            p = int((position < 0).nonzero()[0])
            raise UnsupportedLayerError(self._name_of(p), "parameter", "it has no place in the ParameterGraph, so "
                                        "graph editors cannot write it")
        self.position = position
        normalised = self._flat(normalizer(placed))
        self.scale = (values[position] / normalised[position]).float()

    def _flat(self, data: Any) -> torch.Tensor:
        return torch.cat([data.edge_attr.reshape(-1), data.x[:, :self.columns].reshape(-1)])

    def _name_of(self, p: int) -> str:
        start = 0
        for name, n in zip(self.names, self.sizes):
            if p < start + n:
                return name
            start += n
        return "<parameter>"

    def theta(self, graph: ParameterGraph) -> torch.Tensor:
        """All parameters of ``graph`` as one float32 vector ``[P]`` in layout order."""
        params = parameters_in_layout_order(graph)
        if list(params) != self.names or [tuple(t.shape) for t in params.values()] != self.shapes:
            raise UnsupportedLayerError("<root>", "network", "editing runs on one architecture; this network's "
                                        "parameters differ from the run's")
        return torch.cat([t.float().reshape(-1) for t in params.values()])

    def split(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """``[B, P]`` → ``{name: [B, *shape]}`` (differentiable)."""
        out, start = {}, 0
        for name, shape, n in zip(self.names, self.shapes, self.sizes):
            out[name] = theta[:, start:start + n].reshape(theta.shape[0], *shape)
            start += n
        return out

    def join(self, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``{name: [B, *shape]}`` → ``[B, P]`` (the inverse of :meth:`split`)."""
        return torch.cat([tensors[n].reshape(tensors[n].shape[0], -1) for n in self.names], dim=1)

    def from_graph_outputs(self, edge_out: torch.Tensor, node_out: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Per-edge ``[B·E, W]`` and per-node ``[B·N, C]`` outputs of a batch of this architecture's graphs →
        per-parameter ``[B, P]``."""
        flat = torch.cat([edge_out.reshape(batch_size, self.edges * self.window),
                          node_out.reshape(batch_size, self.nodes * self.columns)], dim=1)
        return flat[:, self.position]


class Renderer:
    """Batched renders of one architecture on a coordinate grid: ``[B, P]`` parameters → ``[B, pixels]``.

    The module comes from the spec (buffers from ``template``); ``torch.func.functional_call`` under
    ``vmap`` runs it once per parameter vector, differentiably.
    """

    def __init__(self, space: EditSpace, template: ParameterGraph, coords: torch.Tensor) -> None:
        from weightzoo.zoo.arch import build_module

        shape = list(space.spec.get("input_shape") or [])
        if len(shape) != 1 or shape[0] != coords.shape[1]:
            raise UnsupportedLayerError("<root>", "network", f"rendering needs an INR whose input is a "
                                        f"{coords.shape[1]}-d coordinate (input_shape [{coords.shape[1]}]), got {shape}")
        self.space, self.coords = space, coords
        self.module = build_module(space.spec).eval()
        sd = template.to_state_dict()
        self.buffers = {k: v for k, v in sd.items() if k not in set(space.names)}

    def to(self, device: str) -> Renderer:
        self.coords = self.coords.to(device)
        self.module = self.module.to(device)
        self.buffers = {k: v.to(device) for k, v in self.buffers.items()}
        return self

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        from torch.func import functional_call, vmap

        def one(params: dict[str, torch.Tensor]) -> torch.Tensor:
            return functional_call(self.module, {**params, **self.buffers}, (self.coords,)).reshape(-1)

        return vmap(one)(self.space.split(theta))  # type: ignore[no-any-return]


@dataclass(frozen=True)
class EditConfig:
    """What to train for an editing task (recorded in every seed's ``metrics.json``).

    Args:
        model: ``gmn``, ``np``, ``mlp`` or ``identity``.
        edit: a name of :data:`EDITS` (default ``dilate``).
        dataset: the dataset whose manifest gives records and split (default ``digits-inr``).
        filters: ``zoo.models(**filters)`` selection.
        resolution: render grid side (default: the records' ``resolution`` metadata, else 16).
        fits, fraction: fits per training image and share of training images (default 1 and all).
        epochs, batch_size, lr, weight_decay, patience, grad_clip: AdamW optimisation (30, 32, 1e-3, 0, 10, 10).
        max_minutes, device, split_seed, max_kernel: as in :class:`~weightzoo.metanets.train.TrainConfig`.
        model_options: constructor options (``hidden``, ``layers``; ``probes=K`` for ``gmn``).
    """

    model: str
    edit: str = "dilate"
    dataset: str | None = "digits-inr"
    filters: dict[str, Any] = field(default_factory=dict)
    resolution: int | None = None
    fits: int | None = 1
    fraction: float = 1.0
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 10
    grad_clip: float = 10.0
    max_minutes: float | None = None
    device: str = "cpu"
    split_seed: int = 0
    max_kernel: tuple[int, int] = (7, 7)
    model_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model not in EDIT_MODELS:
            raise InvalidOptionError(f"EditConfig: unknown editing model {self.model!r}; valid: {', '.join(EDIT_MODELS)}")
        if self.edit not in EDITS:
            raise InvalidOptionError(f"EditConfig: unknown edit {self.edit!r}; valid: {', '.join(EDITS)}")
        if self.model_options.get("sign_invariant"):
            raise InvalidOptionError("EditConfig: sign_invariant makes the graph metanetwork's states blind to sign "
                                     "flips, but an edit must flip with its neuron (equivariance, not invariance); "
                                     "leave it off for editing")
        if self.epochs < 0 or self.batch_size < 1 or self.patience < 1 or not 0.0 < self.fraction <= 1.0:
            raise InvalidOptionError("EditConfig: epochs >= 0, batch_size and patience >= 1, 0 < fraction <= 1")
        if self.resolution is not None and self.resolution < 2:
            raise InvalidOptionError(f"EditConfig: resolution must be >= 2, got {self.resolution}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise InvalidOptionError("EditConfig: device cuda was asked for but torch sees no CUDA device")


class EditTask:
    """The inputs, targets and models of one editing run (shared by its seeds)."""

    def __init__(self, ds: GraphDataset, cfg: EditConfig) -> None:
        from weightzoo.datasets.inr import grid_coordinates

        self.ds, self.cfg = ds, cfg
        specs = {json.dumps(r.spec, sort_keys=True) for r in ds.records}
        if len(specs) != 1:
            raise InvalidOptionError(f"editing runs on one architecture; the selection has {len(specs)} (use --filter)")
        template = ds.graphs[ds.indices("train")[0]]
        self.space = EditSpace(template, ds.normalizer)
        res = cfg.resolution or int(ds.records[0].metadata.get("resolution") or 16)
        self.resolution = res
        coords = grid_coordinates(res)
        self.renderer = Renderer(self.space, template, coords)
        self.theta = torch.stack([self.space.theta(g) for g in ds.graphs])
        with torch.no_grad():
            self.inputs = torch.cat([self.renderer(self.theta[s:s + 256]) for s in range(0, len(self.theta), 256)])
        self.targets = apply_edit(cfg.edit, self.inputs, res)
        #: ``(weight shape, weight name, bias name)`` per layer, for the NP editor (computed once, not per batch)
        self.chain = chain_shapes(template) if cfg.model == "np" else []

    def build(self, seed: int) -> nn.Module | None:
        """A fresh editor for ``cfg.model`` (seeded; ``None`` for the identity edit)."""
        from .models.editors import FlatEditor, NPEditor, zero_last_linear

        opts = dict(self.cfg.model_options)
        torch.manual_seed(seed)
        if self.cfg.model == "identity":
            return None
        if self.cfg.model == "mlp":
            return FlatEditor(self.space.num_params, **opts)
        if self.cfg.model == "np":
            return NPEditor([list(s) for s, _, _ in self.chain], **opts)
        from weightzoo.metanets.layers.pna import average_log_degree

        from .models.gmn import GraphMetanetwork

        train = self.ds.indices("train")
        opts = {"hidden": 32, "layers": 2, **opts}
        opts.setdefault("avg_log_degree", average_log_degree([self.ds.graphs[i].edge_index for i in train[:256]],
                                                             [self.ds.graphs[i].num_nodes for i in train[:256]]))
        if opts.get("probes"):
            opts.setdefault("probe_dim", int(self.renderer.coords.shape[1]))
        model = GraphMetanetwork(out_dim=1, window=self.space.window, node_out=self.space.columns,
                                 edge_out=self.space.window, **opts)
        assert model.node_head is not None and model.edge_head is not None
        zero_last_linear(model.node_head)
        zero_last_linear(model.edge_head)
        return model

    def edited(self, model: nn.Module | None, idx: Sequence[int], device: str) -> torch.Tensor:
        """``θ'`` ``[B, P]`` of records ``idx`` (raw units)."""
        theta = self.theta[list(idx)].to(device)
        if model is None:
            return theta
        scale = self.space.scale.to(device)
        if self.cfg.model == "gmn":
            from torch_geometric.data import Batch

            batch = Batch.from_data_list([self.ds.data(i) for i in idx]).to(device)
            node_out, edge_out = model.node_edge_outputs(batch)  # type: ignore[operator]
            delta = self.space.from_graph_outputs(edge_out, node_out, len(idx))
        elif self.cfg.model == "mlp":
            delta = model(theta / scale)
        else:
            shapes = self.chain
            parts = self.space.split(theta / scale)
            dw, db = model(([parts[w] for _, w, _ in shapes], [parts[b] for _, _, b in shapes]))
            named = {w: t for (_, w, _), t in zip(shapes, dw)} | {b: t for (_, _, b), t in zip(shapes, db)}
            delta = self.space.join(named)
        return theta + delta * scale

    def mse(self, model: nn.Module | None, idx: Sequence[int], device: str, batch_size: int) -> torch.Tensor:
        """Per-network render MSE ``[len(idx)]`` (no gradients)."""
        if model is not None:
            model.eval()
        out = []
        with torch.no_grad():
            for s in range(0, len(idx), batch_size):
                part = list(idx[s:s + batch_size])
                pred = self.renderer(self.edited(model, part, device))
                out.append(((pred - self.targets[part].to(device)) ** 2).mean(1).cpu())
        return torch.cat(out) if out else torch.zeros(0)


def train_edit_seed(task: EditTask, seed: int, out: str | os.PathLike[str], *, progress: bool = False) -> dict[str, Any]:
    """Train one seed into ``out`` (see the module docstring); returns its metrics."""
    from safetensors.torch import save_file

    from .train import _jsonable, load_last, save_last

    out, cfg, ds = Path(out), task.cfg, task.ds
    if (out / "metrics.json").is_file():
        return dict(json.loads((out / "metrics.json").read_text()))
    out.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.time(), time.process_time()
    train, val, test = ds.indices("train"), ds.final_indices("val"), ds.final_indices("test")
    model: Any = task.build(seed)
    task.renderer.to(cfg.device)
    state: dict[str, Any] = {"epoch": 0, "best": math.inf, "best_epoch": 0, "bad": 0, "history": [], "elapsed": 0.0}
    if model is not None:
        model = model.to(cfg.device)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        last = out / "last"
        state = load_last(model, opt, last, cfg.device) or state
        budget = cfg.max_minutes * 60 if cfg.max_minutes else math.inf
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.epochs, initial=int(state["epoch"]), desc=f"edit {cfg.model} seed {seed}", unit="epoch")
        while state["epoch"] < cfg.epochs and state["bad"] < cfg.patience and state["elapsed"] + time.time() - t0 < budget:
            epoch = int(state["epoch"])
            g = torch.Generator().manual_seed(seed * 100_003 + epoch)
            order = [train[j] for j in torch.randperm(len(train), generator=g).tolist()]
            model.train()
            total = 0.0
            for s in range(0, len(order), cfg.batch_size):
                idx = order[s:s + cfg.batch_size]
                pred = task.renderer(task.edited(model, idx, cfg.device))
                loss = ((pred - task.targets[idx].to(cfg.device)) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                total += float(loss.detach()) * len(idx)
            val_mse = float(task.mse(model, val, cfg.device, cfg.batch_size).mean())
            state["epoch"] = epoch + 1
            state["history"].append({"epoch": epoch + 1, "train_loss": total / max(1, len(order)),
                                     "val": {"render_mse": val_mse}})
            if val_mse < state["best"] or epoch == 0:
                state["best"], state["best_epoch"], state["bad"] = min(val_mse, state["best"]), epoch + 1, 0
                model.save_pretrained(out)
            else:
                state["bad"] += 1
            save_last(model, opt, last, state, state["elapsed"] + time.time() - t0)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(val_mse=f"{val_mse:.4f}", best=f"{state['best']:.4f}")
        if bar is not None:
            bar.close()
        if not (out / "model.safetensors").is_file():
            model.save_pretrained(out)
        with contextlib.redirect_stdout(sys.stderr):
            model = type(model).from_pretrained(out).to(cfg.device)
        import shutil

        shutil.rmtree(last, ignore_errors=True)
    metrics: dict[str, Any] = {"model": cfg.model, "seed": seed, "config": _jsonable(asdict(cfg)),
                               "data": {**ds.describe(), "task": "edit", "target": f"edit:{cfg.edit}",
                                        "resolution": task.resolution, "parameters": task.space.num_params},
                               "best_epoch": int(state["best_epoch"]), "epochs_run": int(state["epoch"]),
                               "history": state["history"]}
    preds: dict[str, Any] = {}
    for split, idx in (("val", val), ("test", test)):
        mse = task.mse(model, idx, cfg.device, cfg.batch_size).numpy()
        ident = task.mse(None, idx, cfg.device, cfg.batch_size).numpy()
        metrics[split] = {**edit_metrics(mse, seed=seed, resamples=1000 if split == "test" else 200),
                          "identity_render_mse": float(np.mean(ident))}
        preds[split] = [{"name": ds.records[i].name, "network": ds.records[i].network, "prediction": float(m),
                         "target": None} for i, m in zip(idx, mse)]
    show = list(test[:RENDERS_SAVED])
    with torch.no_grad():
        if model is not None:
            model.eval()
        predicted = task.renderer(task.edited(model, show, cfg.device)).cpu() if show else torch.zeros(0)
    side = task.resolution
    renders = {"input": task.inputs[show], "target": task.targets[show], "prediction": predicted}
    with atomic_path(out / "renders.safetensors") as tmp:
        save_file({k: v.reshape(len(show), side, side).contiguous().float() for k, v in renders.items()}, str(tmp),
                  metadata={"names": json.dumps([ds.records[i].name for i in show])})
    metrics["wall_seconds"] = round(float(state["elapsed"]) + time.time() - t0, 2)  # earlier sessions of a resumed seed included
    metrics["cpu_seconds"] = round(time.process_time() - c0, 2)  # this session only
    write_json_atomic(out / "predictions.json", preds)
    metrics = _jsonable(metrics)
    write_json_atomic(out / "metrics.json", metrics)
    return metrics


def edit_train(zoo: Any, config: EditConfig, seeds: Sequence[int], out: str | os.PathLike[str], *,
               progress: bool = False) -> list[dict[str, Any]]:
    """Train ``config`` for every seed into ``out/seed-K/``; returns each seed's metrics."""
    if not seeds:
        raise InvalidOptionError("edit_train: give at least one seed")
    ds = GraphDataset.from_zoo(zoo, target=None, dataset=config.dataset, filters=config.filters or None,
                               split_seed=config.split_seed, max_kernel=config.max_kernel, progress=progress,
                               fits=config.fits, fraction=config.fraction)
    task = EditTask(ds, config)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(root / "run.json", {"config": asdict(config), "seeds": list(seeds), "data": ds.describe(),
                                          "task": "edit"})
    return [train_edit_seed(task, s, root / f"seed-{s}", progress=progress) for s in seeds]


__all__ = ["EDITS", "EDIT_BASELINES", "EDIT_MODELS", "EditConfig", "EditSpace", "EditTask", "Renderer", "apply_edit",
           "edit_train", "train_edit_seed"]
