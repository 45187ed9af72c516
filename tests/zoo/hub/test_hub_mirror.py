"""The Hub mirror, driven by the real huggingface_hub client (never mocked)."""

from __future__ import annotations

import math
from pathlib import Path

import httpx2
import pytest
import torch
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from safetensors import safe_open
from safetensors.torch import load_file

from weightzoo.errors import InvalidOptionError
from weightzoo.zoo.hub.mirror import Fault, FaultPlan, HubMirror

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def test_listing_paginates_with_link_headers(mirror: HubMirror, hub_tree) -> None:
    api = HfApi(endpoint=mirror.url)
    ids = [m.id for m in api.list_models()]
    assert sorted(ids) == sorted(hub_tree[1]) and len(ids) == len(set(ids))
    pages = mirror.requests(r"^/api/models(\?|$)")
    assert len(pages) == -(-len(ids) // 5)  # page_size=5: every page was fetched once, following Link
    assert sum("cursor=" in r.target for r in pages) == len(pages) - 1


def test_listing_filters_and_sort(mirror: HubMirror) -> None:
    api = HfApi(endpoint=mirror.url)
    assert [m.id for m in api.list_models(search="all-minilm")] == [MINILM]
    assert {m.id for m in api.list_models(author="broken")} == {"broken/corrupt-header", "broken/lying-header",
                                                               "broken/huge-header"}
    children = {m.id for m in api.list_models(filter=f"base_model:{MINILM}")}
    assert children == {"acme/minilm-lora", "acme/minilm-finetuned", "acme/minilm-merge"}
    assert [m.id for m in api.list_models(filter="base_model:quantized:acme/minilm-finetuned")] == ["acme/minilm-quant"]
    assert [m.id for m in api.list_models(pipeline_tag="text-to-image")] == ["acme/tiny-diffusion"]
    by_dl = [m.downloads for m in api.list_models(sort="downloads", limit=4, expand=["downloads"])]
    assert by_dl == sorted(by_dl, reverse=True) and by_dl[0] == 90_000_000


def test_model_info_matches_the_files(mirror: HubMirror, minilm_dir: Path) -> None:
    info = HfApi(endpoint=mirror.url).model_info(MINILM)
    assert len(info.sha) == 40 and info.library_name == "sentence-transformers"
    assert {s.rfilename for s in info.siblings} >= {"config.json", "model.safetensors", "1_Pooling/config.json"}
    assert info.card_data.license == "apache-2.0" and info.config["model_type"] == "bert"
    with safe_open(str(minilm_dir / "model.safetensors"), "pt") as f:
        numel = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    assert info.safetensors.total == numel
    only = HfApi(endpoint=mirror.url).model_info(MINILM, expand=["sha", "downloads"])
    assert only.sha == info.sha and only.downloads == 90_000_000 and only.siblings is None
    at_sha = HfApi(endpoint=mirror.url).model_info(MINILM, revision=info.sha)
    assert at_sha.sha == info.sha


def test_download_and_range_requests(mirror: HubMirror, minilm_dir: Path, tmp_path: Path) -> None:
    path = hf_hub_download(MINILM, "config.json", endpoint=mirror.url, cache_dir=tmp_path)
    assert Path(path).read_bytes() == (minilm_dir / "config.json").read_bytes()
    assert "/snapshots/" in path  # the client cached it under the commit sha the mirror announced
    url = hf_hub_url(MINILM, "model.safetensors", endpoint=mirror.url)
    meta = get_hf_file_metadata(url)
    assert meta.size == (minilm_dir / "model.safetensors").stat().st_size and meta.etag and len(meta.commit_hash) == 40
    r = httpx2.get(url, headers={"Range": "bytes=8-15"})
    assert r.status_code == 206 and r.headers["Content-Range"] == f"bytes 8-15/{meta.size}"
    assert r.content == (minilm_dir / "model.safetensors").read_bytes()[8:16]
    assert httpx2.get(url, headers={"Range": f"bytes={meta.size}-"}).status_code == 416
    assert mirror.bytes_sent("model.safetensors") < 2_000  # HEAD + 8 bytes + a refusal, never the file


def test_hub_errors_are_the_clients_typed_errors(mirror: HubMirror, tmp_path: Path) -> None:
    api = HfApi(endpoint=mirror.url)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("nobody/nothing")
    with pytest.raises(RevisionNotFoundError):
        api.model_info(MINILM, revision="no-such-branch")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(MINILM, "missing.bin", endpoint=mirror.url, cache_dir=tmp_path)
    with pytest.raises(GatedRepoError):
        hf_hub_download("acme/gated-model", "config.json", endpoint=mirror.url, cache_dir=tmp_path)
    assert api.model_info("acme/gated-model").gated == "manual"  # metadata stays public, files do not
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("acme/private-model")
    authed = HfApi(endpoint=mirror.url, token="hf_test_secret")
    assert authed.model_info("acme/private-model").private is True
    assert hf_hub_download("acme/gated-model", "config.json", endpoint=mirror.url, cache_dir=tmp_path,
                           token="hf_test_secret")


def test_snapshot_download_through_the_tree_api(mirror: HubMirror, tmp_path: Path) -> None:
    from huggingface_hub import snapshot_download

    folder = Path(snapshot_download("acme/tiny-diffusion", endpoint=mirror.url, cache_dir=tmp_path,
                                    allow_patterns=["unet/*", "model_index.json"]))
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors",
        "unet/diffusion_pytorch_model.safetensors"]


def test_serving_a_zoo_exports_bit_exact_safetensors(tmp_path: Path) -> None:
    from weightzoo.zoo.store import Zoo

    torch.manual_seed(0)
    digits_mlp = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    with Zoo.open(tmp_path / "z") as zoo:
        zoo.ingest(digits_mlp, name="lab/mlp", license="mit")
        zoo.ingest({k: v + 1 for k, v in digits_mlp.state_dict().items()}, name="lab/mlp-ft")
        zoo.add_lineage("lab/mlp-ft", "lab/mlp", "finetune")
    with HubMirror(zoo=tmp_path / "z") as hub:
        path = hf_hub_download("lab/mlp-ft", "model.safetensors", endpoint=hub.url, cache_dir=tmp_path / "c")
        got = load_file(path)
        want = {k: v + 1 for k, v in digits_mlp.state_dict().items()}
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
        info = HfApi(endpoint=hub.url).model_info("lab/mlp-ft")
        assert info.card_data.base_model == "lab/mlp" and "base_model:finetune:lab/mlp" in info.tags
        assert HfApi(endpoint=hub.url).model_info("lab/mlp").card_data.license == "mit"


def test_faults_fire_deterministically() -> None:
    plan = FaultPlan([Fault("error", path="/resolve/", every=2, times=2), Fault("slow", delay=0.0)])
    fired = [[f.kind for f in plan.pick("GET", f"/org/x/resolve/main/f{i}")] for i in range(6)]
    assert fired == [["slow"], ["error", "slow"], ["slow"], ["error", "slow"], ["slow"], ["slow"]]
    assert plan.pick("GET", "/api/models") == [Fault("slow", delay=0.0)]
    runs = [[bool(FaultPlan([Fault("drop", probability=0.5)], seed=3).pick("GET", "/")) for _ in range(1)]
            for _ in range(2)]
    assert runs[0] == runs[1]
    assert Fault.parse("rate-limit:path=/resolve/,every=3,retry_after=2") == Fault("rate-limit", "/resolve/", 3,
                                                                                    retry_after=2.0)
    with pytest.raises(InvalidOptionError, match="one of"):
        Fault("explode")
    with pytest.raises(InvalidOptionError, match="key=value"):
        Fault.parse("error:often")


def test_injected_faults_reach_the_client(hub_tree) -> None:
    faults = [Fault("rate-limit", path="config.json", retry_after=7, times=1),
              Fault("error", path="README", status=503, times=1),
              Fault("drop", path="vocab", times=1), Fault("truncate", path="tokenizer.json", times=1)]
    with HubMirror(hub_tree[0], faults=faults) as hub:
        base = f"{hub.url}/{MINILM}/resolve/main"
        r = httpx2.get(f"{base}/config.json")
        assert r.status_code == 429 and r.headers["Retry-After"] == "7"
        assert httpx2.get(f"{base}/config.json").status_code == 200  # times=1
        assert httpx2.get(f"{base}/README.md").status_code == 503
        with pytest.raises(httpx2.RemoteProtocolError):
            httpx2.get(f"{base}/vocab.txt")
        with pytest.raises(httpx2.RemoteProtocolError):  # announced length, half the body, closed
            httpx2.get(f"{base}/tokenizer.json")
        assert [r.fault for r in hub.requests("config.json")] == ["rate-limit", None]


def test_mirror_needs_exactly_one_source(tmp_path: Path) -> None:
    with pytest.raises(InvalidOptionError):
        HubMirror()
    with pytest.raises(InvalidOptionError):
        HubMirror(tmp_path, zoo=tmp_path)
