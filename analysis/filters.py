r"""Convolution-filter statistics in the manner of CNN Filter DB (Gavrikov & Keuper, CVPR 2022).

Every k×k convolution kernel (one input channel of one output channel) of every selected model becomes one
row of a :class:`FilterTable`; each conv layer gets the quality metrics CNN Filter DB defines
(:func:`layer_quality`): sparsity, variance entropy and its ratio to a random-filter reference,
orthogonality, norms and degeneration flags. A :class:`FilterPCA` basis fitted on max-normalised filters is
shared across the selection, and :func:`distribution_shift` compares two groups of filters by the
explained-variance-weighted symmetric KL divergence of their PCA-coefficient histograms.

Conv weights are recognised from shapes alone, so any checkpoint works: a tensor whose name ends in
``weight`` and whose shape is ``[c_out, c_in/groups, k, k]`` (rank 4, square kernel, 1×1 included) is a
2-D convolution (rank 3 ``[c_out, c_in/groups, k]`` with ``k > 1`` when ``conv1d=True``). ``groups`` is exact when the source
is an ``nn.Module`` (read from its conv modules); otherwise it is inferred: a layer whose kernels see one
input channel (``c_in/groups == 1``) and that is not the model's first conv is taken as depthwise
(``groups = c_out``); every other layer is reported with ``groups = 1`` (a grouped, non-depthwise conv
cannot be told from its shape). Transposed convolutions store ``[c_in, c_out/groups, k, k]`` and are
indistinguishable by shape; they are read as if they were ordinary convs.

The per-filter work (max-normalisation, sparsity masks, projections) runs on chunks laid out
component-major (``k² × chunk``) so every NumPy call is a contiguous, SIMD-friendly pass; see
``benchmarks/filters.py`` for the rate against straightforward NumPy.
"""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import FilterAnalysisError

#: Default ε of the sparsity test: a kernel is sparse when all its |w| < ε·max|W_layer| (CNN Filter DB).
SPARSITY_EPS = 0.01
#: Number of histogram bins per PCA component in :func:`distribution_shift` (CNN Filter DB).
KL_BINS = 70
#: Probability floor added to every histogram bin before renormalising, so empty bins keep KL finite.
KL_EPS = 1e-10
#: Default thresholds of the degeneration flags (see :class:`DegenerationThresholds`).
_CHUNK = 65536
#: Parameters of CNN Filter DB's random-filter reference curve for 3×3 kernels (torchconvquality).
_H_L, _H_X0, _H_K, _H_B = 1.2618047, 2.30436435, 0.88767525, -0.31050834
_META_FIXED = (
    "model",
    "layer",
    "depth",
    "normalized_depth",
    "n_conv_layers",
    "groups",
    "groups_inferred",
    "c_out",
    "c_in_per_group",
    "kernel",
)


# --- the random-filter reference --------------------------------------------------------------------


def random_reference_entropy(n: int, kernel: int = 3, *, method: str = "auto", draws: int = 64, seed: int = 0) -> float:
    r"""Variance entropy (base 10) that ``n`` random Gaussian k×k filters reach: the reference of the ratio.

    For 3×3 kernels (``method="fit"``, the default through ``"auto"``) this is CNN Filter DB's fitted curve

    .. math::
        h(n) = \frac{1.2618}{1 + e^{-0.8877(\log_2 n - 2.3044)}} - 0.3105,

    which follows the *lowest* entropy of random layers (for n ≥ 64, random layers score
    h(n)·[0.99, 1.02]; below n ≈ 32 random layers lie well above it, and h(n) ≤ 0 for n ≤ 2).
    For other kernel sizes (``method="monte_carlo"``) it is the mean entropy of ``draws`` seeded random
    Gaussian n×k² matrices (n capped at 16384, where the curve is flat); results are cached.
    Its limit is :math:`\log_{10} k^2` (0.954 for 3×3).
    """
    if n < 1 or kernel < 1:
        raise FilterAnalysisError(f"random_reference_entropy needs n ≥ 1 and kernel ≥ 1, got n={n}, kernel={kernel}")
    if method == "auto":
        method = "fit" if kernel == 3 else "monte_carlo"
    if method == "fit":
        if kernel != 3:
            raise FilterAnalysisError(f"the fitted reference curve h(n) holds for 3×3 kernels only (kernel={kernel}); use method='monte_carlo'")
        return float(_H_L / (1.0 + math.exp(-_H_K * (math.log2(n) - _H_X0))) + _H_B)
    if method == "monte_carlo":
        return _mc_reference(min(int(n), 16384), int(kernel), int(draws), int(seed))
    raise FilterAnalysisError(f"unknown reference method {method!r}; choose one of 'auto', 'fit', 'monte_carlo'")


@lru_cache(maxsize=4096)
def _mc_reference(n: int, kernel: int, draws: int, seed: int) -> float:
    rng = np.random.default_rng([seed, n, kernel])
    d = kernel * kernel
    total = 0.0
    for _ in range(draws):
        total += variance_entropy(rng.standard_normal((n, d)))
    return total / draws


# --- per-layer metrics -------------------------------------------------------------------------------


def variance_entropy(filters: np.ndarray | torch.Tensor, *, base: float = 10.0) -> float:
    r"""Entropy of the variance spectrum of a set of filters (CNN Filter DB's *variance entropy*).

    The n×k² matrix :math:`X` (one flattened filter per row) is centred, its singular values :math:`s_i`
    give the variances :math:`\lambda_i = s_i^2/(n-1)` along the principal axes, and

    .. math:: H = -\sum_i p_i \log_b p_i, \qquad p_i = \lambda_i / \textstyle\sum_j \lambda_j,

    with :math:`0 \log 0 = 0`. Base 10 as in the original (maximum :math:`\log_{10} k^2`, 0.954 for 3×3);
    0 when all filters are equal or fewer than two are given. Computed from the k²×k² Gram matrix of the
    centred filters in float64 (its eigenvalues are the :math:`s_i^2`).
    """
    x = _as_f64(filters)
    if x.ndim != 2:
        raise FilterAnalysisError(f"variance_entropy expects an (n, k²) matrix, got shape {tuple(x.shape)}")
    n = x.shape[0]
    if n < 2:
        return 0.0
    xc = x - x.mean(axis=0)
    lam = np.clip(np.linalg.eigvalsh(xc.T @ xc), 0.0, None) / (n - 1)
    total = lam.sum()
    if not total > 0.0:
        return 0.0
    p = lam / total
    p = p[p > 0.0]
    return float(-(p * np.log(p)).sum() / math.log(base))


def sparsity_mask(filters: np.ndarray | torch.Tensor, *, eps: float = SPARSITY_EPS) -> np.ndarray:
    r"""Boolean mask of sparse kernels: all :math:`|w| < \varepsilon \cdot \max|W_{layer}|` (n×k² input).

    An all-zero layer uses threshold 1 (as the original), so all its kernels count as sparse.
    """
    x = np.abs(_as_f32(filters))
    if x.ndim != 2:
        raise FilterAnalysisError(f"sparsity_mask expects an (n, k²) matrix, got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    kmax = x.max(axis=1)
    t = float(kmax.max()) * eps
    return kmax < (t if t > 0 else 1.0)


def orthogonality(weight: np.ndarray | torch.Tensor) -> float:
    r"""CNN Filter DB's orthogonality of a conv weight ``[c_out, c_in/groups, k, k]``.

    With :math:`\hat W` the c_out × (c_in·k²) matrix whose rows are scaled to unit L2 norm (all-zero
    rows are left at zero),

    .. math:: O = 1 - \frac{\sum_{ij} |\hat W \hat W^\top - I|_{ij}}{n(n-1)}, \qquad n = c_{out},

    1 for mutually orthogonal output filters, 0 when all are parallel. NaN when c_out < 2.
    """
    w = _as_f64(weight)
    w = w.reshape(w.shape[0], -1)
    n = w.shape[0]
    if n < 2:
        return float("nan")
    norms = np.linalg.norm(w, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    wn = w / norms
    g = wn @ wn.T
    g[np.diag_indices(n)] -= 1.0
    return float(1.0 - np.abs(g).sum() / (n * (n - 1)))


@dataclass(frozen=True)
class DegenerationThresholds:
    """When a conv layer counts as degenerated (CNN Filter DB's three kinds of degeneration).

    Attributes:
        sparsity: ``high_sparsity`` when the share of sparse kernels is ≥ this (default 0.5: most kernels
            are dead).
        low_entropy_ratio: ``low_diversity`` when variance entropy / h(n) of the non-sparse kernels is
            below this (default 0.5: the filters span few directions).
        random_entropy_ratio: ``random_like`` when that ratio is ≥ this (default 0.98: as diverse as
            random Gaussian filters, i.e. no learned structure; random layers of ≥ 64 kernels score
            0.99–1.02).
        min_filters: layers with fewer non-sparse kernels are never flagged for entropy (default 32: the
            reference is unreliable there).
    """

    sparsity: float = 0.5
    low_entropy_ratio: float = 0.5
    random_entropy_ratio: float = 0.98
    min_filters: int = 32

    def __post_init__(self) -> None:
        if not 0.0 < self.sparsity <= 1.0:
            raise FilterAnalysisError(f"DegenerationThresholds: sparsity must lie in (0, 1], got {self.sparsity}")
        if not 0.0 <= self.low_entropy_ratio < self.random_entropy_ratio:
            raise FilterAnalysisError(
                "DegenerationThresholds: need 0 ≤ low_entropy_ratio < random_entropy_ratio, got "
                f"{self.low_entropy_ratio} and {self.random_entropy_ratio}"
            )


@dataclass(frozen=True)
class LayerQuality:
    """Quality metrics of one conv layer (field meanings in :func:`layer_quality`)."""

    n_filters: int
    c_out: int
    c_in_per_group: int
    kernel: int
    sparsity: float
    variance_entropy: float
    variance_entropy_ratio: float
    variance_entropy_clean: float
    variance_entropy_clean_ratio: float
    orthogonality: float
    l1: float
    l2: float
    flags: tuple[str, ...] = ()

    @property
    def degenerated(self) -> bool:
        return bool(self.flags)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["flags"] = list(self.flags)
        return d


def layer_quality(
    weight: np.ndarray | torch.Tensor,
    *,
    eps: float = SPARSITY_EPS,
    thresholds: DegenerationThresholds | None = None,
    reference: str = "auto",
) -> LayerQuality:
    r"""All CNN Filter DB metrics of one conv weight ``[c_out, c_in/groups, k, k]`` (or ``[c_out, c_in, k]``).

    * ``sparsity``: share of the n = c_out·c_in/groups kernels with every :math:`|w| < \varepsilon\max|W|`.
    * ``variance_entropy``: :func:`variance_entropy` (base 10) of all n kernels; ``variance_entropy_ratio``
      = that / :func:`random_reference_entropy` (n) (NaN where the reference is ≤ 0, n ≤ 2).
    * ``variance_entropy_clean`` / ``..._clean_ratio``: the same over the non-sparse kernels only.
    * ``orthogonality``: :func:`orthogonality`.
    * ``l1``, ``l2``: :math:`\sum|w|` and :math:`\sqrt{\sum w^2}` of the layer.
    * ``flags``: ``high_sparsity``, ``low_diversity``, ``random_like`` per :class:`DegenerationThresholds`.
    """
    w = _as_f32(weight)
    if w.ndim not in (3, 4) or w.shape[0] == 0 or w.shape[1] == 0:
        raise FilterAnalysisError(f"layer_quality expects a conv weight [c_out, c_in/groups, k(, k)], got shape {tuple(w.shape)}")
    th = thresholds or DegenerationThresholds()
    k = int(w.shape[-1])
    d = int(np.prod(w.shape[2:]))
    flat = w.reshape(-1, d)
    n = flat.shape[0]
    mask = sparsity_mask(flat, eps=eps)
    sp = float(mask.mean())
    ref_k = k if w.ndim == 4 else None
    ve = variance_entropy(flat)
    clean = flat[~mask]
    vec = variance_entropy(clean)
    w64 = flat.astype(np.float64)
    flags: list[str] = []
    ratio_clean = _ratio(vec, clean.shape[0], ref_k, d, reference)
    if sp >= th.sparsity:
        flags.append("high_sparsity")
    if clean.shape[0] >= th.min_filters and not math.isnan(ratio_clean):
        if ratio_clean < th.low_entropy_ratio:
            flags.append("low_diversity")
        elif ratio_clean >= th.random_entropy_ratio:
            flags.append("random_like")
    return LayerQuality(
        n_filters=n,
        c_out=int(w.shape[0]),
        c_in_per_group=int(w.shape[1]),
        kernel=k,
        sparsity=sp,
        variance_entropy=ve,
        variance_entropy_ratio=_ratio(ve, n, ref_k, d, reference),
        variance_entropy_clean=vec,
        variance_entropy_clean_ratio=ratio_clean,
        orthogonality=orthogonality(w),
        l1=float(np.abs(w64).sum()),
        l2=float(np.sqrt((w64 * w64).sum())),
        flags=tuple(flags),
    )


def _ratio(entropy: float, n: int, kernel: int | None, d: int, reference: str) -> float:
    if n < 1:
        return float("nan")
    if kernel is None:  # conv1d: a k-tap filter is a random k-vector; the 2-D curve does not apply
        ref = _mc_reference_1d(min(n, 16384), d)
    else:
        ref = random_reference_entropy(n, kernel, method=reference)
    return float(entropy / ref) if ref > 0 else float("nan")


@lru_cache(maxsize=4096)
def _mc_reference_1d(n: int, d: int, draws: int = 64, seed: int = 0) -> float:
    rng = np.random.default_rng([seed, n, d, 1])
    return sum(variance_entropy(rng.standard_normal((n, d))) for _ in range(draws)) / draws


# --- finding conv layers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConvLayer:
    """One conv weight of one model, as it streams out of :func:`iter_conv_layers`.

    ``depth`` is the index among *all* the model's conv layers (any kernel size), in state-dict order;
    ``normalized_depth`` = depth / (n_conv_layers − 1) (0 for a single conv).
    """

    model: str
    layer: str
    weight: torch.Tensor
    depth: int
    n_conv_layers: int
    groups: int
    groups_inferred: bool

    @property
    def normalized_depth(self) -> float:
        return self.depth / (self.n_conv_layers - 1) if self.n_conv_layers > 1 else 0.0

    @property
    def kernel(self) -> int:
        return int(self.weight.shape[-1])


def _is_conv_shape(name: str, shape: Sequence[int], conv1d: bool) -> bool:
    if not (name == "weight" or name.endswith(".weight") or name.endswith("_weight")):
        return False
    if len(shape) == 4:
        return shape[2] == shape[3] and shape[2] >= 1 and shape[0] > 0 and shape[1] > 0
    return conv1d and len(shape) == 3 and shape[2] > 1 and shape[0] > 0 and shape[1] > 0


def _layer_name(tensor_name: str) -> str:
    for suffix in (".weight", "_weight"):
        if tensor_name.endswith(suffix):
            return tensor_name[: -len(suffix)]
    return tensor_name


def _module_groups(module: torch.nn.Module) -> dict[str, int]:
    out = {}
    for name, m in module.named_modules():
        if isinstance(m, torch.nn.modules.conv._ConvNd) and getattr(m, "weight", None) is not None:
            out[f"{name}.weight" if name else "weight"] = int(m.groups)
    return out


def _tensor_shapes(sd: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]] | None:
    """Shapes without reading tensor bytes, when the lazy mapping can tell them (readers, the store)."""
    infos = getattr(sd, "tensor_infos", None)
    if callable(infos):
        return {t.name: tuple(t.shape) for t in infos()}
    ckpt = getattr(sd, "_ckpt", None)
    tensors = getattr(ckpt, "tensors", None)
    if tensors is not None:
        return {t.name: tuple(t.shape) for t in tensors}
    if isinstance(sd, dict):
        return {k: tuple(v.shape) for k, v in sd.items() if isinstance(v, torch.Tensor)}
    return None


def iter_conv_layers(
    source: Any,
    *,
    zoo: Any = None,
    kernel: int | None = 3,
    conv1d: bool = False,
    model_name: str | None = None,
) -> Iterator[ConvLayer]:
    """Stream the conv weights of one model, one tensor in memory at a time.

    Args:
        source: anything :func:`weightzoo.zoo.resolve.load_state_dict` takes (zoo model name, checkpoint
            path, ``nn.Module``, state dict).
        zoo: the zoo to resolve names in.
        kernel: keep only k×k kernels (default 3); ``None`` keeps every kernel size. Depth counts all convs.
        conv1d: also treat rank-3 ``[c_out, c_in/groups, k]`` weights as (1-D) convs.
        model_name: the ``model`` label (default: ``str(source)`` or the module's class name).

    Tensors are read in state-dict order; bf16/f16 weights are converted to float32.
    """
    from ..zoo.resolve import load_state_dict

    exact_groups = _module_groups(source) if isinstance(source, torch.nn.Module) else {}
    name = model_name or (type(source).__name__ if isinstance(source, torch.nn.Module | Mapping) else str(source))
    sd = load_state_dict(source, zoo=zoo)
    shapes = _tensor_shapes(sd)
    if shapes is not None:
        conv_names = [k for k, s in shapes.items() if _is_conv_shape(k, s, conv1d)]
        n_conv = len(conv_names)
        for depth, tname in enumerate(conv_names):
            shape = shapes[tname]
            if kernel is not None and shape[-1] != kernel:
                continue
            yield _make_layer(name, tname, sd[tname], depth, n_conv, exact_groups)
        return
    # Shapes unknown up front: read every tensor once, keep only the conv weights we will report.
    pending: list[tuple[str, torch.Tensor, int]] = []
    depth = 0
    for tname in sd:
        t = sd[tname]
        if not isinstance(t, torch.Tensor) or not _is_conv_shape(tname, tuple(t.shape), conv1d):
            continue
        if kernel is None or t.shape[-1] == kernel:
            pending.append((tname, t, depth))
        depth += 1
    for tname, t, dep in pending:
        yield _make_layer(name, tname, t, dep, depth, exact_groups)


def _make_layer(model: str, tname: str, t: torch.Tensor, depth: int, n_conv: int, exact: dict[str, int]) -> ConvLayer:
    w = t.detach()
    if w.dtype != torch.float32:
        if not (w.is_floating_point()):
            raise FilterAnalysisError(f"model {model!r}: conv weight {tname!r} has non-float dtype {w.dtype}")
        w = w.to(torch.float32)
    if tname in exact:
        groups, inferred = exact[tname], False
    else:
        groups = int(w.shape[0]) if (w.shape[1] == 1 and depth > 0 and w.shape[0] > 1) else 1
        inferred = True
    return ConvLayer(model, _layer_name(tname), w.cpu(), depth, n_conv, groups, inferred)


# --- the filter table --------------------------------------------------------------------------------


@dataclass
class FilterTable:
    """All k×k filters of a selection: an N×k² float32 array plus one metadata row per conv layer.

    ``filters`` may be a NumPy array or an open h5py dataset (chunked reads). Layer ``i`` owns rows
    ``offsets[i]:offsets[i+1]``; per-filter metadata is the layer's row (see :meth:`filter_meta`).
    ``layers`` rows hold ``model, layer, depth, normalized_depth, n_conv_layers, groups, groups_inferred,
    c_out, c_in_per_group, kernel``, the :class:`LayerQuality` metrics, and catalogue metadata of zoo models.
    """

    filters: Any
    layers: list[dict[str, Any]]
    offsets: np.ndarray
    kernel: int

    def __post_init__(self) -> None:
        self.offsets = np.asarray(self.offsets, dtype=np.int64)
        if len(self.offsets) != len(self.layers) + 1 or int(self.offsets[-1]) != int(self.filters.shape[0]):
            raise FilterAnalysisError("FilterTable: offsets must have one entry per layer plus one and end at N")

    def __len__(self) -> int:
        return int(self.filters.shape[0])

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def layer_filters(self, i: int) -> np.ndarray:
        """The filters of layer ``i`` as an (n_i, k²) float32 array."""
        return np.asarray(self.filters[int(self.offsets[i]) : int(self.offsets[i + 1])], dtype=np.float32)

    def filter_meta(self, key: str) -> np.ndarray:
        """One metadata column expanded to one value per filter (length N)."""
        vals = np.array([row.get(key) for row in self.layers], dtype=object)
        return np.repeat(vals, np.diff(self.offsets))

    def group_layers(self, by: str, *, depth_bins: int = 4) -> dict[str, list[int]]:
        """Layer indices per group.

        ``by``: ``"model"``, ``"layer"`` (same layer name across models), ``"depth"`` (normalised depth cut
        into ``depth_bins`` equal bins, labelled ``d0..``), or any metadata key (``task``, ``dataset``…);
        layers lacking the key are left out.
        """
        groups: dict[str, list[int]] = {}
        for i, row in enumerate(self.layers):
            if by == "depth":
                b = min(int(float(row["normalized_depth"]) * depth_bins), depth_bins - 1)
                label: Any = f"d{b}"
            else:
                label = row.get(by)
            if label is None or label == "":
                continue
            groups.setdefault(str(label), []).append(i)
        if not groups:
            keys = sorted({k for row in self.layers for k in row})
            raise FilterAnalysisError(f"no layer has a value for {by!r}; available keys: {', '.join(keys) or '(none)'}")
        return dict(sorted(groups.items()))

    def iter_chunks(self, layer_ids: Iterable[int] | None = None, chunk: int = _CHUNK) -> Iterator[np.ndarray]:
        """Contiguous (≤ chunk, k²) float32 blocks of the given layers' filters (all layers by default)."""
        ids = range(self.n_layers) if layer_ids is None else layer_ids
        for start, stop in _merge_ranges([(int(self.offsets[i]), int(self.offsets[i + 1])) for i in ids]):
            for s in range(start, stop, chunk):
                yield np.asarray(self.filters[s : min(s + chunk, stop)], dtype=np.float32)

    # --- export --------------------------------------------------------------------------------------
    def meta_csv(self) -> str:
        """The layer table as CSV with a ``filter_ids`` column ``"first:last"`` (inclusive), as CNN Filter DB."""
        cols = _meta_columns(self.layers)
        buf = io.StringIO()
        wr = csv.writer(buf, lineterminator="\n")
        wr.writerow([*cols, "filter_ids"])
        for i, row in enumerate(self.layers):
            ids = f"{int(self.offsets[i])}:{int(self.offsets[i + 1]) - 1}"
            wr.writerow([_csv_value(row.get(c)) for c in cols] + [ids])
        return buf.getvalue()

    def to_hdf5(self, path: str | os.PathLike[str]) -> Path:
        """Write ``filters`` (N×k² float32) and ``meta`` (UTF-8 CSV bytes of the layer table) to a new file.

        The layout of CNN Filter DB's dataset; written to a temporary file in the same folder and renamed,
        so an existing file is replaced whole or not at all.
        """
        import h5py

        path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
        os.close(fd)
        try:
            with h5py.File(tmp, "w") as f:
                n, d = len(self), self.kernel * self.kernel
                ds = f.create_dataset("filters", shape=(n, d), dtype="float32", chunks=(min(max(n, 1), _CHUNK), d) if n else None)
                for s in range(0, n, _CHUNK * 16):
                    ds[s : min(s + _CHUNK * 16, n)] = np.asarray(self.filters[s : min(s + _CHUNK * 16, n)], dtype=np.float32)
                f.create_dataset("meta", data=np.frombuffer(self.meta_csv().encode("utf-8"), dtype=np.uint8))
                f.attrs["kernel"] = self.kernel
                f.attrs["format"] = "weightzoo.filters/1"
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def from_hdf5(cls, path: str | os.PathLike[str], *, in_memory: bool = True) -> FilterTable:
        """Read a table written by :meth:`to_hdf5` (or CNN Filter DB's file); ``in_memory=False`` keeps the
        ``filters`` dataset open for chunked reads (close it with ``table.filters.file.close()``)."""
        import h5py

        f = h5py.File(path, "r")
        try:
            if "filters" not in f or "meta" not in f:
                raise FilterAnalysisError(f"{path}: not a filter table (needs 'filters' and 'meta' datasets)")
            ds = f["filters"]
            kernel = int(f.attrs.get("kernel", round(math.sqrt(ds.shape[1]))))
            layers, offsets = _parse_meta_csv(bytes(f["meta"][...]).decode("utf-8"), int(ds.shape[0]))
            filters = ds[...] if in_memory else ds
        finally:
            if in_memory:
                f.close()
        return cls(filters, layers, offsets, kernel)

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        """One row per filter: the layer's metadata columns then ``w0 … w{k²-1}`` (streamed, any size)."""
        path = Path(path)
        cols = _meta_columns(self.layers)
        d = self.kernel * self.kernel
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
        try:
            with os.fdopen(fd, "w", newline="") as fh:
                wr = csv.writer(fh, lineterminator="\n")
                wr.writerow([*cols, *(f"w{j}" for j in range(d))])
                for i, row in enumerate(self.layers):
                    meta = [_csv_value(row.get(c)) for c in cols]
                    for block in self.iter_chunks([i]):
                        wr.writerows(meta + [repr(float(v)) for v in r] for r in block.tolist())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def to_pandas(self) -> Any:
        """One row per filter as a ``pandas.DataFrame`` (pandas is optional and imported here)."""
        try:
            import pandas as pd
        except ImportError as exc:  # optional dependency
            raise FilterAnalysisError("to_pandas needs pandas (pip install pandas)") from exc
        d = self.kernel * self.kernel
        x = np.asarray(self.filters[...], dtype=np.float32)
        df = pd.DataFrame({f"w{j}": x[:, j] for j in range(d)})
        for c in reversed(_meta_columns(self.layers)):
            df.insert(0, c, self.filter_meta(c))
        return df


def _merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(ranges):
        if e <= s:
            continue
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _meta_columns(layers: list[dict[str, Any]]) -> list[str]:
    extra = sorted({k for row in layers for k in row} - set(_META_FIXED))
    return [*(c for c in _META_FIXED if any(c in r for r in layers)), *extra]


def _csv_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, list | tuple):
        return ";".join(str(x) for x in v)
    return str(v)


def _parse_meta_csv(text: str, n: int) -> tuple[list[dict[str, Any]], np.ndarray]:
    rows = list(csv.DictReader(io.StringIO(text)))
    layers: list[dict[str, Any]] = []
    spans: list[tuple[int, int]] = []
    for r in rows:
        ids = r.pop("filter_ids", None)
        if ids is None or ":" not in ids:
            raise FilterAnalysisError("filter table meta has no 'filter_ids' column of 'first:last' ranges")
        a, b = ids.split(":")
        spans.append((int(a), int(b) + 1))
        layers.append({k.strip(): _parse_value(k, v) for k, v in r.items() if k and (v != "" or k == "flags")})
    spans_sorted = sorted(range(len(spans)), key=lambda i: spans[i][0])
    layers = [layers[i] for i in spans_sorted]
    starts = [spans[i][0] for i in spans_sorted]
    offsets = np.array([*starts, n], dtype=np.int64)
    return layers, offsets


_INT_KEYS = {"depth", "n_conv_layers", "groups", "c_out", "c_in_per_group", "kernel", "n_filters"}
_BOOL_KEYS = {"groups_inferred"}


def _parse_value(key: str, v: str) -> Any:
    if key in _INT_KEYS:
        return int(float(v))
    if key in _BOOL_KEYS:
        return v == "True"
    if key == "flags":
        return [x for x in v.split(";") if x]
    try:
        return float(v) if key not in ("model", "layer") else v
    except ValueError:
        return v


# --- collecting --------------------------------------------------------------------------------------


@dataclass
class FilterScan:
    """Result of :func:`scan_filters`: the table, and the per-layer records (metadata + metrics)."""

    table: FilterTable
    skipped: list[str] = field(default_factory=list)

    @property
    def layers(self) -> list[dict[str, Any]]:
        return self.table.layers


def scan_filters(
    sources: Iterable[Any],
    *,
    zoo: Any = None,
    kernel: int = 3,
    eps: float = SPARSITY_EPS,
    thresholds: DegenerationThresholds | None = None,
    out: str | os.PathLike[str] | None = None,
    keep_filters: bool = True,
    progress: Callable[[str], None] | None = None,
) -> FilterScan:
    """Collect the k×k filters and per-layer metrics of many models, one model in memory at a time.

    Args:
        sources: models (zoo names with ``zoo``, checkpoint paths, modules, state dicts); a
            ``(label, source)`` tuple names a module or dict.
        zoo: a :class:`~weightzoo.zoo.store.Zoo` or its folder; zoo models add their catalogue metadata
            (``architecture``, ``model_type``, ``library`` and free-form metadata keys such as ``task``).
        kernel: kernel size to collect (default 3).
        eps: sparsity ε (default 0.01).
        out: stream the filters into this HDF5 file as they are read (bounded memory for zoo-wide runs);
            the returned table then reads from it lazily. Without it the filters stay in memory.
        keep_filters: ``False`` computes the metrics only (``table.filters`` is then empty).
    """
    import h5py

    if kernel < 1:
        raise FilterAnalysisError(f"kernel must be ≥ 1, got {kernel}")
    d = kernel * kernel
    zoo_obj = _open_zoo(zoo)
    layers: list[dict[str, Any]] = []
    offsets = [0]
    blocks: list[np.ndarray] = []
    h5 = tmp_path = None
    ds = None
    if out is not None and keep_filters:
        out = Path(out)
        fd, tmp_path = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent or ".")
        os.close(fd)
        h5 = h5py.File(tmp_path, "w")
        ds = h5.create_dataset("filters", shape=(0, d), maxshape=(None, d), dtype="float32", chunks=(_CHUNK, d))
    skipped: list[str] = []
    try:
        for src in sources:
            label, src = src if isinstance(src, tuple) else (None, src)
            meta = _catalogue_meta(zoo_obj, src) if zoo_obj is not None and isinstance(src, str) else {}
            found = False
            for cl in iter_conv_layers(src, zoo=zoo_obj, kernel=kernel, model_name=label):
                found = True
                q = layer_quality(cl.weight, eps=eps, thresholds=thresholds)
                row: dict[str, Any] = {
                    "model": cl.model,
                    "layer": cl.layer,
                    "depth": cl.depth,
                    "normalized_depth": cl.normalized_depth,
                    "n_conv_layers": cl.n_conv_layers,
                    "groups": cl.groups,
                    "groups_inferred": cl.groups_inferred,
                }
                row.update(q.as_dict())
                for k, v in meta.items():
                    row.setdefault(k, v)
                layers.append(row)
                n = q.n_filters if keep_filters else 0
                if keep_filters:
                    flat = cl.weight.reshape(-1, d).numpy()
                    if ds is not None:
                        ds.resize(offsets[-1] + n, axis=0)
                        ds[offsets[-1] :] = flat
                    else:
                        blocks.append(flat.copy())
                offsets.append(offsets[-1] + n)
            if not found:
                skipped.append(label or str(src))
            if progress:
                progress(label or str(src))
        if h5 is not None:
            assert ds is not None and tmp_path is not None and out is not None
            table = FilterTable(ds, layers, np.array(offsets), kernel)
            h5.create_dataset("meta", data=np.frombuffer(table.meta_csv().encode("utf-8"), dtype=np.uint8))
            h5.attrs["kernel"] = kernel
            h5.attrs["format"] = "weightzoo.filters/1"
            h5.close()
            h5 = None
            os.replace(tmp_path, out)
            tmp_path = None
            f = h5py.File(out, "r")
            return FilterScan(FilterTable(f["filters"], layers, np.array(offsets), kernel), skipped)
        filters = np.concatenate(blocks) if blocks else np.zeros((0, d), dtype=np.float32)
        return FilterScan(FilterTable(filters, layers, np.array(offsets), kernel), skipped)
    finally:
        if h5 is not None:
            h5.close()
        if tmp_path is not None:
            Path(tmp_path).unlink(missing_ok=True)
        if zoo_obj is not None and zoo_obj is not zoo:
            zoo_obj.close()


def _open_zoo(zoo: Any) -> Any:
    if zoo is None or not isinstance(zoo, str | os.PathLike):
        return zoo
    from ..zoo.store import Zoo

    return Zoo.open(zoo, create=False)


def _catalogue_meta(zoo: Any, name: str) -> dict[str, Any]:
    if not zoo.has_model(name):
        return {}
    rec = zoo.model(name)
    meta: dict[str, Any] = {}
    for key in ("architecture", "model_type", "library"):
        v = getattr(rec, key, None)
        if v is not None:
            meta[key] = v
    for k, v in (getattr(rec, "metadata", None) or {}).items():
        if isinstance(v, str | int | float | bool) and k not in _META_FIXED:
            meta[k] = v
    return meta


# --- vectorised per-filter work ----------------------------------------------------------------------


def filter_absmax(filters: np.ndarray) -> np.ndarray:
    """max |w| of every filter of an (n, k²) array: cache-sized chunks transposed to component-major, so
    the max runs as k² − 1 contiguous SIMD passes instead of a short strided reduction per row."""
    x = np.asarray(filters, dtype=np.float32)
    out = np.empty(x.shape[0], np.float32)
    buf = np.empty((x.shape[1], min(_CHUNK, max(x.shape[0], 1))), np.float32)
    for s in range(0, x.shape[0], _CHUNK):
        blk = x[s : s + _CHUNK]
        b = buf[:, : blk.shape[0]]
        np.copyto(b, blk.T)
        np.abs(b, out=b)
        np.maximum.reduce(b, axis=0, out=out[s : s + blk.shape[0]])
    return out


def normalize_filters(filters: np.ndarray) -> np.ndarray:
    """Each filter divided by its own max |w| (all-zero filters stay zero), as CNN Filter DB scales them."""
    x = np.asarray(filters, dtype=np.float32)
    m = filter_absmax(x)
    m[m == 0] = 1.0
    return x / m[:, None]


def layer_sparsity_vectorized(
    filters: np.ndarray, offsets: np.ndarray, *, eps: float = SPARSITY_EPS, absmax: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Sparse-kernel mask (length N) and per-layer sparsity of a whole table in one vectorised pass.

    Same definition as :func:`sparsity_mask`, applied to every layer ``offsets[i]:offsets[i+1]`` at once
    (per-layer maxima by ``np.maximum.reduceat``). Pass ``absmax`` (from :func:`filter_absmax` or
    :meth:`FilterPCA.transform`) to skip recomputing the per-filter maxima.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    m = filter_absmax(filters) if absmax is None else np.asarray(absmax, np.float32)
    sizes = np.diff(offsets)
    nonempty = sizes > 0
    layer_max = np.zeros(len(sizes), np.float32)
    if m.size:
        layer_max[nonempty] = np.maximum.reduceat(m, offsets[:-1][nonempty])
    t = layer_max * np.float32(eps)
    t[t == 0] = 1.0
    mask = m < np.repeat(t, sizes)
    counts = np.add.reduceat(mask.astype(np.int64), offsets[:-1][nonempty]) if m.size else np.zeros(0, np.int64)
    sp = np.full(len(sizes), np.nan)
    sp[nonempty] = counts / sizes[nonempty]
    return mask, sp


class FilterPCA:
    r"""PCA basis of max-normalised filters, fitted in one streaming pass and shared across a selection.

    Filters are scaled by their own max |w| (CNN Filter DB), then the k²×k² covariance is accumulated in
    float64 over chunks (:meth:`partial_fit`), so a basis over billions of filters needs O(k⁴) memory.
    ``components`` (k²×k², rows = principal axes by decreasing variance, sign fixed so each axis' largest
    |entry| is positive), ``explained_variance`` and ``explained_variance_ratio`` as in scikit-learn.
    """

    def __init__(self, kernel: int = 3) -> None:
        if kernel < 1:
            raise FilterAnalysisError(f"FilterPCA(kernel={kernel}): kernel must be ≥ 1")
        self.kernel = kernel
        d = kernel * kernel
        self.n_ = 0
        self._sum = np.zeros(d)
        self._gram = np.zeros((d, d))
        self.mean: np.ndarray | None = None
        self.components: np.ndarray | None = None
        self.explained_variance: np.ndarray | None = None
        self.explained_variance_ratio: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"FilterPCA(kernel={self.kernel}, n={self.n_}, fitted={self.components is not None})"

    def partial_fit(self, filters: np.ndarray) -> FilterPCA:
        """Add an (n, k²) block of raw filters to the running moments."""
        x = np.asarray(filters, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.kernel**2:
            raise FilterAnalysisError(f"FilterPCA(kernel={self.kernel}) expects (n, {self.kernel ** 2}) filters, got {x.shape}")
        xt = np.ascontiguousarray(x.T)
        m = np.abs(xt).max(axis=0) if xt.shape[1] else np.zeros(0, np.float32)
        m[m == 0] = 1.0
        xt /= m
        self._sum += xt.sum(axis=1, dtype=np.float64)
        x64 = xt.astype(np.float64)
        self._gram += x64 @ x64.T
        self.n_ += x.shape[0]
        return self

    def finalize(self) -> FilterPCA:
        """Turn the accumulated moments into the basis."""
        if self.n_ < 2:
            raise FilterAnalysisError(f"FilterPCA needs at least 2 filters, got {self.n_}")
        mean = self._sum / self.n_
        cov = (self._gram - self.n_ * np.outer(mean, mean)) / (self.n_ - 1)
        vals, vecs = np.linalg.eigh(cov)
        order = np.argsort(vals)[::-1]
        vals = np.clip(vals[order], 0.0, None)
        comps = vecs[:, order].T
        signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
        comps *= signs[:, None]
        self.mean = mean
        self.components = comps
        self.explained_variance = vals
        total = vals.sum()
        self.explained_variance_ratio = vals / total if total > 0 else np.full_like(vals, 1.0 / len(vals))
        return self

    def fit(self, table: FilterTable | np.ndarray, layer_ids: Iterable[int] | None = None) -> FilterPCA:
        """Fit on a whole table (chunked) or an (n, k²) array."""
        for block in _blocks(table, layer_ids):
            self.partial_fit(block)
        return self.finalize()

    def transform(
        self, filters: np.ndarray, *, absmax_out: np.ndarray | None = None, out: np.ndarray | None = None
    ) -> np.ndarray:
        r"""PCA coefficients (n, k²) of raw filters, normalised internally: :math:`C(x/\max|x| - \mu)`.

        One fused pass per cache-sized chunk (transpose, |·|, max, matmul, scale); the result is
        Fortran-ordered (component-major memory), which is what histogramming per component wants.
        ``absmax_out`` (length n) receives each filter's max |w| on the way (for sparsity tests); ``out``
        (a (k², n) float32 C-ordered buffer, reused across calls to avoid fresh pages) receives the
        transposed coefficients, and ``out.T`` is returned.
        """
        if self.components is None or self.mean is None:
            raise FilterAnalysisError("FilterPCA.transform before fit/finalize")
        x = np.asarray(filters, dtype=np.float32)
        d = self.kernel**2
        if x.ndim != 2 or x.shape[1] != d:
            raise FilterAnalysisError(f"FilterPCA(kernel={self.kernel}) expects (n, {d}) filters, got {x.shape}")
        if out is None:
            out = np.empty((d, x.shape[0]), np.float32)
        elif out.shape != (d, x.shape[0]) or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise FilterAnalysisError(f"FilterPCA.transform: out must be a C-ordered float32 array of shape {(d, x.shape[0])}")
        comps = self.components.astype(np.float32)
        shift = (comps @ self.mean.astype(np.float32))[:, None]
        cols = min(_CHUNK, max(x.shape[0], 1))
        xt, a, m = np.empty((d, cols), np.float32), np.empty((d, cols), np.float32), np.empty(cols, np.float32)
        p = np.empty((d, cols), np.float32)  # matmul into contiguous memory: a strided `out` leaves BLAS
        for s in range(0, x.shape[0], _CHUNK):
            blk = x[s : s + _CHUNK]
            b = blk.shape[0]
            np.copyto(xt[:, :b], blk.T)
            np.abs(xt[:, :b], out=a[:, :b])
            np.maximum.reduce(a[:, :b], axis=0, out=m[:b])
            if absmax_out is not None:
                absmax_out[s : s + b] = m[:b]
            mb = m[:b]
            mb[mb == 0] = 1.0
            np.reciprocal(mb, out=mb)
            pb = p[:, :b] if b == cols else np.empty((d, b), np.float32)
            np.matmul(comps, xt[:, :b], out=pb)
            pb *= mb
            np.subtract(pb, shift, out=out[:, s : s + b])
        return out.T


def _blocks(table: FilterTable | np.ndarray, layer_ids: Iterable[int] | None) -> Iterator[np.ndarray]:
    if isinstance(table, FilterTable):
        yield from table.iter_chunks(layer_ids)
    else:
        x = np.asarray(table, dtype=np.float32)
        for s in range(0, x.shape[0], _CHUNK):
            yield x[s : s + _CHUNK]


# --- distribution shift ------------------------------------------------------------------------------


def coefficient_histograms(
    coefficients: np.ndarray, edges: np.ndarray
) -> np.ndarray:
    """Counts (k², bins) of each PCA component's coefficients over shared bin ``edges`` (values outside are
    clipped into the end bins)."""
    c = np.asarray(coefficients, dtype=np.float32)
    bins = len(edges) - 1
    lo, hi = float(edges[0]), float(edges[-1])
    width = (hi - lo) / bins if hi > lo else 1.0
    counts = np.zeros((c.shape[1], bins), np.int64)
    for j in range(c.shape[1]):
        idx = np.floor((c[:, j] - lo) / width).astype(np.int64)
        np.clip(idx, 0, bins - 1, out=idx)
        counts[j] = np.bincount(idx, minlength=bins)
    return counts


def symmetric_kl(p_counts: np.ndarray, q_counts: np.ndarray, *, eps: float = KL_EPS) -> np.ndarray:
    r"""KL(P‖Q) + KL(Q‖P) (natural log) per row of two count arrays (…, bins).

    Each histogram becomes :math:`P = (c/\sum c + \varepsilon) / (1 + B\varepsilon)` with
    ε = ``KL_EPS`` (1e-10) so empty bins keep the divergence finite.
    """
    def prob(c: np.ndarray) -> np.ndarray:
        c = np.asarray(c, dtype=np.float64)
        tot = c.sum(axis=-1, keepdims=True)
        p = np.divide(c, tot, out=np.zeros_like(c), where=tot > 0)
        return (p + eps) / (1.0 + c.shape[-1] * eps)

    p, q = prob(p_counts), prob(q_counts)
    lr = np.log(p) - np.log(q)
    return ((p - q) * lr).sum(axis=-1)


def distribution_shift(
    coeffs_a: np.ndarray,
    coeffs_b: np.ndarray,
    explained_variance_ratio: np.ndarray,
    *,
    bins: int = KL_BINS,
    value_range: tuple[float, float] | None = None,
    eps: float = KL_EPS,
) -> float:
    r"""CNN Filter DB's shift between two groups of filters given their PCA coefficients.

    .. math:: D(A, B) = \sum_i w_i \,[\mathrm{KL}(P_i\|Q_i) + \mathrm{KL}(Q_i\|P_i)],

    :math:`P_i, Q_i` the ``bins``-bin (70) histograms of component i's coefficients over a shared range
    (``value_range``, default the min/max of both groups over all components), :math:`w_i` the explained
    variance ratio. Natural log; see :func:`symmetric_kl` for the empty-bin ε.
    """
    a = np.asarray(coeffs_a, np.float32)
    b = np.asarray(coeffs_b, np.float32)
    if a.shape[0] == 0 or b.shape[0] == 0:
        raise FilterAnalysisError("distribution_shift needs at least one filter in each group")
    if value_range is None:
        value_range = (float(min(a.min(), b.min())), float(max(a.max(), b.max())))
    edges = np.linspace(value_range[0], value_range[1], bins + 1)
    kl = symmetric_kl(coefficient_histograms(a, edges), coefficient_histograms(b, edges), eps=eps)
    w = np.asarray(explained_variance_ratio, np.float64)[: len(kl)]
    return float((w * kl).sum())


@dataclass
class ShiftResult:
    """Pairwise shifts between groups: ``matrix[i, j]`` = D(groups[i], groups[j]) (symmetric, zero diagonal
    up to histogram ε), the shared ``pca``, the per-group histograms (groups × k² × bins) and bin ``edges``."""

    groups: list[str]
    matrix: np.ndarray
    pca: FilterPCA
    histograms: np.ndarray
    edges: np.ndarray
    sizes: list[int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "groups": self.groups,
            "sizes": self.sizes,
            "matrix": self.matrix.tolist(),
            "explained_variance_ratio": [] if self.pca.explained_variance_ratio is None else self.pca.explained_variance_ratio.tolist(),
        }


def group_shift(
    table: FilterTable,
    by: str,
    *,
    pca: FilterPCA | None = None,
    bins: int = KL_BINS,
    depth_bins: int = 4,
    eps: float = KL_EPS,
) -> ShiftResult:
    """Shift matrix between the groups of ``table`` (see :meth:`FilterTable.group_layers` for ``by``).

    Streams the table three times in chunks (fit the shared PCA unless given, find the coefficient range,
    histogram each group), so it works on HDF5-backed tables larger than memory.
    """
    if bins < 2:
        raise FilterAnalysisError(f"bins must be ≥ 2, got {bins}")
    groups = table.group_layers(by, depth_bins=depth_bins)
    ids_all = sorted(i for ids in groups.values() for i in ids)
    if pca is None:
        pca = FilterPCA(table.kernel).fit(table, ids_all)
    lo, hi = np.inf, -np.inf
    for block in table.iter_chunks(ids_all):
        c = pca.transform(block)
        if c.size:
            lo, hi = min(lo, float(c.min())), max(hi, float(c.max()))
    if not np.isfinite(lo):
        raise FilterAnalysisError("no filters to compare")
    if hi <= lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, bins + 1)
    d = table.kernel**2
    hists = np.zeros((len(groups), d, bins), np.int64)
    sizes = []
    for gi, ids in enumerate(groups.values()):
        size = 0
        for block in table.iter_chunks(ids):
            hists[gi] += coefficient_histograms(pca.transform(block), edges)
            size += block.shape[0]
        sizes.append(size)
    w = pca.explained_variance_ratio
    assert w is not None
    g = len(groups)
    mat = np.zeros((g, g))
    for i in range(g):
        kl = symmetric_kl(hists[i][None], hists, eps=eps)  # (g, d)
        mat[i] = kl @ w
    return ShiftResult(list(groups), mat, pca, hists, edges, sizes)


# --- helpers -----------------------------------------------------------------------------------------


def _as_f32(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to(torch.float32).cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def _as_f64(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to(torch.float64).cpu().numpy()
    return np.asarray(x, dtype=np.float64)


__all__ = [
    "KL_BINS",
    "KL_EPS",
    "SPARSITY_EPS",
    "ConvLayer",
    "DegenerationThresholds",
    "FilterAnalysisError",
    "FilterPCA",
    "FilterScan",
    "FilterTable",
    "LayerQuality",
    "ShiftResult",
    "coefficient_histograms",
    "distribution_shift",
    "filter_absmax",
    "group_shift",
    "iter_conv_layers",
    "layer_quality",
    "layer_sparsity_vectorized",
    "normalize_filters",
    "orthogonality",
    "random_reference_entropy",
    "scan_filters",
    "sparsity_mask",
    "symmetric_kl",
    "variance_entropy",
]
