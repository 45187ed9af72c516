r"""Per-tensor merge kernels: exact magnitude selection, trimming, DARE, TIES' disjoint merge and SLERP.

The streaming engine (:mod:`weightzoo.analysis.merging`) calls these one tensor at a time. The TIES path is
built to cost little more than reading the inputs:

* :func:`kth_largest_abs` selects the exact :math:`k`-th largest :math:`|x|` in one pass over the tensor.
  A systematic sample of :math:`2^{16}` entries brackets the answer; one blockwise pass counts the entries
  above the bracket and gathers the few (about 2 %) inside it, on the float bit patterns (for
  non-negative IEEE floats the bits, read as integers, order like the values); a partition of those few
  finds the exact value. When the sample misleads, the bracket check fails and a full partition runs:
  the result is always exact. The subtraction :math:`\tau = \theta - \theta_0` can be fused into the
  same pass.
* :func:`disjoint_merge_into` trims, elects signs and takes the disjoint mean block by block
  (:math:`2^{15}` entries, so the dozen passes it needs run in cache instead of over memory) and adds
  :math:`\lambda\cdot` the result into the base in place: no per-tensor temporaries.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from weightzoo.errors import AnalysisError

SLERP_DOT_THRESHOLD = 0.9995
_CHUNK = 1 << 21  # global threshold: entries per histogram chunk
# Entries per cache-resident block of the TIES pass: below torch's intra-op grain size (32768), so each op
# runs serially in its thread: a parallel region per 30 µs op costs more than it saves.
_BLOCK = (1 << 15) - 1
_SEL_BLOCK = 1 << 16  # entries per block of the (NumPy) selection pass
_SAMPLE = 1 << 16  # sample size that brackets the k-th magnitude
_DIRECT = 1 << 18  # below this many entries one partition of |x| is cheaper than sampling
_MARGIN = 6.0  # bracket half-width in binomial standard deviations of the sample rank
_PARALLEL_MIN = 1 << 20  # tensors smaller than this are merged on the calling thread


def merge_workers(numel: int) -> int:
    """Threads a per-tensor kernel uses for a tensor of ``numel`` entries: ``torch.get_num_threads()`` for
    large tensors (the kernels run their blocks serially, so they bring their own parallelism), else 1."""
    return 1 if numel < _PARALLEL_MIN else max(1, torch.get_num_threads())


_EXECUTORS: dict[int, ThreadPoolExecutor] = {}
_EXECUTOR_LOCK = threading.Lock()


def executor(workers: int) -> ThreadPoolExecutor:
    """A shared pool of ``workers`` threads (NumPy and torch release the GIL inside each block)."""
    with _EXECUTOR_LOCK:
        pool = _EXECUTORS.get(workers)
        if pool is None:
            pool = _EXECUTORS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="weightzoo-merge")
        return pool


# --- exact magnitude selection ----------------------------------------------------------------------


def _bits_dtype(dtype: np.dtype) -> tuple[Any, Any, int]:
    if dtype == np.float32:
        return np.int32, np.uint32, 0x7FFF_FFFF
    if dtype == np.float64:
        return np.int64, np.uint64, 0x7FFF_FFFF_FFFF_FFFF
    raise TypeError(f"magnitude selection works on float32/float64, got {dtype}")


def kth_largest_abs(x: torch.Tensor, k: int, *, minus: torch.Tensor | None = None) -> float:
    r"""The exact :math:`k`-th largest :math:`|x|` (:math:`1 \le k \le n`) of a contiguous 1-D float32/64
    CPU tensor.

    With ``minus`` (same shape and dtype), ``x`` is first replaced **in place** by ``x - minus``, fused into
    the selection pass (the task vector :math:`\tau = \theta - \theta_0` and its threshold in one pass).
    NaNs count as larger than every number. Equals ``x.abs().kthvalue(n - k + 1)`` bit for bit.
    """
    n = x.numel()
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    a = x.numpy()
    if minus is None:
        return _kth_abs(a, k, None, None)
    return _kth_abs(a, k, minus.numpy(), a)


def delta_threshold(theta: np.ndarray, base: np.ndarray, out: np.ndarray, density: float) -> float:
    """Write :math:`\\tau = \\theta - \\theta_0` into ``out`` (which may be ``theta``; ``theta`` may be a
    read-only view of a memory-mapped file) and return :func:`magnitude_threshold` of it, in one pass."""
    n = theta.size
    k = int(density * n)
    if 0 < k < n:
        return _kth_abs(theta, k, base, out)
    np.subtract(theta, base, out=out)
    return math.inf if k <= 0 else 0.0


def delta_threshold_(theta: torch.Tensor, base: torch.Tensor, density: float) -> float:
    """Turn ``theta`` (1-D, contiguous, owned) into :math:`\\tau = \\theta - \\theta_0` in place and return
    :func:`magnitude_threshold` of it, in one pass."""
    if theta.dtype in (torch.float32, torch.float64):
        a = theta.numpy()
        return delta_threshold(a, base.numpy(), a, density)
    theta.sub_(base)
    return magnitude_threshold(theta, density)


def _kth_abs(src: np.ndarray, k: int, minus: np.ndarray | None, out: np.ndarray | None) -> float:
    """k-th largest |src - minus| (|src| without ``minus``); with ``minus``, ``src - minus`` lands in ``out``."""
    n = src.size
    it, ut, m = _bits_dtype(src.dtype)
    mask = it(m)
    if n < _DIRECT:
        if minus is not None:
            assert out is not None
            src = np.subtract(src, minus, out=out)
        return _select_bits(np.bitwise_and(src.view(it), mask), k, src.dtype)
    # Bracket the answer from a systematic sample of |x| (as bits: same order as the values).
    step = n // min(_SAMPLE, n >> 4)
    samp = src[::step] - minus[::step] if minus is not None else src[::step].copy()
    sb = np.bitwise_and(samp.view(it), mask)
    sb.sort()
    ms, q = sb.size, 1.0 - k / n  # the answer sits at fraction q of the sorted magnitudes
    half = _MARGIN * math.sqrt(ms * q * (1.0 - q)) + 4.0
    i_lo, i_hi = math.floor(q * ms - half), math.ceil(q * ms + half)
    lo = int(sb[i_lo]) if i_lo > 0 else 0
    hi = int(sb[i_hi]) if i_hi < ms else m
    above = 0
    found: list[np.ndarray] = []
    size = min(_SEL_BLOCK, n)
    u_buf: np.ndarray = np.empty(size, it)
    v_buf: np.ndarray = np.empty(size, ut)
    gt_buf, in_buf = np.empty(size, bool), np.empty(size, bool)
    lo_u, span_i, span_u = ut(lo), it(hi - lo), ut(hi - lo)
    for s in range(0, n, _SEL_BLOCK):
        e = min(n, s + _SEL_BLOCK)
        if minus is not None:
            assert out is not None
            blk = np.subtract(src[s:e], minus[s:e], out=out[s:e])
        else:
            blk = src[s:e]
        u, v = u_buf[: e - s], v_buf[: e - s]
        np.bitwise_and(blk.view(it), mask, out=u)
        # v = u - lo, wrapping: below the bracket -> negative as signed, inside -> [0, span], above -> > span
        np.subtract(u.view(ut), lo_u, out=v)
        above += int(np.count_nonzero(np.greater(v.view(it), span_i, out=gt_buf[: e - s])))
        found.append(u[np.less_equal(v, span_u, out=in_buf[: e - s])])
    cand = np.concatenate(found)
    rank = k - above  # the answer is the rank-th largest inside the bracket
    if 1 <= rank <= cand.size:
        return _select_bits(cand, rank, src.dtype)
    full = out if minus is not None else src  # the sample misled: select over everything
    assert full is not None
    return _select_bits(np.bitwise_and(full.view(it), mask), k, src.dtype)


def _select_bits(bits: np.ndarray, k: int, dtype: np.dtype) -> float:
    """The k-th largest of magnitude bit patterns (partitioned in place), as a float."""
    bits.partition(bits.size - k)
    return float(bits[bits.size - k : bits.size - k + 1].view(dtype)[0])


def magnitude_threshold(delta: torch.Tensor, density: float) -> float:
    """The :math:`k`-th largest :math:`|x|` of ``delta`` with :math:`k=\\lfloor density\\cdot n\\rfloor`
    (``inf`` when :math:`k=0`, ``0`` when every entry is kept)."""
    n = delta.numel()
    k = int(density * n)
    if k <= 0:
        return math.inf
    if k >= n:
        return 0.0
    if delta.dtype in (torch.float32, torch.float64):
        return _kth_abs(delta.detach().cpu().contiguous().reshape(-1).numpy(), k, None, None)
    return _kth_largest(delta.abs().reshape(-1), k)


def _kth_largest(values: torch.Tensor, k: int) -> float:
    """The k-th largest of a 1-D tensor we own (partitioned in place; introselect, ~10x torch.kthvalue)."""
    arr = values.numpy()
    arr.partition(arr.size - k)
    return float(arr[arr.size - k])


def _below(threshold: float, dtype: torch.dtype) -> float:
    """The float just below ``threshold``: hardshrink keeps |x| > that, i.e. |x| >= threshold, in one pass
    (a bool mask times a float tensor would take a slow type-promoting path)."""
    if dtype in (torch.float32, torch.float64):
        ft = np.float32 if dtype == torch.float32 else np.float64
        return float(np.nextafter(ft(threshold), ft(-math.inf)))
    t = torch.tensor(threshold, dtype=dtype)
    return float(torch.nextafter(t, torch.tensor(-math.inf, dtype=dtype)))


def trim(delta: torch.Tensor, threshold: float) -> torch.Tensor:
    """``delta`` with the entries :math:`|x| <` ``threshold`` zeroed (a new tensor unless nothing is trimmed)."""
    if threshold > 0:
        return torch.nn.functional.hardshrink(delta, _below(threshold, delta.dtype))
    return delta


# --- DARE -------------------------------------------------------------------------------------------


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


# --- TIES' sign election and disjoint mean ------------------------------------------------------------


def disjoint_merge_into(out: torch.Tensor, deltas: Sequence[torch.Tensor], weights: Sequence[float], *,
                        normalize: bool, lam: float = 1.0,
                        thresholds: Sequence[float] | None = None) -> torch.Tensor:
    r"""``out += lam * m`` in place, :math:`m` TIES' disjoint merge of ``deltas``; returns ``out``.

    ``out`` and every delta are 1-D, contiguous and of one dtype; the deltas are consumed (overwritten).
    With ``thresholds``, delta :math:`i` is first trimmed to :math:`|\delta_i| \ge t_i`. Then
    :math:`\gamma = \mathrm{sgn}\sum_i w_i\hat\delta_i` (zero counted as positive), entry :math:`i` takes
    part where :math:`\mathrm{sgn}(w_i\hat\delta_i) = \gamma`, :math:`m` sums the taking-part
    :math:`w_i\hat\delta_i` and, with ``normalize``, divides by their summed :math:`w_i` (1 where none takes
    part). Runs block by block (:math:`2^{15}` entries) so every pass stays in cache; large tensors are
    split across :func:`merge_workers` threads (every entry is independent, so the result is the same).
    """
    n = out.numel()
    belows = [None if (thresholds is None or thresholds[i] <= 0) else _below(thresholds[i], out.dtype)
              for i in range(len(deltas))]
    workers = merge_workers(n)
    if workers == 1:
        _disjoint_range(out, deltas, weights, normalize, lam, belows)
        return out
    cut = [min(n, -(-n * j // workers // _BLOCK) * _BLOCK) for j in range(workers + 1)]
    parts = [(out[a:b], [d[a:b] for d in deltas]) for a, b in zip(cut, cut[1:]) if b > a]
    futures = [executor(workers).submit(_disjoint_range, o, ds, weights, normalize, lam, belows) for o, ds in parts]
    for f in futures:
        f.result()
    return out


def _disjoint_range(out: torch.Tensor, deltas: Sequence[torch.Tensor], weights: Sequence[float], normalize: bool,
                    lam: float, belows: Sequence[float | None]) -> None:
    n = out.numel()
    w_min = min(weights)
    size = min(_BLOCK, max(n, 1))
    sgn_buf = torch.empty(size, dtype=out.dtype)
    mix_buf = torch.empty(size, dtype=out.dtype)
    div_buf = torch.empty(size, dtype=out.dtype) if normalize else None
    for s in range(0, n, _BLOCK):
        e = min(n, s + _BLOCK)
        ds = [d[s:e] for d in deltas]
        for d, below in zip(ds, belows):
            if below is not None:
                torch.hardshrink(d, below, out=d)
        sgn = sgn_buf[: e - s]
        if weights[0] != 1.0:
            torch.mul(ds[0], weights[0], out=sgn)
        else:
            sgn.copy_(ds[0])
        for d, w in zip(ds[1:], weights[1:]):
            sgn.add_(d, alpha=w)
        sgn.sign_().add_(0.5).sign_()  # {-1, 0, 1} -> {-1, 1, 1}: a zero sum counts as positive
        # With s = ±1 the elected sign, entry i agrees iff u_i = s·w_i·δ_i > 0, so clamp(u_i, 0) holds the
        # agreeing magnitudes and sign(clamp(u_i, 0)) the indicator: all in-place float arithmetic.
        mixed = mix_buf[: e - s]
        div = div_buf[: e - s] if div_buf is not None else None
        for i, (d, w) in enumerate(zip(ds, weights)):
            u = d.mul_(sgn)
            if w != 1.0:
                u.mul_(w)
            u.clamp_(min=0.0)
            if i == 0:
                mixed.copy_(u)
            else:
                mixed.add_(u)
            if div is not None:
                ind = u.sign_()
                if i == 0 and w != 1.0:
                    torch.mul(ind, w, out=div)
                elif i == 0:
                    div.copy_(ind)
                else:
                    div.add_(ind, alpha=w)
        mixed.mul_(sgn)
        if div is not None:
            if w_min > 0:  # a non-zero divisor is >= min(w), and mixed is 0 where the divisor is 0
                div.clamp_(min=w_min)
            else:
                div.masked_fill_(div == 0, 1.0)
            mixed.div_(div)
        out[s:e].add_(mixed, alpha=lam)


def disjoint_merge(deltas: Sequence[torch.Tensor], weights: Sequence[float], *, normalize: bool) -> torch.Tensor:
    """TIES' sign election and disjoint sum/mean of (already sparsified) ``deltas``; consumes ``deltas``.

    :math:`\\gamma = \\mathrm{sgn}\\sum_i w_i\\delta_i` with zero counted as positive; entry :math:`i`
    takes part where :math:`\\mathrm{sgn}(w_i\\delta_i) = \\gamma`; with ``normalize`` the sum is divided by
    the summed :math:`w_i` of the taking-part entries (1 where none takes part).
    """
    out = torch.zeros_like(deltas[0], memory_format=torch.contiguous_format)
    flat = [d.contiguous().reshape(-1) for d in deltas]
    disjoint_merge_into(out.reshape(-1), flat, weights, normalize=normalize)
    return out


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
    first: torch.dtype | None = None
    for t in tensors():
        first = first or t.dtype
        if t.dtype != first:  # the histogram's bins are the float's bits: one dtype per pass
            raise AnalysisError(f"global magnitude threshold needs one dtype for all tensors, got {first} and {t.dtype}")
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


__all__ = [
    "SLERP_DOT_THRESHOLD",
    "dare_",
    "delta_threshold",
    "delta_threshold_",
    "disjoint_merge",
    "disjoint_merge_into",
    "executor",
    "global_magnitude_threshold",
    "kth_largest_abs",
    "magnitude_threshold",
    "merge_workers",
    "slerp_tensor",
    "tensor_seed",
    "trim",
]
