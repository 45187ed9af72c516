"""Per-filter throughput of the filter analysis against straightforward NumPy, on one core.

The per-filter parts of a CNN Filter DB analysis are: each filter's max |w| (for max-normalisation and the
sparsity test), the per-layer sparse masks, and the projection of the normalised filters on the PCA basis.
This script times, in one process and on the same data:

* ``vectorised``: weightzoo's path (``layer_sparsity_vectorized`` + ``FilterPCA.transform``), chunked and
  component-major;
* ``per-layer``: the obvious NumPy per layer (``np.abs(W).max(axis=1)``, a mask, ``W / m[:, None]``,
  ``(Wn - mean) @ C.T``);
* ``per-filter``: a Python loop over filters (on a subset; its rate is extrapolated).

Usage: ``python benchmarks/filters.py [--filters 20000000] [--repeat 3]``. Threads are pinned to one
(``OMP/OPENBLAS/MKL_NUM_THREADS=1``, ``torch.set_num_threads(1)``) so figures are per core.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def make_table(n_filters: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random filters in layers of realistic sizes (64×64 … 512×512 kernels), some layers partly pruned."""
    rng = np.random.default_rng(seed)
    sizes: list[int] = []
    pattern = [64 * 64, 128 * 128, 256 * 256, 512 * 512]
    while sum(sizes) < n_filters:
        sizes.append(min(pattern[len(sizes) % 4], n_filters - sum(sizes)))
    x = np.empty((n_filters, 9), np.float32)
    s = 0
    for i, n in enumerate(sizes):
        block = rng.standard_normal((n, 9), dtype=np.float32) * np.float32(0.1 / (1 + i % 7))
        if i % 3 == 0:
            block[: n // 4] *= np.float32(1e-4)
        x[s : s + n] = block
        s += n
    return x, np.cumsum([0, *sizes])


def per_layer(x: np.ndarray, offsets: np.ndarray, mean: np.ndarray, comps: np.ndarray, out: np.ndarray, eps: float = 0.01):
    mask = np.empty(len(x), bool)
    for a, b in zip(offsets[:-1], offsets[1:]):
        w = x[a:b]
        m = np.abs(w).max(axis=1)
        t = m.max() * eps
        mask[a:b] = m < (t if t > 0 else 1.0)
        m = np.where(m == 0, 1.0, m).astype(np.float32)
        out[a:b] = (w / m[:, None] - mean) @ comps.T
    return mask, out


def per_filter(x: np.ndarray, layer_max: float, mean: np.ndarray, comps: np.ndarray, eps: float = 0.01):
    out_mask = np.empty(len(x), bool)
    out = np.empty((len(x), comps.shape[0]), np.float32)
    for i in range(len(x)):
        f = x[i]
        m = float(np.abs(f).max())
        out_mask[i] = m < layer_max * eps
        out[i] = ((f / (m or 1.0)) - mean) @ comps.T
    return out_mask, out


def vectorised(x: np.ndarray, offsets: np.ndarray, pca, out: np.ndarray, absmax: np.ndarray):
    from weightzoo.analysis.filters import layer_sparsity_vectorized

    coeffs = pca.transform(x, absmax_out=absmax, out=out)  # normalisation + projection, max |w| on the way
    mask, _ = layer_sparsity_vectorized(x, offsets, absmax=absmax)
    return mask, coeffs


def best(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--filters", type=int, default=20_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--loop-filters", type=int, default=50_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from weightzoo.analysis.filters import FilterPCA

    x, offsets = make_table(args.filters)
    pca = FilterPCA(3).fit(x[: min(len(x), 2_000_000)])
    mean = pca.mean.astype(np.float32)
    comps = pca.components.astype(np.float32)

    # Outputs are allocated and touched once, outside the timings, for both paths (fresh pages cost the
    # same to both and would dominate on some VMs).
    out_v = np.ones((9, len(x)), np.float32)
    out_l = np.ones((len(x), 9), np.float32)
    absmax = np.ones(len(x), np.float32)
    t_vec, (mask_v, coef_v) = best(lambda: vectorised(x, offsets, pca, out_v, absmax), args.repeat)
    t_layer, (mask_l, coef_l) = best(lambda: per_layer(x, offsets, mean, comps, out_l), args.repeat)
    sub = x[: args.loop_filters]
    layer_max = float(np.abs(x[: offsets[1]]).max())
    t_filter_sub, (mask_f, coef_f) = best(lambda: per_filter(sub, layer_max, mean, comps), 1)

    # all three agree (same masks, same coefficients to float32 rounding)
    assert np.array_equal(mask_v, mask_l)
    assert np.allclose(coef_v, coef_l, atol=1e-4)
    assert np.array_equal(mask_f, mask_l[: len(sub)]) and np.allclose(coef_f, coef_l[: len(sub)], atol=1e-4)

    n = len(x)
    r_vec, r_layer, r_filter = n / t_vec, n / t_layer, len(sub) / t_filter_sub
    res = {
        "filters": n,
        "layers": len(offsets) - 1,
        "threads": 1,
        "cpu": platform.processor() or platform.machine(),
        "vectorised_s": t_vec,
        "per_layer_s": t_layer,
        "vectorised_filters_per_s": r_vec,
        "per_layer_filters_per_s": r_layer,
        "per_filter_filters_per_s": r_filter,
        "speedup_vs_per_layer": r_vec / r_layer,
        "speedup_vs_per_filter": r_vec / r_filter,
        "target_filters_per_s": 20e6,
    }
    if args.json:
        print(json.dumps(res, indent=2))
        return
    print(f"{n:,} 3×3 filters in {res['layers']} layers, 1 thread, best of {args.repeat}")
    print(f"  vectorised (weightzoo) : {t_vec:7.3f} s  {r_vec / 1e6:8.1f} M filters/s")
    print(f"  per-layer NumPy loop   : {t_layer:7.3f} s  {r_layer / 1e6:8.1f} M filters/s   ratio {r_vec / r_layer:5.1f}×")
    print(f"  per-filter Python loop : (on {len(sub):,})  {r_filter / 1e6:8.3f} M filters/s   ratio {r_vec / r_filter:7.0f}×")
    print(f"  target ≥ 20 M filters/s per core: {'met' if r_vec >= 20e6 else 'NOT met'}")


if __name__ == "__main__":
    main()
