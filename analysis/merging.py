r"""Model merging, per tensor and streaming: soups, task arithmetic, TIES, DARE, DARE-TIES and SLERP.

:func:`merge` returns a lazy mapping: each output tensor is computed when it is read, from one read of
that tensor in each input, so merging :math:`N` models costs about :math:`N\times` the largest tensor of
memory, never :math:`N\times` the model. :func:`save_merged` streams it to safetensors (sharded by bytes)
or into a zoo. Arithmetic runs in float32 (float64 if an input is float64); floating outputs take the
requested dtype, by default the base's. Integer and boolean tensors are copied from the base.

With base :math:`\theta_0`, models :math:`\theta_i`, weights :math:`w_i` and task vectors
:math:`\tau_i = \theta_i - \theta_0`:

- ``mean``: :math:`\frac1N\sum_i\theta_i` (uniform soup, Wortsman et al. 2022).
- ``linear``: :math:`\sum_i w_i\theta_i / \sum_i w_i` (``normalize=False`` drops the division).
- ``task-arithmetic``: :math:`\theta_0 + \lambda\sum_i w_i\tau_i` (Ilharco et al. 2023).
- ``ties`` (Yadav et al. 2023): trim each :math:`\tau_i` to its top-``density`` fraction by magnitude,
  elect a sign per entry :math:`\gamma = \mathrm{sgn}\sum_i w_i\hat\tau_i` (a zero sum counts as positive,
  as in mergekit), keep the entries that agree, :math:`m = \sum_i w_i\hat\tau_i[\mathrm{sgn}(w_i\hat\tau_i)=\gamma]`,
  divide by the summed weights of the agreeing entries (``normalize``, the paper's disjoint mean for unit
  weights) and return :math:`\theta_0 + \lambda m`.
- ``dare`` (Yu et al. 2024): drop each entry of :math:`\tau_i` with probability :math:`p = 1-` ``density``,
  rescale the survivors by :math:`1/(1-p)`, then task arithmetic. Masks come from a ``torch.Generator``
  seeded from (``seed``, model index, tensor name), so a merge does not depend on the order tensors are
  read in.
- ``dare-ties``: DARE's drop and rescale, then TIES' sign election and disjoint mean.
- ``slerp``: spherical interpolation between two models per tensor,
  :math:`\frac{\sin((1-t)\Omega)}{\sin\Omega}a + \frac{\sin(t\Omega)}{\sin\Omega}b` with
  :math:`\cos\Omega` the cosine of the flattened tensors; linear interpolation when they are nearly
  parallel (:math:`|\cos\Omega| > 0.9995`) or one is zero.

Trimming (TIES) keeps :math:`|\tau| \ge` the :math:`k`-th largest magnitude with
:math:`k = \lfloor \mathrm{density}\cdot n\rfloor`; entries tied with the threshold are all kept. With
``trim="tensor"`` (default, as mergekit) :math:`n` is the tensor's size; with ``trim="global"`` (the paper)
one threshold per task vector over all its tensors, found exactly by :func:`global_magnitude_threshold`
(two streaming passes, no concatenation).
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch

from ..errors import WeightzooError
from .task_vectors import (
    MatchReport,
    TensorSpec,
    check_policy,
    compute_dtype,
    match_models,
    open_source,
    read_as,
    source_label,
    tensor_specs,
)

METHODS = ("mean", "linear", "task-arithmetic", "ties", "dare", "dare-ties", "slerp")
_USES_BASE = {"task-arithmetic", "ties", "dare", "dare-ties"}
_PARAMS: dict[str, dict[str, Any]] = {
    "mean": {},
    "linear": {"normalize": True},
    "task-arithmetic": {"lambda": 1.0, "normalize": False},
    "ties": {"density": 0.2, "lambda": 1.0, "normalize": True},
    "dare": {"density": 0.5, "lambda": 1.0, "normalize": False},
    "dare-ties": {"density": 0.5, "lambda": 1.0, "normalize": True},
    "slerp": {"t": 0.5},
}
SLERP_DOT_THRESHOLD = 0.9995
_CHUNK = 1 << 21


def resolve_method(method: str) -> str:
    """The canonical method name (``task_arithmetic`` and ``dare_ties`` spellings accepted)."""
    m = method.strip().lower().replace("_", "-")
    m = {"soup": "mean", "dare-linear": "dare", "ta": "task-arithmetic"}.get(m, m)
    if m not in METHODS:
        raise WeightzooError(f"unknown merge method {method!r}; choose one of {', '.join(METHODS)}")
    return m


# --- per-tensor kernels (dense; the streaming engine calls them one tensor at a time) --------------


def magnitude_threshold(delta: torch.Tensor, density: float) -> float:
    """The :math:`k`-th largest :math:`|x|` of ``delta`` with :math:`k=\\lfloor density\\cdot n\\rfloor`
    (``inf`` when :math:`k=0`, ``0`` when every entry is kept)."""
    n = delta.numel()
    k = int(density * n)
    if k <= 0:
        return math.inf
    if k >= n:
        return 0.0
    return _kth_largest(delta.abs().reshape(-1), k)


def _kth_largest(values: torch.Tensor, k: int) -> float:
    """The k-th largest of a 1-D tensor we own (partitioned in place; introselect, ~10x torch.kthvalue)."""
    arr = values.numpy()
    arr.partition(arr.size - k)
    return float(arr[arr.size - k])


def trim(delta: torch.Tensor, threshold: float) -> torch.Tensor:
    """``delta`` with the entries :math:`|x| <` ``threshold`` zeroed (a new tensor unless nothing is trimmed)."""
    if threshold > 0:
        # hardshrink keeps |x| > lambd; the float just below the threshold makes it |x| >= threshold, in one
        # fused pass (a bool mask times a float tensor would take a slow type-promoting path).
        t = torch.tensor(threshold, dtype=delta.dtype)
        below = float(torch.nextafter(t, torch.tensor(-math.inf, dtype=delta.dtype)))
        return torch.nn.functional.hardshrink(delta, below)
    return delta


def tensor_seed(seed: int, index: int, name: str) -> int:
    """A 63-bit seed for (base seed, model index, tensor name): the same mask whatever the read order."""
    h = hashlib.blake2b(f"{seed}\x00{index}\x00{name}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)


def dare_(delta: torch.Tensor, density: float, generator: torch.Generator) -> torch.Tensor:
    """DARE in place: keep each entry with probability ``density`` (``torch.rand < density``), rescale the
    kept ones by ``1/density``."""
    if density >= 1.0:
        return delta
    keep = torch.rand(delta.shape, generator=generator, dtype=torch.float32).lt_(density)  # 1.0 kept, 0.0 dropped
    return delta.mul_(keep).div_(density)


def disjoint_merge(deltas: Sequence[torch.Tensor], weights: Sequence[float], *, normalize: bool) -> torch.Tensor:
    """TIES' sign election and disjoint sum/mean of (already sparsified) ``deltas``; consumes ``deltas``.

    :math:`\\gamma = \\mathrm{sgn}\\sum_i w_i\\delta_i` with zero counted as positive; entry :math:`i`
    takes part where :math:`\\mathrm{sgn}(w_i\\delta_i) = \\gamma`; with ``normalize`` the sum is divided by
    the summed :math:`w_i` of the taking-part entries (1 where none takes part).
    """
    # All in-place float arithmetic: with s = ±1 the elected sign, entry i agrees iff u_i = s·w_i·δ_i > 0,
    # so clamp(u_i, 0) holds the agreeing magnitudes and sign(clamp(u_i, 0)) the indicator.
    s = torch.zeros_like(deltas[0])
    for d, w in zip(deltas, weights):
        s.add_(d, alpha=w)
    s.sign_().add_(0.5).sign_()  # {-1, 0, 1} -> {-1, 1, 1}: a zero sum counts as positive
    mixed: torch.Tensor | None = None
    divisor: torch.Tensor | None = None
    for i, (d, w) in enumerate(zip(deltas, weights)):
        u = d.mul_(s)
        if w != 1.0:
            u.mul_(w)
        u.clamp_(min=0.0)
        if mixed is None:
            mixed = u.clone() if normalize else u
        else:
            mixed.add_(u)
        if normalize:
            ind = u.sign_()
            if divisor is None:
                divisor = ind.mul_(w) if w != 1.0 else ind
            else:
                divisor.add_(ind, alpha=w)
        del u, d
        if isinstance(deltas, list):
            deltas[i] = torch.empty(0)  # free as we go
    assert mixed is not None
    mixed.mul_(s)
    del s
    if divisor is not None:
        if min(weights) > 0:  # a non-zero divisor is >= min(w), and mixed is 0 where the divisor is 0
            divisor.clamp_(min=min(weights))
        else:
            divisor.masked_fill_(divisor == 0, 1.0)
        mixed.div_(divisor)
    return mixed


def slerp_tensor(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation of two same-shaped tensors (flattened), linear when nearly parallel."""
    na, nb = float(a.double().norm()), float(b.double().norm())
    if na == 0.0 or nb == 0.0:
        return torch.lerp(a, b, t)
    dot = float((a.double() * b.double()).sum()) / (na * nb)
    if abs(dot) > SLERP_DOT_THRESHOLD:
        return torch.lerp(a, b, t)
    omega = math.acos(max(-1.0, min(1.0, dot)))
    s = math.sin(omega)
    return a * (math.sin((1.0 - t) * omega) / s) + b * (math.sin(t * omega) / s)


# --- exact global magnitude threshold, streaming ----------------------------------------------------

_MANTISSA_BITS = 6  # bins are 1/64 of an octave wide


def _bins(a: torch.Tensor) -> torch.Tensor:
    """Histogram bin of each non-negative float: its bit pattern without the low mantissa bits.

    For non-negative IEEE floats the bit pattern read as an integer is monotone in the value, so the bins
    are ordered, log-spaced (exponent + 6 mantissa bits) and cover the whole range with no range pass.
    """
    if a.dtype == torch.float64:
        return a.view(torch.int64) >> (52 - _MANTISSA_BITS)
    return (a.view(torch.int32) >> (23 - _MANTISSA_BITS)).to(torch.int64)


def _nbins(dtype: torch.dtype) -> int:
    return 1 << (12 + _MANTISSA_BITS) if dtype == torch.float64 else 1 << (9 + _MANTISSA_BITS)


def _chunks(t: torch.Tensor) -> Iterator[torch.Tensor]:
    flat = t.reshape(-1)
    for i in range(0, flat.numel(), _CHUNK):
        yield flat[i: i + _CHUNK].abs()


def global_magnitude_threshold(tensors: Callable[[], Iterable[torch.Tensor]], density: float) -> float:
    r"""The exact :math:`k`-th largest :math:`|x|` over all tensors yielded by ``tensors()``, without
    concatenating them; :math:`k = \lfloor density \cdot n\rfloor`, :math:`n` the total entry count.

    Pass 1 counts magnitudes in a fixed log-spaced histogram (the float's bits down to 1/64 of an octave,
    so no range pass is needed) and finds the bin holding the :math:`k`-th largest value; pass 2 collects
    the values of that one bin and selects the exact one. The result equals
    ``torch.cat([t.abs().flatten() ...]).kthvalue(n-k+1)`` bit for bit; extra memory is the histogram
    (128 KiB for float32) plus the values of one bin. ``tensors`` is called twice (each re-reads lazily).
    """
    counts: torch.Tensor | None = None
    n = 0
    for t in tensors():
        n += t.numel()
        for c in _chunks(t):
            h = torch.bincount(_bins(c), minlength=_nbins(c.dtype))
            counts = h if counts is None else counts + h
    k = int(density * n)
    if k <= 0 or counts is None:
        return math.inf
    if k >= n:
        return 0.0
    from_top = counts.flip(0).cumsum(0)
    pos = int(torch.searchsorted(from_top, torch.tensor(k)))  # first index (from the top) with cum >= k
    target = counts.numel() - 1 - pos
    above = int(from_top[pos - 1]) if pos > 0 else 0
    rank = k - above  # rank-th largest inside the target bin
    found: list[torch.Tensor] = []
    for t in tensors():
        for c in _chunks(t):
            sel = c[_bins(c) == target]
            if sel.numel():
                found.append(sel)
    return _kth_largest(torch.cat(found), rank)


# --- the streaming merge --------------------------------------------------------------------------


def _parse_params(method: str, params: Mapping[str, Any] | None, n_models: int) -> dict[str, Any]:
    allowed = _PARAMS[method]
    out = dict(allowed)
    for key, value in (params or {}).items():
        k = "lambda" if key in ("lambda_", "lam", "scale") else key
        if k not in allowed:
            raise WeightzooError(f"{method} takes no parameter {key!r}; it takes: {', '.join(allowed) or 'none'}")
        out[k] = value
    if "density" in out:
        dens = out["density"]
        dens = list(dens) if isinstance(dens, list | tuple) else [dens] * n_models
        if len(dens) != n_models or not all(isinstance(d, int | float) and 0.0 < float(d) <= 1.0 for d in dens):
            raise WeightzooError(f"density must be in (0, 1] (one value, or one per model): got {out['density']!r}")
        out["density"] = [float(d) for d in dens]
    if "t" in out and not (isinstance(out["t"], int | float) and 0.0 <= float(out["t"]) <= 1.0):
        raise WeightzooError(f"slerp t must be in [0, 1], got {out['t']!r}")
    for b in ("normalize",):
        if b in out and not isinstance(out[b], bool):
            raise WeightzooError(f"{b} must be true or false, got {out[b]!r}")
    if "lambda" in out and not isinstance(out["lambda"], int | float):
        raise WeightzooError(f"lambda must be a number, got {out['lambda']!r}")
    return out


class MergedStateDict(Mapping[str, torch.Tensor]):
    """The lazy result of :func:`merge`: each tensor is computed when read.

    Attributes:
        method, params, weights, seed, trim: the merge as asked (``params`` with defaults filled in).
        specs: output name → :class:`~weightzoo.analysis.task_vectors.TensorSpec` (known before any read).
        report: the :class:`~weightzoo.analysis.task_vectors.MatchReport` of the inputs against the base.
        labels: printable names of the base (or ``None``) and the models.
    """

    def __init__(self, method: str, models: Sequence[Any], base: Any = None, *, weights: Sequence[float] | None = None,
                 params: Mapping[str, Any] | None = None, seed: int = 0, trim: str = "tensor",
                 dtype: torch.dtype | None = None, missing: str = "error", zoo: Any = None) -> None:
        self.method = resolve_method(method)
        check_policy(missing)
        if trim not in ("tensor", "global"):
            raise WeightzooError(f"trim={trim!r}: choose 'tensor' or 'global'")
        models = list(models)
        if self.method == "slerp" and base is not None and len(models) == 1:
            models = [base, models[0]]  # interpolate from the base to the model
            base = None
        if not models:
            raise WeightzooError(f"{self.method} needs at least one model")
        if self.method == "slerp" and len(models) != 2:
            raise WeightzooError(f"slerp merges exactly two models (got {len(models)})")
        if self.method in _USES_BASE and base is None:
            raise WeightzooError(f"{self.method} needs a base model (the one the fine-tunes started from)")
        if weights is None:
            weights = [1.0] * len(models)
        weights = [float(w) for w in weights]
        if len(weights) != len(models):
            raise WeightzooError(f"{len(weights)} weights for {len(models)} models")
        self.params = _parse_params(self.method, params, len(models))
        if self.method == "linear" and self.params["normalize"] and abs(sum(weights)) < 1e-12:
            raise WeightzooError("linear merge with normalize: the weights sum to zero")
        self.weights, self.seed, self.trim = weights, int(seed), trim
        self.model_labels = [source_label(m, i) for i, m in enumerate(models)]
        self.labels: dict[str, Any] = {"base": None if base is None else source_label(base),
                                       "models": self.model_labels}
        self._models = [open_source(m, zoo=zoo) for m in models]
        self._base = open_source(base, zoo=zoo) if base is not None else None
        ref = self._base if self._base is not None else self._models[0]
        self._ref = ref
        ref_specs = tensor_specs(ref)
        others = [(lab, tensor_specs(sd)) for lab, sd in zip(self.model_labels, self._models)]
        if self._base is None:
            others = others[1:]
        self.report: MatchReport = match_models(ref_specs, others, missing=missing)
        self._ref_specs = ref_specs
        self._model_specs = ([ref_specs] if self._base is None else []) + [sp for _, sp in others]
        skip = set(self.report.skipped)
        self.specs: dict[str, TensorSpec] = {
            n: TensorSpec(s.shape, dtype if (dtype is not None and s.is_float) else s.dtype)
            for n, s in ref_specs.items() if n not in skip}
        self._merged = set(self.report.names)
        self._thresholds: list[float] | None = None

    # --- mapping protocol -------------------------------------------------------------------------
    def __iter__(self) -> Iterator[str]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def __contains__(self, name: object) -> bool:
        return name in self.specs

    def tensor_infos(self) -> list[Any]:
        """The output tensor table (name, dtype code, shape) without computing anything."""
        from ..zoo.dtypes import dtype_from_torch
        from ..zoo.formats.base import TensorInfo

        return [TensorInfo(n, dtype_from_torch(s.dtype).code, s.shape) for n, s in self.specs.items()]

    def __getitem__(self, name: str) -> torch.Tensor:
        spec = self.specs[name]
        if name not in self._merged:  # integer buffers, tensors kept from the base by policy
            return read_as(self._ref, name, spec.dtype)
        ct = self._ct(name)
        if self.method in ("mean", "linear"):
            out = self._weighted_sum(name, ct)
        elif self.method == "slerp":
            a = self._models[0][name].to(ct)
            b = self._models[1][name].to(ct)
            out = slerp_tensor(a, b, float(self.params["t"]))
        else:
            out = self._task_merge(name, ct)
        return out.to(spec.dtype)

    def _ct(self, name: str) -> torch.dtype:
        return compute_dtype(self._ref_specs[name].dtype, *(sp[name].dtype for sp in self._model_specs))

    def _weighted_sum(self, name: str, ct: torch.dtype) -> torch.Tensor:
        ws = self.weights if self.method == "linear" else [1.0] * len(self._models)
        acc: torch.Tensor | None = None
        for sd, w in zip(self._models, ws):
            t = read_as(sd, name, ct)
            if acc is None:
                acc = t.mul_(w) if w != 1.0 else t
            else:
                acc.add_(t, alpha=w)
            del t
        assert acc is not None  # at least one model (checked in __init__)
        if self.method == "mean":
            acc.div_(len(self._models))
        elif self.params["normalize"]:
            acc.div_(sum(ws))
        return acc

    def thresholds(self) -> list[float]:
        """Per-model global magnitude thresholds for ``trim="global"`` (computed once, two streaming passes)."""
        if self._thresholds is None:
            assert self._base is not None
            base = self._base

            def tensors(sd: Mapping[str, torch.Tensor]) -> Callable[[], Iterator[torch.Tensor]]:
                def gen() -> Iterator[torch.Tensor]:
                    for n in self.report.names:
                        ct = self._ct(n)
                        yield read_as(sd, n, ct).sub_(base[n].to(ct))
                return gen

            self._thresholds = [global_magnitude_threshold(tensors(sd), d)
                                for sd, d in zip(self._models, self.params["density"])]
        return self._thresholds

    def _task_merge(self, name: str, ct: torch.dtype) -> torch.Tensor:
        assert self._base is not None
        p = self.params
        base_t = read_as(self._base, name, ct)
        deltas: list[torch.Tensor] = []
        for i, sd in enumerate(self._models):
            d = read_as(sd, name, ct).sub_(base_t)
            if self.method == "ties":
                thr = self.thresholds()[i] if self.trim == "global" else magnitude_threshold(d, p["density"][i])
                d = trim(d, thr)
            elif self.method in ("dare", "dare-ties"):
                g = torch.Generator().manual_seed(tensor_seed(self.seed, i, name))
                dare_(d, p["density"][i], g)
            deltas.append(d)
        if self.method in ("ties", "dare-ties"):
            mixed = disjoint_merge(deltas, self.weights, normalize=p["normalize"])
        else:
            mixed = deltas[0].mul_(self.weights[0]) if self.weights[0] != 1.0 else deltas[0]
            for d, w in zip(deltas[1:], self.weights[1:]):
                mixed.add_(d, alpha=w)
            if p["normalize"]:
                s = sum(self.weights)
                mixed.div_(s if abs(s) >= 1e-8 else 1.0)
        del deltas
        return base_t.add_(mixed, alpha=float(p["lambda"]))

    def summary(self) -> dict[str, Any]:
        """What was merged, how, and the match report; JSON-ready."""
        return {"method": self.method, "base": self.labels["base"], "models": self.labels["models"],
                "weights": self.weights, "params": self.params, "seed": self.seed,
                "trim": self.trim if self.method == "ties" else None,
                "tensors": len(self.specs), "merged_tensors": len(self._merged),
                "parameters": sum(s.numel for s in self.specs.values()), "report": self.report.summary()}


def merge(method: str, models: Sequence[Any], base: Any = None, *, weights: Sequence[float] | None = None,
          params: Mapping[str, Any] | None = None, seed: int = 0, trim: str = "tensor",
          dtype: torch.dtype | None = None, missing: str = "error", zoo: Any = None) -> MergedStateDict:
    """Merge ``models`` (with ``base``) by ``method``; returns a lazy :class:`MergedStateDict`.

    Args:
        method: one of ``mean``, ``linear``, ``task-arithmetic``, ``ties``, ``dare``, ``dare-ties``, ``slerp``.
        models: zoo model names, checkpoint paths, modules, Checkpoints or state dicts.
        base: the common base (required for task-vector methods; for ``slerp`` with one model it is the
            start point; for ``mean``/``linear`` it only fixes the tensor table, dtypes and buffers).
        weights: one per model (default 1).
        params: ``density`` (float or one per model; ties 0.2, dare/dare-ties 0.5), ``lambda`` (1.0),
            ``normalize`` (ties/dare-ties/linear True, others False), ``t`` (slerp, 0.5).
        seed: DARE's base seed. trim: ``"tensor"`` or ``"global"`` (TIES). dtype: output dtype of
            floating tensors (default: the base's). missing: ``error``/``skip``/``keep-base``.
        zoo: a Zoo or its folder to resolve model names.

    Example::

        merged = merge("ties", ["ft_a.safetensors", "ft_b.safetensors"], base="base.safetensors",
                       params={"density": 0.2})
        save_merged(merged, "merged.safetensors")
    """
    return MergedStateDict(method, models, base, weights=weights, params=params, seed=seed, trim=trim, dtype=dtype,
                           missing=missing, zoo=zoo)


def as_checkpoint(tensors: Mapping[str, torch.Tensor]) -> Any:
    """A :class:`~weightzoo.zoo.formats.Checkpoint` over a lazy mapping (a merge, an applied task vector):
    the table comes from ``specs``/``tensor_infos`` and each read computes one tensor, so a zoo ingests
    it streaming (handing the mapping itself to ``ingest`` would materialise every tensor first)."""
    from ..zoo.dtypes import dtype_from_torch, tensor_bytes
    from ..zoo.formats.base import Checkpoint, TensorInfo

    specs = getattr(tensors, "specs", None) or tensor_specs(tensors)
    infos = [TensorInfo(n, dtype_from_torch(s.dtype).code, s.shape) for n, s in specs.items()]

    class _LazyCheckpoint(Checkpoint):
        def read(self, name: str) -> torch.Tensor:
            return tensors[name].contiguous()

        def read_bytes(self, name: str) -> memoryview:
            return tensor_bytes(self.read(name))

    return _LazyCheckpoint(path=None, format="state-dict", tensors=infos)


def save_merged(merged: Mapping[str, torch.Tensor], out: str | os.PathLike[str], *, zoo: Any = None,
                max_shard_size: int | str | None = None, parents: Sequence[str] = (),
                metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write a (lazy) merge tensor by tensor: to ``zoo:NAME`` (ingested into ``zoo``, with lineage edges
    child → each zoo parent, relation ``"merge"``), a ``.safetensors`` file, or a folder (shards by
    ``max_shard_size``). Returns where it went."""
    import json

    summary = merged.summary() if isinstance(merged, MergedStateDict) else {}
    out_s = os.fspath(out)
    if out_s.startswith("zoo:"):
        from ..zoo.store import Zoo

        name = out_s[4:]
        if not name:
            raise WeightzooError("zoo:NAME needs a model name after 'zoo:'")
        if zoo is None:
            raise WeightzooError(f"writing to {out_s} needs a zoo (--zoo DIR)")
        z = zoo if isinstance(zoo, Zoo) else Zoo.open(zoo, create=True)
        try:
            zmeta = {"merge": summary, **(dict(metadata) if metadata else {})}
            rec = z.ingest(as_checkpoint(merged), name=name, metadata=json.loads(json.dumps(zmeta, default=str)))
            for p in parents:
                z.add_lineage(name, p, "merge", evidence={"method": summary.get("method")})
        finally:
            if z is not zoo:
                z.close()
        return {"zoo": str(getattr(z, "path", zoo)), "model": getattr(rec, "name", name), "parents": list(parents)}
    from .safetensors_writer import write_safetensors

    meta: dict[str, str] | None = {"weightzoo_merge": json.dumps(summary, default=str)} if summary else None
    if metadata:
        meta = {**(meta or {}), **{str(k): str(v) for k, v in metadata.items()}}
    files = write_safetensors(merged, out_s, specs=getattr(merged, "specs", None), max_shard_size=max_shard_size,
                              metadata=meta)
    return {"files": [str(f) for f in files]}


__all__ = [
    "METHODS",
    "MergedStateDict",
    "dare_",
    "disjoint_merge",
    "global_magnitude_threshold",
    "magnitude_threshold",
    "as_checkpoint",
    "merge",
    "resolve_method",
    "save_merged",
    "slerp_tensor",
    "tensor_seed",
    "trim",
]
