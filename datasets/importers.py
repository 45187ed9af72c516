"""Importers for the field's published zoo layouts, so users who hold the files can bring them into a zoo.

* **Small CNN Zoo** (Unterthiner et al. 2020, ``google-research/dnn_predict_accuracy``): a folder with
  ``weights.npy`` (one row of flattened weights per network), ``metrics.csv`` or ``metrics.csv.gz`` (one
  row per network, same order: accuracies, losses, ``config.*`` hyperparameters) and ``layout.csv``
  (``varname,start_idx,end_idx,size,shape``: where each tensor sits in a row). Tensors keep their
  layout names (``sequential/conv2d/kernel:0`` → ``sequential.conv2d.kernel``) and TensorFlow shapes.
* **Model Zoos** (Schürholt et al. 2022): Ray Tune trial folders, each with ``params.json``,
  ``result.json`` (JSON lines, one per epoch, ``training_iteration`` = epoch) and
  ``checkpoint_<epoch>/checkpoints`` (a torch state dict). One model per checkpoint, named
  ``<prefix>/<trial>-e<epoch>``, with the params and that epoch's results as metadata.
* **INR folders** (DWSNets / NFN style): one folder per fitted image, ``…/<name>/checkpoints/
  model_final.pth`` (a torch state dict), and a splits file ``{"train": {"path": [...], "label": [...]},
  "val": ..., "test": ...}``. A SIREN whose tensors are a chain of linear layers is stored under the
  canonical names of :func:`weightzoo.datasets.inr.siren_spec` with that spec, so ``zoo.module`` rebuilds it;
  the original names are kept in metadata (``original_names``).

Every importer reads pickles only through weightzoo's safe reader, ingests in batches and returns the
names it wrote.
"""

from __future__ import annotations

import ast
import csv
import gzip
import json
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from weightzoo.errors import CheckpointError, NoWeightsError

if TYPE_CHECKING:
    from weightzoo.zoo.store import ZooLike


def _value(text: str) -> Any:
    """A CSV cell as int, float, bool, None or string (NaN/inf → None, metadata must be JSON)."""
    t = text.strip()
    if t == "" or t.lower() in ("nan", "none", "null"):
        return None
    if t in ("True", "False", "true", "false"):
        return t.lower() == "true"
    for conv in (int, float):
        try:
            v = conv(t)
        except ValueError:
            continue
        return v if not isinstance(v, float) or math.isfinite(v) else None
    return t


def _read_csv(path: Path) -> list[dict[str, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="", encoding="utf-8") as f:  # type: ignore[operator]
        return list(csv.DictReader(f))


def _batched(items: Iterator[dict[str, Any]], n: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for it in items:
        batch.append(it)
        if len(batch) >= n:
            yield batch
            batch = []
    if batch:
        yield batch


def _ingest(zoo: ZooLike, items: Iterator[dict[str, Any]], batch: int) -> list[str]:
    from weightzoo.zoo.store import using_zoo

    names: list[str] = []
    with using_zoo(zoo, create=True) as z:
        for chunk in _batched(items, batch):
            todo = [it for it in chunk if not z.has_model(it["name"])]
            if todo:
                z.ingest_many(todo, progress=False)
            names += [it["name"] for it in chunk]
    return names


# --- Small CNN Zoo ---------------------------------------------------------------------------------


def _tensor_name(varname: str) -> str:
    return re.sub(r":\d+$", "", varname).replace("/", ".")


def read_small_cnn_zoo(folder: str | os.PathLike[str]) -> tuple[np.ndarray, list[dict[str, Any]], list[dict[str, Any]]]:
    """``(weights N×P, metrics rows, layout rows with name/start/end/shape)`` of a Small CNN Zoo folder."""
    root = Path(folder)
    wpath = root / "weights.npy"
    mpath = next((p for p in (root / "metrics.csv", root / "metrics.csv.gz") if p.is_file()), None)
    if not wpath.is_file() or mpath is None or not (root / "layout.csv").is_file():
        raise NoWeightsError(root, "a Small CNN Zoo folder needs weights.npy, metrics.csv(.gz) and layout.csv")
    weights = np.load(wpath, mmap_mode="r", allow_pickle=False)
    if weights.ndim != 2:
        raise CheckpointError(wpath, f"expected a 2-D array (networks × weights), got shape {weights.shape}")
    metrics = [{k or "index": _value(v) for k, v in row.items()} for row in _read_csv(mpath)]
    if len(metrics) != weights.shape[0]:
        raise CheckpointError(mpath, f"{len(metrics)} metrics rows for {weights.shape[0]} weight rows")
    layout = []
    for row in _read_csv(root / "layout.csv"):
        try:
            start, end = int(row["start_idx"]), int(row["end_idx"])
            shape = tuple(int(x) for x in ast.literal_eval(row["shape"]))
        except (KeyError, ValueError, SyntaxError) as exc:
            raise CheckpointError(root / "layout.csv", f"bad row {row}: {exc}") from exc
        if not 0 <= start <= end <= weights.shape[1] or math.prod(shape) != end - start:
            raise CheckpointError(root / "layout.csv", f"row {row['varname']!r}: [{start}, {end}) does not fit "
                                  f"{weights.shape[1]} weights or shape {shape}")
        layout.append({"varname": row["varname"], "name": _tensor_name(row["varname"]), "start": start, "end": end,
                       "shape": shape})
    return weights, metrics, layout


def import_small_cnn_zoo(folder: str | os.PathLike[str], zoo: ZooLike, *, prefix: str = "small-cnn-zoo",
                         limit: int | None = None, batch: int = 1000) -> list[str]:
    """Import a Small CNN Zoo folder: one model per weights row, ``<prefix>/<row:06d>``, metrics as metadata.

    ``config.``-prefixed columns lose the prefix (``config.learning_rate`` → ``learning_rate``).
    """
    weights, metrics, layout = read_small_cnn_zoo(folder)
    n = weights.shape[0] if limit is None else min(limit, weights.shape[0])

    def items() -> Iterator[dict[str, Any]]:
        for i in range(n):
            row = np.asarray(weights[i], dtype=weights.dtype)
            state = {t["name"]: torch.from_numpy(row[t["start"]:t["end"]].reshape(t["shape"]).copy()) for t in layout}
            md = {k.removeprefix("config."): v for k, v in metrics[i].items()}
            md.update(imported_from=prefix, row=i)
            yield {"source": state, "name": f"{prefix}/{i:06d}", "metadata": md}

    return _ingest(zoo, items(), batch)


# --- Model Zoos (Ray Tune trial folders) -----------------------------------------------------------


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, float) and not math.isfinite(v):
            out[key] = None
        else:
            out[key] = v
    return out


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    from weightzoo.zoo.formats import open_checkpoint

    ckpt = open_checkpoint(path)
    try:
        return {k: v.clone() for k, v in ckpt.state_dict().items()}
    finally:
        ckpt.close()


def import_model_zoo(folder: str | os.PathLike[str], zoo: ZooLike, *, prefix: str = "model-zoo",
                     batch: int = 500) -> list[str]:
    """Import Ray Tune trial folders (params.json, result.json, checkpoint_*/checkpoints)."""
    root = Path(folder)
    trials = sorted(p for p in root.iterdir() if p.is_dir() and (p / "params.json").is_file())
    if not trials:
        raise NoWeightsError(root, "no Ray Tune trial folders (sub-folders with params.json)")

    def items() -> Iterator[dict[str, Any]]:
        for trial in trials:
            params = _flatten(json.loads((trial / "params.json").read_text()))
            results: dict[int, dict[str, Any]] = {}
            if (trial / "result.json").is_file():
                for line in (trial / "result.json").read_text().splitlines():
                    if line.strip():
                        r = json.loads(line)
                        results[int(r.get("training_iteration", len(results) + 1))] = _flatten(r)
            for ck in sorted(trial.glob("checkpoint_*")):
                m = re.fullmatch(r"checkpoint_0*(\d+)", ck.name)
                if not m or not (ck / "checkpoints").is_file():
                    continue
                epoch = int(m.group(1))
                md = {**params, **results.get(epoch, {}), "imported_from": prefix, "trial": trial.name, "epoch": epoch}
                yield {"source": _load_state(ck / "checkpoints"), "name": f"{prefix}/{trial.name}-e{epoch:03d}",
                       "metadata": md}

    return _ingest(zoo, items(), batch)


# --- INR folders (DWSNets / NFN) --------------------------------------------------------------------


def _siren_names(state: dict[str, torch.Tensor]) -> dict[str, str] | None:
    """Map a 2→h→h→1 linear chain (weight, bias pairs in order) onto ``siren_spec`` names, else None."""
    keys = list(state)
    if len(keys) != 6 or any(state[k].dtype != torch.float32 for k in keys):
        return None
    shapes = [tuple(state[k].shape) for k in keys]
    h = shapes[0][0] if len(shapes[0]) == 2 else -1
    want = [(h, 2), (h,), (h, h), (h,), (1, h), (1,)]
    if shapes != want:
        return None
    return dict(zip(keys, ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]))


def import_inr_folder(splits_file: str | os.PathLike[str], zoo: ZooLike, *, prefix: str = "inr", root: str | None = None,
                      w0: float = 30.0, batch: int = 1000) -> list[str]:
    """Import an INR set from its splits JSON (paths relative to ``root``, default: the JSON's folder).

    Each entry's path is a ``.pth`` file or a fit folder holding ``checkpoints/model_final.pth``; the
    model is ``<prefix>/<split>-<k:06d>`` with metadata ``label``, ``split``, ``path``.
    """
    from .inr import siren_spec

    sf = Path(splits_file)
    base = Path(root) if root is not None else sf.parent
    splits = json.loads(sf.read_text())
    if not isinstance(splits, dict) or not all(isinstance(v, dict) and "path" in v for v in splits.values()):
        raise CheckpointError(sf, 'expected {"<split>": {"path": [...], "label": [...]}, ...}')

    def items() -> Iterator[dict[str, Any]]:
        for split, entry in splits.items():
            labels = entry.get("label", [None] * len(entry["path"]))
            for k, (rel, label) in enumerate(zip(entry["path"], labels)):
                p = Path(rel) if Path(rel).is_absolute() else base / rel
                if p.is_dir():
                    p = p / "checkpoints" / "model_final.pth"
                if not p.is_file():
                    raise NoWeightsError(p, "INR checkpoint listed in the splits file is missing")
                state = _load_state(p)
                md: dict[str, Any] = {"imported_from": prefix, "split": split, "label": label, "path": str(rel)}
                spec = None
                mapping = _siren_names(state)
                if mapping is not None:
                    md["original_names"] = list(mapping)
                    state = {mapping[k]: v for k, v in state.items()}
                    spec = siren_spec(hidden=state["0.weight"].shape[0], w0=w0)
                yield {"source": state, "name": f"{prefix}/{split}-{k:06d}", "metadata": md, "spec": spec}

    return _ingest(zoo, items(), batch)


__all__ = ["import_inr_folder", "import_model_zoo", "import_small_cnn_zoo", "read_small_cnn_zoo"]
