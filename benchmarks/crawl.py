"""Hub crawl benchmarks (issue 7), against a local mirror. Prints absolute figures and ratios.

    .venv/bin/python benchmarks/crawl.py [--n 2000] [--latency 0.05] [--quick]

1. Bytes transferred for a metadata-only crawl of the real all-MiniLM-L6-v2 repository (listing, range
   requests, everything the mirror sent), as a percentage of its weight bytes (target ≤ 1 %).
2. Metadata-only crawl of N generated repositories from a mirror (a separate ``weightzoo serve-hub``
   process) adding ``latency`` seconds per request, as a far-away Hub does: models/s with ``--workers 8``
   against ``--workers 1`` measured in the same run (target ≥ 5×), and the crawler's peak anonymous memory
   (RssAnon, sampled) for N/4 and N models — bounded if it does not grow with N.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import PeakSampler, rss_anon_bytes  # noqa: E402

from weightzoo.datasets.minilm import fetch_minilm  # noqa: E402
from weightzoo.zoo.hub import crawl  # noqa: E402
from weightzoo.zoo.hub.mirror import HubMirror  # noqa: E402
from weightzoo.zoo.store import Zoo  # noqa: E402

_REPOS = Path(__file__).resolve().parents[1] / "tests" / "zoo" / "hub" / "repos.py"


def _repos_module():  # noqa: ANN202 - the test-repository generators, loaded by path
    spec = importlib.util.spec_from_file_location("weightzoo_hub_repos", _REPOS)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def bench_minilm_bytes(tmp: Path) -> None:
    repos = _repos_module()
    root = tmp / "minilm-hub"
    repos.minilm(root, fetch_minilm())
    weights = (root / repos.MINILM / "model.safetensors").stat().st_size
    with HubMirror(root) as hub, Zoo.open(tmp / "z-minilm") as zoo:
        s = crawl(zoo, search="all-MiniLM-L6-v2", endpoint=hub.url, progress=False)
        sent, ranges = hub.bytes_sent(), hub.bytes_sent("/resolve/")
        n_req = len(hub.requests())
    assert s.recorded == 1, s
    print(f"[1] MiniLM metadata-only crawl: {sent:,} bytes over {n_req} requests ({ranges:,} in range requests) "
          f"for {weights:,} weight bytes = {100 * sent / weights:.3f} % (target <= 1 %)")


def _serve(root: Path, latency: float) -> tuple[subprocess.Popen[str], str]:
    exe = Path(sys.executable).with_name("weightzoo")
    proc = subprocess.Popen([str(exe), "serve-hub", str(root), "--port", "0", "--latency", str(latency),
                             "--page-size", "1000"], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line = proc.stdout.readline()  # type: ignore[union-attr]
    return proc, line.split(" at ")[1].split()[0]


def _timed_crawl(url: str, zoo_dir: Path, workers: int, limit: int | None) -> tuple[float, int, float]:
    shutil.rmtree(zoo_dir, ignore_errors=True)
    base = rss_anon_bytes()
    with Zoo.open(zoo_dir) as zoo, PeakSampler(0.01) as peak:
        t0 = time.perf_counter()
        s = crawl(zoo, author="gen", limit=limit, endpoint=url, workers=workers, progress=False)
        dt = time.perf_counter() - t0
    assert s.complete and s.recorded == (limit or s.listed), s
    return s.recorded / dt, s.recorded, (peak.peak - base) / 2**20


def bench_parallel(tmp: Path, n: int, latency: float) -> None:
    repos = _repos_module()
    root = tmp / "many"
    t0 = time.perf_counter()
    repos.build_many(root, n)
    print(f"    generated {n} repositories in {time.perf_counter() - t0:.1f} s")
    proc, url = _serve(root, latency)
    try:
        _timed_crawl(url, tmp / "warm", 8, 50)  # imports, pools and allocator arenas, before measuring
        r8q, nq, mq = _timed_crawl(url, tmp / "z8q", 8, n // 4)
        r8, n8, m8 = _timed_crawl(url, tmp / "z8", 8, None)
        r1, n1, m1 = _timed_crawl(url, tmp / "z1", 1, None)
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"[2] metadata-only crawl of {n} repos, {latency * 1000:.0f} ms added per request: "
          f"workers=8 {r8:.1f} models/s, workers=1 {r1:.1f} models/s -> speed-up {r8 / r1:.2f}x (target >= 5x)")
    print(f"    peak RssAnon above baseline: {mq:.1f} MiB for {nq} models, {m8:.1f} MiB for {n8} models "
          f"(workers=8); {m1:.1f} MiB with workers=1 (listing pages of up to 1000 models are held one at a time)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="generated repositories (default 2000)")
    ap.add_argument("--latency", type=float, default=0.05, help="seconds added per request (default 0.05)")
    ap.add_argument("--quick", action="store_true", help="400 repositories")
    args = ap.parse_args()
    n = 400 if args.quick else args.n
    print(f"python {sys.version.split()[0]}, cores {os.cpu_count()}")
    with tempfile.TemporaryDirectory(prefix="wz-crawl-bench-") as d:
        tmp = Path(d)
        bench_minilm_bytes(tmp)
        bench_parallel(tmp, n, args.latency)


if __name__ == "__main__":
    main()
