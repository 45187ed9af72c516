"""How a benchmark-zoo build scales with workers (docs/scale.md): 1 process, 2 processes, 2 Ray workers.

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/build_scaling.py --size 8 --epochs 0,1,2,4

Builds the same ``digits-cnn`` zoo (same seed) once per backend into fresh folders, prints the wall time,
the summed unit time and the speed-up against the one-process build run here, and checks the zoos are
identical (names and tensor hashes). Ray's start-up is timed apart from the build.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from weightzoo.datasets import build
from weightzoo.zoo.store import Zoo


def fingerprint(path: Path) -> list[tuple[str, tuple[str | None, ...]]]:
    with Zoo.open(path) as z:
        return sorted((m.name, tuple(t.hash for t in z.tensors(m.ref))) for m in z.models())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=8)
    ap.add_argument("--epochs", default="0,1,2,4")
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    epochs = tuple(int(e) for e in args.epochs.split(","))
    root = Path(tempfile.mkdtemp(prefix="weightzoo-scaling-"))
    runs: dict[str, Any] = {}
    try:
        backends: list[tuple[str, dict[str, Any]]] = [("process x1", {"workers": 1}), ("process x2", {"workers": 2})]
        if not args.no_ray:
            import ray

            t0 = time.perf_counter()
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
            runs["ray_start_seconds"] = time.perf_counter() - t0
            print(f"ray.init(num_cpus=2): {runs['ray_start_seconds']:.1f} s", flush=True)
            backends.append(("ray x2", {"ray": True}))
        prints = {}
        for label, kw in backends:
            path = root / label.replace(" ", "-")
            t0 = time.perf_counter()
            rep = build("digits-cnn", path, size=args.size, seed=0, epochs=epochs, progress=False, **kw)
            wall = time.perf_counter() - t0
            runs[label] = {"wall_seconds": wall, "unit_seconds_sum": sum(rep.unit_seconds),
                           "units": rep.units_built, "models": rep.models_ingested, "executor": rep.executor}
            prints[label] = fingerprint(path)
            base = runs["process x1"]["wall_seconds"]
            print(f"{label:<11} wall {wall:7.1f} s  units {rep.units_built}  sum of unit times "
                  f"{runs[label]['unit_seconds_sum']:7.1f} s  speed-up vs 1 process {base / wall:4.2f}x", flush=True)
        same = all(p == prints["process x1"] for p in prints.values())
        runs["identical_zoos"] = same
        runs["load_average"] = os.getloadavg()
        print(f"zoos identical across backends: {same}; load average {os.getloadavg()}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
