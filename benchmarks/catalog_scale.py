"""Catalogue scale: insert and query speed of a zoo with many models (docs/scale.md).

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/catalog_scale.py --models 1000000 --zoo /tmp/zoo-1m

Inserts ``--api-models`` synthetic metadata-only models (each with ``--tensors`` tensor rows and three
metadata keys: seed, epoch, task) through the public API (``Zoo.add_metadata_only_many``, ``--batch`` models
per transaction), as a Hub crawl records them, and prints the insert rate; grows the catalogue to
``--models - --tail`` by SQL copies of those rows (new ids and names; the API would need an hour of this busy
2-core machine); inserts the last ``--tail`` models through the API again (the insert rate at full size). Then
times the lookups a user makes — ``zoo.model(name)``, ``zoo.tensors(name)``, ``has_model``, ``len(zoo)``,
``zoo.models(...)`` filtered by a name glob, a catalogue column and a metadata key — each as the median of
``--repeat`` runs, first without and then with the secondary indexes the measurement argues for, so the
ratio shows what each index buys (the schema creates them; the benchmark drops them for the first round).
The baseline for each query is the same query without the indexes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from weightzoo.zoo.formats.base import TensorInfo
from weightzoo.zoo.store import Zoo

LIBRARIES = ("transformers", "timm", "diffusers", "peft", "sentence-transformers", "torch", "keras", "onnx")
TASKS = ("text-classification", "image-classification", "token-classification", "fill-mask", "translation")

#: The secondary indexes of the schema (dropped, timed without, re-created, timed with).
INDEXES = {
    "models_library": "CREATE INDEX IF NOT EXISTS models_library ON models(library)",
    "metadata_key_value": "CREATE INDEX IF NOT EXISTS metadata_key_value ON metadata(key, value)",
}


def synthetic(i: int, n_tensors: int) -> dict[str, Any]:
    org = f"org{i % 5000:04d}"
    tensors = [TensorInfo(f"layers.{k}.weight", "F32", (256, 256)) for k in range(n_tensors - 1)]
    tensors.append(TensorInfo("head.bias", "F32", (10,)))
    return {"name": f"{org}/model-{i:07d}", "tensors": tensors, "library": LIBRARIES[i % len(LIBRARIES)],
            "metadata": {"seed": i % 10, "epoch": i % 50, "task": TASKS[i % len(TASKS)]},
            "tags": ["synthetic"], "source": f"synthetic://{i}"}


def timed(fn: Any, repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def queries(zoo: Zoo, n: int, repeat: int) -> dict[str, dict[str, Any]]:
    probe = f"org{(n // 2) % 5000:04d}/model-{n // 2:07d}"
    cases: dict[str, Any] = {
        "model(name)": lambda: zoo.model(probe).name,
        "tensors(name)": lambda: len(zoo.tensors(probe)),
        "has_model(missing)": lambda: zoo.has_model("nobody/nothing"),
        "len(zoo)": lambda: len(zoo),
        "models(name='org0042/*')": lambda: len(zoo.models(name="org0042/*")),
        "models(library='peft')": lambda: len(zoo.models(library="peft")),
        "models(epoch=7)": lambda: len(zoo.models(epoch=7)),
        "models(epoch=7, seed=7)": lambda: len(zoo.models(epoch=7, seed=7)),
    }
    out = {}
    for label, fn in cases.items():
        sec, result = timed(fn, repeat)
        out[label] = {"seconds": sec, "result": result}
        print(f"  {label:<28} {sec * 1e3:10.2f} ms  -> {result}", flush=True)
    return out


def insert_api(zoo: Zoo, start: int, stop: int, args: argparse.Namespace) -> dict[str, Any]:
    """Insert models ``start..stop`` through ``add_metadata_only_many``; the rate, as a crawl would see it."""
    t_start = last_t = time.perf_counter()
    last_n, rates = start, []
    for a in range(start, stop, args.batch):
        b = min(stop, a + args.batch)
        zoo.add_metadata_only_many([synthetic(i, args.tensors) for i in range(a, b)])
        if b // args.report != a // args.report or b == stop:
            now = time.perf_counter()
            rate = (b - last_n) / (now - last_t)
            rates.append({"models": b, "models_per_second": rate})
            print(f"API insert: {b:>9,} models  {rate:8.0f} models/s  ({rate * args.tensors:9.0f} tensor rows/s)",
                  flush=True)
            last_t, last_n = now, b
    sec = time.perf_counter() - t_start
    return {"from": start, "to": stop, "seconds": sec, "models_per_second": (stop - start) / sec if sec else None,
            "rates": rates}


def fill_by_copy(zoo: Zoo, target: int, template: int) -> None:
    """Grow the catalogue to ``target`` models by SQL copies of the first ``template`` API-inserted models
    (new ids and names, same rows): seconds instead of the hour the API would take on a busy 2-core box."""
    with zoo._transaction() as c:
        c.execute("CREATE TEMP TABLE IF NOT EXISTS src AS SELECT * FROM models WHERE id <= ?", (template,))
    have = len(zoo)
    while have < target:
        n = min(200_000, target - have)
        with zoo._transaction() as c:
            (base,) = c.execute("SELECT MAX(id) FROM models").fetchone()
            c.execute(
                "INSERT INTO models (id, name, revision, source, format, repo_id, spec, config, library, model_type, "
                "architecture, parameter_count, nbytes, license, tags, ingested, nonfinite_tensors, created_at) "
                "SELECT ? + s.rn, printf('org%04d/model-%07d', (? + s.rn - 1) % 5000, ? + s.rn - 1), m.revision, "
                "m.source, m.format, m.repo_id, m.spec, m.config, m.library, m.model_type, m.architecture, "
                "m.parameter_count, m.nbytes, m.license, m.tags, m.ingested, m.nonfinite_tensors, m.created_at "
                "FROM (WITH RECURSIVE r(rn) AS (SELECT 1 UNION ALL SELECT rn + 1 FROM r WHERE rn < ?) "
                "SELECT rn FROM r) s "
                "JOIN src m ON m.id = ((? + s.rn - 1) % ?) + 1", (base, have, have, n, have, template))
            c.execute("INSERT INTO tensors SELECT m.id, t.idx, t.name, t.dtype, t.shape, t.numel, t.hash, t.nan_count, "
                      "t.inf_count FROM models m JOIN tensors t ON t.model_id = ((m.id - 1) % ?) + 1 WHERE m.id > ?",
                      (template, base))
            c.execute("INSERT INTO metadata SELECT m.id, d.key, d.value FROM models m "
                      "JOIN metadata d ON d.model_id = ((m.id - 1) % ?) + 1 WHERE m.id > ?", (template, base))
        have += n
        print(f"copied to {have:>9,} models", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=1_000_000)
    ap.add_argument("--tensors", type=int, default=8, help="tensor rows per model")
    ap.add_argument("--batch", type=int, default=5000, help="models per transaction")
    ap.add_argument("--report", type=int, default=20_000)
    ap.add_argument("--api-models", type=int, default=100_000, help="models inserted through the API first")
    ap.add_argument("--tail", type=int, default=20_000, help="models inserted through the API at full size")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--zoo", type=Path, required=True, help="a new folder (or one this script filled before)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args()

    figures: dict[str, Any] = {"models": args.models, "tensors_per_model": args.tensors, "batch": args.batch,
                               "api_models": args.api_models, "tail": args.tail}
    with Zoo.open(args.zoo) as zoo:
        have = len(zoo)
        figures["insert_api_first"] = insert_api(zoo, have, args.api_models, args)
        t0 = time.perf_counter()
        fill_by_copy(zoo, args.models - args.tail, args.api_models)
        figures["fill_seconds"] = time.perf_counter() - t0
        print(f"filled to {len(zoo):,} models by SQL copies in {figures['fill_seconds']:.0f} s", flush=True)
        figures["insert_api_at_scale"] = insert_api(zoo, args.models - args.tail, args.models, args)
        size = sum(os.path.getsize(p) for p in args.zoo.glob("catalog.sqlite*"))
        figures["catalog_bytes"] = size
        print(f"catalogue: {len(zoo):,} models, {size / 2**20:.0f} MiB on disk", flush=True)
        for name in INDEXES:  # the schema creates them; time the queries without them first
            with zoo._transaction() as c:
                c.execute(f"DROP INDEX IF EXISTS {name}")
        print("queries without the secondary indexes:")
        figures["before"] = queries(zoo, args.models, args.repeat)
        for name, sql in INDEXES.items():
            t0 = time.perf_counter()
            with zoo._transaction() as c:
                c.execute(sql)
            print(f"created index {name} in {time.perf_counter() - t0:.1f} s", flush=True)
        print("queries with them:")
        figures["after"] = queries(zoo, args.models, args.repeat)
        for label in figures["before"]:
            b, a = figures["before"][label]["seconds"], figures["after"][label]["seconds"]
            print(f"  ratio before/after {label:<28} {b / a:8.1f}x")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
