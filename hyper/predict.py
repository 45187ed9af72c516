"""Fill a module's parameters with a GHN's prediction, and say which parameters were predicted and why not.

    >>> from weightzoo.hyper import GHN, predict_parameters, recalibrate_bn     # doctest: +SKIP
    >>> ghn = GHN.from_pretrained("runs/ghn/seed-0")                             # doctest: +SKIP
    >>> result = predict_parameters(ghn, model)                                  # doctest: +SKIP
    >>> result.report.kept                  # {name: reason} of parameters left at their init

Any ``nn.Module`` the ComputeGraph recorder can run works: every parameter some recorded operation uses
is predicted (weights, kernels, embeddings, position tables, class tokens, biases, norm γ/β); a parameter
the forward pass never touched keeps its initialisation and the report says so (``strict=True`` raises
:class:`~weightzoo.errors.HyperNetworkError` naming the modules instead). Buffers (BatchNorm running
statistics) are not predicted: recalibrate them on training images with :func:`~.bn.recalibrate_bn`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from weightzoo.errors import HyperNetworkError
from weightzoo.zoo.graphs import ComputeGraph

from .graph_input import graph_input

if TYPE_CHECKING:
    from .ghn import GHN

UNUSED = "not used in the recorded forward pass (owned by no ComputeGraph node): kept at its init"


@dataclass(frozen=True)
class PredictionReport:
    """Coverage of one prediction.

    Attributes:
        predicted: parameter name → kind (``weight``, ``bias``, ``norm_weight``, ...; see :mod:`.targets`).
        kept: parameter name → why it kept its initialisation.
        buffers: buffer names left as they were (running statistics: recalibrate them).
    """

    predicted: Mapping[str, str]
    kept: Mapping[str, str] = field(default_factory=dict)
    buffers: tuple[str, ...] = ()

    @property
    def fraction(self) -> float:
        total = len(self.predicted) + len(self.kept)
        return 1.0 if total == 0 else len(self.predicted) / total

    def to_dict(self) -> dict[str, Any]:
        return {"predicted": dict(self.predicted), "kept": dict(self.kept), "buffers": list(self.buffers),
                "fraction": self.fraction}


@dataclass(frozen=True)
class Prediction:
    """A module with predicted parameters, and its :class:`PredictionReport`."""

    module: nn.Module
    report: PredictionReport


def _module_of(name: str) -> str:
    return name.rpartition(".")[0] or "<root>"


def predict_parameters(ghn: GHN, module: nn.Module, *, inplace: bool = False, example_input: Any = None,
                       graph: ComputeGraph | None = None, strict: bool = False) -> Prediction:
    """Predict ``module``'s parameters with ``ghn``.

    Args:
        ghn (GHN): the hypernetwork.
        module (nn.Module): any module; copied first unless ``inplace``.
        inplace (bool): write into ``module`` itself (default ``False``).
        example_input: input for recording the ComputeGraph (default: derived, see ``ComputeGraph.record``).
        graph (ComputeGraph, optional): a graph already recorded from this module.
        strict (bool): raise :class:`~weightzoo.errors.HyperNetworkError` naming every module with a
            parameter the graph does not cover, instead of keeping its init (default ``False``).
    """
    if not isinstance(module, nn.Module):
        raise HyperNetworkError(f"predict_parameters needs an nn.Module, got {type(module).__name__}")
    target = module if inplace else copy.deepcopy(module)
    if graph is None:
        graph = ComputeGraph.record(target, example_input)
    names = dict(target.named_parameters(remove_duplicate=False))
    kept = {name: UNUSED for name in graph.coverage.unowned if name in names}
    if strict and kept:
        modules = {_module_of(n): f"parameter {n.rpartition('.')[2]!r} is {UNUSED.split(':')[0]}" for n in kept}
        raise HyperNetworkError(f"{len(kept)} parameter(s) of {type(module).__name__} cannot be predicted: "
                                f"modules {', '.join(sorted(modules))} are not used in the recorded forward pass",
                                modules=modules)
    gi = graph_input(graph)
    missing = [t.name for t in gi.targets if t.name not in names]
    if missing:
        raise HyperNetworkError(f"the graph names parameters {missing[:5]} that {type(module).__name__} does not "
                                "have (a graph of another module?)")
    was_training = ghn.training
    ghn.eval()
    try:
        with torch.no_grad():
            init = [{t.name: names[t.name].detach() for t in gi.targets}] if ghn.residual else None
            predicted = ghn([gi], init)[0]
    finally:
        ghn.train(was_training)
    kinds: dict[str, str] = {}
    with torch.no_grad():
        for t in gi.targets:
            param = names[t.name]
            value = predicted[t.name]
            if tuple(value.shape) != tuple(param.shape):
                raise HyperNetworkError(f"predicted {t.name} has shape {tuple(value.shape)}, the module's is "
                                        f"{tuple(param.shape)}", modules={_module_of(t.name): "shape changed"})
            param.copy_(value.to(param.dtype))
            kinds[t.name] = t.kind
    # tied weights: every name of one tensor counts as predicted
    by_id = {id(p): n for n, p in names.items() if n in kinds}
    for n, p in names.items():
        if n not in kinds and n not in kept and id(p) in by_id:
            kinds[n] = kinds[by_id[id(p)]]
    buffers = tuple(n for n, _ in target.named_buffers())
    return Prediction(target, PredictionReport(kinds, kept, buffers))


__all__ = ["Prediction", "PredictionReport", "UNUSED", "predict_parameters"]
