r"""Datasets of networks for metanetworks: a zoo + a split + a target → cached graphs → PyG batches.

One data path for every model of :mod:`weightzoo.metanets`:

1. **Records.** :func:`load_records` picks one checkpoint per network (by default the final one; or an
   epoch; ``epochs="all"`` adds every checkpoint of a *training* network as extra training data) from a
   dataset's split manifest (``<zoo>/manifests/<dataset>.json``), or — without a dataset — from
   ``zoo.models(**filters)`` with a seeded split by network. Each :class:`NetworkRecord` carries the
   target (any catalogue metadata key: ``test_accuracy``, ``train_loss``, a hyperparameter, a class label).
2. **Graphs.** :class:`GraphCache` builds each checkpoint's :class:`~weightzoo.zoo.graphs.ParameterGraph`
   once and stores it as safetensors in ``<zoo>/metanet-cache/graphs-v<vocab>-k<kh>x<kw>/``, keyed by the
   model's tensor hashes, spec and the vocabulary version (so a changed model or vocabulary never reads a
   stale graph).
3. **Normalisation.** :class:`GraphNormalizer` scales edge values per (edge type, layer) and node values per
   (layer, column) by their standard deviation over the *training split only* (scale only: zero padding of
   kernel windows stays zero, and sign symmetries are kept); unseen keys fall back to per-type statistics.
4. **Batches.** :meth:`GraphDataset.loader` yields ``torch_geometric`` batches of mixed architectures
   (memory linear in edges), with ``y`` standardised by the training targets for regression.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from weightzoo.datasets.builder import derive_seed, hash_split, read_manifest
from weightzoo.errors import DatasetError
from weightzoo.zoo.graphs import VOCAB_VERSION, ParameterGraph
from weightzoo.zoo.graphs.vocab import NODE_FEATURE_COLUMNS, NODE_VALUE_COLUMNS
from weightzoo.zoo.store import Zoo

if TYPE_CHECKING:
    from torch_geometric.data import Batch, Data

CACHE_DIR = "metanet-cache"
SPLITS = ("train", "val", "test")
#: Metadata keys that describe a checkpoint's outcome or identity, never a training setting.
NON_HPARAM_KEYS = frozenset({"dataset", "epoch", "final", "network", "seed", "split", "train_images", "group", "name",
                             "image", "fit", "tree", "role", "parent", "psnr", "steps", "family"})


@dataclass(frozen=True)
class NetworkRecord:
    """One checkpoint of a dataset: its zoo name, split, network (split group), epoch and target."""

    name: str
    split: str
    network: str
    epoch: int | None
    target: Any
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    spec: dict[str, Any] | None = field(default=None, compare=False, hash=False)


def _is_hparam(key: str, target: str) -> bool:
    if key == target or key in NON_HPARAM_KEYS:
        return False
    return not key.startswith(("train_", "test_", "val_")) and "accuracy" not in key and "loss" not in key


def hyperparameters(metadata: Mapping[str, Any], target: str) -> dict[str, Any]:
    """The training settings in a checkpoint's metadata (outcomes, identities and the target removed)."""
    return {k: v for k, v in metadata.items() if _is_hparam(k, target) and (v is None or isinstance(v, str | int | float | bool))}


def _pick(models: list[Any], epochs: str | int) -> list[Any]:
    """The checkpoints of one network to use: ``final`` (default), one epoch, or ``all``."""
    if epochs == "all":
        return models
    if epochs == "final":
        finals = [m for m in models if m.metadata.get("final")]
        if finals:
            return finals[-1:]
        with_epoch = [m for m in models if isinstance(m.metadata.get("epoch"), int)]
        # no epochs at all: the group's models are separate networks of one item (the fits of one INR
        # image), not checkpoints of one run, so every one of them counts
        return [max(with_epoch, key=lambda m: m.metadata["epoch"])] if with_epoch else models
    return [m for m in models if m.metadata.get("epoch") == int(epochs)]


def load_records(zoo: Zoo, *, target: str | None, dataset: str | None = None, filters: Mapping[str, Any] | None = None,
                 epochs: str | int = "final", split_seed: int = 0) -> list[NetworkRecord]:
    """The checkpoints of a dataset (its manifest's split) or of ``zoo.models(**filters)`` (seeded split).

    With ``epochs="all"`` training networks contribute every checkpoint; validation and test networks always
    use their final one (the label the results are about). Checkpoints without the target are left out
    (``target=None``: no target, every checkpoint is kept — tasks whose labels come from the weights, like editing).
    Raises :class:`~weightzoo.errors.DatasetError` if nothing remains or a split is empty.
    """
    pick_all = epochs == "all"
    by_network: dict[str, tuple[str, list[Any]]] = {}
    if dataset is not None:
        manifest = read_manifest(zoo.path, dataset)
        for group, info in manifest["groups"].items():
            recs = [zoo.model(n) for n in info["models"] if zoo.has_model(n)]
            if recs:
                by_network[group] = (info["split"], recs)
        if filters:
            keep = {r.name for r in zoo.models(**filters)}
            by_network = {g: (s, [r for r in rs if r.name in keep]) for g, (s, rs) in by_network.items()}
    else:
        groups: dict[str, list[Any]] = {}
        for r in zoo.models(ingested=True, **(filters or {})):
            net = r.metadata.get("network")
            key = f"{r.metadata.get('dataset', '')}/{net}" if net is not None else r.name
            groups.setdefault(key, []).append(r)
        by_network = {g: (hash_split("filter", split_seed, g), rs) for g, rs in groups.items()}
    out: list[NetworkRecord] = []
    for group, (split, recs) in by_network.items():
        chosen = _pick(recs, "all" if pick_all and split == "train" else ("final" if pick_all else epochs))
        for r in chosen:
            v = None if target is None else r.metadata.get(target)
            if target is not None and (v is None or (isinstance(v, float) and not math.isfinite(v))):
                continue
            ep = r.metadata.get("epoch")
            out.append(NetworkRecord(r.ref, split, str(group), ep if isinstance(ep, int) else None, v,
                                     dict(r.metadata), r.spec))
    if not out:
        raise DatasetError(f"no checkpoints with target {target!r} in {zoo.path}"
                           + (f" (dataset {dataset!r})" if dataset else f" (filters {dict(filters or {})})"))
    missing = [s for s in SPLITS if not any(r.split == s for r in out)]
    if missing:
        raise DatasetError(f"split(s) {missing} are empty for target {target!r}: build more networks")
    return out


def select_records(records: Sequence[NetworkRecord], *, fits: int | None = None, fraction: float = 1.0,
                   seed: int = 0) -> list[NetworkRecord]:
    """Fewer records, chosen by group so no split leaks: ``fits`` per group and a ``fraction`` of the groups.

    For datasets with several networks per group (digits-inr: the fits of one image), ``fits=N`` keeps the
    first N of each training group (by the ``fit`` metadata, else by name) and one of each validation and
    test group (evaluation sees each image once, whatever N is). ``fraction`` keeps a seeded share of the
    *training* groups (runs sized to a CPU budget; validation and test stay whole, so results of different
    fractions are measured on the same networks). Raises :class:`~weightzoo.errors.DatasetError` if it
    empties a split.
    """
    if fits is not None and fits < 1:
        raise DatasetError(f"fits must be >= 1, got {fits}")
    if not 0.0 < fraction <= 1.0:
        raise DatasetError(f"fraction must be in (0, 1], got {fraction}")
    by_group: dict[str, list[NetworkRecord]] = {}
    for r in records:
        by_group.setdefault(r.network, []).append(r)
    keep_groups = set(by_group)
    if fraction < 1.0:
        train = sorted(g for g, rs in by_group.items() if rs[0].split == "train")
        keep_groups = {g for g, rs in by_group.items() if rs[0].split != "train"}
        keep_groups |= {train[i] for i in seeded_subset(range(len(train)), fraction, seed)} if train else set()
    out: list[NetworkRecord] = []
    for g, rs in by_group.items():
        if g not in keep_groups:
            continue
        if fits is not None:
            rs = sorted(rs, key=lambda r: (r.metadata.get("fit", 0) if isinstance(r.metadata.get("fit"), int) else 0,
                                           r.name))
            rs = rs[:fits] if rs[0].split == "train" else rs[:1]
        out += rs
    missing = [s for s in SPLITS if not any(r.split == s for r in out)]
    if missing:
        raise DatasetError(f"split(s) {missing} are empty after selecting fits={fits}, fraction={fraction}")
    return out


#: Target keys that name a class even when their values are integers (a digit's label is not a number).
CLASS_TARGETS = frozenset({"label", "class", "category"})


def task_of(records: Sequence[NetworkRecord], target: str = "") -> tuple[str, list[Any]]:
    """``("regression", [])`` for numeric targets, else ``("classification", sorted class labels)``; integer
    targets named in :data:`CLASS_TARGETS` (``label``) are classes."""
    vals = [r.target for r in records]
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals)
    if numeric and not (target in CLASS_TARGETS and all(isinstance(v, int) for v in vals)):
        return "regression", []
    return "classification", sorted({json.dumps(v, sort_keys=True) for v in vals})


class GraphCache:
    """ParameterGraphs of zoo checkpoints, built once and kept as safetensors in the zoo folder.

    Args:
        zoo: the zoo the checkpoints live in.
        max_kernel: the kernel window of every graph (default 7×7, so CNNs of every kernel size batch).
        write: store built graphs (default ``True``; a read-only zoo folder just rebuilds them).
    """

    def __init__(self, zoo: Zoo, *, max_kernel: tuple[int, int] = (7, 7), write: bool = True) -> None:
        self.zoo, self.max_kernel, self.write = zoo, (int(max_kernel[0]), int(max_kernel[1])), write
        self.folder = Path(zoo.path) / CACHE_DIR / f"graphs-v{VOCAB_VERSION}-k{max_kernel[0]}x{max_kernel[1]}"

    def key(self, name: str) -> str:
        """Hash of the model's tensor hashes, spec, vocabulary version and window."""
        rec = self.zoo.model(name)
        h = hashlib.blake2b(digest_size=16)
        h.update(json.dumps([VOCAB_VERSION, list(self.max_kernel), rec.spec], sort_keys=True).encode())
        for t in self.zoo.tensors(rec.ref):
            h.update(f"{t.name}:{t.hash}".encode())
        return h.hexdigest()

    def graph(self, name: str) -> ParameterGraph:
        path = self.folder / f"{self.key(name)}.safetensors"
        if path.is_file():
            try:
                return ParameterGraph.load(path)
            except Exception:  # noqa: BLE001 - a damaged cache file is rebuilt, never trusted
                pass
        rec = self.zoo.model(name)
        if rec.spec is None:
            raise DatasetError(f"model {name!r} has no architecture spec, so it has no ParameterGraph")
        sd: Mapping[str, torch.Tensor] = self.zoo.state_dict(rec.ref)
        if any(k.endswith("num_batches_tracked") for k in sd.keys()):
            # zoos built before the builder kept 0-d arrays 0-d store BatchNorm's scalar counter as shape [1];
            # the spec says []. Same value, so reshape instead of refusing every batch-norm network of those zoos.
            sd = {k: v.reshape(()) if k.endswith("num_batches_tracked") and v.numel() == 1 else v for k, v in sd.items()}
        g = ParameterGraph.from_spec(rec.spec, sd, max_kernel=self.max_kernel)
        if self.write:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                g.save(path)
            except OSError:
                pass
        return g


_VALUE_COLS = [NODE_FEATURE_COLUMNS.index(c) for c in NODE_VALUE_COLUMNS + ("act_param",)]
_LAYER_COL = NODE_FEATURE_COLUMNS.index("layer")
_BIAS_COL = NODE_FEATURE_COLUMNS.index("bias")
_ACT_PARAM_COL = NODE_FEATURE_COLUMNS.index("act_param")


class GraphNormalizer:
    """Per-(edge type, layer) and per-(layer, node column) scales from training graphs (scale only).

    ``state()`` / ``from_state()`` give a JSON-able form that models store in their config.
    """

    def __init__(self, edge: dict[str, float], node: dict[str, float], edge_type: dict[str, float],
                 node_col: dict[str, float]) -> None:
        self.edge, self.node, self.edge_type, self.node_col = edge, node, edge_type, node_col

    @classmethod
    def fit(cls, graphs: Sequence[Data]) -> GraphNormalizer:
        """Root mean square of the nonzero values per key over ``graphs`` (the training split)."""
        acc: dict[str, list[float]] = {}

        def add(key: str, v: torch.Tensor) -> None:
            v = v[v != 0].double()
            if v.numel():
                a = acc.setdefault(key, [0.0, 0.0])
                a[0] += float((v * v).sum())
                a[1] += v.numel()

        for d in graphs:
            for t in torch.unique(d.edge_type).tolist():
                sel = d.edge_type == t
                add(f"t{t}", d.edge_attr[sel])
                for layer in torch.unique(d.edge_layer[sel]).tolist():
                    add(f"e{t}/{layer}", d.edge_attr[sel & (d.edge_layer == layer)])
            layers = d.x[:, _LAYER_COL].long()
            for c in _VALUE_COLS:
                add(f"c{c}", d.x[:, c])
                for layer in torch.unique(layers).tolist():
                    add(f"n{layer}/{c}", d.x[layers == layer, c])
        rms = {k: max(math.sqrt(s / n), 1e-8) for k, (s, n) in acc.items()}
        return cls({k: v for k, v in rms.items() if k[0] == "e"}, {k: v for k, v in rms.items() if k[0] == "n"},
                   {k[1:]: v for k, v in rms.items() if k[0] == "t"}, {k[1:]: v for k, v in rms.items() if k[0] == "c"})

    def state(self) -> dict[str, Any]:
        return {"edge": self.edge, "node": self.node, "edge_type": self.edge_type, "node_col": self.node_col}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> GraphNormalizer:
        return cls(dict(state["edge"]), dict(state["node"]), dict(state["edge_type"]), dict(state["node_col"]))

    def __call__(self, d: Data) -> Data:
        """A normalised copy of ``d`` (x value columns and edge_attr divided by their scales).

        The raw values that running the network needs stay beside them: ``raw_weight`` ``[E]`` (each
        edge's kernel-window centre, where Linear weights sit), ``raw_bias`` and ``raw_act_param`` ``[N]``
        (read by :class:`~weightzoo.metanets.layers.probe_features.ProbeFeatures`).
        """
        d = d.clone()
        d.raw_weight = d.edge_attr[:, d.edge_attr.shape[1] // 2].clone()
        d.raw_bias = d.x[:, _BIAS_COL].clone()
        d.raw_act_param = d.x[:, _ACT_PARAM_COL].clone()
        edge_scale = torch.ones(d.edge_attr.shape[0], 1)
        for t in torch.unique(d.edge_type).tolist():
            sel = d.edge_type == t
            for layer in torch.unique(d.edge_layer[sel]).tolist():
                s = self.edge.get(f"e{t}/{layer}", self.edge_type.get(str(t), 1.0))
                edge_scale[sel & (d.edge_layer == layer)] = s
        d.edge_attr = d.edge_attr / edge_scale
        x = d.x.clone()
        layers = x[:, _LAYER_COL].long()
        for c in _VALUE_COLS:
            col = x[:, c].clone()
            for layer in torch.unique(layers).tolist():
                sel = layers == layer
                col[sel] = col[sel] / self.node.get(f"n{layer}/{c}", self.node_col.get(str(c), 1.0))
            x[:, c] = col
        d.x = x
        return d


class GraphDataset:
    """The checkpoints of one metanetwork task: records, their ParameterGraphs, targets and the split.

    Build with :meth:`from_zoo`. ``task`` is ``"regression"`` (numeric targets, standardised with the
    training split's mean and std: :attr:`target_mean`, :attr:`target_std`) or ``"classification"`` (labels
    in :attr:`classes`, JSON-encoded). Every statistic (normalisation, target scaling) comes from the
    training split only.
    """

    def __init__(self, records: Sequence[NetworkRecord], graphs: Sequence[ParameterGraph], *,
                 normalizer: GraphNormalizer | None = None, target: str = "", dataset: str | None = None,
                 task: tuple[str, list[Any]] | None = None, target_stats: tuple[float, float] | None = None) -> None:
        if len(records) != len(graphs):
            raise ValueError("GraphDataset: one graph per record")
        self.records, self.graphs = list(records), list(graphs)
        self.target, self.dataset = target, dataset
        self.task, self.classes = task or task_of(self.records, target)
        train = self.indices("train")
        if target_stats is None and self.task == "regression":
            ys = torch.tensor([float(self.records[i].target) for i in train], dtype=torch.float64)
            target_stats = (float(ys.mean()), float(ys.std()) if len(ys) > 1 and float(ys.std()) > 0 else 1.0)
        self.target_mean, self.target_std = target_stats or (0.0, 1.0)
        self._raw: list[Data] | None = None
        self.normalizer = normalizer or GraphNormalizer.fit([self.raw(i) for i in train])
        self._data: dict[int, Data] = {}

    @classmethod
    def from_zoo(cls, zoo: Zoo | str | os.PathLike[str], *, target: str | None, dataset: str | None = None,
                 filters: Mapping[str, Any] | None = None, epochs: str | int = "final", split_seed: int = 0,
                 max_kernel: tuple[int, int] = (7, 7), cache: bool = True, progress: bool = False,
                 fits: int | None = None, fraction: float = 1.0) -> GraphDataset:
        """Records of ``dataset`` (or of ``filters``) with their graphs, built or read from the zoo's cache
        (``fits``/``fraction``: see :func:`select_records`, seeded by ``split_seed``)."""
        z = zoo if isinstance(zoo, Zoo) else Zoo.open(zoo, create=False)
        records = load_records(z, target=target, dataset=dataset, filters=filters, epochs=epochs, split_seed=split_seed)
        if fits is not None or fraction < 1.0:
            records = select_records(records, fits=fits, fraction=fraction, seed=split_seed)
        gc = GraphCache(z, max_kernel=max_kernel, write=cache)
        it: Any = records
        if progress:
            from tqdm import tqdm

            it = tqdm(records, desc="graphs", unit="net")
        graphs = [gc.graph(r.name) for r in it]
        return cls(records, graphs, target=target or "", dataset=dataset)

    def __len__(self) -> int:
        return len(self.records)

    def indices(self, split: str) -> list[int]:
        """Positions of the records of ``split`` (``train``, ``val`` or ``test``)."""
        if split not in SPLITS:
            raise ValueError(f"GraphDataset: unknown split {split!r}; valid: {SPLITS}")
        return [i for i, r in enumerate(self.records) if r.split == split]

    def final_indices(self, split: str) -> list[int]:
        """Like :meth:`indices`, keeping one (the latest) checkpoint per network."""
        best: dict[str, int] = {}
        for i in self.indices(split):
            r = self.records[i]
            j = best.get(r.network)
            if j is None or (r.epoch or 0) >= (self.records[j].epoch or 0):
                best[r.network] = i
        return sorted(best.values())

    def raw(self, i: int) -> Data:
        """Record ``i``'s graph as PyG ``Data`` (not normalised)."""
        return self.graphs[i].to_pyg()

    def encode_target(self, value: Any) -> float:
        """A target as the model sees it: standardised (regression) or its class index (classification)."""
        if self.task == "regression":
            return (float(value) - self.target_mean) / self.target_std
        return float(self.classes.index(json.dumps(value, sort_keys=True)))

    def decode(self, pred: torch.Tensor) -> torch.Tensor:
        """Model outputs back in target units (regression) or class indices (classification)."""
        if self.task == "regression":
            return pred.reshape(-1) * self.target_std + self.target_mean
        return pred.argmax(-1)

    def targets(self, idx: Sequence[int]) -> torch.Tensor:
        """Raw targets (regression) or class indices (classification) of records ``idx``."""
        if self.task == "regression":
            return torch.tensor([float(self.records[i].target) for i in idx], dtype=torch.float64)
        return torch.tensor([int(self.encode_target(self.records[i].target)) for i in idx])

    def data(self, i: int, graph: ParameterGraph | None = None) -> Data:
        """Record ``i``'s normalised graph with ``y`` (encoded target) and ``idx`` (cached). With ``graph``
        (an augmented view of record ``i``), that graph instead (not cached)."""
        if graph is not None:
            return self._labelled(self.normalizer(graph.to_pyg()), i)
        d = self._data.get(i)
        if d is None:
            d = self._data[i] = self._labelled(self.normalizer(self.raw(i)), i)
        return d

    def _labelled(self, d: Data, i: int) -> Data:
        d.y = torch.tensor([self.encode_target(self.records[i].target)], dtype=torch.float32)
        d.idx = torch.tensor([i])
        return d

    def loader(self, idx: Sequence[int], *, batch_size: int = 32, shuffle: bool = False,
               generator: torch.Generator | None = None) -> Iterator[Batch]:
        """PyG batches of records ``idx`` (shuffled with ``generator`` if asked)."""
        from torch_geometric.data import Batch

        order = list(idx)
        if shuffle:
            order = [order[j] for j in torch.randperm(len(order), generator=generator).tolist()]
        for s in range(0, len(order), batch_size):
            yield Batch.from_data_list([self.data(i) for i in order[s:s + batch_size]])

    def describe(self) -> dict[str, Any]:
        """Counts per split, task, target scaling and architectures (for configs and reports)."""
        archs = {json.dumps(r.spec, sort_keys=True) for r in self.records}
        return {"target": self.target, "dataset": self.dataset, "task": self.task, "classes": self.classes,
                "splits": {s: len(self.indices(s)) for s in SPLITS},
                "networks": {s: len({self.records[i].network for i in self.indices(s)}) for s in SPLITS},
                "architectures": len(archs), "target_mean": self.target_mean, "target_std": self.target_std,
                "vocab_version": VOCAB_VERSION}


def seeded_subset(idx: Sequence[int], fraction: float, seed: int) -> list[int]:
    """A seeded subset of ``idx`` (for learning curves and quick runs)."""
    g = torch.Generator().manual_seed(derive_seed("subset", seed))
    keep = max(1, round(len(idx) * fraction))
    return sorted(idx[j] for j in torch.randperm(len(idx), generator=g)[:keep].tolist())


__all__ = ["CACHE_DIR", "CLASS_TARGETS", "GraphCache", "GraphDataset", "GraphNormalizer", "NetworkRecord", "SPLITS",
           "hyperparameters", "load_records", "seeded_subset", "select_records", "task_of"]
