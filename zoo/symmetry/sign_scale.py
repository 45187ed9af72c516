r"""Sign and positive-scale symmetries of MLPs and CNNs.

* :func:`flip_signs` — :math:`\sigma(-x) = -\sigma(x)` for odd activations (tanh, sine, identity), so
  negating a neuron's pre-activation and its outgoing weights is a symmetry.
* :func:`scale` — :math:`\sigma(\alpha x) = \alpha\sigma(x)` for :math:`\alpha > 0` and ReLU/LeakyReLU
  (and identity), so scaling the pre-activation by α and the outgoing weights by 1/α is a symmetry.

Where they hold, exactly: a neuron qualifies when it is hidden, not on a residual stream, its activation
is odd (flip) or positively homogeneous (scale), global max pooling blocks flips, and no normalization
comes after its activation. When a normalization comes *before* the activation, the factor goes onto
that norm's affine weight and bias (scaling the weights feeding a batch norm would be undone by the
normalization), so a non-affine norm before the activation disqualifies the neuron.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from weightzoo.errors import UnsupportedLayerError
from weightzoo.zoo.graphs.layout import Layout, flat_in_index
from weightzoo.zoo.graphs.vocab import Activation, NodeType, Pool

from .permutation import _mlp_cnn_only, _rebuild, _resolve, fast_spec

# --- sign flips and positive scaling -------------------------------------------------------------------

_ODD = {Activation.NONE, Activation.TANH, Activation.SINE}
_HOMOGENEOUS = {Activation.NONE, Activation.RELU, Activation.LEAKY_RELU}


def eligible_groups(layout: Layout, kind: str) -> list[int]:
    """Hidden groups whose neurons admit a sign flip (``kind="flip"``) or positive scaling (``"scale"``)."""
    _mlp_cnn_only(layout, "sign flips and scaling")
    acts = _ODD if kind == "flip" else _HOMOGENEOUS
    on_stream = {st.src_group for st in layout.struct if st.edge_type.name == "RESIDUAL"}
    on_stream |= {st.dst_group for st in layout.struct if st.edge_type.name == "RESIDUAL"}
    flat_of = {g.channel_group: g for g in layout.groups if g.kind == NodeType.FLATTEN}
    blocked_norm = {gi for gi, _ in layout.group_norms}
    out = []
    for g in layout.groups:
        f = flat_of.get(g.index)
        ok = (g.kind == NodeType.HIDDEN and not g.fixed and g.index not in on_stream and g.act in acts
              and not (kind == "flip" and g.pool == Pool.MAX) and not g.norm_after_act
              and (g.norm.name == "NONE" or g.norm_affine)
              and (f is None or (f.norm.name == "NONE" and f.act == Activation.NONE and f.index not in blocked_norm)))
        if ok:
            out.append(g.index)
    return out


def apply_scaling(layout: Layout, state_dict: Mapping[str, torch.Tensor], factors: dict[int, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Multiply each listed group's pre-activation by ``factors[g]`` and divide its outgoing weights.

    Only valid for :func:`eligible_groups`; exact up to rounding (factors ±1 and powers of two are exact).
    """
    out = dict(state_dict)
    groups = layout.groups
    for s in layout.slots:
        if s.role in ("buffer", "running_mean", "running_var"):
            continue
        t = out[s.name]
        f_out = factors.get(s.out_group)  # type: ignore[arg-type]
        if s.role in ("bias", "weight") and f_out is not None and groups[s.out_group].norm.name == "NONE":  # type: ignore[index]
            t = t * f_out.to(t.dtype).reshape(-1, *([1] * (t.dim() - 1)))
        if s.role in ("norm_weight", "norm_bias") and f_out is not None:
            t = t * f_out.to(t.dtype)
        if s.role == "weight":
            cg, hw = flat_in_index(layout, s.in_group)  # type: ignore[arg-type]
            f_in = factors.get(cg)
            if f_in is not None:
                f_in = f_in.repeat_interleave(hw)
                n_out, cpg = t.shape[0], t.shape[1]
                cols = (torch.arange(n_out) // (n_out // s.groups)).unsqueeze(1) * cpg + torch.arange(cpg)
                t = t / f_in[cols].to(t.dtype).reshape(n_out, cpg, *([1] * (t.dim() - 2)))
        out[s.name] = t
    return out


def _layout_and_groups(obj: Any, spec: Mapping[str, Any] | None, example_input: Any, kind: str
                       ) -> tuple[Layout, dict[str, torch.Tensor], list[int]]:
    """The layout, state dict and eligible groups; class-based modules through their recorded data flow."""
    if isinstance(obj, nn.Module) and spec is None and fast_spec(obj) is None:
        from .any_module import recorded_layout

        layout, sd = recorded_layout(obj, example_input), dict(obj.state_dict())
    else:
        layout, sd = _resolve(obj, spec)
    if not layout.info.get("recorded"):
        return layout, sd, eligible_groups(layout, kind)
    from .any_module import scaling_groups

    groups, why = scaling_groups(layout, kind)
    if not groups:
        labels = layout.info["symmetry"]["labels"]
        reasons = "; ".join(f"{labels[g]}: {w}" for g, w in list(why.items())[:4]) or "no hidden neurons"
        what = "sign flips (tanh/sine, α = -1)" if kind == "flip" else "positive scaling (ReLU/LeakyReLU, α > 0)"
        raise UnsupportedLayerError("<root>", str(layout.spec.get("module")),
                                    f"no hidden neurons admit {what} — {reasons}; permute_hidden still applies")
    return layout, sd, groups


def _apply(layout: Layout, sd: dict[str, torch.Tensor], factors: dict[int, torch.Tensor]) -> dict[str, torch.Tensor]:
    if layout.info.get("recorded"):
        from .any_module import apply_recorded_scaling

        return apply_recorded_scaling(layout, sd, factors)
    return apply_scaling(layout, sd, factors)


def flip_signs(model_or_state_dict: Any, generator: torch.Generator | None = None,
               spec: Mapping[str, Any] | None = None, *, return_signs: bool = False, example_input: Any = None) -> Any:
    """Negate a random subset of eligible hidden neurons (odd activations; see the module docstring).

    Class-based modules (and state dicts with a recorded ``spec``) use their recorded data flow
    (:func:`~.any_module.scaling_groups`; ``example_input`` as for ``ParameterGraph.from_module``) and raise
    :class:`~weightzoo.errors.UnsupportedLayerError` saying why when no neuron qualifies.
    Returns the same kind it was given, or ``(that, signs)`` with ``signs[group]`` a ±1 tensor.
    """
    layout, sd, groups = _layout_and_groups(model_or_state_dict, spec, example_input, "flip")
    signs = {gi: torch.randint(0, 2, (layout.groups[gi].size,), generator=generator).to(torch.float64) * 2 - 1
             for gi in groups}
    new = _rebuild(model_or_state_dict, _apply(layout, sd, signs))
    return (new, signs) if return_signs else new


def scale(model_or_state_dict: Any, generator: torch.Generator | None = None, spec: Mapping[str, Any] | None = None,
          *, low: float = 0.5, high: float = 2.0, return_scales: bool = False, example_input: Any = None) -> Any:
    """Scale eligible hidden neurons (ReLU/LeakyReLU/identity) by random α ∈ [low, high] (log-uniform).

    Incoming weights and bias (or the preceding norm's affine weight and bias) are multiplied by α,
    outgoing weights divided by α. Class-based modules as in :func:`flip_signs`. Returns the same kind it
    was given, or ``(that, scales)``.
    """
    if not 0 < low <= high:
        raise ValueError(f"scale: need 0 < low <= high, got low={low}, high={high}")
    layout, sd, groups = _layout_and_groups(model_or_state_dict, spec, example_input, "scale")
    factors = {}
    for gi in groups:
        u = torch.rand(layout.groups[gi].size, generator=generator, dtype=torch.float64)
        factors[gi] = torch.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    new = _rebuild(model_or_state_dict, _apply(layout, sd, factors))
    return (new, factors) if return_scales else new


__all__ = ["apply_scaling", "eligible_groups", "flip_signs", "scale"]
