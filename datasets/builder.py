"""The machinery every benchmark-zoo builder shares: work units, executors, batch ingest, resume, manifests.

A builder cuts its zoo into *work units* (one network's whole training run with all its checkpoints, or a
batch of SIRENs fitted together). Units run in an :class:`~weightzoo.zoo.store.executors.Executor` — in-process,
a process pool or Ray tasks, the executors every heavy job shares — and return plain numpy state dicts with
their spec and metadata. Only the main process writes to the zoo, with ``Zoo.ingest_many`` in batches, so a
zoo of thousands of networks is a handful of packs and transactions.

Resuming is free: model names are deterministic, and a unit whose models are all in the zoo is skipped;
a unit's models are always ingested in the same batch, so an interruption never leaves half a unit.

Splits are of *groups* (a network, an image, a fine-tune tree, an architecture): a group's split is a
hash of ``(dataset, seed, group)``, so it is deterministic for a seed, independent of ``--size`` (growing
a zoo keeps every earlier split) and never changes on resume. The manifest,
``<zoo>/manifests/<dataset>.json``, records recipe, seed, size, splits and a labels summary; it is written
atomically (temp file, fsync, ``os.replace``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from weightzoo.errors import DatasetError
from weightzoo.zoo.formats.durable import write_json_atomic
from weightzoo.zoo.store.executors import Executor, ProcessExecutor, SerialExecutor, make_executor

if TYPE_CHECKING:
    from weightzoo.zoo.store import ZooLike

MANIFEST_FORMAT = "weightzoo.manifest/1"
SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)


# --- units and results ---------------------------------------------------------------------------


@dataclass
class ModelItem:
    """One trained checkpoint coming back from a worker."""

    name: str
    state: dict[str, np.ndarray]
    spec: dict[str, Any]
    metadata: dict[str, Any]


@dataclass
class UnitResult:
    """What a work unit returns: its checkpoints and lineage edges ``(child, parent, relation)``."""

    key: str
    items: list[ModelItem]
    lineage: list[tuple[str, str, str]] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class WorkUnit:
    """One independent piece of work: ``fn(unit)`` trains it and returns a :class:`UnitResult`.

    ``fn`` must be a module-level function (it is pickled by reference for worker processes);
    ``groups`` maps each split group to the model names the unit produces for it; ``final`` names the
    models whose labels the manifest summarises (e.g. last-epoch checkpoints).
    """

    key: str
    fn: Callable[[WorkUnit], UnitResult]
    groups: Mapping[str, tuple[str, ...]]
    final: tuple[str, ...]
    params: Mapping[str, Any]

    @property
    def names(self) -> list[str]:
        return [n for names in self.groups.values() for n in names]


def run_unit(unit: WorkUnit) -> UnitResult:
    """Run one unit and time it (the function executors call, in a worker or in-process)."""
    t0 = time.perf_counter()
    result = unit.fn(unit)
    result.seconds = time.perf_counter() - t0
    return result


# --- seeds, splits, summaries ------------------------------------------------------------------------


def derive_seed(*parts: Any) -> int:
    """A 31-bit seed from any parts (dataset, zoo seed, unit key ...), stable across runs and machines."""
    h = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") % (2**31 - 1)


def hash_split(dataset: str, seed: int, group: str, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS) -> str:
    """The split of one group: ``train``/``val``/``test`` by a uniform hash of ``(dataset, seed, group)``."""
    u = derive_seed("split", dataset, seed, group) / (2**31 - 1)
    return "train" if u < fractions[0] else "val" if u < fractions[0] + fractions[1] else "test"


def numeric_summary(values: Iterable[float | None], *, chance: float | None = None, bins: int = 10,
                    lo: float = 0.0, hi: float = 1.0) -> dict[str, Any]:
    """Count, mean, std, quantiles, a histogram over ``[lo, hi]`` and the share at or below ``chance``."""
    v = np.array([x for x in values if x is not None], dtype=np.float64)
    out: dict[str, Any] = {"count": int(v.size)}
    if v.size == 0:
        return out
    q = np.quantile(v, [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
    out.update(mean=float(v.mean()), std=float(v.std()),
               quantiles={k: float(x) for k, x in zip(("min", "p10", "p25", "median", "p75", "p90", "max"), q)})
    counts, edges = np.histogram(np.clip(v, lo, hi), bins=bins, range=(lo, hi))
    out["histogram"] = {"edges": [round(float(e), 6) for e in edges], "counts": [int(c) for c in counts]}
    if chance is not None:
        out["chance_level"] = chance
        out["share_at_chance"] = float((v <= chance).mean())
    return out


def categorical_summary(values: Iterable[Any]) -> dict[str, int]:
    """Counts per value (sorted by value)."""
    counts: dict[str, int] = {}
    for x in values:
        counts[str(x)] = counts.get(str(x), 0) + 1
    return dict(sorted(counts.items()))


def split_half_reliability(records: Iterable[Any]) -> float | None:
    r"""Kendall :math:`\tau` between accuracies measured on the two fixed halves of the test images.

    The ceiling any accuracy predictor can reach: the label itself is measured with this much noise.
    Reads ``test_accuracy_a`` / ``test_accuracy_b`` from each record's metadata (``None`` if < 3 records).
    """
    from scipy.stats import kendalltau

    pairs = [(r.metadata["test_accuracy_a"], r.metadata["test_accuracy_b"]) for r in records
             if "test_accuracy_a" in r.metadata and "test_accuracy_b" in r.metadata]
    if len(pairs) < 3:
        return None
    a, b = zip(*pairs)
    tau = kendalltau(a, b).statistic
    return None if tau is None or not np.isfinite(tau) else float(tau)


# --- builders ------------------------------------------------------------------------------------


class DatasetBuilder(ABC):
    """A recipe for one benchmark zoo. Subclasses define :meth:`units` and :meth:`summarize`."""

    name: str = ""
    recipe_version: int = 1
    default_size: int = 1
    size_unit: str = "networks"

    @abstractmethod
    def units(self, size: int, seed: int) -> list[WorkUnit]:
        """The work units of a zoo of ``size`` (networks, images, trees or architectures)."""

    @abstractmethod
    def recipe(self) -> dict[str, Any]:
        """The recipe's settings, recorded in the manifest (a resume with another recipe is refused)."""

    @abstractmethod
    def summarize(self, final: list[Any]) -> dict[str, Any]:
        """Labels summary over the final models' records (``ModelRecord`` with ``.metadata``)."""

    def split_of(self, seed: int, group: str) -> str:
        """The split of a group (default: :func:`hash_split`)."""
        return hash_split(self.name, seed, group)

    def manifest_extra(self, units: list[WorkUnit], seed: int) -> dict[str, Any]:
        """Dataset-specific manifest entries (held-out families ...)."""
        return {}


@dataclass
class BuildReport:
    """What one ``build_dataset`` call did."""

    dataset: str
    manifest: Path
    units_total: int
    units_built: int
    units_skipped: int
    models_ingested: int
    wall_seconds: float
    unit_seconds: list[float]
    executor: str = "serial"
    retries: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["manifest"] = str(self.manifest)
        d["unit_seconds_mean"] = float(np.mean(self.unit_seconds)) if self.unit_seconds else None
        del d["unit_seconds"]
        return d


def manifest_path(zoo_path: str | os.PathLike[str], dataset: str) -> Path:
    """Where a dataset's manifest lives: ``<zoo>/manifests/<dataset>.json``."""
    return Path(zoo_path) / "manifests" / f"{dataset}.json"


def read_manifest(zoo_path: str | os.PathLike[str], dataset: str) -> dict[str, Any]:
    """The manifest of ``dataset`` in a zoo (``DatasetError`` if it was never built there)."""
    p = manifest_path(zoo_path, dataset)
    if not p.is_file():
        raise DatasetError(f"{p}: no manifest: dataset {dataset!r} was not built in this zoo")
    with open(p, encoding="utf-8") as f:
        return dict(json.load(f))


def _to_item(it: ModelItem) -> dict[str, Any]:
    import torch

    # Arrays from Ray's object store are read-only views: copy those (torch wants writable memory).
    # ``np.require`` keeps 0-d arrays 0-d (``np.ascontiguousarray`` would turn a BatchNorm counter into [1]).
    return {"source": {k: torch.from_numpy(np.require(v, requirements="C") if v.flags.writeable else v.copy())
                       for k, v in it.state.items()},
            "name": it.name, "spec": it.spec, "metadata": it.metadata, "library": "torch"}


def build_dataset(builder: DatasetBuilder, zoo: ZooLike, *, size: int | None = None, seed: int = 0,
                  workers: int | None = None, executor: Executor | None = None, batch_models: int = 512,
                  progress: bool = True, ray: bool | str | None = None) -> BuildReport:
    """Build (or resume) ``builder``'s zoo of ``size`` into ``zoo`` (a :class:`Zoo` or a folder).

    Args:
        size: networks / images / trees / architectures (default: the builder's ``default_size``).
        seed: the zoo seed; every hyperparameter, initialisation and split derives from it.
        workers: processes (default: all cores; 1 runs in-process). Ignored when ``executor`` is given.
        executor: any :class:`Executor` (e.g. a distributed one).
        ray: run the units as Ray tasks: ``True`` (``$WEIGHTZOO_RAY_ADDRESS`` or a local instance) or an
            address; ``None`` follows ``$WEIGHTZOO_RAY_ADDRESS``; ``False`` never (see ``make_executor``).
        batch_models: ingest every time this many checkpoints are waiting (one pack, one transaction).
    """
    from tqdm import tqdm

    from weightzoo.zoo.store import Zoo

    size = builder.default_size if size is None else size
    if size < 1:
        raise DatasetError(f"{builder.name}: size must be >= 1, got {size}")
    own_zoo = not isinstance(zoo, Zoo)
    z = zoo if isinstance(zoo, Zoo) else Zoo.open(zoo)
    t0 = time.perf_counter()
    try:
        mpath = manifest_path(z.path, builder.name)
        old = read_manifest(z.path, builder.name) if mpath.is_file() else None
        recipe = builder.recipe()
        if old is not None:
            if old.get("seed") != seed:
                raise DatasetError(f"{builder.name} was built in {z.path} with seed {old.get('seed')}, not {seed}; "
                                   "use another zoo folder for another seed")
            if old.get("recipe_version") != builder.recipe_version or old.get("recipe") != json.loads(json.dumps(recipe)):
                raise DatasetError(f"{builder.name} in {z.path} was built with another recipe; use another zoo folder")
        try:
            units = builder.units(size, seed)
        except (TypeError, ValueError) as exc:  # a builder's own size/seed checks become typed errors
            if isinstance(exc, DatasetError):
                raise
            raise DatasetError(f"{builder.name}: {exc}") from exc
        existing = {m.name for m in z.models(name=f"{builder.name}/*")}
        todo = [u for u in units if not all(n in existing for n in u.names)]
        report = BuildReport(builder.name, mpath, len(units), 0, len(units) - len(todo), 0, 0.0, [])
        pending: list[UnitResult] = []

        def flush() -> None:
            items = [_to_item(it) for r in pending for it in r.items if it.name not in existing]
            if items:
                z.ingest_many(items, progress=False)
                existing.update(i["name"] for i in items)
                report.models_ingested += len(items)
            for r in pending:
                for child, parent, relation in r.lineage:
                    z.add_lineage(child, parent, relation)
            pending.clear()
            _write_manifest(builder, z, units, size, seed, recipe, old, report, t0, complete=False)

        ex = executor if executor is not None else make_executor(workers, ray=ray)
        report.executor = ex.name
        bar = tqdm(total=len(todo), desc=builder.name, unit="unit", disable=not progress or None)
        try:
            for result in ex.map_unordered(run_unit, todo):
                pending.append(result)
                report.units_built += 1
                report.unit_seconds.append(result.seconds)
                bar.update(1)
                if sum(len(r.items) for r in pending) >= batch_models:
                    flush()
        finally:
            bar.close()
            report.retries = ex.retries
            if executor is None:
                ex.close()
            if pending:  # keep finished work even when interrupted: the rebuild resumes after it
                flush()
        report.wall_seconds = time.perf_counter() - t0
        _write_manifest(builder, z, units, size, seed, recipe, old, report, t0, complete=True)
        return report
    finally:
        if own_zoo:
            z.close()


def _write_manifest(builder: DatasetBuilder, z: Any, units: list[WorkUnit], size: int, seed: int,
                    recipe: dict[str, Any], old: dict[str, Any] | None, report: BuildReport, t0: float,
                    *, complete: bool) -> None:
    groups: dict[str, dict[str, Any]] = {}
    splits: dict[str, list[str]] = {}
    for u in units:
        for g, names in u.groups.items():
            s = builder.split_of(seed, g)
            groups[g] = {"split": s, "models": list(names)}
            splits.setdefault(s, []).append(g)
    for s in SPLITS:
        splits.setdefault(s, [])
    runs = list((old or {}).get("build", {}).get("runs", []))
    this_run = {"units_built": report.units_built, "units_skipped": report.units_skipped,
                "models_ingested": report.models_ingested, "wall_seconds": round(time.perf_counter() - t0, 3),
                "unit_seconds_sum": round(float(sum(report.unit_seconds)), 3), "finished": complete}
    build = {"runs": runs + [this_run]}
    all_secs = [r["unit_seconds_sum"] for r in build["runs"]]
    n_built = sum(r["units_built"] for r in build["runs"])
    if n_built:
        build["seconds_per_unit"] = round(sum(all_secs) / n_built, 4)
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT, "dataset": builder.name, "recipe_version": builder.recipe_version,
        "recipe": recipe, "seed": seed, "size": size, "size_unit": builder.size_unit, "complete": complete,
        "models": sum(len(g["models"]) for g in groups.values()), "splits": splits, "groups": groups,
        "build": build, **builder.manifest_extra(units, seed),
    }
    if complete:
        final = [z.model(n) for u in units for n in u.final if z.has_model(n)]
        manifest["labels"] = builder.summarize(final)
    write_json_atomic(manifest_path(z.path, builder.name), manifest)


__all__ = [
    "BuildReport", "DEFAULT_FRACTIONS", "DatasetBuilder", "DatasetError", "Executor", "MANIFEST_FORMAT",
    "ModelItem", "ProcessExecutor", "SPLITS", "SerialExecutor", "UnitResult", "WorkUnit", "build_dataset",
    "categorical_summary", "derive_seed", "hash_split", "make_executor", "manifest_path", "numeric_summary",
    "read_manifest", "run_unit", "split_half_reliability",
]
