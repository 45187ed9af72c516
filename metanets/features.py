r"""Inputs of the non-graph metanetworks and baselines, computed from the same records and graphs.

* ``stats`` — StatNN (Unterthiner et al., 2020): per tensor, in checkpoint order, the mean, variance and
  the 0/25/50/75/100 % quantiles (7 numbers); networks with fewer tensors are zero-padded.
* ``flat`` — every parameter in one vector (checkpoint order, zero-padded); with ``views > 1`` the extra
  views are seeded function-preserving hidden-neuron permutations (:func:`weightzoo.zoo.symmetry.permute_hidden`)
  — the permutation augmentation of a flat MLP.
* ``hparams`` — the training settings recorded in the catalogue (:func:`~.data.hyperparameters`):
  numbers as they are, strings as category codes, missing values as NaN.
* ``probe`` — the network's softmax outputs on fixed inputs (16 digits training images for 1×8×8 inputs,
  else seeded standard-normal inputs of the spec's ``input_shape``): a *probing* model, reported apart from
  weights-only ones.
* ``render`` — an implicit neural representation (input shape ``[2]``) rendered on the ``grid`` × ``grid``
  pixel-centre grid of :math:`[-1, 1]^2` (8 × 8 by default, the digits' own resolution): the pixels it
  depicts. The *pixel oracle* of INR classification (it reads the image, not the weights).
* ``weightspace`` — per layer the weight tensor ``[out, in, k...]`` and the bias ``[out]`` of a plain chain
  MLP/CNN (the NP/HNP and ``nfn`` input); other architectures raise
  :class:`~weightzoo.errors.UnsupportedLayerError` naming the module.

Column standardisation of vector features (:class:`VectorScaler`) is fitted on the training split only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from weightzoo.errors import UnsupportedLayerError
from weightzoo.zoo.graphs import NodeType, ParameterGraph

from .data import NetworkRecord, hyperparameters

VECTOR_KINDS = ("stats", "flat", "hparams", "probe", "render")
RENDER_GRID = 8
QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)
PROBE_IMAGES = 16


def parameters_in_layout_order(graph: ParameterGraph) -> dict[str, torch.Tensor]:
    """The graph's floating-point parameters in the architecture's order (not the file's: a safetensors
    file may list its tensors in another order than the module that wrote it)."""
    sd = graph.to_state_dict()
    return {s.name: sd[s.name] for s in graph.layout.slots if s.role != "buffer" and sd[s.name].is_floating_point()}


def stats_features(graph: ParameterGraph, max_tensors: int) -> torch.Tensor:
    """``[7 · max_tensors]`` StatNN statistics of the graph's parameters (buffers left out)."""
    rows = []
    for t in parameters_in_layout_order(graph).values():
        if not t.is_floating_point():
            continue
        v = t.double().reshape(-1)
        q = torch.quantile(v, torch.tensor(QUANTILES, dtype=torch.float64)) if v.numel() else torch.zeros(5)
        rows.append(torch.cat([v.mean().reshape(1), v.var(unbiased=False).reshape(1), q]))
    out = torch.zeros(max_tensors, 7, dtype=torch.float64)
    for i, r in enumerate(rows[:max_tensors]):
        out[i] = r
    return out.reshape(-1).float()


def flat_vector(state_dict: Mapping[str, torch.Tensor], length: int) -> torch.Tensor:
    """All floating-point parameters in checkpoint order, zero-padded or cut to ``length``."""
    v = torch.cat([t.reshape(-1).float() for t in state_dict.values() if t.is_floating_point()])
    out = torch.zeros(length)
    out[: min(length, len(v))] = v[:length]
    return out


def flat_views(graph: ParameterGraph, length: int, views: int, seed: int) -> torch.Tensor:
    """``[views, length]``: the flat vector, then ``views - 1`` seeded hidden-permutation variants."""
    from weightzoo.zoo.symmetry import permute_hidden

    sd = parameters_in_layout_order(graph)
    full = graph.to_state_dict()
    out = [flat_vector(sd, length)]
    g = torch.Generator().manual_seed(seed)
    for _ in range(views - 1):
        p = permute_hidden(full, g, spec=graph.spec)
        out.append(flat_vector({k: p[k] for k in sd}, length))
    return torch.stack(out)


def hparam_vector(record: NetworkRecord, keys: Sequence[str], categories: Mapping[str, list[str]], target: str) -> torch.Tensor:
    """The record's training settings as numbers (``keys`` order; unknown categories and gaps are NaN)."""
    hp = hyperparameters(record.metadata, target)
    out = []
    for k in keys:
        v = hp.get(k)
        if k in categories:
            s = json.dumps(v)
            out.append(float(categories[k].index(s)) if s in categories[k] else math.nan)
        elif isinstance(v, bool | int | float) and v is not None:
            out.append(float(v))
        else:
            out.append(math.nan)
    return torch.tensor(out, dtype=torch.float32)


def hparam_schema(records: Sequence[NetworkRecord], target: str) -> tuple[list[str], dict[str, list[str]]]:
    """Keys and string categories of the training settings of ``records`` (the training split)."""
    keys: set[str] = set()
    cats: dict[str, set[str]] = {}
    for r in records:
        for k, v in hyperparameters(r.metadata, target).items():
            keys.add(k)
            if isinstance(v, str):
                cats.setdefault(k, set()).add(json.dumps(v))
    return sorted(keys), {k: sorted(v) for k, v in cats.items()}


def probe_inputs(spec: Mapping[str, Any]) -> torch.Tensor:
    """The fixed probing inputs for networks of ``spec`` (see the module docstring)."""
    shape = list(spec.get("input_shape") or [])
    if shape == [1, 8, 8]:
        from weightzoo.datasets.digits import digits_split

        return digits_split().x_train[:PROBE_IMAGES]
    if not shape:
        raise UnsupportedLayerError("<root>", str(spec.get("format")), "probing needs the spec's input_shape")
    return torch.randn(PROBE_IMAGES, *shape, generator=torch.Generator().manual_seed(0))


def probe_features(graph: ParameterGraph, width: int) -> torch.Tensor:
    """Softmax outputs of the network on :func:`probe_inputs` (flattened, padded/cut to ``width``)."""
    from weightzoo.zoo.arch import build_module

    m = build_module(graph.spec)
    m.load_state_dict(graph.to_state_dict(), strict=True)
    m.eval()
    with torch.no_grad():
        out = torch.softmax(m(probe_inputs(graph.spec)).float(), dim=-1).reshape(-1)
    v = torch.zeros(width)
    v[: min(width, len(out))] = out[:width]
    return v


def render_features(graph: ParameterGraph, grid: int = RENDER_GRID) -> torch.Tensor:
    """The network's outputs on the ``grid²`` pixel centres of :math:`[-1, 1]^2` (row-major, (y, x) as the
    digits-inr builder fits them), flattened over pixels and output channels."""
    from weightzoo.datasets.inr import grid_coordinates
    from weightzoo.zoo.arch import build_module

    if list(graph.spec.get("input_shape") or []) != [2]:
        raise UnsupportedLayerError("<root>", "network", f"rendering needs an INR with input_shape [2], got "
                                    f"{graph.spec.get('input_shape')}")
    m = build_module(graph.spec)
    m.load_state_dict(graph.to_state_dict(), strict=True)
    m.eval()
    with torch.no_grad():
        return m(grid_coordinates(grid)).float().reshape(-1)


class VectorScaler:
    """Column mean/std of training features (NaN kept: gradient-boosted trees handle them, MLPs see 0)."""

    def __init__(self, mean: list[float], std: list[float]) -> None:
        self.mean, self.std = torch.tensor(mean), torch.tensor(std)

    @classmethod
    def fit(cls, x: torch.Tensor) -> VectorScaler:
        m = torch.nanmean(x, 0)
        m = torch.where(torch.isnan(m), torch.zeros_like(m), m)
        s = torch.sqrt(torch.nanmean((x - m) ** 2, 0))
        s = torch.where(torch.isnan(s) | (s < 1e-8), torch.ones_like(s), s)
        return cls(m.tolist(), s.tolist())

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def state(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}


# --- weight spaces of plain chains (NP / HNP / nfn) --------------------------------------------------------


def chain_shapes(graph: ParameterGraph) -> list[tuple[tuple[int, ...], str, str]]:
    """``(weight shape, weight name, bias name)`` per layer of a plain chain MLP/CNN, else raise.

    A plain chain: each weight reads the neurons the previous one wrote, every layer has a bias, no
    residual/flatten/normalisation structure (what NFN's NP/HNP layers and DWSNets assume).
    """
    lay = graph.layout
    weights = [s for s in lay.slots if s.role == "weight"]
    biases = {s.out_group: s for s in lay.slots if s.role == "bias"}
    why = None
    if lay.struct or lay.grouped or lay.group_norms or any(g.kind == NodeType.FLATTEN for g in lay.groups):
        why = "residual, flatten, grouped or normalised structure"
    elif any(s.role not in ("weight", "bias", "buffer") for s in lay.slots):
        why = "normalisation parameters"
    else:
        for i, w in enumerate(weights):
            if w.out_group not in biases:
                why = f"layer {w.name} has no bias"
            elif i and w.in_group != weights[i - 1].out_group:
                why = f"layer {w.name} does not read the previous layer"
            elif w.groups != 1:
                why = f"layer {w.name} is a grouped convolution"
    if why or not weights:
        raise UnsupportedLayerError(weights[0].name.rsplit(".", 1)[0] if weights else "<root>", "network",
                                    f"NP/HNP weight spaces need a plain chain MLP/CNN with biases ({why or 'no weights'});"
                                    " use the graph metanetwork (gmn) for this architecture")
    return [(tuple(w.shape), w.name, biases[w.out_group].name) for w in weights]


def weightspace(graph: ParameterGraph) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``(weights, biases)`` of a plain chain: weights ``[out, in, k...]``, biases ``[out]`` (float32)."""
    sd = graph.to_state_dict()
    shapes = chain_shapes(graph)
    return [sd[w].float() for _, w, _ in shapes], [sd[b].float() for _, _, b in shapes]


class Featurizer:
    """Turns graphs (and records) into one model kind's inputs; its state (fitted on the training split)
    is JSON and travels with a trained model, so predictions on new checkpoints see the same inputs.

    Kinds: ``graph`` (normalised PyG batches), ``stats``, ``flat``, ``hparams``, ``probe`` (standardised
    vectors), ``weightspace`` (stacked weights and biases of one plain-chain architecture).
    """

    def __init__(self, kind: str, state: Mapping[str, Any]) -> None:
        self.kind, self.state = kind, dict(state)
        if kind in VECTOR_KINDS:
            self.scaler = VectorScaler(state["scaler"]["mean"], state["scaler"]["std"])
        if kind == "graph":
            from .data import GraphNormalizer

            self.normalizer = GraphNormalizer.from_state(state["normalizer"])

    @classmethod
    def fit(cls, kind: str, ds: Any) -> Featurizer:
        """Fit on ``ds``'s training split (a :class:`~.data.GraphDataset`)."""
        train = ds.indices("train")
        state: dict[str, Any] = {"max_kernel": list(ds.graphs[train[0]].max_kernel)}
        if kind == "graph":
            state["normalizer"] = ds.normalizer.state()
        elif kind == "weightspace":
            shapes = chain_shapes(ds.graphs[train[0]])
            state["weight_shapes"] = [list(s) for s, _, _ in shapes]
        else:
            if kind == "stats":
                state["max_tensors"] = max(len(parameters_in_layout_order(ds.graphs[i])) for i in train)
            elif kind == "flat":
                state["length"] = max(ds.graphs[i].num_parameters for i in train)
            elif kind == "probe":
                state["width"] = max(PROBE_IMAGES * _out_features(ds.graphs[i]) for i in train)
            elif kind == "render":
                state["grid"] = RENDER_GRID
            elif kind == "hparams":
                keys, cats = hparam_schema([ds.records[i] for i in train], ds.target)
                state["keys"], state["categories"], state["target"] = keys, cats, ds.target
            else:
                raise ValueError(f"Featurizer: unknown kind {kind!r}")
            raw = cls(kind, {**state, "scaler": {"mean": [0.0], "std": [1.0]}})
            x = torch.stack([raw.vector(ds.graphs[i], ds.records[i]) for i in train])
            state["scaler"] = VectorScaler.fit(x).state()
        return cls(kind, state)

    def vector(self, graph: ParameterGraph, record: NetworkRecord | None) -> torch.Tensor:
        """The unscaled feature vector of one network (vector kinds)."""
        if self.kind == "stats":
            return stats_features(graph, self.state["max_tensors"])
        if self.kind == "flat":
            return flat_vector(parameters_in_layout_order(graph), self.state["length"])
        if self.kind == "probe":
            return probe_features(graph, self.state["width"])
        if self.kind == "render":
            return render_features(graph, int(self.state["grid"]))
        if record is None:
            raise UnsupportedLayerError("<root>", "checkpoint", "the hparams model needs the catalogue's training "
                                        "settings: predict on zoo models that record them")
        return hparam_vector(record, self.state["keys"], self.state["categories"], self.state["target"])

    def encode(self, graphs: Sequence[ParameterGraph], records: Sequence[NetworkRecord | None]) -> Any:
        """Model inputs for a list of networks."""
        if self.kind == "graph":
            from torch_geometric.data import Batch

            return Batch.from_data_list([self.normalizer(g.to_pyg()) for g in graphs])
        if self.kind == "weightspace":
            ws, bs = zip(*[self.weightspace(g) for g in graphs])
            return ([torch.stack(t) for t in zip(*ws)], [torch.stack(t) for t in zip(*bs)])
        return self.scaler(torch.stack([self.vector(g, r) for g, r in zip(graphs, records)]))

    def weightspace(self, graph: ParameterGraph) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """One network's weight space, checked against the trained architecture."""
        w, b = weightspace(graph)
        if [list(t.shape) for t in w] != self.state["weight_shapes"]:
            raise UnsupportedLayerError("<root>", "network", f"weight shapes {[list(t.shape) for t in w]} differ from "
                                        f"the trained architecture {self.state['weight_shapes']}")
        return w, b


def _out_features(graph: ParameterGraph) -> int:
    from weightzoo.zoo.graphs import NodeType as _NT

    return int((graph.node_type == int(_NT.OUTPUT)).sum())


__all__ = ["Featurizer", "PROBE_IMAGES", "parameters_in_layout_order", "QUANTILES", "VECTOR_KINDS", "VectorScaler", "chain_shapes", "flat_vector", "flat_views",
           "hparam_schema", "hparam_vector", "probe_features", "probe_inputs", "RENDER_GRID", "render_features", "stats_features", "weightspace"]
