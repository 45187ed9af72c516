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

import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from weightzoo.errors import InvalidOptionError

from .merge_kernels import (
    SLERP_DOT_THRESHOLD,
    dare_,
    delta_threshold,
    disjoint_merge,
    disjoint_merge_into,
    executor,
    global_magnitude_threshold,
    magnitude_threshold,
    merge_workers,
    slerp_tensor,
    tensor_seed,
    trim,
)
from .sources import (
    SpecStateDict,
    TensorSpec,
    compute_dtype,
    open_source,
    read_as,
    source_label,
    tensor_specs,
)
from .task_vectors import MatchReport, check_policy, match_models

if TYPE_CHECKING:
    from weightzoo.zoo.store import ZooLike

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


def resolve_method(method: str) -> str:
    """The canonical method name (``task_arithmetic`` and ``dare_ties`` spellings accepted)."""
    m = method.strip().lower().replace("_", "-")
    m = {"soup": "mean", "dare-linear": "dare", "ta": "task-arithmetic"}.get(m, m)
    if m not in METHODS:
        raise InvalidOptionError(f"unknown merge method {method!r}; choose one of {', '.join(METHODS)}")
    return m


# --- the streaming merge --------------------------------------------------------------------------


def _parse_params(method: str, params: Mapping[str, Any] | None, n_models: int) -> dict[str, Any]:
    allowed = _PARAMS[method]
    out = dict(allowed)
    for key, value in (params or {}).items():
        k = "lambda" if key in ("lambda_", "lam", "scale") else key
        if k not in allowed:
            raise InvalidOptionError(f"{method} takes no parameter {key!r}; it takes: {', '.join(allowed) or 'none'}")
        out[k] = value
    if "density" in out:
        dens = out["density"]
        dens = list(dens) if isinstance(dens, list | tuple) else [dens] * n_models
        if len(dens) != n_models or not all(isinstance(d, int | float) and 0.0 < float(d) <= 1.0 for d in dens):
            raise InvalidOptionError(f"density must be in (0, 1] (one value, or one per model): got {out['density']!r}")
        out["density"] = [float(d) for d in dens]
    if "t" in out and not (isinstance(out["t"], int | float) and 0.0 <= float(out["t"]) <= 1.0):
        raise InvalidOptionError(f"slerp t must be in [0, 1], got {out['t']!r}")
    for b in ("normalize",):
        if b in out and not isinstance(out[b], bool):
            raise InvalidOptionError(f"{b} must be true or false, got {out[b]!r}")
    if "lambda" in out and not isinstance(out["lambda"], int | float):
        raise InvalidOptionError(f"lambda must be a number, got {out['lambda']!r}")
    return out


_NP_FLOAT = {torch.float32: np.float32, torch.float64: np.float64}


def _mapped_view(sd: Mapping[str, torch.Tensor], name: str, dtype: torch.dtype) -> np.ndarray | None:
    """A read-only 1-D view of ``sd[name]`` straight from its checkpoint's bytes (no copy for memory-mapped
    formats) when it is stored as ``dtype`` in native byte order; ``None`` otherwise."""
    from weightzoo.zoo.formats.base import Checkpoint
    from weightzoo.zoo.formats.dtypes import dtype_from_torch

    ckpt = getattr(sd, "checkpoint", None)
    if not isinstance(ckpt, Checkpoint) or sys.byteorder != "little" or dtype not in _NP_FLOAT:
        return None
    if ckpt.info(name).dtype != dtype_from_torch(dtype).code:
        return None
    return np.frombuffer(ckpt.read_bytes(name), dtype=_NP_FLOAT[dtype])


class MergedStateDict(SpecStateDict):
    """The lazy result of :func:`merge`: each tensor is computed when read.

    Attributes:
        method, params, weights, seed, trim: the merge as asked (``params`` with defaults filled in).
        specs: output name → :class:`~weightzoo.analysis.task_vectors.TensorSpec` (known before any read).
        report: the :class:`~weightzoo.analysis.task_vectors.MatchReport` of the inputs against the base.
        labels: printable names of the base (or ``None``) and the models.
    """

    def __init__(self, method: str, models: Sequence[Any], base: Any = None, *, weights: Sequence[float] | None = None,
                 params: Mapping[str, Any] | None = None, seed: int = 0, trim: str = "tensor",
                 dtype: torch.dtype | None = None, missing: str = "error", zoo: Any = None,
                 align: bool = False) -> None:
        self.method = resolve_method(method)
        check_policy(missing)
        if trim not in ("tensor", "global"):
            raise InvalidOptionError(f"trim={trim!r}: choose 'tensor' or 'global'")
        models = list(models)
        if self.method == "slerp" and base is not None and len(models) == 1:
            models = [base, models[0]]  # interpolate from the base to the model
            base = None
        if not models:
            raise InvalidOptionError(f"{self.method} needs at least one model")
        if self.method == "slerp" and len(models) != 2:
            raise InvalidOptionError(f"slerp merges exactly two models (got {len(models)})")
        if self.method in _USES_BASE and base is None:
            raise InvalidOptionError(f"{self.method} needs a base model (the one the fine-tunes started from)")
        if weights is None:
            weights = [1.0] * len(models)
        weights = [float(w) for w in weights]
        if len(weights) != len(models):
            raise InvalidOptionError(f"{len(weights)} weights for {len(models)} models")
        self.params = _parse_params(self.method, params, len(models))
        if self.method == "linear" and self.params["normalize"] and abs(sum(weights)) < 1e-12:
            raise InvalidOptionError("linear merge with normalize: the weights sum to zero")
        self.weights, self.seed, self.trim = weights, int(seed), trim
        self.model_labels = [source_label(m, i) for i, m in enumerate(models)]
        self.labels: dict[str, Any] = {"base": None if base is None else source_label(base),
                                       "models": self.model_labels}
        self._models = [open_source(m, zoo=zoo) for m in models]
        if align and len(self._models) > 1:
            self._models = aligned_to_first(models[0], self._models, zoo=zoo)
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
        super().__init__({n: TensorSpec(s.shape, dtype if (dtype is not None and s.is_float) else s.dtype)
                          for n, s in ref_specs.items() if n not in skip})
        self._merged = set(self.report.names)
        self._thresholds: list[float] | None = None
        # TIES reads float inputs straight from memory-mapped checkpoints into one reused buffer per model
        # (warm pages: a fresh allocation per tensor costs more than the arithmetic); dropped after the
        # last merged tensor of the table, so a finished merge holds nothing.
        self._buffers: dict[tuple[int, torch.dtype], np.ndarray] = {}
        merged_names = [n for n in self.specs if n in self._merged]
        self._last_merged = merged_names[-1] if merged_names else None
        self._largest = max((ref_specs[n].numel for n in merged_names), default=0)

    # --- one merged tensor -----------------------------------------------------------------------
    def _load(self, name: str) -> torch.Tensor:
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
        if name == self._last_merged:
            self._buffers.clear()
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

            # One dtype for the whole pass: the magnitude histogram's bins depend on it.
            ct = torch.float32
            for n in self.report.names:
                ct = torch.promote_types(ct, self._ct(n))

            def tensors(sd: Mapping[str, torch.Tensor]) -> Callable[[], Iterator[torch.Tensor]]:
                def gen() -> Iterator[torch.Tensor]:
                    for n in self.report.names:
                        yield read_as(sd, n, ct).sub_(base[n].to(ct))
                return gen

            self._thresholds = [global_magnitude_threshold(tensors(sd), d)
                                for sd, d in zip(self._models, self.params["density"])]
        return self._thresholds

    def _task_merge(self, name: str, ct: torch.dtype) -> torch.Tensor:
        assert self._base is not None
        p = self.params
        base_t = read_as(self._base, name, ct)
        shape = base_t.shape
        base_f = base_t.detach().contiguous().reshape(-1)  # the output: every kernel works on flat, contiguous tensors
        if self.method == "ties" and self.trim == "tensor" and ct in (torch.float32, torch.float64):
            return self._ties_tensor(name, ct, base_f).reshape(shape)
        deltas: list[torch.Tensor] = []
        thresholds: list[float] = []
        for i, sd in enumerate(self._models):
            d = read_as(sd, name, ct).contiguous().reshape(-1).sub_(base_f)
            if self.method == "ties":
                thresholds.append(self.thresholds()[i] if self.trim == "global" else magnitude_threshold(d, p["density"][i]))
            elif self.method in ("dare", "dare-ties"):
                g = torch.Generator().manual_seed(tensor_seed(self.seed, i, name))
                dare_(d, p["density"][i], g)
            deltas.append(d)
        lam = float(p["lambda"])
        if self.method in ("ties", "dare-ties"):
            # trim (TIES), elect, disjoint mean and θ₀ + λ·m, block by block into the base's buffer
            disjoint_merge_into(base_f, deltas, self.weights, normalize=p["normalize"], lam=lam,
                                thresholds=thresholds or None)
            return base_f.reshape(shape)
        mixed = deltas[0].mul_(self.weights[0]) if self.weights[0] != 1.0 else deltas[0]
        for d, w in zip(deltas[1:], self.weights[1:]):
            mixed.add_(d, alpha=w)
        if p["normalize"]:
            s = sum(self.weights)
            mixed.div_(s if abs(s) >= 1e-8 else 1.0)
        del deltas
        return base_f.add_(mixed, alpha=lam).reshape(shape)

    def _ties_tensor(self, name: str, ct: torch.dtype, base_f: torch.Tensor) -> torch.Tensor:
        """TIES with per-tensor trimming: each input read once (zero-copy where mapped), τᵢ and its threshold
        in one pass each (on worker threads while the next input is read), then the blockwise merge."""
        n = base_f.numel()
        b = base_f.numpy()
        workers = merge_workers(n)
        pending: list[Future[float] | float] = []
        deltas: list[torch.Tensor] = []
        for i, sd in enumerate(self._models):
            src = _mapped_view(sd, name, ct)
            if src is None:
                src = out = read_as(sd, name, ct).detach().contiguous().reshape(-1).numpy()
            else:
                out = self._buffer(i, ct)[:n]
            args = (src, b, out, self.params["density"][i])
            pending.append(executor(workers).submit(delta_threshold, *args) if workers > 1 else delta_threshold(*args))
            deltas.append(torch.from_numpy(out))
        thresholds = [t.result() if isinstance(t, Future) else t for t in pending]
        return disjoint_merge_into(base_f, deltas, self.weights, normalize=self.params["normalize"],
                                   lam=float(self.params["lambda"]), thresholds=thresholds)

    def _buffer(self, i: int, dtype: torch.dtype) -> np.ndarray:
        buf = self._buffers.get((i, dtype))
        if buf is None:
            buf = self._buffers[(i, dtype)] = np.empty(self._largest, dtype=_NP_FLOAT[dtype])
        return buf

    def summary(self) -> dict[str, Any]:
        """What was merged, how, and the match report; JSON-ready."""
        return {"method": self.method, "base": self.labels["base"], "models": self.labels["models"],
                "weights": self.weights, "params": self.params, "seed": self.seed,
                "trim": self.trim if self.method == "ties" else None,
                "tensors": len(self.specs), "merged_tensors": len(self._merged),
                "parameters": sum(s.numel for s in self.specs.values()), "report": self.report.summary()}


def aligned_to_first(first: Any, models: Sequence[Mapping[str, torch.Tensor]], *, zoo: Any = None,
                     seed: int = 0) -> list[Mapping[str, torch.Tensor]]:
    """Every model permuted by Git Re-Basin weight matching (:func:`weightzoo.zoo.symmetry.align`) to best match
    the first, so models that do not share an initialisation can be merged.

    The architecture comes from the first model: a module as given, else its spec
    (:func:`~weightzoo.zoo.store.resolve_spec`; class references and ``transformers`` families without a
    fast path are rebuilt and recorded). Aligned models are held in memory.
    """
    from torch import nn

    from weightzoo.zoo.arch import CLASS_FORMAT, build_module
    from weightzoo.zoo.store import resolve_spec
    from weightzoo.zoo.symmetry import align

    ref_sd = {k: models[0][k] for k in models[0].keys()}
    module: nn.Module | None = first if isinstance(first, nn.Module) else None
    spec: Mapping[str, Any] | None = None
    if module is None:
        spec = resolve_spec(first, zoo=zoo) if isinstance(first, str | os.PathLike) else None
        if spec is None:
            raise InvalidOptionError("align needs the first model's architecture: pass a module, a zoo model "
                                     "with a spec, a checkpoint folder with config.json or pkg.module:Class")
        if spec.get("format") in (CLASS_FORMAT, "hf"):
            from weightzoo.zoo.graphs.parameter_graph import needs_recording

            if needs_recording(spec):
                module = build_module(spec)
                module.load_state_dict(ref_sd, strict=True)
                module.eval()
    out: list[Mapping[str, torch.Tensor]] = [models[0]]
    for sd in models[1:]:
        b = {k: sd[k] for k in sd.keys()}
        if module is not None:
            aligned, _ = align(module, b, seed=seed)
        else:
            aligned, _ = align(ref_sd, b, spec=spec, seed=seed)
        out.append(aligned)
    return out


def merge(method: str, models: Sequence[Any], base: Any = None, *, weights: Sequence[float] | None = None,
          params: Mapping[str, Any] | None = None, seed: int = 0, trim: str = "tensor",
          dtype: torch.dtype | None = None, missing: str = "error", zoo: Any = None,
          align: bool = False) -> MergedStateDict:
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
        align: permute every model to best match the first (Git Re-Basin weight matching,
            :func:`aligned_to_first`) before merging — for models that do not share an initialisation.

    Example::

        merged = merge("ties", ["ft_a.safetensors", "ft_b.safetensors"], base="base.safetensors",
                       params={"density": 0.2})
        save_merged(merged, "merged.safetensors")
    """
    return MergedStateDict(method, models, base, weights=weights, params=params, seed=seed, trim=trim, dtype=dtype,
                           missing=missing, zoo=zoo, align=align)


def as_checkpoint(tensors: Mapping[str, torch.Tensor]) -> Any:
    """A :class:`~weightzoo.zoo.formats.Checkpoint` over a lazy mapping (a merge, an applied task vector):
    the table comes from ``specs``/``tensor_infos`` and each read computes one tensor, so a zoo ingests
    it streaming (handing the mapping itself to ``ingest`` would materialise every tensor first)."""
    from weightzoo.zoo.formats.base import Checkpoint, TensorInfo
    from weightzoo.zoo.formats.dtypes import dtype_from_torch, tensor_bytes

    specs = getattr(tensors, "specs", None) or tensor_specs(tensors)
    infos = [TensorInfo(n, dtype_from_torch(s.dtype).code, s.shape) for n, s in specs.items()]

    class _LazyCheckpoint(Checkpoint):
        def read(self, name: str) -> torch.Tensor:
            return tensors[name].contiguous()

        def read_bytes(self, name: str) -> memoryview:
            return tensor_bytes(self.read(name))

    return _LazyCheckpoint(path=None, format="state-dict", tensors=infos)


def save_merged(merged: Mapping[str, torch.Tensor], out: str | os.PathLike[str], *, zoo: ZooLike | None = None,
                max_shard_size: int | str | None = None, parents: Sequence[str] = (),
                metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write a (lazy) merge tensor by tensor: to ``zoo:NAME`` (ingested into ``zoo``, with lineage edges
    child → each zoo parent, relation ``"merge"``), a ``.safetensors`` file, or a folder (shards by
    ``max_shard_size``). Returns where it went."""
    import json

    summary = merged.summary() if isinstance(merged, MergedStateDict) else {}
    out_s = os.fspath(out)
    if out_s.startswith("zoo:"):
        from weightzoo.zoo.store import using_zoo

        name = out_s[4:]
        if not name:
            raise InvalidOptionError("zoo:NAME needs a model name after 'zoo:'")
        if zoo is None:
            raise InvalidOptionError(f"writing to {out_s} needs a zoo (--zoo DIR)")
        with using_zoo(zoo, create=True) as z:
            zmeta = {"merge": summary, **(dict(metadata) if metadata else {})}
            rec = z.ingest(as_checkpoint(merged), name=name, metadata=json.loads(json.dumps(zmeta, default=str)))
            for p in parents:
                z.add_lineage(name, p, "merge", evidence={"method": summary.get("method")})
            return {"zoo": str(z.path), "model": rec.name, "parents": list(parents)}
    from weightzoo.zoo.formats.writer import save_state_dict

    meta: dict[str, str] | None = {"weightzoo_merge": json.dumps(summary, default=str)} if summary else None
    if metadata:
        meta = {**(meta or {}), **{str(k): str(v) for k, v in metadata.items()}}
    files = save_state_dict(merged, out_s, max_shard_bytes=max_shard_size, metadata=meta)
    return {"files": [str(f) for f in files]}


__all__ = [
    "METHODS",
    "SLERP_DOT_THRESHOLD",
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
