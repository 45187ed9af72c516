r"""Initialisations a GHN is compared with, applied in place to any module.

- ``default``: PyTorch's own initialisation (what the module was built with).
- ``kaiming``: He-normal weights (fan-in, ReLU gain), zero biases, norm γ = 1, β = 0.
- ``orthogonal``: orthogonal weights (kernels flattened to out × in·k), zero biases.
- ``fanin-stats``: weights drawn from :math:`\mathcal N(\mu, (c/\text{fan-in}))` with :math:`c` (and the
  norm/bias statistics) measured per parameter kind on *trained* networks of the zoo
  (:class:`FanInStats`).
- ``mimetic``: default init, then every attention block (a module with ``q``, ``k``, ``v``, ``out``
  projections, or ``nn.MultiheadAttention``) set so that :math:`W_q W_k^\top \approx \alpha I` and
  :math:`W_v W_o \approx -\beta I` (Trockman & Kolter, 2023); identical to ``default`` without attention.
- ``nearest``: the parameters of the trained architecture of the zoo sharing the most parameter
  names and shapes, copied where names and shapes agree; the rest keeps the default init.

Every method is evaluated under the same BatchNorm protocol (:mod:`.bn`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from weightzoo.errors import HyperNetworkError
from weightzoo.zoo.graphs import ComputeGraph

from .targets import targets_of

BASELINES: tuple[str, ...] = ("default", "kaiming", "orthogonal", "fanin-stats", "mimetic", "nearest")


def _weights_and_biases(module: nn.Module) -> Iterable[tuple[str, nn.Parameter, nn.Module]]:
    for mod in module.modules():
        for name, p in mod.named_parameters(recurse=False):
            yield name, p, mod


@torch.no_grad()
def kaiming_init(module: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """He-normal (fan-in, ReLU) weights, zero biases, γ = 1, β = 0."""
    for name, p, mod in _weights_and_biases(module):
        if isinstance(mod, nn.modules.batchnorm._NormBase | nn.LayerNorm | nn.GroupNorm):
            p.fill_(1.0 if name == "weight" else 0.0)
        elif p.dim() >= 2:
            fan_in = p[0].numel()
            p.copy_(torch.randn(p.shape, generator=generator) * math.sqrt(2.0 / fan_in))
        else:
            p.zero_()
    return module


@torch.no_grad()
def orthogonal_init(module: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Orthogonal weights (gain √2, kernels flattened), zero biases, γ = 1, β = 0."""
    for name, p, mod in _weights_and_biases(module):
        if isinstance(mod, nn.modules.batchnorm._NormBase | nn.LayerNorm | nn.GroupNorm):
            p.fill_(1.0 if name == "weight" else 0.0)
        elif p.dim() >= 2:
            rows, cols = p.shape[0], p[0].numel()
            a = torch.randn(max(rows, cols), min(rows, cols), generator=generator)
            q, r = torch.linalg.qr(a)
            q = q * torch.sign(torch.diagonal(r))
            w = q if rows >= cols else q.t()
            p.copy_(math.sqrt(2.0) * w[:rows, :cols].reshape(p.shape))
        else:
            p.zero_()
    return module


@torch.no_grad()
def mimetic_init(module: nn.Module, generator: torch.Generator | None = None, *, alpha: float = 0.7,
                 beta: float = 0.7) -> int:
    r"""Mimetic initialisation of every attention block; returns how many blocks were set.

    For projections :math:`W_q, W_k \in \mathbb R^{d \times C}`: :math:`W_q = W_k = \sqrt{\alpha}\,Z`
    (so :math:`W_q^\top W_k = \alpha Z^\top Z \approx \alpha I` for :math:`Z` with :math:`\mathcal N(0, 1/d)`
    entries), and :math:`W_o = -\beta\,W_v^{+}` (pseudo-inverse, so :math:`W_o W_v \approx -\beta I`).
    """
    count = 0
    for mod in module.modules():
        if isinstance(mod, nn.MultiheadAttention) and mod.in_proj_weight is not None:
            e = mod.embed_dim
            z = torch.randn(e, e, generator=generator) / math.sqrt(e)
            v = torch.randn(e, e, generator=generator) / math.sqrt(e)
            mod.in_proj_weight[:e] = math.sqrt(alpha) * z
            mod.in_proj_weight[e:2 * e] = math.sqrt(alpha) * z
            mod.in_proj_weight[2 * e:] = v
            mod.out_proj.weight.copy_(-beta * torch.linalg.pinv(v))
            count += 1
        elif all(isinstance(getattr(mod, n, None), nn.Conv2d | nn.Linear) for n in ("q", "k", "v", "out")):
            qw, kw, vw, ow = (_weight_of(getattr(mod, n)) for n in ("q", "k", "v", "out"))
            d, c = qw.shape[0], qw[0].numel()
            z = torch.randn(d, c, generator=generator) / math.sqrt(d)
            qw.copy_((math.sqrt(alpha) * z).reshape(qw.shape))
            kw.copy_((math.sqrt(alpha) * z).reshape(kw.shape))
            v = torch.randn(vw.shape[0], vw[0].numel(), generator=generator) / math.sqrt(vw.shape[0])
            vw.copy_(v.reshape(vw.shape))
            ow.copy_((-beta * torch.linalg.pinv(v)).reshape(ow.shape))
            count += 1
    return count


def _weight_of(module: nn.Module) -> torch.Tensor:
    weight = module.weight
    if not isinstance(weight, torch.Tensor):
        raise HyperNetworkError(f"{type(module).__name__} has no weight tensor")
    return weight


@dataclass
class FanInStats:
    r"""Per-kind statistics of trained parameters: weights as :math:`c = \mathrm{Var}(W)\cdot\text{fan-in}`,
    biases and norm γ/β as mean and std, averaged over trained networks (``fit``)."""

    stats: dict[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def fit(cls, modules: Iterable[tuple[nn.Module, ComputeGraph]]) -> FanInStats:
        sums: dict[str, list[tuple[float, float]]] = {}
        for module, graph in modules:
            params = dict(module.named_parameters())
            for t in targets_of(graph):
                p = params[t.name].detach().double()
                if t.kind == "weight":
                    sums.setdefault("weight", []).append((float(p.mean()), float(p.var(unbiased=False)) * t.fan_in))
                else:
                    sums.setdefault(t.kind, []).append((float(p.mean()), float(p.std(unbiased=False))))
        if not sums:
            raise HyperNetworkError("FanInStats.fit: no trained networks given")
        return cls({k: (sum(m for m, _ in v) / len(v), sum(s for _, s in v) / len(v)) for k, v in sums.items()})

    @torch.no_grad()
    def apply(self, module: nn.Module, graph: ComputeGraph, generator: torch.Generator | None = None) -> nn.Module:
        params = dict(module.named_parameters())
        for t in targets_of(graph):
            if t.kind not in self.stats:
                continue
            mean, spread = self.stats[t.kind]
            p = params[t.name]
            std = math.sqrt(max(spread, 0.0) / max(t.fan_in, 1)) if t.kind == "weight" else spread
            p.copy_(mean + std * torch.randn(p.shape, generator=generator))
        return module


@torch.no_grad()
def nearest_init(module: nn.Module, trained: Iterable[Mapping[str, torch.Tensor]]) -> float:
    """Copy the parameters of the trained state dict sharing the most (name, shape) pairs; returns the
    fraction of ``module``'s parameters copied (0: no trained network shares any)."""
    params = dict(module.named_parameters())
    best, best_hits = None, 0
    for state in trained:
        hits = sum(1 for n, p in params.items() if n in state and tuple(state[n].shape) == tuple(p.shape))
        if hits > best_hits:
            best, best_hits = state, hits
    if best is None:
        return 0.0
    for n, p in params.items():
        if n in best and tuple(best[n].shape) == tuple(p.shape):
            p.copy_(best[n])
    return best_hits / max(len(params), 1)


def baseline_init(method: str) -> Callable[..., object]:
    """The function of a baseline by name (``default`` returns the module unchanged)."""
    table: dict[str, Callable[..., object]] = {"default": lambda m, g=None: m, "kaiming": kaiming_init,
                                               "orthogonal": orthogonal_init, "mimetic": mimetic_init}
    if method not in table:
        raise HyperNetworkError(f"unknown baseline {method!r}; valid here: {', '.join(table)} (fanin-stats and "
                                "nearest need trained networks: FanInStats, nearest_init)")
    return table[method]


__all__ = ["BASELINES", "FanInStats", "baseline_init", "kaiming_init", "mimetic_init", "nearest_init",
           "orthogonal_init"]
