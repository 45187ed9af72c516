"""Nowcasting training trajectories: predict a network's parameters steps ahead from its recent states.

    >>> from weightzoo.hyper.nowcast import Nowcaster, NowcastOptimizer          # doctest: +SKIP
    >>> nowcaster = Nowcaster.from_pretrained("runs/nowcast/seed0/graph")          # doctest: +SKIP
    >>> opt = NowcastOptimizer(torch.optim.Adam(model.parameters()), nowcaster, model=model)  # doctest: +SKIP

Modules: :mod:`.index` (where each scalar sits in the ParameterGraph), :mod:`.features` (per-tensor
scaled trajectory features), :mod:`.models` (graph nowcaster, MLP and linear baselines),
:mod:`.optimizer` (the optimizer wrapper), :mod:`.trajectories` (trajectory zoos → samples),
:mod:`.training` (fitting and run folders), :mod:`.evaluate` (steps to a target loss with and without
nowcasting). See docs/nowcast.md.
"""

from __future__ import annotations

from weightzoo.zoo import lazy_exports

_EXPORTS = {name: f"weightzoo.hyper.nowcast.{module}" for name, module in {
    "ParameterIndex": "index", "history_features": "features",
    "Nowcaster": "models", "MLPNowcaster": "models", "LinearNowcaster": "models", "NowcasterBase": "models",
    "load_nowcaster": "models", "save_nowcaster": "models",
    "NowcastOptimizer": "optimizer",
}.items()}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = sorted(_EXPORTS)
