"""Ray runs equal local runs: a dataset build, a parallel ingest with a worker killed mid-write, the CLI.

One local Ray instance (``ray.init(num_cpus=2)``, ~10-20 s to start) serves the whole module.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'weightzoo[ray]')")

from weightzoo.cli import main  # noqa: E402
from weightzoo.datasets import build  # noqa: E402
from weightzoo.zoo.store import Zoo  # noqa: E402
from weightzoo.zoo.store.executors import RayExecutor  # noqa: E402
from weightzoo.zoo.store.staging import ingest_parallel  # noqa: E402

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def helpers() -> Iterator[Any]:
    sys.path.insert(0, str(HERE))
    try:
        import _executor_helpers

        # Ray workers do not share our sys.path: ship the test's job functions by value.
        ray.cloudpickle.register_pickle_by_value(_executor_helpers)
        yield _executor_helpers
    finally:
        sys.path.remove(str(HERE))


@pytest.fixture(scope="module")
def local_ray(helpers: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # Ray puts the driver's working directory on its workers' sys.path: from the repository root the
    # folder weightzoo/ would shadow the installed package there, so start Ray from elsewhere.
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path_factory.mktemp("ray-cwd"))
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


def test_ray_dataset_build_equals_local(tmp_path: Path, local_ray: None, helpers: Any) -> None:
    local = build("digits-cnn", tmp_path / "local", size=2, seed=0, workers=1, epochs=(0, 1), progress=False)
    on_ray = build("digits-cnn", tmp_path / "ray", size=2, seed=0, ray=True, epochs=(0, 1), progress=False)
    assert on_ray.executor == "ray:local" and local.executor == "serial"
    with Zoo.open(tmp_path / "local") as a, Zoo.open(tmp_path / "ray") as b:
        # units finish in any order on Ray: compare by name, bit for bit
        sa = sorted(helpers.snapshot(a), key=lambda d: d["name"])
        sb = sorted(helpers.snapshot(b), key=lambda d: d["name"])
        assert [d["name"] for d in sa] == [d["name"] for d in sb] and len(sa) == 4
        assert sa == sb
        helpers.assert_tidy(b)


def test_ray_ingest_with_a_killed_worker_equals_local(tmp_path: Path, local_ray: None, helpers: Any) -> None:
    paths = helpers.write_checkpoints(tmp_path / "ckpts", 6)
    items = [{"source": str(p), "metadata": {"i": k}} for k, p in enumerate(paths)]
    with Zoo.open(tmp_path / "local") as local:
        for it in items:
            local.ingest(**it)
        expected = helpers.snapshot(local)
    task = partial(helpers.KillingStage, marker=str(tmp_path / "killed"), target="net3.safetensors", phase="write")
    with Zoo.open(tmp_path / "ray") as z:
        ex = RayExecutor(workers=2)
        ingest_parallel(z, items, ex, task=task)
        assert ex.retries == 1 and (tmp_path / "killed").exists()
        assert helpers.snapshot(z) == expected
        helpers.assert_tidy(z)


def test_cli_ingest_with_ray_equals_local(tmp_path: Path, local_ray: None, helpers: Any,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    paths = [str(p) for p in helpers.write_checkpoints(tmp_path / "ckpts", 4)]
    assert main(["ingest", *paths, "--zoo", str(tmp_path / "a")]) == 0
    assert main(["ingest", *paths, "--zoo", str(tmp_path / "b"), "--ray"]) == 0
    with Zoo.open(tmp_path / "a") as a, Zoo.open(tmp_path / "b") as b:
        assert helpers.snapshot(a) == helpers.snapshot(b)
    capsys.readouterr()


def test_ray_crawl_equals_local_crawl_headers_and_downloads(tmp_path: Path, local_ray: None, helpers: Any) -> None:
    import importlib.util

    from weightzoo.zoo.hub import crawl
    from weightzoo.zoo.hub.mirror import HubMirror

    spec = importlib.util.spec_from_file_location("weightzoo_hub_repos", HERE.parent / "hub" / "repos.py")
    assert spec is not None and spec.loader is not None
    repos = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(repos)
    repos.build_many(tmp_path / "hub", 6)
    with HubMirror(tmp_path / "hub", page_size=4) as mirror:
        runs = {}
        for label, ray_opt in (("local", False), ("ray", True)):
            zoo = tmp_path / label
            heads = crawl(zoo, endpoint=mirror.url, progress=False, retry=repos.FAST, ray=ray_opt)
            downloads = crawl(zoo, endpoint=mirror.url, progress=False, retry=repos.FAST, ray=ray_opt, download=True,
                              cache_dir=tmp_path / f"hf-{label}")
            again = crawl(zoo, endpoint=mirror.url, progress=False, retry=repos.FAST, ray=ray_opt, download=True,
                          cache_dir=tmp_path / f"hf-{label}")
            assert (heads.recorded, downloads.ingested, again.skipped) == (6, 6, {"up-to-date": 6}), label
            with Zoo.open(zoo) as z:
                snap = sorted(helpers.snapshot(z), key=lambda d: d["name"])
                for d in snap:
                    d["metadata"].pop("endpoint", None)
                    d["source"] = None  # holds the endpoint's URL or the cache folder
                runs[label] = snap
                helpers.assert_tidy(z)
    assert runs["local"] == runs["ray"]
