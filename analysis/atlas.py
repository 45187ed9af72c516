r"""Learned anisotropic scaling of task vectors (aTLAS, Zhang et al., *Knowledge Composition using Task
Vectors with Learned Anisotropic Scaling*, NeurIPS 2024).

Instead of one scalar per task vector, learn one coefficient per parameter block per task vector:

.. math::
    \theta(\Lambda) = \theta_{\mathrm{base}} + \sum_{i=1}^{N} \lambda_{i,b(p)}\,\tau_{i,p}
    \quad\text{for every parameter } p,

where :math:`b(p)` is the block holding :math:`p` (by default each tensor is a block; ``partitions=K``
splits every block into :math:`K` random parts with a coefficient each). Only :math:`\Lambda` is trained,
by gradient descent on a few-shot objective the user supplies: a callable ``loss(params, batch)`` that
evaluates the model with the merged parameters (``torch.func.functional_call``).
:func:`classification_objective` is a ready one for classifiers (cross-entropy on ``(x, y)`` batches).

Blocks are read lazily from the task vectors, each once, and kept for the optimisation (training needs
every block at every step): memory is about :math:`(N+1)\times` the trained tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from weightzoo.errors import AnalysisError, InvalidOptionError, ShapeMismatchError

from .sources import SpecStateDict, TensorSpec, open_source, tensor_specs
from .task_vectors import TaskVector

LossFn = Callable[[dict[str, torch.Tensor], Any], torch.Tensor]


@dataclass
class Objective:
    """A few-shot objective: ``loss(params, batch) -> scalar tensor`` and the ``batches`` to cycle through.

    ``frozen`` names tensors that must not carry gradients (buffers such as BatchNorm running statistics):
    they are merged with the initial coefficient and not trained.
    """

    loss: LossFn
    batches: Sequence[Any]
    frozen: frozenset[str] = frozenset()


def classification_objective(module_factory: torch.nn.Module | Callable[[], torch.nn.Module],
                             batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> Objective:
    """Cross-entropy of a classifier on ``(x, y)`` batches, evaluated with the merged parameters.

    Args:
        module_factory: the architecture: an ``nn.Module`` (its own weights are ignored) or a callable
            returning one. It runs in eval mode (BatchNorm uses the base's running statistics).
        batches: ``(inputs, labels)`` pairs, e.g. a few labelled examples per class.
    """
    module = module_factory if isinstance(module_factory, torch.nn.Module) else module_factory()
    if not isinstance(module, torch.nn.Module):
        raise AnalysisError(f"module_factory returned a {type(module).__name__}, not an nn.Module")
    module.eval()
    if not batches:
        raise InvalidOptionError("classification_objective needs at least one (x, y) batch")

    def loss(params: dict[str, torch.Tensor], batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        logits = torch.func.functional_call(module, params, (x,))
        return torch.nn.functional.cross_entropy(logits, y)

    return Objective(loss, list(batches), frozenset(n for n, _ in module.named_buffers()))


@dataclass
class AtlasResult:
    """Learned coefficients and the merged model they define.

    Attributes:
        coefficients: block name → tensor of shape ``(N, partitions)`` (task vector × part).
        history: the objective's value at each step.
        blocks: tensor name → block name (learned tensors only).
        init: the coefficient of tensors that were not learned (the objective's ``frozen`` buffers).
    """

    coefficients: dict[str, torch.Tensor]
    history: list[float]
    blocks: dict[str, str]
    init: float = 0.3
    _base: Mapping[str, torch.Tensor] = field(repr=False, default_factory=dict)
    _tvs: list[TaskVector] = field(repr=False, default_factory=list)
    _parts: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)
    _specs: dict[str, TensorSpec] = field(repr=False, default_factory=dict)

    def state_dict(self, dtype: torch.dtype | None = None) -> Mapping[str, torch.Tensor]:
        """The merged model :math:`\\theta_{base} + \\sum_i \\lambda_{i,b}\\tau_i`, lazily (one tensor per read)."""
        return _AtlasMerged(self, dtype)


class _AtlasMerged(SpecStateDict):
    def __init__(self, res: AtlasResult, dtype: torch.dtype | None) -> None:
        self._r = res
        super().__init__({n: TensorSpec(s.shape, dtype if (dtype is not None and s.is_float) else s.dtype)
                          for n, s in res._specs.items()})

    def _load(self, name: str) -> torch.Tensor:
        r = self._r
        b = r._base[name]
        in_tv = any(name in tv for tv in r._tvs)
        if not in_tv:
            return b.to(self.specs[name].dtype, copy=True)
        with torch.no_grad():
            stack = _stack(r._tvs, name, b.shape)
            if name in r.blocks:
                out = b.to(stack.dtype) + _combine(r.coefficients[r.blocks[name]], stack, r._parts.get(name))
            else:
                out = b.to(stack.dtype) + r.init * stack.sum(0)
        return out.to(self.specs[name].dtype)


def _stack(tvs: Sequence[TaskVector], name: str, shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
    return torch.stack([tv[name] if name in tv else torch.zeros(shape) for tv in tvs])


def _combine(coef: torch.Tensor, stack: torch.Tensor, part: torch.Tensor | None) -> torch.Tensor:
    """:math:`\\sum_i c_{i,\\mathrm{part}(p)}\\,\\tau_{i,p}` for one block (``coef`` is ``(N, K)``)."""
    if part is None:
        return torch.tensordot(coef[:, 0].to(stack.dtype), stack, dims=1)
    c = coef[:, part.reshape(-1)].reshape(stack.shape).to(stack.dtype)
    return (c * stack).sum(0)


def learn_coefficients(base: Any, task_vectors: Sequence[TaskVector], objective: Objective, *, steps: int = 100,
                       lr: float = 0.05, init: float = 0.3, partitions: int = 1,
                       blocks: Callable[[str], str] | None = None, seed: int = 0, zoo: Any = None) -> AtlasResult:
    r"""Learn one coefficient per block per task vector (aTLAS) by Adam on ``objective``.

    Args:
        base: the base model (zoo name, path, module or state dict).
        task_vectors: :class:`TaskVector`\ s against that base.
        objective: an :class:`Objective` (see :func:`classification_objective`).
        steps: optimisation steps (one batch each, cycling). lr: Adam's learning rate.
        init: initial value of every coefficient (0.3 is a common task-arithmetic scale).
        partitions: ``K`` random parts per block, each with its own coefficient (1 = whole block).
        blocks: tensor name → block name (default: each tensor is a block; e.g. ``block_of`` for layers).
        seed: seeds the random partitions.

    Returns:
        an :class:`AtlasResult`; ``result.state_dict()`` is the merged model.
    """
    if not task_vectors:
        raise InvalidOptionError("learn_coefficients needs at least one task vector")
    if steps < 0 or partitions < 1 or lr <= 0:
        raise InvalidOptionError(f"need steps >= 0, partitions >= 1, lr > 0 (got {steps}, {partitions}, {lr})")
    tvs = [tv if isinstance(tv, TaskVector) else TaskVector(tv, base, zoo=zoo) for tv in task_vectors]
    base_sd = open_source(base, zoo=zoo)
    specs = tensor_specs(base_sd)
    all_names = list(dict.fromkeys(n for tv in tvs for n in tv))
    names = [n for n in all_names if n not in objective.frozen]
    bad = [(n, specs[n].shape if n in specs else (), s) for tv in tvs for n, s in tv.shapes.items()
           if n not in specs or specs[n].shape != s]
    if bad:
        raise ShapeMismatchError(f"{len(bad)} task-vector tensor(s) do not fit the base: "
                                 + "; ".join(f"{n}: base {a} vs {b}" for n, a, b in bad[:10]), bad)
    block_of = {n: (blocks(n) if blocks else n) for n in names}
    n_tasks = len(tvs)
    coefs = {b: torch.nn.Parameter(torch.full((n_tasks, partitions), float(init))) for b in dict.fromkeys(block_of.values())}
    parts: dict[str, torch.Tensor] = {}
    if partitions > 1:
        for n in names:
            from .merging import tensor_seed

            g = torch.Generator().manual_seed(tensor_seed(seed, 0, n))
            parts[n] = torch.randint(0, partitions, specs[n].shape, generator=g)
    # Each block is read once (lazily, from the task vectors) and kept: every step needs all of them.
    fixed = {n: base_sd[n].detach().clone() for n in specs}
    with torch.no_grad():
        for n in all_names:
            if n in objective.frozen:  # buffers: merged at the initial scale, no gradient through them
                fixed[n] = (fixed[n].float() + init * _stack(tvs, n, specs[n].shape).sum(0)).to(fixed[n].dtype)
    stacks = {n: _stack(tvs, n, specs[n].shape) for n in names}
    opt = torch.optim.Adam(list(coefs.values()), lr=lr)
    history: list[float] = []
    batches = objective.batches
    if not batches:
        raise InvalidOptionError("the objective has no batches")
    for step in range(steps):
        params = dict(fixed)
        for n in names:
            params[n] = fixed[n].to(stacks[n].dtype) + _combine(coefs[block_of[n]], stacks[n], parts.get(n))
        loss = objective.loss(params, batches[step % len(batches)])
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            raise AnalysisError("the objective's loss must return a scalar tensor")
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    del stacks
    return AtlasResult({b: c.detach().clone() for b, c in coefs.items()}, history, block_of, float(init),
                       _base=base_sd, _tvs=tvs, _parts=parts, _specs=specs)


__all__ = ["AtlasResult", "Objective", "classification_objective", "learn_coefficients"]
