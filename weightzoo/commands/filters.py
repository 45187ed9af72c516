"""``weightzoo filters``: CNN Filter DB metrics per conv layer, filter tables, and group shifts."""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

from weightzoo.errors import InvalidOptionError

from ._common import add_executor, add_json, add_zoo, print_json, ray_choice, resolve_model_ref


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "filters",
        help="convolution-filter statistics (CNN Filter DB): sparsity, entropy, orthogonality, shifts",
        description="Per conv layer: sparsity, variance entropy (base 10) and its ratio to the random "
        "reference, orthogonality, norms, degeneration flags; optionally a filter table (HDF5/CSV), the "
        "shift between groups of filters (--by) and figures.",
    )
    p.add_argument("model", nargs="*", metavar="MODEL", help="checkpoint paths or zoo model names")
    add_zoo(p)
    p.add_argument("--models", nargs="+", default=None, metavar="M", help="zoo models (default with --zoo: all ingested)")
    p.add_argument("--kernel", type=int, default=3, help="kernel size k of the k×k filters (default 3)")
    p.add_argument("--eps", type=float, default=0.01, help="sparsity ε (default 0.01)")
    p.add_argument("--by", default=None, metavar="KEY", help="group filters by model, layer, depth or a metadata key (task, dataset…) and report the shift matrix")
    p.add_argument("--depth-bins", type=int, default=4, help="bins of normalised depth for --by depth (default 4)")
    p.add_argument("--out", default=None, metavar="FILE", help="write the filter table (.h5 or .csv)")
    p.add_argument("--plots", default=None, metavar="DIR", help="write figures (PNG) to this folder")
    add_executor(p)
    add_json(p)
    p.set_defaults(func=run)


def _sources(args: argparse.Namespace) -> list[tuple[str, str]]:
    refs = list(args.model) + list(args.models or [])
    if not refs:
        if not args.zoo:
            raise InvalidOptionError("filters needs MODEL arguments, --models, or --zoo DIR (all its models)")
        from weightzoo.zoo.store import Zoo

        with Zoo.open(args.zoo, create=False) as z:
            refs = [m.ref for m in z.models(ingested=True)]
        if not refs:
            raise InvalidOptionError(f"zoo {args.zoo} holds no ingested models")
        return [(r, r) for r in refs]
    out = []
    for ref in refs:
        kind, value = resolve_model_ref(ref, args.zoo)
        out.append((ref, value if kind == "zoo" else str(Path(value))))
    return out


def run(args: argparse.Namespace) -> int:
    from weightzoo.analysis.filters import FilterAnalysisError, group_shift, scan_filters

    if args.kernel < 1:
        raise FilterAnalysisError(f"--kernel must be ≥ 1, got {args.kernel}")
    if args.out and Path(args.out).suffix.lower() not in (".h5", ".hdf5", ".csv"):
        raise FilterAnalysisError(f"--out must end in .h5, .hdf5 or .csv, got {args.out}")
    sources = _sources(args)
    need_filters = bool(args.by or args.out or args.plots)
    tmpdir = tempfile.mkdtemp(prefix="weightzoo-filters-") if need_filters else None
    try:
        h5 = None
        if need_filters:
            h5 = Path(args.out) if args.out and Path(args.out).suffix.lower() in (".h5", ".hdf5") else Path(tmpdir or ".") / "filters.h5"
        from tqdm import tqdm

        from weightzoo.zoo.store.executors import make_executor

        with make_executor(args.workers or 1, ray=ray_choice(args)) as ex, \
                tqdm(total=len(sources), unit="model", desc=f"filters ({ex.name})", leave=False,
                     disable=True if args.json else None) as bar:  # one model per task
            scan = scan_filters(
                [(label, src) for label, src in sources],
                zoo=args.zoo,
                kernel=args.kernel,
                eps=args.eps,
                out=h5,
                keep_filters=need_filters,
                executor=ex,
                progress=lambda _label: bar.update(1),
            )
        with scan.table as table:
            shift = None
            if args.by:
                if len(table) == 0:
                    raise FilterAnalysisError(f"no {args.kernel}×{args.kernel} conv filters to group")
                shift = group_shift(table, args.by, depth_bins=args.depth_bins)
            if args.out and Path(args.out).suffix.lower() == ".csv":
                table.to_csv(args.out)
            if args.plots:
                _plots(table, shift, Path(args.plots))
            layers = [_clean(r) for r in table.layers]
            if args.json:
                print_json({"layers": layers, "skipped": scan.skipped, "shift": shift.as_dict() if shift else None})
            else:
                _print_text(layers, scan.skipped, shift, args.kernel)
    finally:
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
    return 0


def _plots(table: Any, shift: Any, folder: Path) -> None:
    from weightzoo.analysis.filter_plots import (
        plot_coefficient_distributions,
        plot_layer_metrics,
        plot_pca_basis,
        plot_shift_heatmap,
    )
    from weightzoo.analysis.filters import FilterPCA

    folder.mkdir(parents=True, exist_ok=True)
    if table.n_layers:
        plot_layer_metrics(table, folder / "layer_metrics.png")
    if shift is not None:
        plot_pca_basis(shift.pca, folder / "pca_basis.png")
        plot_coefficient_distributions(shift, folder / "coefficients.png")
        plot_shift_heatmap(shift, folder / "shift_heatmap.png")
    elif len(table) >= 2:
        plot_pca_basis(FilterPCA(table.kernel).fit(table), folder / "pca_basis.png")


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def _print_text(layers: list[dict[str, Any]], skipped: list[str], shift: Any, k: int) -> None:
    if not layers:
        print(f"no {k}×{k} conv layers" + (f" in {', '.join(skipped)}" if skipped else ""))
        return
    head = f"{'model':<24} {'layer':<28} {'filters':>8} {'sparsity':>8} {'entropy':>8} {'ratio':>6} {'orth':>6}  flags"
    print(head)
    for r in layers:
        print(
            f"{str(r['model'])[:24]:<24} {str(r['layer'])[:28]:<28} {r['n_filters']:>8} {_fmt(r['sparsity']):>8} "
            f"{_fmt(r['variance_entropy']):>8} {_fmt(r['variance_entropy_clean_ratio']):>6} {_fmt(r['orthogonality']):>6}  "
            f"{','.join(r['flags']) or '-'}"
        )
    if skipped:
        print(f"no {k}×{k} conv layers in: {', '.join(skipped)}")
    if shift is not None:
        print(f"\nshift (explained-variance-weighted symmetric KL) by group, {len(shift.groups)} groups:")
        w = max(8, *(len(g) for g in shift.groups))
        print(" " * (w + 1) + " ".join(f"{g[:w]:>{w}}" for g in shift.groups))
        for g, row in zip(shift.groups, shift.matrix):
            print(f"{g[:w]:<{w}} " + " ".join(f"{v:>{w}.3f}" for v in row))


__all__ = ["register", "run"]
