r"""Weight statistics per tensor, per layer, per model and over whole zoos.

For every tensor: size, NaN/Inf counts, moments of its finite values (mean, standard deviation, skewness,
*excess* kurtosis), L1/L2/L∞ norms and the share of near-zero weights; for every tensor of rank ≥ 2 also
the spectral norm, stable rank and effective rank of its matrix view ``(out, rest)`` (the first dimension
against all others, as a linear or conv layer maps inputs to outputs).

Moments and norms are computed in float64 from a float32 copy (bf16/f16/f8 are widened first); NaN and
±Inf entries are counted and left out of every other statistic. Singular values come from
``torch.linalg.svdvals`` in float32 while m·n·min(m, n) ≤ ``max_svd_flops`` (4e10, about a
30k×1.2k matrix): all singular values are needed for the effective rank anyway, and
``torch.linalg.matrix_norm(ord=2)`` runs the same full SVD, so it would save nothing. Above that the spectral
norm comes from seeded Lanczos iterations (:func:`spectral_norm`) and the effective rank is not computed
(``nan``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from weightzoo.errors import StatsError

if TYPE_CHECKING:
    from weightzoo.zoo.store import ZooLike

#: A weight is near zero when |w| < NEAR_ZERO_EPS · max|w| of its tensor.
NEAR_ZERO_EPS = 0.01
#: Above m·n·min(m, n) = this, singular values are not computed exactly (Lanczos for σ₁ instead).
MAX_SVD_FLOPS = 4e10


@dataclass(frozen=True)
class TensorStats:
    r"""Statistics of one tensor (one row of the per-model or zoo-wide table).

    Attributes:
        mean, std: of the finite values; ``std`` is the population standard deviation (ddof = 0).
        skewness: :math:`m_3 / m_2^{3/2}` (Fisher–Pearson, biased, as ``scipy.stats.skew``).
        kurtosis: *excess* kurtosis :math:`m_4 / m_2^2 - 3` (0 for a Gaussian; ``scipy.stats.kurtosis``).
        l1, l2, linf: :math:`\sum|w|`, :math:`\sqrt{\sum w^2}` (= Frobenius norm), :math:`\max|w|`.
        near_zero: share of finite weights with :math:`|w| < \varepsilon \max|w|` (ε = 0.01).
        spectral_norm: largest singular value σ₁ of the (out, rest) matrix (rank ≥ 2 only).
        stable_rank: :math:`\|W\|_F^2 / \|W\|_2^2` (rank ≥ 2).
        effective_rank: Roy & Vetterli (2007): :math:`\exp(-\sum_i p_i \ln p_i)`, :math:`p_i = \sigma_i /
            \sum_j \sigma_j` (rank ≥ 2; ``nan`` when σ are not all computed).
        spectral_method: ``"svd"`` or ``"lanczos"`` (``None`` for vectors and scalars).
    """

    model: str
    tensor: str
    dtype: str
    shape: tuple[int, ...]
    numel: int
    nan_count: int
    inf_count: int
    mean: float
    std: float
    skewness: float
    kurtosis: float
    l1: float
    l2: float
    linf: float
    near_zero: float
    spectral_norm: float | None = None
    stable_rank: float | None = None
    effective_rank: float | None = None
    spectral_method: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def spectral_norm(matrix: torch.Tensor | np.ndarray, *, tol: float = 1e-10, seed: int = 0) -> float:
    r"""σ₁ of a 2-D matrix by implicitly restarted Lanczos (ARPACK, ``scipy.sparse.linalg.svds(k=1)``).

    Used for matrices too large for a full SVD: it needs only products with :math:`W` and :math:`W^\top`
    and, unlike plain power iteration (whose error shrinks like :math:`(\sigma_2/\sigma_1)^{2t}` and
    stalls on random-like layers where σ₂ ≈ σ₁), converges to ``tol`` in a few dozen products. The start
    vector is seeded, so results are reproducible. Matches ``numpy.linalg.norm(W, 2)`` to ~1e-9 relative.
    """
    from scipy.sparse.linalg import svds

    w = torch.as_tensor(matrix).detach()
    if w.ndim != 2:
        raise StatsError(f"spectral_norm expects a matrix, got shape {tuple(w.shape)}")
    if w.numel() == 0:
        return 0.0
    a = w.to(torch.float64).numpy()
    if min(a.shape) < 3:  # ARPACK needs k < min(m, n); tiny matrices are cheap to decompose exactly
        return float(np.linalg.norm(a, 2))
    v0 = np.random.default_rng(seed).standard_normal(min(a.shape))
    s = svds(a, k=1, tol=tol, v0=v0, return_singular_vectors=False, solver="arpack")
    return float(s[0])


def tensor_stats(
    t: torch.Tensor,
    *,
    name: str = "",
    model: str = "",
    eps: float = NEAR_ZERO_EPS,
    max_svd_flops: float = MAX_SVD_FLOPS,
) -> TensorStats:
    """All statistics of one tensor (see :class:`TensorStats`)."""
    if not isinstance(t, torch.Tensor):
        raise StatsError(f"tensor {name!r}: expected a torch.Tensor, got {type(t).__name__}")
    dtype = str(t.dtype).removeprefix("torch.")
    shape = tuple(int(s) for s in t.shape)
    x = t.detach().cpu()
    if x.is_complex() or x.dtype == torch.bool:
        raise StatsError(f"tensor {name!r}: no weight statistics for dtype {dtype}")
    x = x.to(torch.float32) if not x.is_floating_point() or x.element_size() < 4 else x
    flat = x.reshape(-1)
    finite_mask = torch.isfinite(flat)
    nan_count = int(torch.isnan(flat).sum())
    inf_count = int(torch.isinf(flat).sum())
    vals = (flat if bool(finite_mask.all()) else flat[finite_mask]).to(torch.float64)
    n = vals.numel()
    nan = float("nan")
    if n:
        mean = float(vals.mean())
        c = vals - mean
        m2 = float((c * c).mean())
        m3 = float((c * c * c).mean())
        m4 = float((c * c).square().mean())
        skew = m3 / m2**1.5 if m2 > 0 else nan
        kurt = m4 / m2**2 - 3.0 if m2 > 0 else nan
        a = vals.abs()
        linf = float(a.max())
        l1 = float(a.sum())
        l2 = float(torch.sqrt((vals * vals).sum()))
        near = float((a < eps * linf).double().mean()) if linf > 0 else 1.0
        std = math.sqrt(m2)
    else:
        mean = std = skew = kurt = l1 = l2 = linf = near = nan
    spec = stable = eff = None
    method = None
    if len(shape) >= 2 and shape[0] > 0 and n:
        mat = x.reshape(shape[0], -1)
        if not bool(finite_mask.all()):
            mat = torch.where(torch.isfinite(mat), mat, torch.zeros((), dtype=mat.dtype))
        rows, cols = mat.shape
        if rows * cols * min(rows, cols) <= max_svd_flops:
            s = torch.linalg.svdvals(mat.to(torch.float32)).to(torch.float64)
            spec = float(s[0]) if s.numel() else 0.0
            tot = float(s.sum())
            if tot > 0:
                p = s / tot
                p = p[p > 0]
                eff = float(math.exp(float(-(p * p.log()).sum())))
            else:
                eff = 0.0
            method = "svd"
        else:
            spec = spectral_norm(mat)
            eff = nan
            method = "lanczos"
        stable = (l2 * l2) / (spec * spec) if spec > 0 else nan
    return TensorStats(
        model=model,
        tensor=name,
        dtype=dtype,
        shape=shape,
        numel=int(flat.numel()),
        nan_count=nan_count,
        inf_count=inf_count,
        mean=mean,
        std=std,
        skewness=skew,
        kurtosis=kurt,
        l1=l1,
        l2=l2,
        linf=linf,
        near_zero=near,
        spectral_norm=spec,
        stable_rank=stable,
        effective_rank=eff,
        spectral_method=method,
    )


def model_stats(
    source: Any,
    *,
    zoo: Any = None,
    model_name: str | None = None,
    eps: float = NEAR_ZERO_EPS,
    max_svd_flops: float = MAX_SVD_FLOPS,
) -> Iterator[TensorStats]:
    """Stream :class:`TensorStats` for every floating-point tensor of one model, one tensor in memory at a time.

    ``source`` is anything :func:`weightzoo.zoo.store.resolve.load_state_dict` takes; integer and boolean
    tensors (position ids, masks, counters) are skipped.
    """
    from weightzoo.zoo.store.resolve import load_state_dict

    name = model_name or (type(source).__name__ if isinstance(source, torch.nn.Module) else str(source))
    sd = load_state_dict(source, zoo=zoo)
    for tname in sd:
        t = sd[tname]
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            continue
        yield tensor_stats(t, name=tname, model=name, eps=eps, max_svd_flops=max_svd_flops)


def layer_stats(rows: Iterable[TensorStats]) -> list[dict[str, Any]]:
    r"""Aggregate tensor rows into one row per layer (tensor name up to its last ``.``).

    A layer's ``numel``, ``nan_count``, ``inf_count``, ``l1`` add up; ``l2`` = :math:`\sqrt{\sum l2^2}`;
    ``linf`` is the max; ``mean`` is numel-weighted; the matrix statistics (spectral norm, stable and
    effective rank, kurtosis) are those of the layer's ``weight`` tensor when it has one.
    """
    layers: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        prefix, _, leaf = r.tensor.rpartition(".")
        key = (r.model, prefix or r.tensor)
        finite = r.numel - r.nan_count - r.inf_count
        row = layers.setdefault(
            key,
            {"model": r.model, "layer": key[1], "tensors": [], "numel": 0, "nan_count": 0, "inf_count": 0,
             "l1": 0.0, "_l2sq": 0.0, "linf": 0.0, "_sum": 0.0, "_finite": 0},
        )
        row["tensors"].append(leaf or r.tensor)
        row["numel"] += r.numel
        row["nan_count"] += r.nan_count
        row["inf_count"] += r.inf_count
        if finite:
            row["l1"] += r.l1
            row["_l2sq"] += r.l2 * r.l2
            row["linf"] = max(row["linf"], r.linf)
            row["_sum"] += r.mean * finite
            row["_finite"] += finite
        if leaf == "weight" or not prefix:
            for k in ("shape", "spectral_norm", "stable_rank", "effective_rank", "kurtosis", "skewness", "near_zero"):
                row[k] = getattr(r, k)
    out = []
    for row in layers.values():
        row["l2"] = math.sqrt(row.pop("_l2sq"))
        s, f = row.pop("_sum"), row.pop("_finite")
        row["mean"] = s / f if f else None
        if "shape" in row:
            row["shape"] = list(row["shape"])
        out.append({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()})
    return out


def zoo_stats(zoo: ZooLike, models: Iterable[str] | None = None, **kwargs: Any) -> Iterator[TensorStats]:
    """One :class:`TensorStats` per model×tensor over a zoo (all models by default), streamed model by model.

    ``zoo`` is a :class:`~weightzoo.zoo.store.Zoo` or its folder; metadata-only models (no bytes) are skipped.
    """
    from weightzoo.zoo.store import using_zoo

    with using_zoo(zoo) as z:
        names = list(models) if models is not None else [m.ref for m in z.models(ingested=True)]
        for name in names:
            yield from model_stats(name, zoo=z, model_name=name, **kwargs)


class _ModelStatsTask:
    """``(label, source) -> [TensorStats]`` for an executor: picklable, reads a detached zoo model or a path."""

    def __init__(self, eps: float, max_svd_flops: float) -> None:
        self.eps, self.max_svd_flops = eps, max_svd_flops

    def __call__(self, job: tuple[str, Any]) -> list[TensorStats]:
        from weightzoo.zoo.store.detached import DetachedModel

        label, source = job
        src = source.state_dict() if isinstance(source, DetachedModel) else source
        return list(model_stats(src, model_name=label, eps=self.eps, max_svd_flops=self.max_svd_flops))


def stats_many(sources: Iterable[tuple[str, Any]], *, zoo: ZooLike | None = None, executor: Any = None,
               workers: int | None = 1, ray: bool | str | None = None, eps: float = NEAR_ZERO_EPS,
               max_svd_flops: float = MAX_SVD_FLOPS, progress: bool = False) -> list[TensorStats]:
    """:func:`model_stats` of many models on workers (processes or Ray tasks), rows in input order.

    ``sources`` are ``(label, source)`` pairs: a zoo model name (with ``zoo``), a checkpoint path the
    workers can read, a module or a state dict. Zoo models are looked up here, by the one process that
    opens the catalogue, and read by the workers straight from the packs
    (:meth:`~weightzoo.zoo.store.Zoo.detach`). The rows equal a serial run's exactly.

    Args:
        executor: an :class:`~weightzoo.zoo.store.executors.Executor`; default ``make_executor(workers, ray=ray)``.
        progress: a tqdm bar over models (on a terminal).
    """
    from weightzoo.zoo.store import using_zoo
    from weightzoo.zoo.store.executors import make_executor
    from weightzoo.zoo.store.resolve import classify_ref

    jobs = list(sources)
    ex = executor if executor is not None else make_executor(workers, ray=ray)
    try:
        if zoo is not None:
            with using_zoo(zoo) as z:
                jobs = [(label, z.detach(src) if isinstance(src, str) and classify_ref(src, z) == "zoo" else src)
                        for label, src in jobs]
        from tqdm import tqdm

        rows: list[TensorStats] = []
        with tqdm(total=len(jobs), unit="model", desc=f"stats ({ex.name})", disable=not progress or None,
                  leave=False) as bar:
            for part in ex.map(_ModelStatsTask(eps, max_svd_flops), jobs):
                rows.extend(part)
                bar.update(1)
        return rows
    finally:
        if executor is None:
            ex.close()


def stats_frame(rows: Iterable[TensorStats]) -> Any:
    """The rows as a ``pandas.DataFrame`` (pandas is optional and imported here)."""
    try:
        import pandas as pd
    except ImportError as exc:
        raise StatsError("stats_frame needs pandas (pip install pandas)") from exc
    return pd.DataFrame([r.as_dict() for r in rows])


__all__ = [
    "MAX_SVD_FLOPS",
    "NEAR_ZERO_EPS",
    "StatsError",
    "TensorStats",
    "layer_stats",
    "model_stats",
    "spectral_norm",
    "stats_frame",
    "stats_many",
    "tensor_stats",
    "zoo_stats",
]
