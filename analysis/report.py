r"""One self-contained HTML report of a zoo and of the learned runs trained on it.

:func:`build_report` writes a single ``.html`` file that opens offline: every figure is a PNG embedded as
a ``data:`` URI, styles are inline, nothing is fetched from the network. Sections:

* **Zoo overview** — models (ingested / metadata-only), parameters, logical and stored bytes (the
  deduplication saving), formats, sources and architectures, the largest models.
* **Lineage** — the lineage graph, declared edges solid and inferred edges dashed.
* **Filter statistics** — CNN Filter DB metrics of every 3×3 conv layer against depth, and the PCA
  basis of the filters.
* **Task vectors** — cosine similarity of the task vectors of fine-tunes (child − recorded parent).
* **Learned results** — every run folder given, in the layouts the trainers write: ``runs/NAME/seed-K/``
  (metanetworks, GHNs), ``runs/NAME/seed<K>/<kind>/`` (nowcasters: one model per kind and seed), or a
  single folder: the metrics JSON files it holds, mean ± std over seeds, beside each other.

A section without data says so in one sentence. The figures use matplotlib's ``Agg`` back end.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from weightzoo.errors import InvalidOptionError
from weightzoo.zoo.formats.durable import write_bytes_atomic
from weightzoo.zoo.store import ZooLike, using_zoo

#: Metrics files a run folder may hold (the first found per folder is used).
METRICS_FILES = ("metrics.json", "results.json", "eval.json")
_MAX_JSON_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Section:
    """One part of the report: a title, its HTML body, and whether it had data to show."""

    key: str
    title: str
    body: str
    has_data: bool
    figures: int = 0


# --- small HTML helpers ---------------------------------------------------------------------------------


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(fig: Any, alt: str) -> str:
    """A matplotlib figure as an embedded PNG ``<img>`` (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<figure><img class="figure" alt="{_esc(alt)}" src="data:image/png;base64,{data}"><figcaption>{_esc(alt)}</figcaption></figure>'


def _png_file(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img class="figure" alt="{_esc(alt)}" src="data:image/png;base64,{data}"><figcaption>{_esc(alt)}</figcaption></figure>'


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _empty(key: str, title: str, sentence: str) -> Section:
    return Section(key, title, f'<p class="empty">{_esc(sentence)}</p>', has_data=False)


# --- sections -------------------------------------------------------------------------------------------


def source_label(source: str | None) -> str:
    """Where a model came from, short enough for a chart: a Hub download, a local folder, or the ingest kind."""
    if not source:
        return "unknown"
    if "/models--" in source or "\\models--" in source:
        return "Hub download"
    if os.path.isabs(source):
        return "local files"
    return source


def architecture_label(name: str, architecture: str | None, model_type: str | None, spec: Any) -> str:
    """The class a config names; else the spec's kind, grouped by the model name's folder (``digits-cnn/…``)."""
    if architecture or model_type:
        return str(architecture or model_type)
    if isinstance(spec, Mapping) and spec.get("format"):
        kind = {"weightzoo.arch/1": "layer spec", "weightzoo.cells/1": "cell spec"}.get(str(spec["format"]), "spec")
        group = name.split("/", 1)[0] if "/" in name else None
        return f"{group} ({kind})" if group else kind
    return "unknown"


def overview_section(zoo: Any) -> Section:
    """Counts, sizes, deduplication saving, formats/sources/architectures, largest models."""
    stats = zoo.stats()
    models = zoo.models()
    if not models:
        return _empty("overview", "Zoo overview", "The zoo holds no models yet (ingest or crawl some first).")
    logical, stored = int(stats["logical_bytes"]), int(stats["stored_bytes"])
    saving = 1.0 - stored / logical if logical else 0.0
    params = sum(int(m.parameter_count or 0) for m in models)
    facts = [("models", f"{stats['models']:,} ({stats['ingested']:,} ingested, {stats['metadata_only']:,} metadata-only)"),
             ("parameters", f"{params:,}"),
             ("tensor bytes (logical)", _size(logical)), ("bytes stored (unique blobs)", _size(stored)),
             ("deduplication saving", f"{100 * saving:.1f} %"), ("packs", f"{stats['packs']:,}"),
             ("unique blobs", f"{stats['blobs']:,}")]
    body = _table(["", "value"], facts)
    counts = {"format": Counter(m.format or "unknown" for m in models),
              "source": Counter(source_label(m.source) for m in models),
              "architecture": Counter(architecture_label(m.name, m.architecture, m.model_type, m.spec)
                                      for m in models)}
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(11, 2.8))
    for ax, (what, c) in zip(axes, counts.items()):
        top = c.most_common(8)
        ax.barh([str(k)[:28] for k, _ in reversed(top)], [v for _, v in reversed(top)], color="tab:blue")
        ax.set_title(f"models by {what}", fontsize=9)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    body += _figure(fig, "Models by format, source and architecture")
    largest = sorted(models, key=lambda m: (-int(m.nbytes or 0), m.ref))[:10]
    body += "<h3>Largest models</h3>" + _table(
        ["model", "architecture", "parameters", "size", "ingested"],
        [(m.ref, architecture_label(m.name, m.architecture, m.model_type, m.spec), f"{int(m.parameter_count or 0):,}", _size(int(m.nbytes or 0)),
          "yes" if m.ingested else "metadata only") for m in largest])
    return Section("overview", "Zoo overview", body, has_data=True, figures=1)


def _is_inferred(edge: Mapping[str, Any]) -> bool:
    ev = edge.get("evidence")
    src = edge.get("source") or (ev.get("source") if isinstance(ev, Mapping) else None)
    return str(src or "").startswith("infer") or str(edge.get("relation", "")).startswith("inferred")


def lineage_edges(zoo: Any) -> list[dict[str, Any]]:
    """Every lineage edge of the zoo (declared and inferred), each once."""
    seen: dict[tuple[str, str, str], dict[str, Any]] = {}
    for m in zoo.models():
        for e in zoo.lineage(m.ref, direction="up", depth=1):
            seen.setdefault((e["child"], e["parent"], e["relation"]), dict(e))
    return [seen[k] for k in sorted(seen)]


def lineage_section(zoo: Any, *, max_nodes: int = 150) -> Section:
    """The lineage graph: parents above children, declared edges solid, inferred dashed."""
    import networkx as nx

    edges = lineage_edges(zoo)
    if not edges:
        return _empty("lineage", "Lineage", "No lineage is recorded in this zoo (declared by model cards or "
                      "inferred with `weightzoo lineage --infer`).")
    g = nx.DiGraph()
    for e in edges:
        g.add_edge(e["parent"], e["child"], inferred=_is_inferred(e), relation=e["relation"])
    shown = g
    note = ""
    if g.number_of_nodes() > max_nodes:
        comps = sorted(nx.weakly_connected_components(g), key=lambda c: (-len(c), min(c)))
        keep: set[str] = set()
        for c in comps:
            if len(keep) + len(c) > max_nodes:
                break
            keep |= c
        shown = g.subgraph(keep).copy()
        note = (f"<p>Showing {shown.number_of_nodes()} of {g.number_of_nodes()} models "
                f"({len(comps)} lineage trees in all).</p>")
    layer: dict[str, int] = {}
    try:
        for depth, gen in enumerate(nx.topological_generations(shown)):
            for n in gen:
                layer[n] = depth
    except nx.NetworkXUnfeasible:  # a cycle (inferred edges can disagree): fall back to one layer
        layer = dict.fromkeys(shown.nodes, 0)
    nx.set_node_attributes(shown, layer, "layer")
    pos = nx.multipartite_layout(shown, subset_key="layer", align="horizontal")
    pos = {n: (x, -y) for n, (x, y) in pos.items()}
    plt = _plt()
    n_layers = max(layer.values(), default=0) + 1
    fig, ax = plt.subplots(figsize=(min(14, 5 + 0.25 * shown.number_of_nodes()), 1.6 + 1.2 * n_layers))
    declared = [(u, v) for u, v, d in shown.edges(data=True) if not d["inferred"]]
    inferred = [(u, v) for u, v, d in shown.edges(data=True) if d["inferred"]]
    nx.draw_networkx_nodes(shown, pos, ax=ax, node_size=60, node_color="tab:blue")
    nx.draw_networkx_edges(shown, pos, edgelist=declared, ax=ax, arrows=True, arrowsize=8, width=1.0)
    nx.draw_networkx_edges(shown, pos, edgelist=inferred, ax=ax, arrows=True, arrowsize=8, width=1.0,
                           style="dashed", edge_color="tab:orange")
    if shown.number_of_nodes() <= 40:
        nx.draw_networkx_labels(shown, pos, ax=ax, font_size=7, verticalalignment="bottom",
                                labels={n: n.rsplit("/", 1)[-1][:24] for n in shown.nodes})
    ax.set_axis_off()
    ax.set_title("lineage (parent → child; solid: declared, dashed: inferred)", fontsize=9)
    body = note + _figure(fig, "Lineage graph: declared edges solid, inferred edges dashed")
    rel = Counter((e["relation"], "inferred" if _is_inferred(e) else "declared") for e in edges)
    body += _table(["relation", "source", "edges"], [(r, s, n) for (r, s), n in sorted(rel.items())])
    return Section("lineage", "Lineage", body, has_data=True, figures=1)


def filters_section(zoo: Any, *, max_models: int = 40) -> Section:
    """CNN Filter DB statistics of the 3×3 conv layers of up to ``max_models`` ingested models."""
    from .filter_plots import plot_layer_metrics, plot_pca_basis
    from .filter_shift import FilterPCA
    from .filter_table import scan_filters

    refs = [m.ref for m in zoo.models(ingested=True)]
    candidates = [r for r in refs if any(len(t.shape) == 4 and tuple(t.shape[2:]) == (3, 3) for t in zoo.tensors(r))]
    if not candidates:
        return _empty("filters", "Filter statistics", "No ingested model has 3×3 convolution filters.")
    chosen = sorted(candidates)[:max_models]
    with tempfile.TemporaryDirectory(prefix="weightzoo-report-") as tmp:
        scan = scan_filters([(r, r) for r in chosen], zoo=zoo, kernel=3, out=Path(tmp) / "filters.h5")
        with scan.table as table:
            if not table.n_layers:
                return _empty("filters", "Filter statistics", "No 3×3 convolution layer could be read.")
            body = (f"<p>{table.n_layers} conv layers, {len(table):,} filters from {len(chosen)} models"
                    + (f" (the first {max_models} of {len(candidates)} by name)" if len(candidates) > max_models else "")
                    + ".</p>")
            figs = 1
            body += _png_file(plot_layer_metrics(table, Path(tmp) / "metrics.png"),
                              "Filter sparsity, variance-entropy ratio and orthogonality against depth")
            if len(table) >= 2:
                body += _png_file(plot_pca_basis(FilterPCA(3).fit(table), Path(tmp) / "pca.png"),
                                  "PCA basis of the 3×3 filters")
                figs += 1
            flagged = sum(1 for r in table.layers if r.get("flags"))
            body += f"<p>{flagged} of {table.n_layers} layers flagged as degenerated.</p>"
    return Section("filters", "Filter statistics", body, has_data=True, figures=figs)


def task_vector_section(zoo: Any, *, max_vectors: int = 12) -> Section:
    """Cosine similarity of task vectors (fine-tune − its recorded parent) of up to ``max_vectors`` models."""
    from .task_vectors import TaskVector

    edges = [e for e in lineage_edges(zoo) if e["relation"] == "finetune" and not _is_inferred(e)]
    ingested = {m.ref for m in zoo.models(ingested=True)} | {m.name for m in zoo.models(ingested=True)}
    edges = [e for e in edges if e["child"] in ingested and e["parent"] in ingested]
    if len(edges) < 2:
        return _empty("task_vectors", "Task vectors", "Fewer than two ingested fine-tunes with an ingested parent "
                      "are recorded, so there are no task vectors to compare.")
    reference: tuple[tuple[str, tuple[int, ...]], ...] | None = None
    chosen = []
    for e in edges:
        shapes = tuple(sorted((t.name, tuple(t.shape)) for t in zoo.tensors(e["child"])))
        reference = shapes if reference is None else reference
        if shapes == reference:
            chosen.append(e)
        if len(chosen) == max_vectors:
            break
    if len(chosen) < 2:
        return _empty("task_vectors", "Task vectors", "Fewer than two fine-tunes share an architecture.")
    tvs = [TaskVector(e["child"], e["parent"], zoo=zoo) for e in chosen]
    n = len(tvs)
    sim = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            sim[i, j] = sim[j, i] = tvs[i].cosine(tvs[j])
    names = [e["child"].rsplit("/", 1)[-1][:22] for e in chosen]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * n, 1.0 + 0.4 * n))
    im = ax.imshow(sim, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(n), names, rotation=90, fontsize=6)
    ax.set_yticks(range(n), names, fontsize=6)
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title("task-vector cosine similarity", fontsize=9)
    fig.tight_layout()
    siblings = [sim[i, j] for i in range(n) for j in range(i + 1, n) if chosen[i]["parent"] == chosen[j]["parent"]]
    others = [sim[i, j] for i in range(n) for j in range(i + 1, n) if chosen[i]["parent"] != chosen[j]["parent"]]
    body = _figure(fig, f"Cosine similarity of {n} task vectors (fine-tune minus its parent)")
    rows = [("same parent", len(siblings), f"{np.mean(siblings):.3f}" if siblings else "-"),
            ("different parents", len(others), f"{np.mean(others):.3f}" if others else "-")]
    body += _table(["pairs", "count", "mean cosine"], rows)
    return Section("task_vectors", "Task vectors", body, has_data=True, figures=1)


# --- learned runs ---------------------------------------------------------------------------------------


def _numeric_leaves(d: Any, prefix: str = "", depth: int = 0) -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(d, Mapping) and depth < 3:
        for k, v in d.items():
            out.update(_numeric_leaves(v, f"{prefix}{k}." if depth < 2 else f"{prefix}{k}", depth + 1))
    elif isinstance(d, bool):
        pass
    elif isinstance(d, (int, float)) and math.isfinite(float(d)):
        out[prefix.rstrip(".")] = float(d)
    return out


def _metrics_file(folder: Path) -> Path | None:
    for name in METRICS_FILES:
        p = folder / name
        if p.is_file() and p.stat().st_size <= _MAX_JSON_BYTES:
            return p
    return None


_SEED_FOLDER = re.compile(r"^seed-?(\d+)$")


def _read_metrics(mf: Path, errors: list[str]) -> Mapping[str, Any] | None:
    try:
        data = json.loads(mf.read_text())
    except (OSError, ValueError) as e:
        errors.append(f"{mf}: {e}")
        return None
    if not isinstance(data, Mapping):
        errors.append(f"{mf}: not a JSON object")
        return None
    return data


def _seed_folders(folder: Path) -> list[Path]:
    """``seed-K`` (metanetworks, GHNs) or ``seedK`` (nowcasters) subfolders, by seed number."""
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _SEED_FOLDER.match(p.name))]
    return [p for _, p in sorted(found, key=lambda t: (t[0], t[1].name))]


def read_run(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A run folder's metrics: ``{"name", "seeds": {seed: metrics}, "info": {...}}``.

    Layouts: ``runs/NAME/seed-K/metrics.json`` or ``runs/NAME/seedK/metrics.json`` (several seeds);
    ``runs/NAME/seedK/KIND/metrics.json`` (one model per kind and seed, as ``weightzoo nowcast train``
    writes: the metrics are prefixed ``KIND.``); or ``runs/NAME/metrics.json`` (one). Unreadable or
    non-JSON files are reported in ``"errors"`` rather than raised, so one bad run does not hide the rest.
    """
    folder = Path(path)
    seeds: dict[str, dict[str, float]] = {}
    info: dict[str, Any] = {}
    errors: list[str] = []
    kinds: list[str] = []
    folders = _seed_folders(folder) if folder.is_dir() else []
    for f in folders or ([folder] if folder.is_dir() else []):
        mf = _metrics_file(f)
        if mf is not None:
            files = [(mf, "")]
        else:  # one subfolder per model kind (nowcasters): seedK/graph/metrics.json, seedK/linear/metrics.json
            files = [(m, f"{sub.name}.") for sub in sorted(p for p in f.iterdir() if p.is_dir())
                     if (m := _metrics_file(sub)) is not None]
        metrics: dict[str, float] = {}
        for file, prefix in files:
            data = _read_metrics(file, errors)
            if data is None:
                continue
            if prefix and prefix[:-1] not in kinds:
                kinds.append(prefix[:-1])
            for key in ("model", "kind", "task", "dataset", "target", "split"):
                if isinstance(data.get(key), str) and not prefix:
                    info.setdefault(key, data[key])
            metrics.update(_numeric_leaves(data, prefix))
        if metrics:
            seeds[f.name if f is not folder else "-"] = metrics
    if kinds:
        info.setdefault("kinds", ", ".join(kinds))
    return {"name": folder.name, "path": str(folder), "seeds": seeds, "info": info, "errors": errors}


#: Leaf names shown first in a run's table (then test before validation before the rest).
HEADLINE_METRICS = ("kendall_tau", "tau", "accuracy", "best_val_accuracy", "r2", "mse", "loss", "relative_error",
                    "fewer_steps", "edge_accuracy", "direction_accuracy")
#: Top-level keys that record how a run was made, not what it measured (left out of the tables).
_SETTINGS_KEYS = frozenset({"config", "settings", "data", "images", "archs", "history", "seed"})


def _is_setting(key: str) -> bool:
    parts = key.split(".")
    return parts[0] in _SETTINGS_KEYS or parts[-1] == "seed" or (len(parts) > 1 and parts[1] in _SETTINGS_KEYS)


def _metric_rank(key: str) -> tuple[int, int]:
    parts = key.split(".")
    headline = parts[-1] in HEADLINE_METRICS or parts[-1].startswith(("map@", "mrr@", "ndcg@"))
    split = 0 if "test" in parts else 1 if "val" in parts else 2
    return (0 if headline else 1, split)


def runs_section(runs: Sequence[str | os.PathLike[str]], *, max_metrics: int = 12) -> Section:
    """One table per run: each metric's mean ± std over the seeds found."""
    if not runs:
        return _empty("runs", "Learned results", "No run folders were given (pass --runs runs/*).")
    parts: list[str] = []
    summary_rows: list[tuple[str, ...]] = []
    for r in runs:
        run = read_run(r)
        if not run["seeds"]:
            why = ("Unreadable: " + "; ".join(run["errors"]) if run["errors"]
                   else f"No metrics file ({', '.join(METRICS_FILES)}) in {run['path']}.")
            parts.append(f"<h3>{_esc(run['name'])}</h3><p class=\"empty\">{_esc(why)}</p>")
            continue
        keys = sorted(set().union(*(m.keys() for m in run["seeds"].values())))
        keys = sorted((k for k in keys if not _is_setting(k)), key=_metric_rank)[:max_metrics]
        rows = []
        for k in keys:
            vals = [m[k] for m in run["seeds"].values() if k in m]
            std = float(np.std(vals, ddof=1)) if len(vals) > 1 else float("nan")
            rows.append((k, f"{np.mean(vals):.4g}" + (f" ± {std:.2g}" if len(vals) > 1 else ""), len(vals)))
        desc = ", ".join(f"{k}: {v}" for k, v in run["info"].items())
        parts.append(f"<h3>{_esc(run['name'])}</h3>" + (f"<p>{_esc(desc)}</p>" if desc else "")
                     + _table(["metric", "mean ± std over seeds", "seeds"], rows))
        if run["errors"]:
            parts.append("<p class=\"empty\">Unreadable: " + _esc("; ".join(run["errors"])) + "</p>")
        if rows:
            summary_rows.append((run["name"], run["info"].get("model", "-"), rows[0][0], rows[0][1], str(rows[0][2])))
    body = ""
    if len(summary_rows) > 1:
        body += "<h3>All runs</h3>" + _table(["run", "model", "first metric", "mean ± std", "seeds"], summary_rows)
    body += "".join(parts)
    return Section("runs", "Learned results", body, has_data=bool(summary_rows))


# --- the document ---------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;
color:#222;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .6em;
text-align:left}th{background:#f4f4f4}figure{margin:.8em 0}img.figure{max-width:100%}
figcaption{font-size:.8em;color:#555}.empty{color:#777;font-style:italic}nav a{margin-right:1em}
"""

# Counts the figures the browser could decode; a test reads these attributes from the rendered DOM.
_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('img.figure'), ok = 0;
  for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++; }
  document.body.setAttribute('data-figures-total', String(imgs.length));
  document.body.setAttribute('data-figures-loaded', String(ok));
});
"""


def render_html(title: str, sections: Sequence[Section], *, generated: str) -> str:
    """The whole document: inline CSS and script, no external resources."""
    nav = "".join(f'<a href="#{s.key}">{_esc(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{s.key}"><h2>{_esc(s.title)}</h2>{s.body}</section>' for s in sections)
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{_esc(title)}</h1><p>Generated {_esc(generated)} by weightzoo.</p><nav>{nav}</nav>{body}"
            f"<script>{_SCRIPT}</script></body></html>")


def build_report(zoo: ZooLike, out: str | os.PathLike[str], *, runs: Sequence[str | os.PathLike[str]] = (),
                 title: str | None = None, max_filter_models: int = 40, max_task_vectors: int = 12,
                 max_lineage_nodes: int = 150) -> tuple[Path, list[Section]]:
    """Write the report of ``zoo`` (and of the run folders ``runs``) to ``out``; returns the path and sections.

    The file is written atomically (a partial report never replaces an old one).
    """
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise InvalidOptionError(f"report: --out must end in .html, got {out}")
    with using_zoo(zoo, create=False) as z:
        name = title or f"weightzoo report: {Path(z.path).resolve().name}"
        sections = [overview_section(z), lineage_section(z, max_nodes=max_lineage_nodes),
                    filters_section(z, max_models=max_filter_models),
                    task_vector_section(z, max_vectors=max_task_vectors), runs_section(runs)]
    text = render_html(name, sections, generated=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out, text.encode("utf-8"))
    return out, sections


__all__ = ["HEADLINE_METRICS", "METRICS_FILES", "Section", "build_report", "filters_section", "lineage_edges", "lineage_section",
           "overview_section", "read_run", "render_html", "runs_section", "task_vector_section"]
