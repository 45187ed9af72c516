r"""The one training harness of weightzoo's metanetworks and their baselines.

``train(zoo, config, seeds, out)`` trains model ``config.model`` once per seed into ``out/seed-K/``:

* **seeded** — the model's initialisation, the batch order of every epoch and the trees' randomness derive
  from the seed; the split comes from the dataset's manifest (or ``split_seed`` with ``filters``);
* **early stopping** on the validation metric (Kendall :math:`\tau_b` for regression, accuracy for
  classification; a NaN metric — constant predictions — counts as worst), keeping the best epoch;
* **resumable** — every epoch writes ``last/`` (weights, optimizer state as safetensors, trainer state as
  JSON); a rerun continues from it, and a finished seed (``metrics.json`` present) is skipped;
* ``device`` — ``cpu`` (the default, what CI runs) or ``cuda``; ``max_minutes`` bounds each seed's wall time;
* **outputs** — ``model.safetensors`` + ``config.json`` (``PyTorchModelHubMixin``: ``from_pretrained`` works,
  also from the Hub), ``featurizer.json`` (input normalisation fitted on the training split, target scaling),
  ``metrics.json`` (validation and test :math:`\tau_b`, :math:`R^2` or accuracy with bootstrap 95 % intervals,
  epochs, wall and CPU seconds) and ``predictions.json`` (per test/validation network). No pickles.

Every model of :mod:`weightzoo.metanets.models` trains through here, on the same records and split.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from weightzoo.errors import InvalidOptionError
from weightzoo.zoo.formats.durable import atomic_path, write_json_atomic

from .augment import augment_graph, mixup, parse_augmentations
from .data import GraphDataset
from .features import VECTOR_KINDS, Featurizer
from .metrics import classification_metrics, regression_metrics, score_for_selection
from .models import model_class

#: Per-model defaults of the constructor options (``TrainConfig.model_options`` overrides them).
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "gmn": {"hidden": 64, "layers": 4},
    "np": {"hidden": 32, "layers": 3},
    "hnp": {"hidden": 32, "layers": 3},
    "nfn-np": {"hidden": 16, "layers": 3},
    "nfn-hnp": {"hidden": 16, "layers": 3},
}


@dataclass(frozen=True)
class TrainConfig:
    """What to train and how (recorded in every seed's ``metrics.json``).

    Args:
        model: a name of :data:`weightzoo.metanets.models.MODELS`.
        target: the catalogue metadata key to predict (default ``test_accuracy``).
        dataset: the dataset whose manifest gives records and split (else ``filters`` + ``split_seed``).
        filters: ``zoo.models(**filters)`` selection (with or without a dataset).
        checkpoints: ``final`` (default), an epoch number, or ``all`` (earlier epochs as extra training data).
        split_seed: seed of the by-network split when there is no dataset.
        epochs, batch_size, lr, weight_decay, patience, grad_clip: optimisation (AdamW; defaults 60, 32, 1e-3,
            5e-4, 15, 10).
        max_minutes: wall-clock budget per seed (``None``: none).
        device: ``cpu`` or ``cuda``.
        views: permutation-augmented views per training network for the flat MLP (default 8).
        max_kernel: kernel window of the graphs (default 7×7).
        model_options: constructor options of the model (merged over :data:`MODEL_DEFAULTS`).
        augment: weight-space augmentations of every training network, drawn afresh each epoch from the
            seed (``"signflip,shift,noise:0.1"``; names in :data:`~weightzoo.metanets.augment.AUGMENTATIONS`;
            graph and weight-space models).
        mixup: weight-space MixUp of training networks, ``plain``, ``permuted`` or ``aligned`` (each
            training network aligned once to the first one by weight matching; two aligned networks mixed),
            targets mixed with the same λ ~ U(0, 1); ``mixup_p`` is the share of mixed samples (0.5).
        fits, fraction: fits per training group (one per validation/test group) and a seeded share of the
            groups (:func:`~weightzoo.metanets.data.select_records`; default all).
    """

    model: str
    target: str = "test_accuracy"
    dataset: str | None = None
    filters: dict[str, Any] = field(default_factory=dict)
    checkpoints: str | int = "final"
    split_seed: int = 0
    epochs: int = 60
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 5e-4
    patience: int = 15
    grad_clip: float = 10.0
    max_minutes: float | None = None
    device: str = "cpu"
    views: int = 8
    max_kernel: tuple[int, int] = (7, 7)
    model_options: dict[str, Any] = field(default_factory=dict)
    augment: str = ""
    mixup: str = ""
    mixup_p: float = 0.5
    fits: int | None = None
    fraction: float = 1.0

    def __post_init__(self) -> None:
        from .augment import parse_augmentations

        model_class(self.model)  # unknown names raise with the valid choices
        parse_augmentations(self.augment)
        if (self.augment and self.augment != "none") or self.mixup:
            if model_class(self.model).input_kind not in ("graph", "weightspace"):
                raise InvalidOptionError(f"TrainConfig: augment/mixup need a graph or weight-space model, not {self.model!r}"
                                         " (the flat mlp has its permutation views)")
        if self.mixup not in ("", "plain", "permuted", "aligned") or not 0.0 <= self.mixup_p <= 1.0:
            raise InvalidOptionError(f"TrainConfig: mixup must be plain, permuted or aligned and 0 <= mixup_p <= 1, got "
                                     f"{self.mixup!r}, {self.mixup_p}")
        if (self.fits is not None and self.fits < 1) or not 0.0 < self.fraction <= 1.0:
            raise InvalidOptionError(f"TrainConfig: fits >= 1 and 0 < fraction <= 1, got {self.fits}, {self.fraction}")
        if self.epochs < 0 or self.batch_size < 1 or self.patience < 1 or self.views < 1:
            raise InvalidOptionError("TrainConfig: epochs >= 0, batch_size, patience and views >= 1 are required")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise InvalidOptionError(f"TrainConfig: device must be cpu or cuda, got {self.device!r}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise InvalidOptionError("TrainConfig: device cuda was asked for but torch sees no CUDA device")


# --- inputs ---------------------------------------------------------------------------------------------


class _Inputs:
    """The encoded inputs of every record for one model kind (computed once, shared by the seeds)."""

    def __init__(self, ds: GraphDataset, featurizer: Featurizer, cfg: TrainConfig) -> None:
        self.ds, self.f, self.kind, self.cfg = ds, featurizer, featurizer.kind, cfg
        self.views: torch.Tensor | None = None
        self.augment = parse_augmentations(cfg.augment)
        self._aligned_cache: dict[int, dict[str, torch.Tensor]] = {}
        if self.kind in VECTOR_KINDS:
            self.x = featurizer.encode(ds.graphs, ds.records)
            if self.kind == "flat" and cfg.views > 1:
                from .features import flat_views

                train = ds.indices("train")
                v = torch.stack([flat_views(ds.graphs[i], featurizer.state["length"], cfg.views, seed=i) for i in train])
                self.views = featurizer.scaler(v.transpose(0, 1))  # [views, n_train, F]
                self.view_row = {i: k for k, i in enumerate(train)}
        elif self.kind == "weightspace":
            self.ws = [featurizer.weightspace(g) for g in ds.graphs]

    def train_batch(self, idx: Sequence[int], generator: torch.Generator) -> tuple[Any, tuple[list[int], torch.Tensor] | None]:
        """A training batch: augmented and mixed views where the config asks (drawn from ``generator``),
        and ``(partners, λ)`` of MixUp (``None`` without it)."""
        if self.augment is None and not self.cfg.mixup:
            return self.batch(idx, generator), None
        train = self.ds.indices("train")
        graphs = []
        partners: list[int] = []
        lams: list[float] = []
        for i in idx:
            g = self.ds.graphs[i]
            j, lam = i, 1.0
            if self.cfg.mixup and float(torch.rand((), generator=generator)) < self.cfg.mixup_p:
                j = train[int(torch.randint(len(train), (), generator=generator))]
                lam = float(torch.rand((), generator=generator))
                g = self._mix(i, j, lam, generator)
            if self.augment is not None:
                g = augment_graph(g, self.augment, generator)
            graphs.append(g)
            partners.append(j)
            lams.append(lam)
        if self.kind == "graph":
            from torch_geometric.data import Batch

            xb: Any = Batch.from_data_list([self.ds.data(i) if g is self.ds.graphs[i] else self.ds.data(i, g)
                                            for i, g in zip(idx, graphs)])
        else:
            ws, bs = zip(*[self.f.weightspace(g) for g in graphs])
            xb = ([torch.stack(t) for t in zip(*ws)], [torch.stack(t) for t in zip(*bs)])
        return xb, ((partners, torch.tensor(lams)) if self.cfg.mixup else None)

    def _mix(self, i: int, j: int, lam: float, generator: torch.Generator) -> Any:
        from weightzoo.zoo.graphs import ParameterGraph

        a, b = self.ds.graphs[i], self.ds.graphs[j]
        if a.spec != b.spec:  # MixUp needs one architecture; mixed zoos mix within an architecture only
            return a
        spec = a.layout.spec
        if self.cfg.mixup == "aligned":
            sd_a, sd_b = self._aligned(i), self._aligned(j)
            sd = mixup(sd_a, sd_b, lam, mode="plain", spec=spec)
        else:
            sd = mixup(a.to_state_dict(), b.to_state_dict(), lam, mode=self.cfg.mixup, spec=spec, generator=generator)  # type: ignore[arg-type]
        return ParameterGraph.from_spec(spec, sd, max_kernel=a.max_kernel)

    def _aligned(self, i: int) -> dict[str, torch.Tensor]:
        """Training network ``i`` aligned (weight matching) to the anchor, the first training network of its
        architecture; computed once per network (~40 ms for a SIREN)."""
        from weightzoo.zoo.symmetry import align

        if i not in self._aligned_cache:
            g = self.ds.graphs[i]
            anchor = next(k for k in self.ds.indices("train") if self.ds.graphs[k].spec == g.spec)
            sd = g.to_state_dict()
            self._aligned_cache[i] = sd if anchor == i else dict(align(self.ds.graphs[anchor].to_state_dict(), sd,
                                                                         g.layout.spec)[0])
        return self._aligned_cache[i]

    def batch(self, idx: Sequence[int], generator: torch.Generator | None = None) -> Any:
        if self.kind == "graph":
            from torch_geometric.data import Batch

            return Batch.from_data_list([self.ds.data(i) for i in idx])
        if self.kind == "weightspace":
            ws, bs = zip(*[self.ws[i] for i in idx])
            return ([torch.stack(t) for t in zip(*ws)], [torch.stack(t) for t in zip(*bs)])
        if self.views is not None and generator is not None:
            pick = torch.randint(0, self.views.shape[0], (len(idx),), generator=generator)
            return torch.stack([self.views[int(p), self.view_row[i]] if i in self.view_row else self.x[i]
                                for p, i in zip(pick, idx)])
        return self.x[list(idx)]

    def targets(self, idx: Sequence[int]) -> torch.Tensor:
        return torch.tensor([self.ds.encode_target(self.ds.records[i].target) for i in idx], dtype=torch.float32)


def _to(obj: Any, device: str) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, tuple | list):
        return type(obj)(_to(o, device) for o in obj)
    return obj.to(device)


# --- one seed -------------------------------------------------------------------------------------------


def _out_dim(ds: GraphDataset) -> int:
    return 1 if ds.task == "regression" else len(ds.classes)


def build_model(cfg: TrainConfig, ds: GraphDataset, featurizer: Featurizer, seed: int) -> nn.Module:
    """A fresh model for ``cfg`` sized for ``ds`` (seeded)."""
    cls = model_class(cfg.model)
    opts: dict[str, Any] = {**MODEL_DEFAULTS.get(cfg.model, {}), **cfg.model_options, "out_dim": _out_dim(ds)}
    kind = cls.input_kind
    if kind == "graph":
        from weightzoo.metanets.layers.pna import average_log_degree

        train = ds.indices("train")
        opts.setdefault("avg_log_degree", average_log_degree([ds.graphs[i].edge_index for i in train],
                                                             [ds.graphs[i].num_nodes for i in train]))
        opts["window"] = cfg.max_kernel[0] * cfg.max_kernel[1]
        if opts.get("probes"):
            from weightzoo.zoo.graphs import NodeType

            opts.setdefault("probe_dim", max(int((ds.graphs[i].node_type == int(NodeType.INPUT)).sum()) for i in train))
    elif kind == "weightspace":
        opts["weight_shapes"] = featurizer.state["weight_shapes"]
    else:
        opts["n_features"] = len(featurizer.scaler.mean)
        if getattr(cls, "fit_only", False):
            opts["n_train"] = len(ds.indices("train"))
            opts["seed"] = seed
    torch.manual_seed(seed)
    return cls(**opts)


def _predict(model: nn.Module, inputs: _Inputs, idx: Sequence[int], batch_size: int, device: str) -> torch.Tensor:
    model.eval()
    outs = []
    with torch.no_grad():
        for s in range(0, len(idx), batch_size):
            outs.append(model(_to(inputs.batch(idx[s:s + batch_size]), device)).float().cpu())
    return torch.cat(outs) if outs else torch.zeros(0, 1)


def _evaluate(ds: GraphDataset, pred: torch.Tensor, idx: Sequence[int], seed: int, resamples: int = 1000) -> dict[str, Any]:
    p = ds.decode(pred).numpy()
    t = ds.targets(idx).numpy()
    if ds.task == "regression":
        return regression_metrics(p.astype(np.float64), t, seed=seed, resamples=resamples)
    return classification_metrics(p, t, seed=seed, resamples=resamples)


def _save_optimizer(opt: torch.optim.Optimizer, folder: Path) -> None:
    from safetensors.torch import save_file

    sd = opt.state_dict()
    tensors = {f"{pid}.{k}": v.detach().clone().contiguous() if v.dim() else v.detach().reshape(1).clone()
               for pid, st in sd["state"].items() for k, v in st.items() if isinstance(v, torch.Tensor)}
    with atomic_path(folder / "optimizer.safetensors") as tmp:
        save_file(tensors, tmp)
    write_json_atomic(folder / "optimizer.json", {"param_groups": sd["param_groups"]})


def _load_optimizer(opt: torch.optim.Optimizer, folder: Path) -> None:
    from safetensors.torch import load_file

    tensors = load_file(str(folder / "optimizer.safetensors"))
    meta = json.loads((folder / "optimizer.json").read_text())
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v.reshape(()) if name == "step" else v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def load_last(model: nn.Module, opt: torch.optim.Optimizer, last: Path, device: str) -> dict[str, Any] | None:
    """Resume from an interrupted seed's ``last/`` folder: load model and optimizer, return the trainer state
    (``None`` when there is nothing to resume)."""
    if not (last / "trainer_state.json").is_file():
        return None
    from safetensors.torch import load_model

    load_model(model, str(last / "model.safetensors"), device=device)
    _load_optimizer(opt, last)
    return dict(json.loads((last / "trainer_state.json").read_text()))


def save_last(model: nn.Module, opt: torch.optim.Optimizer, last: Path, state: Mapping[str, Any], elapsed: float) -> None:
    """Write ``last/`` after an epoch (model, optimizer, trainer state with ``elapsed`` wall seconds)."""
    from safetensors.torch import save_model

    last.mkdir(exist_ok=True)
    with atomic_path(last / "model.safetensors") as tmp:
        save_model(model, str(tmp))
    _save_optimizer(opt, last)
    write_json_atomic(last / "trainer_state.json", {**state, "elapsed": elapsed})


def train_seed(ds: GraphDataset, cfg: TrainConfig, seed: int, out: str | os.PathLike[str], *,
               inputs: _Inputs | None = None, featurizer: Featurizer | None = None, progress: bool = False) -> dict[str, Any]:
    """Train one seed into ``out`` (see the module docstring); returns its metrics."""
    out = Path(out)
    if (out / "metrics.json").is_file():
        return dict(json.loads((out / "metrics.json").read_text()))
    out.mkdir(parents=True, exist_ok=True)
    cls = model_class(cfg.model)
    featurizer = featurizer or Featurizer.fit(cls.input_kind, ds)
    inputs = inputs or _Inputs(ds, featurizer, cfg)
    t0, c0 = time.time(), time.process_time()
    model: Any = build_model(cfg, ds, featurizer, seed).to(cfg.device)
    train, val, test = ds.indices("train"), ds.final_indices("val"), ds.final_indices("test")
    history: list[dict[str, Any]] = []
    best_epoch, epochs_run = 0, 0
    if getattr(model, "fit_only", False):
        model.fit(inputs.batch(train), inputs.targets(train))  # type: ignore[operator]
        model.save_pretrained(out)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        state: dict[str, Any] = {"epoch": 0, "best": -math.inf, "best_epoch": 0, "bad": 0, "history": [], "elapsed": 0.0}
        last = out / "last"
        state = load_last(model, opt, last, cfg.device) or state
        loss_fn: Any = nn.MSELoss() if ds.task == "regression" else nn.CrossEntropyLoss()
        budget = cfg.max_minutes * 60 if cfg.max_minutes else math.inf
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.epochs, initial=int(state["epoch"]), desc=f"{cfg.model} seed {seed}", unit="epoch")
        while state["epoch"] < cfg.epochs and state["bad"] < cfg.patience and state["elapsed"] + time.time() - t0 < budget:
            epoch = int(state["epoch"])
            g = torch.Generator().manual_seed(seed * 100_003 + epoch)
            order = [train[j] for j in torch.randperm(len(train), generator=g).tolist()]
            model.train()
            total = 0.0
            for s in range(0, len(order), cfg.batch_size):
                idx = order[s:s + cfg.batch_size]
                xb, mix = inputs.train_batch(idx, g)
                xb = _to(xb, cfg.device)
                yb = inputs.targets(idx).to(cfg.device)
                pred = model(xb)
                if mix is None:
                    loss = loss_fn(pred.reshape(-1), yb) if ds.task == "regression" else loss_fn(pred, yb.long())
                else:  # MixUp: the loss of the mixed target (regression) or the λ-mix of both losses
                    yp, lam = inputs.targets(mix[0]).to(cfg.device), mix[1].to(cfg.device)
                    if ds.task == "regression":
                        loss = loss_fn(pred.reshape(-1), lam * yb + (1 - lam) * yp)
                    else:
                        ce = nn.functional.cross_entropy
                        loss = (lam * ce(pred, yb.long(), reduction="none")
                                + (1 - lam) * ce(pred, yp.long(), reduction="none")).mean()
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                total += float(loss.detach()) * len(idx)
            vm = _evaluate(ds, _predict(model, inputs, val, cfg.batch_size, cfg.device), val, seed, resamples=0)
            score = score_for_selection(vm)
            state["epoch"] = epoch + 1
            state["history"].append({"epoch": epoch + 1, "train_loss": total / max(1, len(order)),
                                     "val": {k: v for k, v in vm.items() if not k.endswith("ci95")}})
            if score > state["best"] or epoch == 0:
                state["best"], state["best_epoch"], state["bad"] = max(score, state["best"]), epoch + 1, 0
                model.save_pretrained(out)
            else:
                state["bad"] += 1
            save_last(model, opt, last, state, state["elapsed"] + time.time() - t0)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(val=f"{score:.3f}", best=f"{state['best']:.3f}")
        if bar is not None:
            bar.close()
        if not (out / "model.safetensors").is_file():  # zero epochs: a checkpoint is always saved
            model.save_pretrained(out)
        history, best_epoch, epochs_run = state["history"], int(state["best_epoch"]), int(state["epoch"])
        with contextlib.redirect_stdout(sys.stderr):
            model = type(model).from_pretrained(out).to(cfg.device)
        shutil.rmtree(last, ignore_errors=True)
    write_json_atomic(out / "featurizer.json", {"kind": featurizer.kind, "state": featurizer.state,
                                               "dataset": ds.describe()})
    preds = {}
    metrics: dict[str, Any] = {"model": cfg.model, "seed": seed, "config": _jsonable(asdict(cfg)),
                               "data": ds.describe(), "best_epoch": best_epoch, "epochs_run": epochs_run,
                               "history": history}
    for split, idx in (("val", val), ("test", test)):
        p = _predict(model, inputs, idx, cfg.batch_size, cfg.device)
        metrics[split] = _evaluate(ds, p, idx, seed, resamples=1000 if split == "test" else 200)
        dec = ds.decode(p).tolist()
        preds[split] = [{"name": ds.records[i].name, "network": ds.records[i].network, "prediction": dec[k],
                         "target": ds.records[i].target} for k, i in enumerate(idx)]
    metrics["wall_seconds"] = round(time.time() - t0, 2)
    metrics["cpu_seconds"] = round(time.process_time() - c0, 2)
    write_json_atomic(out / "predictions.json", preds)
    metrics = _jsonable(metrics)
    write_json_atomic(out / "metrics.json", metrics)
    return metrics


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    return obj


def train(zoo: Any, config: TrainConfig, seeds: Sequence[int], out: str | os.PathLike[str], *,
          dataset: GraphDataset | None = None, progress: bool = False) -> list[dict[str, Any]]:
    """Train ``config`` for every seed into ``out/seed-K/``; returns each seed's metrics.

    ``zoo`` is a Zoo or a folder; ``dataset`` reuses already-loaded graphs (same target and split).
    """
    if not seeds:
        raise InvalidOptionError("train: give at least one seed")
    ds = dataset or GraphDataset.from_zoo(zoo, target=config.target, dataset=config.dataset,
                                          filters=config.filters or None, epochs=config.checkpoints,
                                          split_seed=config.split_seed, max_kernel=config.max_kernel, progress=progress,
                                          fits=config.fits, fraction=config.fraction)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(root / "run.json", _jsonable({"config": asdict(config), "seeds": list(seeds),
                                                    "data": ds.describe()}))
    featurizer = Featurizer.fit(model_class(config.model).input_kind, ds)
    inputs = _Inputs(ds, featurizer, config)
    return [train_seed(ds, config, s, root / f"seed-{s}", inputs=inputs, featurizer=featurizer, progress=progress)
            for s in seeds]


# --- loading runs ---------------------------------------------------------------------------------------


def seed_dirs(run: str | os.PathLike[str]) -> list[Path]:
    """The finished seeds of a run folder (``seed-K/metrics.json``), or the folder itself if it is one."""
    p = Path(run)
    if (p / "metrics.json").is_file():
        return [p]
    return sorted((d for d in p.glob("seed-*") if (d / "metrics.json").is_file()),
                  key=lambda d: int(d.name.split("-", 1)[1]) if d.name.split("-", 1)[1].isdigit() else 0)


def best_seed(run: str | os.PathLike[str], seed: int | None = None) -> Path:
    """The seed folder to use: ``seed`` if given, else the one with the best validation metric."""
    dirs = seed_dirs(run)
    if not dirs:
        raise InvalidOptionError(f"{run}: no finished seeds (seed-K/metrics.json) — train first")
    if seed is not None:
        for d in dirs:
            if d.name == f"seed-{seed}" or (d == Path(run) and json.loads((d / "metrics.json").read_text())["seed"] == seed):
                return d
        raise InvalidOptionError(f"{run}: no finished seed {seed}; have {[d.name for d in dirs]}")

    def score(d: Path) -> float:
        return score_for_selection(json.loads((d / "metrics.json").read_text()).get("val") or {})

    return max(dirs, key=score)


@dataclass
class TrainedMetanet:
    """A trained model with the featurizer and task it was trained with (what ``predict`` needs)."""

    name: str
    model: nn.Module
    featurizer: Featurizer
    data: dict[str, Any]
    folder: Path

    @classmethod
    def load(cls, run: str | os.PathLike[str], seed: int | None = None) -> TrainedMetanet:
        folder = best_seed(run, seed)
        metrics = json.loads((folder / "metrics.json").read_text())
        feat = json.loads((folder / "featurizer.json").read_text())
        with contextlib.redirect_stdout(sys.stderr):  # huggingface_hub prints "Loading weights ..." to stdout
            model = model_class(metrics["model"]).from_pretrained(folder)
        model.eval()
        return cls(metrics["model"], model, Featurizer(feat["kind"], feat["state"]), feat["dataset"], folder)

    def predict(self, graphs: Sequence[Any], records: Sequence[Any] | None = None, *, batch_size: int = 32) -> list[Any]:
        """Predictions in target units (regression) or class labels (classification), one per graph."""
        recs = list(records) if records is not None else [None] * len(graphs)
        out: list[Any] = []
        for s in range(0, len(graphs), batch_size):
            with torch.no_grad():
                p = self.model(self.featurizer.encode(graphs[s:s + batch_size], recs[s:s + batch_size])).float()
            if self.data["task"] == "regression":
                out += (p.reshape(-1) * self.data["target_std"] + self.data["target_mean"]).tolist()
            else:
                out += [json.loads(self.data["classes"][int(i)]) for i in p.argmax(-1)]
        return out


_CLASS_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def graphs_for(refs: Sequence[str], *, zoo: Any = None, arch: Any = None, max_kernel: Sequence[int] = (7, 7),
               target: str | None = None) -> tuple[list[Any], list[Any], list[Any]]:
    """``(graphs, records, targets)`` for MODEL references: zoo names (with ``zoo``), checkpoint paths (their
    spec from ``arch`` or beside them, see :func:`~weightzoo.zoo.store.resolve_spec`), or ``pkg.module:Class``
    (instantiated without arguments — this imports and runs that code, as asked). Records and targets are
    ``None`` where the catalogue has none.
    """
    from weightzoo.zoo.graphs import ParameterGraph
    from weightzoo.zoo.store import Zoo
    from weightzoo.zoo.store.resolve import classify_ref, load_state_dict, resolve_spec

    from .data import GraphCache, NetworkRecord

    mk = (int(max_kernel[0]), int(max_kernel[1]))
    z = None if zoo is None else (zoo if isinstance(zoo, Zoo) else Zoo.open(zoo, create=False))
    graphs: list[Any] = []
    records: list[Any] = []
    targets: list[Any] = []
    for ref in refs:
        if _CLASS_REF.match(ref) and not os.path.exists(ref) and not (z is not None and z.has_model(ref)):
            import importlib

            mod, cls = ref.split(":")
            try:
                module = getattr(importlib.import_module(mod), cls)()
            except (ImportError, AttributeError, TypeError) as exc:
                raise InvalidOptionError(f"{ref}: cannot import and instantiate it without arguments: {exc}") from exc
            graphs.append(ParameterGraph.from_module(module, max_kernel=mk))
            records.append(None)
            targets.append(None)
            continue
        kind = classify_ref(ref, z)
        if kind == "zoo" and z is not None:
            rec = z.model(ref)
            graphs.append(GraphCache(z, max_kernel=mk).graph(rec.ref))
            records.append(NetworkRecord(rec.ref, "predict", rec.ref, rec.metadata.get("epoch"),
                                         rec.metadata.get(target) if target else None, dict(rec.metadata), rec.spec))
            targets.append(rec.metadata.get(target) if target else None)
        else:
            spec = resolve_spec(ref, zoo=z, spec=arch)
            graphs.append(ParameterGraph.from_spec(spec, load_state_dict(ref), max_kernel=mk))
            records.append(None)
            targets.append(None)
    return graphs, records, targets


__all__ = ["MODEL_DEFAULTS", "graphs_for", "TrainConfig", "TrainedMetanet", "best_seed", "build_model", "seed_dirs", "train",
           "train_seed"]
