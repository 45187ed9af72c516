"""``NowcastOptimizer``: wrap any ``torch.optim.Optimizer`` so training jumps ahead by nowcasts.

The wrapper keeps the last ``history`` parameter states, ``spacing`` optimizer steps apart (the
spacing the nowcaster was trained on). Every ``every`` steps — once a full history has been seen since
the last jump — it replaces the parameters by the nowcaster's prediction ``horizon`` steps ahead and
resets the optimizer's state (as NiNo does: Adam's moments belong to the old point). With a closure,
a guard evaluates the loss on the current batch before and after the jump and undoes a jump that raises
it (or gives a non-finite loss). A non-finite nowcast is never applied.

It works in the training loop a user already has::

    opt = NowcastOptimizer(torch.optim.Adam(model.parameters(), 1e-3), nowcaster, model=model, every=40)
    for x, y in loader:
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()                       # or opt.step(closure) for the loss guard

``opt.log`` lists one record per nowcast attempt: ``{step, applied, loss_before, loss_after}``.
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from weightzoo.errors import ConfigError

from .index import ParameterIndex
from .models import NowcasterBase


class NowcastOptimizer:
    """Steps ``optimizer`` and every ``every`` steps jumps ``model``'s parameters to ``nowcaster``'s nowcast.

    Args:
        optimizer: any ``torch.optim.Optimizer`` over (some of) ``model``'s parameters.
        nowcaster: a :class:`~.models.NowcasterBase` (graph, MLP or linear).
        model: the module being trained; its ParameterGraph gives the graph nowcaster its structure.
        every: steps between nowcasts (default ``(history - 1) · spacing``, the shortest possible).
        history: states read per nowcast (must equal the nowcaster's; default: the nowcaster's).
        spacing: steps between history states (default: the nowcaster's training spacing).
        reset_state: clear the optimizer's state after an applied jump (default ``True``).
        require_graph: raise :class:`~weightzoo.errors.ConfigError` when a graph nowcaster cannot lay
            ``model`` out as a ParameterGraph, instead of warning and nowcasting every scalar without
            graph context (default ``False``).
        example_input: an input for the one recorded forward pass that lays out a class-based module's
            graph (derived from the first layer when ``None``).

    ``zero_grad``, ``state_dict``, ``load_state_dict``, ``param_groups``, ``state`` and
    ``add_param_group`` are the wrapped optimizer's.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, nowcaster: NowcasterBase, *, model: nn.Module,
                 every: int | None = None, history: int | None = None, spacing: int | None = None,
                 reset_state: bool = True, require_graph: bool = False, example_input: Any = None) -> None:
        self.optimizer = optimizer
        self.nowcaster = nowcaster
        self.model = model
        self.history = nowcaster.history if history is None else history
        if self.history != nowcaster.history:
            raise ConfigError(f"NowcastOptimizer: history={self.history} but the nowcaster reads {nowcaster.history} states")
        self.spacing = nowcaster.spacing if spacing is None else spacing
        if not isinstance(self.spacing, int) or self.spacing < 1:
            raise ConfigError(f"NowcastOptimizer: spacing must be an int >= 1, got {self.spacing!r}")
        shortest = (self.history - 1) * self.spacing
        self.every = shortest if every is None else every
        if not isinstance(self.every, int) or self.every < shortest or self.every % self.spacing:
            raise ConfigError(f"NowcastOptimizer: every must be a multiple of spacing={self.spacing} and >= "
                              f"(history - 1) · spacing = {shortest}, got {every!r}")
        self.reset_state = reset_state
        self.index = ParameterIndex.from_module(model, example_input=example_input)
        if not self.index.has_graph and nowcaster.kind == "graph":
            msg = (f"NowcastOptimizer: no ParameterGraph for {self.index.graph_reason}; the graph nowcaster "
                   "reads every scalar without graph context")
            if require_graph:
                raise ConfigError(msg)
            warnings.warn(msg, stacklevel=2)
        named = dict(model.named_parameters())
        self._params = [named[n] for n in self.index.names]
        in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
        #: scalars the optimizer trains (the others are never moved by a nowcast)
        self._trained = torch.cat([torch.full((p.numel(),), id(p) in in_optimizer) for p in self._params]) \
            if self._params else torch.zeros(0, dtype=torch.bool)
        self._states: deque[torch.Tensor] = deque(maxlen=self.history)
        self._since = 0
        self.steps = 0
        self.log: list[dict[str, Any]] = []

    # --- delegation --------------------------------------------------------------------------------
    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups

    @property
    def state(self) -> Any:
        return self.optimizer.state

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state_dict)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self.optimizer.add_param_group(param_group)

    def __repr__(self) -> str:
        return (f"NowcastOptimizer({type(self.optimizer).__name__}, {self.nowcaster.kind}, every={self.every}, "
                f"history={self.history}, spacing={self.spacing})")

    # --- stepping ------------------------------------------------------------------------------------
    def _flat(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1).to(torch.float32) for p in self._params])

    def _write(self, flat: torch.Tensor) -> None:
        with torch.no_grad():
            for p, (_, t) in zip(self._params, self.index.unflatten(flat).items()):
                p.copy_(t.to(p.dtype))

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One optimizer step; a nowcast (and, with ``closure``, its loss guard) when one is due."""
        if not self._states:
            self._states.append(self._flat())  # the starting point of this history
        loss = self.optimizer.step(closure) if closure is not None else self.optimizer.step()
        self.steps += 1
        self._since += 1
        if self._since % self.spacing == 0:
            self._states.append(self._flat())
        if self._since >= self.every and self._since % self.spacing == 0 and len(self._states) == self.history:
            self._nowcast(closure)
        return loss

    def _loss(self, closure: Callable[[], Any]) -> float:
        with torch.enable_grad():
            value = closure()
        self.optimizer.zero_grad(set_to_none=True)
        return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)

    def _nowcast(self, closure: Callable[[], Any] | None) -> None:
        current = self._states[-1]
        record: dict[str, Any] = {"step": self.steps, "applied": False, "loss_before": None, "loss_after": None}
        predicted = self.nowcaster.predict(self.index, torch.stack(list(self._states)))
        predicted = torch.where(self._trained, predicted, current)
        if bool(torch.isfinite(predicted).all()):
            if closure is not None:
                record["loss_before"] = self._loss(closure)
            self._write(predicted)
            record["applied"] = True
            if closure is not None:
                after = self._loss(closure)
                record["loss_after"] = after
                if not math.isfinite(after) or after > record["loss_before"]:
                    self._write(current)
                    record["applied"] = False
        self.log.append(record)
        if record["applied"] and self.reset_state:
            self.optimizer.state.clear()
        self._states.clear()
        self._states.append(self._flat())
        self._since = 0


__all__ = ["NowcastOptimizer"]
