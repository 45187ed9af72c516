r"""Task vectors: the difference a fine-tune made to its base, as a lazy, per-tensor object.

A task vector (Ilharco et al., *Editing Models with Task Arithmetic*, ICLR 2023) is

.. math::
    \tau = \theta_{\mathrm{ft}} - \theta_{\mathrm{base}},

one tensor per floating-point parameter or buffer of the base. :class:`TaskVector` computes each tensor on
demand (one read of the fine-tune and one of the base), so a task vector of any size costs the memory of
its largest tensor. Task vectors add, subtract, negate and scale (each result is again lazy), are applied to
a base with :meth:`TaskVector.apply_to`, and compare by norm and cosine similarity, whole or per block.

Integer and boolean tensors (BatchNorm ``num_batches_tracked``, ``position_ids``) are not differences of
anything: they are left out of the task vector and passed through from the base when it is applied.

LoRA adapters in the PEFT layout become task vectors with :meth:`TaskVector.from_lora`: for each adapted
module, :math:`\Delta W = s\,BA` with :math:`s = \alpha / r` (or :math:`\alpha/\sqrt{r}` with
``use_rslora``), keyed by the base tensor's name.
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from weightzoo.errors import InvalidOptionError, ShapeMismatchError, TensorNotFoundError

from .sources import (
    SpecStateDict,
    TensorSpec,
    compute_dtype,
    open_source,
    owns_reads,
    read_as,
    source_label,
    tensor_specs,
)

if TYPE_CHECKING:
    from weightzoo.zoo.store import ZooLike

MISSING_POLICIES = ("error", "skip", "keep-base")


# --- matching models tensor by tensor -----------------------------------------------------------------


@dataclass
class MatchReport:
    """How a set of models lines up with a base, tensor by tensor.

    Attributes:
        names: the tensors that take part (floating point, present in every model or kept by policy).
        passthrough: integer/bool tensors of the base, copied unchanged.
        missing: model label → base tensors that model lacks.
        extra: model label → tensors the model has and the base does not (ignored).
        shape_mismatches: ``(tensor, base shape, model shape)`` per offending tensor (always an error).
        policy: what was done with missing tensors: ``"error"``, ``"skip"`` or ``"keep-base"``.
        kept_base: tensors copied from the base because some model lacked them (``keep-base``).
        skipped: tensors left out of the result because some model lacked them (``skip``).
    """

    names: list[str] = field(default_factory=list)
    passthrough: list[str] = field(default_factory=list)
    missing: dict[str, list[str]] = field(default_factory=dict)
    extra: dict[str, list[str]] = field(default_factory=dict)
    shape_mismatches: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    policy: str = "error"
    kept_base: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Counts and the first offending names, JSON-ready."""
        return {
            "tensors": len(self.names),
            "passthrough": len(self.passthrough),
            "missing": {k: v[:20] for k, v in self.missing.items() if v},
            "extra": {k: v[:20] for k, v in self.extra.items() if v},
            "policy": self.policy,
            "kept_base": self.kept_base[:20],
            "skipped": self.skipped[:20],
        }


def check_policy(missing: str) -> str:
    if missing not in MISSING_POLICIES:
        raise InvalidOptionError(f"missing={missing!r} is not a policy; choose one of {', '.join(MISSING_POLICIES)}")
    return missing


def match_models(
    base: dict[str, TensorSpec], others: Sequence[tuple[str, dict[str, TensorSpec]]], *, missing: str = "error"
) -> MatchReport:
    """Line up models with a base by tensor name and shape.

    Shape mismatches always raise :class:`~weightzoo.errors.ShapeMismatchError` listing every offending
    tensor; a base tensor missing from a model raises
    :class:`~weightzoo.errors.TensorNotFoundError` (``missing="error"``), is left out (``"skip"``), or is
    taken unchanged from the base (``"keep-base"``).
    """
    check_policy(missing)
    rep = MatchReport(policy=missing)
    lacking: set[str] = set()
    for label, specs in others:
        rep.missing[label] = [n for n in base if n not in specs]
        rep.extra[label] = [n for n in specs if n not in base]
        lacking.update(rep.missing[label])
        for n, s in specs.items():
            b = base.get(n)
            if b is not None and b.shape != s.shape:
                rep.shape_mismatches.append((f"{label}:{n}", b.shape, s.shape))
            elif b is not None and b.is_float != s.is_float:
                rep.shape_mismatches.append((f"{label}:{n} (float vs non-float)", b.shape, s.shape))
    if rep.shape_mismatches:
        lines = "; ".join(f"{n}: base {tuple(a)} vs {tuple(b)}" for n, a, b in rep.shape_mismatches[:10])
        more = len(rep.shape_mismatches) - 10
        raise ShapeMismatchError(
            f"{len(rep.shape_mismatches)} tensor(s) differ in shape from the base: {lines}"
            + (f" (+{more} more)" if more > 0 else ""),
            rep.shape_mismatches,
        )
    for label, names in rep.missing.items():
        if names and missing == "error":
            listed = ", ".join(names[:10]) + (f" (+{len(names) - 10} more)" if len(names) > 10 else "")
            raise TensorNotFoundError(
                label, names[0], f"{len(names)} base tensor(s) missing: {listed}; pass missing='skip' or 'keep-base'"
            )
    for n, s in base.items():
        if not s.is_float:
            rep.passthrough.append(n)
        elif n in lacking:
            (rep.skipped if missing == "skip" else rep.kept_base).append(n)
        else:
            rep.names.append(n)
    return rep


# --- the task vector ----------------------------------------------------------------------------------


class _Delta(ABC):
    """A primitive lazy difference: ``shapes`` says which tensors it has, ``get`` computes one in fp32/64
    and returns a tensor the caller owns (may modify in place)."""

    shapes: dict[str, tuple[int, ...]]

    @abstractmethod
    def get(self, name: str) -> torch.Tensor:
        """One tensor of the difference."""


class _Diff(_Delta):
    def __init__(self, ft: Mapping[str, torch.Tensor], base: Mapping[str, torch.Tensor], rep: MatchReport,
                 specs: dict[str, TensorSpec], ft_specs: dict[str, TensorSpec], cache: bool) -> None:
        self.ft, self.base = ft, base
        self.ft_dtypes = {n: s.dtype for n, s in ft_specs.items()}
        self.shapes = {n: specs[n].shape for n in rep.names}
        self.zero = set(rep.kept_base)  # missing in the fine-tune, kept from the base: τ = 0
        self.shapes.update({n: specs[n].shape for n in rep.kept_base})
        self._cache: dict[str, torch.Tensor] | None = {} if cache else None

    def get(self, name: str) -> torch.Tensor:
        if self._cache is not None and name in self._cache:
            return self._cache[name].clone()  # callers may modify what they get
        if name in self.zero:
            return torch.zeros(self.shapes[name])
        b = self.base[name]
        dt = compute_dtype(b.dtype, self.ft_dtypes[name])
        d = read_as(self.ft, name, dt).sub_(b.to(dt))
        if self._cache is not None:
            self._cache[name] = d.clone()
        return d


class _Explicit(_Delta):
    """Deltas given as callables (LoRA ΔW) or tensors."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], fn: Callable[[str], torch.Tensor]) -> None:
        self.shapes, self._fn = shapes, fn

    def get(self, name: str) -> torch.Tensor:
        return self._fn(name)


class TaskVector(Mapping[str, torch.Tensor]):
    r"""A lazy task vector :math:`\tau = \theta_{\mathrm{ft}} - \theta_{\mathrm{base}}`.

    Args:
        finetuned: the fine-tuned model (zoo name, checkpoint path, ``nn.Module``, Checkpoint or dict).
        base: the model it was fine-tuned from (same kinds).
        zoo: a :class:`~weightzoo.zoo.store.Zoo` (or its folder) for model names.
        missing: what to do with base tensors the fine-tune lacks: ``"error"`` (default), ``"skip"``
            (left out), ``"keep-base"`` (τ = 0 there).
        cache: keep computed tensors in memory (fast repeated access, memory of the whole vector).

    Indexing returns a float32 tensor (float64 when an input is float64). Arithmetic (``+``, ``-``,
    unary ``-``, ``*`` and ``/`` by a scalar) returns a new lazy task vector; a tensor present in only one
    operand counts as zero in the other (a LoRA vector touches few tensors).

    Example::

        tau = TaskVector("ft.safetensors", "base.safetensors")
        merged = (0.5 * tau).apply_to("base.safetensors")   # lazy mapping of the edited model
    """

    is_task_vector: ClassVar[bool] = True  # refused where a model is expected (sources.open_source)

    def __init__(self, finetuned: Any = None, base: Any = None, *, zoo: ZooLike | None = None, missing: str = "error",
                 cache: bool = False) -> None:
        self._terms: list[tuple[float, _Delta]] = []
        self.base: Any = base
        self.zoo = zoo
        self.report = MatchReport(policy=missing)
        if finetuned is None and base is None:
            return
        if finetuned is None or base is None:
            raise InvalidOptionError("TaskVector needs both a fine-tuned model and its base")
        base_sd = open_source(base, zoo=zoo)
        ft_sd = open_source(finetuned, zoo=zoo)
        bspecs = tensor_specs(base_sd)
        fspecs = tensor_specs(ft_sd)
        self.report = match_models(bspecs, [(source_label(finetuned, 0), fspecs)], missing=missing)
        self._terms = [(1.0, _Diff(ft_sd, base_sd, self.report, bspecs, fspecs, cache))]

    # --- construction helpers ---------------------------------------------------------------------
    @classmethod
    def _combine(cls, terms: list[tuple[float, _Delta]], base: Any, zoo: ZooLike | None, report: MatchReport) -> TaskVector:
        tv = cls()
        tv._terms, tv.base, tv.zoo, tv.report = terms, base, zoo, report
        return tv

    @classmethod
    def from_tensors(cls, deltas: Mapping[str, torch.Tensor], base: Any = None) -> TaskVector:
        """A task vector from explicit deltas (kept as given; read lazily if the mapping is lazy)."""
        shapes = {n: tuple(deltas[n].shape) for n in deltas} if isinstance(deltas, dict) else {
            n: s.shape for n, s in tensor_specs(deltas).items()}

        def get(name: str) -> torch.Tensor:
            t = deltas[name]
            return t.to(compute_dtype(t.dtype), copy=True)

        return cls._combine([(1.0, _Explicit(shapes, get))], base, None, MatchReport(names=list(shapes)))

    @classmethod
    def from_lora(cls, adapter: str | os.PathLike[str] | Mapping[str, torch.Tensor], base: Any = None, *,
                  config: Mapping[str, Any] | None = None, zoo: ZooLike | None = None) -> TaskVector:
        """A task vector from a PEFT LoRA adapter: :math:`\\Delta W = s\\,BA` per adapted module.

        Args:
            adapter: a PEFT adapter folder (``adapter_config.json`` + ``adapter_model.safetensors`` or
                ``.bin``) or a mapping of its tensors (then pass ``config``).
            base: the base model; needed for non-LoRA tensors saved in the adapter (``modules_to_save``,
                trained biases), which become ``saved - base``, and to check shapes.
            config: the adapter config (``r``, ``lora_alpha``, ``use_rslora``, ``fan_in_fan_out``,
                ``alpha_pattern``); read from the folder when omitted.
        """
        from .lora import lora_deltas

        shapes, fn, base_sd = lora_deltas(adapter, base, config=config, zoo=zoo)
        rep = MatchReport(names=list(shapes))
        if base_sd is not None:
            bspecs = tensor_specs(base_sd)
            bad = [(n, bspecs[n].shape if n in bspecs else (), s) for n, s in shapes.items()
                   if n not in bspecs or bspecs[n].shape != s]
            if bad:
                raise ShapeMismatchError(
                    f"{len(bad)} LoRA delta(s) do not match a base tensor: "
                    + "; ".join(f"{n}: base {a} vs delta {b}" for n, a, b in bad[:10]), bad)
        return cls._combine([(1.0, _Explicit(shapes, fn))], base, zoo, rep)

    # --- mapping protocol -------------------------------------------------------------------------
    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Name → shape of every tensor of the vector (union over the terms, first-seen order)."""
        out: dict[str, tuple[int, ...]] = {}
        for _, d in self._terms:
            for n, s in d.shapes.items():
                if out.setdefault(n, s) != s:
                    raise ShapeMismatchError(f"task vectors disagree on the shape of {n!r}: {out[n]} vs {s}",
                                             [(n, out[n], s)])
        return out

    def __getitem__(self, name: str) -> torch.Tensor:
        acc: torch.Tensor | None = None
        for c, d in self._terms:
            if name not in d.shapes:
                continue
            t = d.get(name)
            if acc is None:
                acc = t.mul_(c) if c != 1.0 else t  # every _Delta.get returns a tensor we own
            else:
                if t.dtype != acc.dtype:
                    acc = acc.to(compute_dtype(acc.dtype, t.dtype))
                acc.add_(t.to(acc.dtype), alpha=c)
        if acc is None:
            raise KeyError(name)
        return acc

    def __iter__(self) -> Iterator[str]:
        return iter(self.shapes)

    def __len__(self) -> int:
        return len(self.shapes)

    def __contains__(self, name: object) -> bool:
        return any(name in d.shapes for _, d in self._terms)

    def __repr__(self) -> str:
        n = len(self)
        return f"TaskVector(tensors={n}, terms={len(self._terms)})"

    # --- algebra ----------------------------------------------------------------------------------
    def _check_compatible(self, other: TaskVector) -> None:
        mine = self.shapes
        bad = [(n, mine[n], s) for n, s in other.shapes.items() if n in mine and mine[n] != s]
        if bad:
            raise ShapeMismatchError(f"{len(bad)} tensor(s) differ in shape between the task vectors: "
                                     + "; ".join(f"{n}: {a} vs {b}" for n, a, b in bad[:10]), bad)

    def __add__(self, other: TaskVector) -> TaskVector:
        if not isinstance(other, TaskVector):
            return NotImplemented
        self._check_compatible(other)
        return TaskVector._combine(self._terms + other._terms, self.base, self.zoo or other.zoo, self.report)

    def __radd__(self, other: Any) -> TaskVector:
        if other == 0:  # sum([tv1, tv2, ...])
            return self
        return NotImplemented

    def __neg__(self) -> TaskVector:
        return self * -1.0

    def __sub__(self, other: TaskVector) -> TaskVector:
        if not isinstance(other, TaskVector):
            return NotImplemented
        return self + (-other)

    def __mul__(self, scalar: float) -> TaskVector:
        if isinstance(scalar, bool) or not isinstance(scalar, int | float):
            return NotImplemented
        return TaskVector._combine([(c * float(scalar), d) for c, d in self._terms], self.base, self.zoo, self.report)

    __rmul__ = __mul__

    def __truediv__(self, scalar: float) -> TaskVector:
        if isinstance(scalar, bool) or not isinstance(scalar, int | float):
            return NotImplemented
        return self * (1.0 / float(scalar))

    # --- measures ---------------------------------------------------------------------------------
    def block_norms(self, blocks: Callable[[str], str] | None = None) -> dict[str, float]:
        """L2 norm per block (per tensor, or per group named by ``blocks(tensor_name)``)."""
        sq: dict[str, float] = {}
        for n in self:
            key = blocks(n) if blocks else n
            sq[key] = sq.get(key, 0.0) + float(self[n].double().pow(2).sum())
        return {k: math.sqrt(v) for k, v in sq.items()}

    def norm(self) -> float:
        r"""The L2 norm over all tensors, :math:`\lVert\tau\rVert_2`."""
        return math.sqrt(sum(v * v for v in self.block_norms().values()))

    def _dots(self, other: TaskVector, blocks: Callable[[str], str] | None) -> dict[str, tuple[float, float, float]]:
        self._check_compatible(other)
        out: dict[str, list[float]] = {}
        for n in dict.fromkeys([*self, *other]):
            key = blocks(n) if blocks else n
            acc = out.setdefault(key, [0.0, 0.0, 0.0])
            a = self[n].double() if n in self else None
            b = other[n].double() if n in other else None
            if a is not None and b is not None:
                acc[0] += float((a * b).sum())
            if a is not None:
                acc[1] += float(a.pow(2).sum())
            if b is not None:
                acc[2] += float(b.pow(2).sum())
        return {k: (v[0], v[1], v[2]) for k, v in out.items()}

    def cosine(self, other: TaskVector) -> float:
        r"""Cosine similarity of the two whole vectors, :math:`\langle a,b\rangle / (\lVert a\rVert\lVert b\rVert)`
        (0 when either is zero)."""
        tot = [sum(x) for x in zip(*self._dots(other, None).values())]
        return _cos(*tot) if tot else 0.0

    def cosine_per_block(self, other: TaskVector, blocks: Callable[[str], str] | None = None) -> dict[str, float]:
        """Cosine similarity per tensor, or per group named by ``blocks(tensor_name)``."""
        return {k: _cos(*v) for k, v in self._dots(other, blocks).items()}

    # --- applying ---------------------------------------------------------------------------------
    def apply_to(self, base: Any = None, scale: float = 1.0, *, zoo: ZooLike | None = None, dtype: torch.dtype | None = None,
                 out: str | os.PathLike[str] | None = None, max_shard_size: int | None = None) -> Mapping[str, torch.Tensor]:
        r"""The edited model :math:`\theta_{\mathrm{base}} + s\,\tau`, as a lazy mapping over all base tensors.

        Tensors of the base that the vector lacks (integer buffers, tensors kept by policy) pass through
        unchanged. ``dtype`` sets the output dtype of floating tensors (default: each base tensor's own).
        With ``out`` (a ``.safetensors`` path or a folder for shards) the result is also written there,
        tensor by tensor.
        """
        src = self.base if base is None else base
        if src is None:
            raise InvalidOptionError("apply_to needs a base (none was given and the task vector has none)")
        base_sd = open_source(src, zoo=zoo if zoo is not None else self.zoo)
        specs = tensor_specs(base_sd)
        mine = self.shapes
        bad = [(n, specs[n].shape if n in specs else (), s) for n, s in mine.items()
               if n not in specs or specs[n].shape != s]
        if bad:
            raise ShapeMismatchError(f"{len(bad)} task-vector tensor(s) do not fit the base: "
                                     + "; ".join(f"{n}: base {a} vs {b}" for n, a, b in bad[:10]), bad)
        applied = _Applied(base_sd, specs, self, float(scale), dtype)
        if out is not None:
            from weightzoo.zoo.formats.writer import save_state_dict

            save_state_dict(applied, out, max_shard_bytes=max_shard_size)
        return applied


def _cos(dot: float, na: float, nb: float) -> float:
    den = math.sqrt(na) * math.sqrt(nb)
    return dot / den if den > 0 else 0.0


class _Applied(SpecStateDict):
    def __init__(self, base: Mapping[str, torch.Tensor], specs: dict[str, TensorSpec], tv: TaskVector, scale: float,
                 dtype: torch.dtype | None) -> None:
        self._base, self._tv, self._scale = base, tv, scale
        self._delta_names = set(tv.shapes)
        super().__init__({n: TensorSpec(s.shape, dtype if (dtype is not None and s.is_float) else s.dtype)
                          for n, s in specs.items()})

    def _load(self, name: str) -> torch.Tensor:
        spec = self.specs[name]
        if name not in self._delta_names:
            return read_as(self._base, name, spec.dtype)
        d = self._tv[name]
        return read_as(self._base, name, d.dtype).add_(d, alpha=self._scale).to(spec.dtype)


def task_vectors(models: Sequence[Any], base: Any, *, zoo: ZooLike | None = None, missing: str = "error") -> list[TaskVector]:
    """One :class:`TaskVector` per fine-tune in ``models`` against the same ``base``."""
    return [TaskVector(m, base, zoo=zoo, missing=missing) for m in models]


def block_of(name: str, depth: int = 1) -> str:
    """Group tensor names by layer: the name without its last ``depth`` dotted parts (``a.b.weight`` → ``a.b``)."""
    parts = name.split(".")
    return ".".join(parts[:-depth]) if len(parts) > depth else name


__all__ = [
    "MISSING_POLICIES",
    "MatchReport",
    "TaskVector",
    "TensorSpec",
    "block_of",
    "compute_dtype",
    "match_models",
    "open_source",
    "owns_reads",
    "read_as",
    "task_vectors",
    "tensor_specs",
]
