r"""Trajectory features of every scalar, scaled per tensor as NiNo does.

Given the last :math:`c` states :math:`\theta_0, \dots, \theta_{c-1}` (equally spaced in steps, the last
the current one) of a network flattened to ``[c, P]``, each tensor :math:`T` gets the scale

.. math::
    s_T = \sqrt{\operatorname{mean}_{i \in T} (\theta_{c-1,i} - \theta_{0,i})^2} + \epsilon

(how far the tensor moved over the history). Each scalar's features are the ``c - 1`` scaled offsets
:math:`(\theta_{j,i} - \theta_{c-1,i}) / s_T` of the past states and the current value divided by the
tensor's RMS; the learning target is the scaled delta :math:`(\theta_{t+k,i} - \theta_{c-1,i}) / s_T`.
Scaling per tensor makes a nowcaster trained on one network's step sizes read another's, and keeps
every feature invariant to a hidden-neuron permutation (the scale is a permutation-invariant mean).

Shapes: ``states`` ``[c, P]``, ``tensor_id`` ``[P]`` → features ``[P, c]``, scale ``[P]``.
"""

from __future__ import annotations

import torch

EPS = 1e-8


def _per_tensor_rms(x: torch.Tensor, tensor_id: torch.Tensor, num_tensors: int) -> torch.Tensor:
    """``[num_tensors]`` root mean square of ``x`` over each tensor's scalars."""
    sq = torch.zeros(num_tensors, dtype=x.dtype).index_add_(0, tensor_id, x * x)
    count = torch.bincount(tensor_id, minlength=num_tensors).clamp(min=1).to(x.dtype)
    return (sq / count).sqrt()


def history_scale(states: torch.Tensor, tensor_id: torch.Tensor, num_tensors: int) -> torch.Tensor:
    """``[P]`` per-tensor scale :math:`s_T` of each scalar (see the module docstring)."""
    moved = states[-1] - states[0]
    return (_per_tensor_rms(moved, tensor_id, num_tensors) + EPS)[tensor_id]


def history_features(states: torch.Tensor, tensor_id: torch.Tensor, num_tensors: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features [P, c], scale [P])`` of a ``[c, P]`` history (``c >= 2``)."""
    if states.dim() != 2 or states.shape[0] < 2:
        raise ValueError(f"history_features: states must be [c >= 2, P], got {tuple(states.shape)}")
    states = states.to(torch.float32)
    scale = history_scale(states, tensor_id, num_tensors)
    current = states[-1]
    offsets = (states[:-1] - current) / scale
    value = current / (_per_tensor_rms(current, tensor_id, num_tensors) + EPS)[tensor_id]
    return torch.cat([offsets.t(), value.unsqueeze(1)], dim=1), scale


__all__ = ["EPS", "history_features", "history_scale"]
