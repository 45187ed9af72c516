r"""Collecting conv filters from models into a :class:`FilterTable`, and exporting it (HDF5, CSV, pandas).

Every k×k convolution kernel (one input channel of one output channel) of every selected model becomes one
row of the table; each conv layer gets one metadata row with the metrics of
:func:`~weightzoo.analysis.filter_metrics.layer_quality`. :func:`scan_filters` streams many models, one
model in memory at a time, optionally straight into an HDF5 file (CNN Filter DB's layout).

Conv weights are recognised from shapes alone, so any checkpoint works: a tensor whose name ends in
``weight`` and whose shape is ``[c_out, c_in/groups, k, k]`` (rank 4, square kernel, 1×1 included) is a
2-D convolution (rank 3 ``[c_out, c_in/groups, k]`` with ``k > 1`` when ``conv1d=True``). ``groups`` is
exact when the source is an ``nn.Module`` (read from its conv modules); otherwise it is inferred: a layer
whose kernels see one input channel (``c_in/groups == 1``) and that is not the model's first conv is taken
as depthwise (``groups = c_out``); every other layer is reported with ``groups = 1`` (a grouped,
non-depthwise conv cannot be told from its shape). Transposed convolutions store
``[c_in, c_out/groups, k, k]`` and are indistinguishable by shape; they are read as if they were ordinary
convs.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from weightzoo.errors import FilterAnalysisError
from weightzoo.zoo.formats.base import TensorTable
from weightzoo.zoo.formats.durable import atomic_path, atomic_write, durable_replace, temp_name
from weightzoo.zoo.store.executors import Executor, SerialExecutor

from .filter_metrics import _CHUNK, SPARSITY_EPS, DegenerationThresholds, layer_quality

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
    if isinstance(sd, TensorTable):
        return {t.name: tuple(t.shape) for t in sd.tensor_infos()}
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
        source: anything :func:`weightzoo.zoo.store.resolve.load_state_dict` takes (zoo model name, checkpoint
            path, ``nn.Module``, state dict).
        zoo: the zoo to resolve names in.
        kernel: keep only k×k kernels (default 3); ``None`` keeps every kernel size. Depth counts all convs.
        conv1d: also treat rank-3 ``[c_out, c_in/groups, k]`` weights as (1-D) convs.
        model_name: the ``model`` label (default: ``str(source)`` or the module's class name).

    Tensors are read in state-dict order; bf16/f16 weights are converted to float32.
    """
    from weightzoo.zoo.store.resolve import load_state_dict

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

    def close(self) -> None:
        """Close the HDF5 file behind ``filters`` when the table reads it lazily (a no-op for arrays)."""
        f = getattr(self.filters, "file", None)
        if f is not None and getattr(f, "id", None) is not None and f.id.valid:
            f.close()

    def __enter__(self) -> FilterTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            n, d = len(self), self.kernel * self.kernel
            ds = f.create_dataset("filters", shape=(n, d), dtype="float32", chunks=(min(max(n, 1), _CHUNK), d) if n else None)
            for s in range(0, n, _CHUNK * 16):
                ds[s : min(s + _CHUNK * 16, n)] = np.asarray(self.filters[s : min(s + _CHUNK * 16, n)], dtype=np.float32)
            f.create_dataset("meta", data=np.frombuffer(self.meta_csv().encode("utf-8"), dtype=np.uint8))
            f.attrs["kernel"] = self.kernel
            f.attrs["format"] = "weightzoo.filters/1"
        return path

    @classmethod
    def from_hdf5(cls, path: str | os.PathLike[str], *, in_memory: bool = True) -> FilterTable:
        """Read a table written by :meth:`to_hdf5` (or CNN Filter DB's file); ``in_memory=False`` keeps the
        ``filters`` dataset open for chunked reads (use the table as a context manager, or :meth:`close`)."""
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
        with atomic_write(path, "w", newline="") as fh:
            wr = csv.writer(fh, lineterminator="\n")
            wr.writerow([*cols, *(f"w{j}" for j in range(d))])
            for i, row in enumerate(self.layers):
                meta = [_csv_value(row.get(c)) for c in cols]
                for block in self.iter_chunks([i]):
                    wr.writerows(meta + [repr(float(v)) for v in r] for r in block.tolist())
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
    executor: Executor | None = None,
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
        executor: scan the models on workers (an :class:`~weightzoo.zoo.store.executors.Executor`: a
            process pool or Ray tasks); this process looks zoo models up, the workers read them straight
            from the packs, and the table is assembled here in input order — equal to a serial scan.
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
        tmp_path = temp_name(out)
        h5 = h5py.File(tmp_path, "w")
        ds = h5.create_dataset("filters", shape=(0, d), maxshape=(None, d), dtype="float32", chunks=(_CHUNK, d))
    skipped: list[str] = []
    try:
        jobs = [_scan_job(src, zoo_obj) for src in sources]
        ex = executor if executor is not None else SerialExecutor()
        task = _ScanTask(kernel, eps, thresholds, keep_filters)
        for (label, payload, meta), (rows, flats) in zip(jobs, ex.map(task, [(lb, p) for lb, p, _ in jobs])):
            for row, flat in zip(rows, flats):
                for k, v in meta.items():
                    row.setdefault(k, v)
                layers.append(row)
                n = len(flat) if keep_filters else 0
                if keep_filters:
                    if ds is not None:
                        ds.resize(offsets[-1] + n, axis=0)
                        ds[offsets[-1] :] = flat
                    else:
                        blocks.append(flat)
                offsets.append(offsets[-1] + n)
            if not rows:
                skipped.append(label or str(payload))
            if progress:
                progress(label or str(payload))
        if h5 is not None:
            assert ds is not None and tmp_path is not None and out is not None
            table = FilterTable(ds, layers, np.array(offsets), kernel)
            h5.create_dataset("meta", data=np.frombuffer(table.meta_csv().encode("utf-8"), dtype=np.uint8))
            h5.attrs["kernel"] = kernel
            h5.attrs["format"] = "weightzoo.filters/1"
            h5.close()
            h5 = None
            durable_replace(tmp_path, out)
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


def _scan_job(src: Any, zoo: Any) -> tuple[str | None, Any, dict[str, Any]]:
    """``(label, what a worker reads, catalogue metadata)``: zoo names become detached models (workers never
    open the catalogue), paths become absolute (a worker's working folder may differ)."""
    label, src = src if isinstance(src, tuple) else (None, src)
    if not isinstance(src, str | os.PathLike):
        return label, src, {}
    ref = os.fspath(src)
    from weightzoo.zoo.store.resolve import classify_ref

    explicit = isinstance(src, Path) or ref.startswith(("./", "../", "/"))
    if zoo is not None and classify_ref(ref, zoo, explicit_path=explicit) == "zoo":
        return label or ref, zoo.detach(ref), _catalogue_meta(zoo, ref)
    meta = _catalogue_meta(zoo, ref) if zoo is not None and isinstance(src, str) else {}
    return label or ref, str(Path(ref).resolve()), meta


class _ScanTask:
    """One model's conv layers → ``(layer rows, k×k filter blocks)``, in a worker or in-process."""

    def __init__(self, kernel: int, eps: float, thresholds: DegenerationThresholds | None, keep_filters: bool) -> None:
        self.kernel, self.eps, self.thresholds, self.keep_filters = kernel, eps, thresholds, keep_filters

    def __call__(self, job: tuple[str | None, Any]) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
        from weightzoo.zoo.store.detached import DetachedModel

        label, src = job
        if isinstance(src, DetachedModel):
            src = src.state_dict()
        d = self.kernel * self.kernel
        rows: list[dict[str, Any]] = []
        flats: list[np.ndarray] = []
        for cl in iter_conv_layers(src, kernel=self.kernel, model_name=label):
            q = layer_quality(cl.weight, eps=self.eps, thresholds=self.thresholds)
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
            rows.append(row)
            flats.append(cl.weight.reshape(-1, d).numpy().copy() if self.keep_filters else np.zeros((0, d), np.float32))
        return rows, flats


def _open_zoo(zoo: Any) -> Any:
    if zoo is None or not isinstance(zoo, str | os.PathLike):
        return zoo
    from weightzoo.zoo.store import Zoo

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


__all__ = ["ConvLayer", "FilterScan", "FilterTable", "iter_conv_layers", "scan_filters"]
