"""``digits-mlp``: the digits-cnn training recipe on a fixed multilayer perceptron.

Recipe 1: flatten the 8×8 image → linear (64→32) → act → dropout → linear (32→32) → act → linear (32→10);
3,466 parameters. Hyperparameters, initialisation, checkpoints, labels and the optional dense
trajectories (``trajectory_every``) are exactly those of ``digits-cnn`` (see :mod:`.cnn_zoo`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .cnn_zoo import DigitsCNNBuilder

HIDDEN = (32, 32)


def mlp_spec(activation: str, dropout: float, hidden: tuple[int, ...] = HIDDEN) -> dict[str, Any]:
    """The digits-mlp architecture (64 → hidden… → 10) as a ``weightzoo.arch/1`` spec."""
    layers: list[dict[str, Any]] = [{"type": "flatten"}]
    cin = 64
    for i, h in enumerate(hidden):
        layers += [{"type": "linear", "in": cin, "out": h}, {"type": activation}]
        if i < len(hidden) - 1:
            layers.append({"type": "dropout", "p": dropout})
        cin = h
    layers.append({"type": "linear", "in": cin, "out": 10})
    return {"format": "weightzoo.arch/1", "input_shape": [1, 8, 8], "layers": layers}


class DigitsMLPBuilder(DigitsCNNBuilder):
    """digits-mlp: a fixed 64-32-32-10 MLP, hyperparameters sampled per network as in digits-cnn."""

    name = "digits-mlp"
    recipe_version = 1
    default_size = 2000

    def _arch_note(self) -> str:
        return "flatten-linear(64-32)-linear(32-32)-linear(32-10)"

    def _arch(self, rng: np.random.Generator, hp: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        return mlp_spec(hp["activation"], hp["dropout"]), {}


__all__ = ["DigitsMLPBuilder", "HIDDEN", "mlp_spec"]
