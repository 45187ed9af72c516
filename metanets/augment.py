r"""Weight-space augmentations: seeded transforms of a network that a metanetwork trains on.

Each augmentation takes a network — an ``nn.Module`` or a state dict (then ``spec=``) — and a
``torch.Generator``, and returns the same kind. Those with ``preserves_function = True`` map a network
to another network computing the same function (up to float rounding), so a model of the *function*
should not change its answer; the others perturb it by a documented amount:

=================  ==================  ===============================================================
augmentation       function            what it does
=================  ==================  ===============================================================
``Permute``        kept                random hidden-neuron permutation (:func:`~weightzoo.zoo.symmetry.permute_hidden`)
``SignFlip``       kept                negate neurons with odd activations (tanh, sine, identity)
``PositiveScale``  kept                scale ReLU-family neurons by α > 0, outgoing weights by 1/α
``SirenShift``     kept                shift sine neurons' biases by k·2π/ω₀ (k·π/ω₀ with the outgoing
                                       weights negated for odd k)
``GaussianNoise``  perturbed           :math:`w + \sigma_t\,\varepsilon`, :math:`\sigma_t =` ``rel_std`` · std of tensor *t*
``Dropout``        perturbed           zero each weight with probability *p* (rescaled by 1/(1-p))
:func:`mixup`      a new network       :math:`\lambda a + (1-\lambda) b`, plainly, after a random
                                       permutation of *b*, or after aligning *b* to *a* (Git Re-Basin)
=================  ==================  ===============================================================

Two defects of the field's reference code are avoided on purpose: the noise is real Gaussian noise
scaled per tensor (not a constant added to every weight), and SIREN bias shifts use the true period
2π/ω₀ of :math:`\sin(\omega_0 x)` (a shift by π/ω₀ negates the activation, so it is only a symmetry
together with negated outgoing weights).

:func:`augment_graph` applies any of them to a :class:`~weightzoo.zoo.graphs.ParameterGraph` (through
its exact state-dict round trip), and :class:`Compose` chains them, each applied with a probability.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

import torch
from torch import nn

from weightzoo.errors import InvalidOptionError, ShapeMismatchError
from weightzoo.zoo.graphs import ParameterGraph
from weightzoo.zoo.graphs.layout import Layout
from weightzoo.zoo.graphs.vocab import Activation, NodeType
from weightzoo.zoo.symmetry import align, apply_scaling, eligible_groups, flip_signs, permute_hidden, scale
from weightzoo.zoo.symmetry.permutation import _rebuild, _resolve

Network = Any  # an nn.Module or a state dict (Mapping[str, torch.Tensor])

_BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


class Augmentation(Protocol):
    """A seeded transform of a network; ``preserves_function`` says whether its function is kept."""

    preserves_function: ClassVar[bool]

    def __call__(self, net: Network, generator: torch.Generator | None = None, *,
                 spec: Mapping[str, Any] | None = None) -> Network: ...


@dataclass(frozen=True)
class Permute:
    """A random permutation of every hidden neuron space (residual streams share one)."""

    preserves_function: ClassVar[bool] = True

    def __call__(self, net: Network, generator: torch.Generator | None = None, *,
                 spec: Mapping[str, Any] | None = None) -> Network:
        return permute_hidden(net, generator, spec)


@dataclass(frozen=True)
class SignFlip:
    """Negate a random subset of neurons whose activation is odd, and their outgoing weights."""

    preserves_function: ClassVar[bool] = True

    def __call__(self, net: Network, generator: torch.Generator | None = None, *,
                 spec: Mapping[str, Any] | None = None) -> Network:
        return flip_signs(net, generator, spec)


@dataclass(frozen=True)
class PositiveScale:
    """Scale ReLU/LeakyReLU/identity neurons by log-uniform α ∈ [low, high]; outgoing weights by 1/α."""

    low: float = 0.5
    high: float = 2.0
    preserves_function: ClassVar[bool] = True

    def __call__(self, net: Network, generator: torch.Generator | None = None, *,
                 spec: Mapping[str, Any] | None = None) -> Network:
        return scale(net, generator, spec, low=self.low, high=self.high)


def _sine_groups(layout: Layout) -> list[tuple[int, str, float]]:
    """(group, bias tensor name, ω₀) of every un-normalised sine layer with a bias."""
    bias_of = {s.out_group: s.name for s in layout.slots if s.role == "bias" and s.out_group is not None}
    out = []
    for g in layout.groups:
        if (g.act == Activation.SINE and g.norm.name == "NONE" and not g.fixed and g.kind != NodeType.INPUT
                and g.index in bias_of and g.act_param > 0):
            out.append((g.index, bias_of[g.index], float(g.act_param)))
    return out


@dataclass(frozen=True)
class SirenShift:
    r"""Shift the bias of sine neurons by whole periods: :math:`b \to b + 2\pi k/\omega_0`, ``|k| ≤ max_periods``.

    :math:`\sin(\omega_0(z + 2\pi k/\omega_0)) = \sin(\omega_0 z)`, so the function is kept exactly (up to
    rounding of the shifted bias). With ``half_periods=True`` the shift is :math:`\pi k/\omega_0` and, for
    odd *k*, the neuron's outgoing weights are negated (:math:`\sin(x + \pi) = -\sin x`) — only on
    neurons where a sign flip is a symmetry (not on a residual stream, no max pooling or normalisation
    after the activation). ω₀ is read from the layer (``Sine(w0)``). Networks without sine layers are
    returned unchanged.
    """

    max_periods: int = 1
    half_periods: bool = True
    preserves_function: ClassVar[bool] = True

    def __call__(self, net: Network, generator: torch.Generator | None = None, *,
                 spec: Mapping[str, Any] | None = None) -> Network:
        if self.max_periods < 0:
            raise InvalidOptionError(f"SirenShift: max_periods must be >= 0, got {self.max_periods}")
        layout, sd = _resolve(net, spec)
        targets = _sine_groups(layout)
        if not targets:
            return _rebuild(net, sd)
        flippable = set(eligible_groups(layout, "flip")) if self.half_periods else set()
        span = 2 * self.max_periods if self.half_periods else self.max_periods
        shifts: dict[int, torch.Tensor] = {}
        negate: dict[int, torch.Tensor] = {}
        for gi, _, _ in targets:
            k = torch.randint(-span, span + 1, (layout.groups[gi].size,), generator=generator)
            if self.half_periods and gi not in flippable:
                k = k - torch.remainder(k, 2)  # even multiples of π only: whole periods
            shifts[gi] = k
            if self.half_periods and gi in flippable:
                negate[gi] = 1.0 - 2.0 * torch.remainder(k, 2).to(torch.float64)
        out = dict(sd)
        if negate:
            # apply_scaling multiplies a group's incoming weights and bias by f and divides its outgoing
            # weights by f; multiplying the incoming side back leaves only the outgoing weights negated.
            out = apply_scaling(layout, out, negate)
            for s in layout.slots:
                if s.role in ("weight", "bias") and s.out_group in negate:
                    f = negate[s.out_group].to(out[s.name].dtype)
                    out[s.name] = out[s.name] * f.reshape(-1, *([1] * (out[s.name].dim() - 1)))
        for gi, name, w0 in targets:
            unit = (math.pi if self.half_periods else 2 * math.pi) / w0
            b = out[name]
            out[name] = (b.to(torch.float64) + shifts[gi].to(torch.float64) * unit).to(b.dtype)
        return _rebuild(net, out)


def _augmentable(net: Network, spec: Mapping[str, Any] | None) -> tuple[dict[str, torch.Tensor], set[str]]:
    """The state dict and the names of the tensors noise/dropout may touch (float parameters, no buffers)."""
    if isinstance(net, nn.Module):
        sd = dict(net.state_dict())
        names = {n for n, p in net.named_parameters() if p.is_floating_point()}
    elif isinstance(net, Mapping):
        sd = {k: net[k] for k in net.keys()}
        names = {k for k, t in sd.items() if t.is_floating_point() and not k.endswith(_BUFFER_SUFFIXES)}
    else:
        raise TypeError(f"expected an nn.Module or a state dict, got {type(net).__name__}")
    return sd, names


@dataclass(frozen=True)
class GaussianNoise:
    r"""Add real Gaussian noise per tensor: :math:`w_t + \mathrm{rel\_std}\cdot\mathrm{std}(w_t)\,\varepsilon`.

    Tensors with one element use :math:`|w_t|` as their scale. Buffers (BatchNorm statistics) are left
    alone. The function changes by an amount that grows with ``rel_std`` (0.1 is the usual choice;
    Shamsian et al. use about 0.32 on INRs).
    """

    rel_std: float = 0.1
    preserves_function: ClassVar[bool] = False

    def __call__(self, net: Network, generator: torch.Generator | None = None, *,
                 spec: Mapping[str, Any] | None = None) -> Network:
        if not self.rel_std >= 0:
            raise InvalidOptionError(f"GaussianNoise: rel_std must be >= 0, got {self.rel_std}")
        sd, names = _augmentable(net, spec)
        for name in sorted(names):
            t = sd[name]
            x = t.detach().to(torch.float64)
            sigma = x.std() if x.numel() > 1 else x.abs().reshape(-1).sum()
            eps = torch.randn(x.shape, generator=generator, dtype=torch.float64)
            sd[name] = (x + self.rel_std * sigma * eps).to(t.dtype)
        return _rebuild(net, sd)


@dataclass(frozen=True)
class Dropout:
    """Zero each weight with probability ``p``; survivors are scaled by 1/(1-p) when ``rescale``."""

    p: float = 0.1
    rescale: bool = True
    preserves_function: ClassVar[bool] = False

    def __call__(self, net: Network, generator: torch.Generator | None = None, *,
                 spec: Mapping[str, Any] | None = None) -> Network:
        if not 0.0 <= self.p < 1.0:
            raise InvalidOptionError(f"Dropout: p must be in [0, 1), got {self.p}")
        sd, names = _augmentable(net, spec)
        for name in sorted(names):
            t = sd[name]
            keep = torch.rand(t.shape, generator=generator) >= self.p
            kept = t.detach() * keep.to(t.dtype)
            sd[name] = kept / (1.0 - self.p) if self.rescale else kept
        return _rebuild(net, sd)


@dataclass(frozen=True)
class Compose:
    """Apply ``transforms`` in order, each with probability ``p`` (1 = always), from one generator."""

    transforms: Sequence[Augmentation]
    p: float = 1.0

    @property
    def preserves_function(self) -> bool:  # type: ignore[override]
        """True when every transform keeps the function."""
        return all(t.preserves_function for t in self.transforms)

    def __call__(self, net: Network, generator: torch.Generator | None = None, *,
                 spec: Mapping[str, Any] | None = None) -> Network:
        for t in self.transforms:
            if self.p >= 1.0 or torch.rand((), generator=generator).item() < self.p:
                net = t(net, generator, spec=spec)
        return net


MixMode = Literal["plain", "permuted", "aligned"]


def mixup(a: Network, b: Network, lam: float, *, mode: MixMode = "aligned", spec: Mapping[str, Any] | None = None,
          generator: torch.Generator | None = None) -> Network:
    r"""Weight-space MixUp: :math:`\lambda\,a + (1-\lambda)\,b'` with :math:`b'` = *b*, a random permutation
    of *b* (``"permuted"``), or *b* aligned to *a* by weight matching (``"aligned"``, Git Re-Basin).

    Interpolating two independently trained networks plainly mixes unrelated neurons; aligning first
    makes the mixture a network between the two (the variant that helps most, Shamsian et al. 2024).
    Mix the targets with the same λ. Integer tensors (``num_batches_tracked``) are taken from *a*.
    """
    if not 0.0 <= lam <= 1.0:
        raise InvalidOptionError(f"mixup: lam must be in [0, 1], got {lam}")
    if mode == "aligned":
        b, _ = align(a, b, spec)
    elif mode == "permuted":
        b = permute_hidden(b, generator, spec)
    elif mode != "plain":
        raise InvalidOptionError(f"mixup: mode must be plain, permuted or aligned, got {mode!r}")
    _, sd_a = _resolve(a, spec)
    _, sd_b = _resolve(b, spec)
    if sd_a.keys() != sd_b.keys() or any(sd_a[k].shape != sd_b[k].shape for k in sd_a):
        raise ShapeMismatchError("mixup: a and b have different architectures (tensor names or shapes differ)")
    out = {k: (lam * sd_a[k] + (1.0 - lam) * sd_b[k]).to(sd_a[k].dtype) if sd_a[k].is_floating_point() else sd_a[k]
           for k in sd_a}
    return _rebuild(a, out)


def augment_graph(graph: ParameterGraph, augmentation: Augmentation | Compose, generator: torch.Generator | None = None,
                  ) -> ParameterGraph:
    """Apply an augmentation to a ParameterGraph (through its exact state-dict round trip, same layout)."""
    sd = augmentation(graph.to_state_dict(), generator, spec=graph.layout.spec)
    return ParameterGraph.from_spec(graph.layout.spec, sd)


#: Names of :func:`parse_augmentations` (``name`` or ``name:value``) and what ``value`` sets.
AUGMENTATIONS: dict[str, str] = {
    "permute": "no value", "signflip": "no value", "scale": "high (α ∈ [1/high, high], default 2)",
    "shift": "max periods (default 1)", "noise": "rel_std (default 0.1)", "dropout": "p (default 0.1)",
}


def parse_augmentations(text: str) -> Compose | None:
    """A :class:`Compose` from ``"signflip,shift,noise:0.2"`` (``""``/``"none"``: ``None``).

    Names and values: :data:`AUGMENTATIONS`. Unknown names raise
    :class:`~weightzoo.errors.InvalidOptionError` listing the valid ones.
    """
    items = [t.strip() for t in str(text).replace("+", ",").split(",") if t.strip()]
    if not items or items == ["none"]:
        return None
    out: list[Augmentation] = []
    for item in items:
        name, _, value = item.partition(":")
        try:
            v = float(value) if value else None
        except ValueError:
            raise InvalidOptionError(f"augmentation {item!r}: the value after ':' must be a number") from None
        if name == "permute":
            out.append(Permute())
        elif name == "signflip":
            out.append(SignFlip())
        elif name == "scale":
            high = v if v is not None else 2.0
            if not high >= 1.0:
                raise InvalidOptionError(f"augmentation {item!r}: high must be >= 1")
            out.append(PositiveScale(low=1.0 / high, high=high))
        elif name == "shift":
            out.append(SirenShift(max_periods=int(v) if v is not None else 1))
        elif name == "noise":
            out.append(GaussianNoise(rel_std=v if v is not None else 0.1))
        elif name == "dropout":
            out.append(Dropout(p=v if v is not None else 0.1))
        else:
            raise InvalidOptionError(f"unknown augmentation {name!r}; valid: {', '.join(AUGMENTATIONS)} "
                                     "(comma-separated, name:value to set a value)")
    return Compose(out)


__all__ = ["AUGMENTATIONS", "Augmentation", "Compose", "Dropout", "GaussianNoise", "Permute", "PositiveScale", "SignFlip",
           "SirenShift", "augment_graph", "mixup", "parse_augmentations"]
