"""Every fault the mirror can inject is survived: the crawl goes on and the summary counts it."""

from __future__ import annotations

from pathlib import Path

import pytest

from weightzoo.errors import HubError
from weightzoo.zoo.hub import crawl
from weightzoo.zoo.hub.headers import HeaderReader
from weightzoo.zoo.hub.mirror import Fault, HubMirror
from weightzoo.zoo.hub.retry import Retrier, RetryPolicy
from weightzoo.zoo.store import Zoo

ACME_OK = {"acme/sharded-bert", "acme/tiny-diffusion", "acme/minilm-lora", "acme/minilm-finetuned",
           "acme/minilm-merge", "acme/minilm-quant"}


def _ok(zoo: Zoo) -> set[str]:
    return {m.name for m in zoo.models() if m.metadata["hub_status"] == "ok"}


@pytest.mark.parametrize("fault, kinds", [
    (Fault("rate-limit", path="/resolve/", every=2, retry_after=1), {"rate-limited"}),
    (Fault("error", path="/resolve/", every=3, status=500), {"server-error"}),
    (Fault("error", path="/resolve/", every=3, status=503), {"server-error"}),
    (Fault("drop", path="/resolve/", every=2), {"connection"}),
    (Fault("truncate", path="/resolve/", every=2), {"connection", "truncated"}),
    (Fault("slow", path="/resolve/", every=4, delay=0.6), {"timeout"}),
], ids=["429", "500", "503", "drop", "truncate", "slow"])
def test_crawl_survives_fault(fault: Fault, kinds: set[str], hub_tree, tmp_path: Path, hubrepos) -> None:
    policy = RetryPolicy(attempts=6, base_delay=0.01, max_delay=0.05, max_retry_after=0.05, timeout=0.3, seed=0)
    with HubMirror(hub_tree[0], faults=[fault]) as hub, Zoo.open(tmp_path / "z") as zoo:
        s = crawl(zoo, author="acme", endpoint=hub.url, progress=False, retry=policy, workers=3)
        assert s.complete and not s.failed
        assert _ok(zoo) == ACME_OK
        assert sum(hub.faults.fired) >= 1 and sum(s.retries[k] for k in kinds) >= 1, s.retries
        assert zoo.crawl_state(next(iter(_keys(zoo))))["summary"]["retries"] == dict(s.retries)


def _keys(zoo: Zoo) -> list[str]:
    return [r[0] for r in zoo._query("SELECT key FROM crawl_state")]


def test_retry_after_is_honoured(hub_tree) -> None:
    waits: list[float] = []
    retrier = Retrier(RetryPolicy(seed=0), sleep=waits.append)
    with HubMirror(hub_tree[0], faults=[Fault("rate-limit", retry_after=3, times=2)]) as hub:
        reader = HeaderReader(hub.url, {}, retrier)
        tensors, _, _ = reader.safetensors_header("acme/minilm-finetuned", "main", "model.safetensors")
    assert len(tensors) == 7 and waits == [3.0, 3.0] and retrier.retries == {"rate-limited": 2}


def test_backoff_is_exponential_capped_and_seeded() -> None:
    a = Retrier(RetryPolicy(base_delay=1, max_delay=4, seed=7), sleep=lambda s: None)
    b = Retrier(RetryPolicy(base_delay=1, max_delay=4, seed=7), sleep=lambda s: None)
    da = [a.delay(k, None) for k in range(1, 7)]
    assert da == [b.delay(k, None) for k in range(1, 7)]
    for k, d in enumerate(da, start=1):
        cap = min(4, 2 ** (k - 1))
        assert cap / 2 <= d <= cap
    assert a.delay(1, 500.0) == 120.0  # a server's wait is honoured up to max_retry_after


def test_one_repo_failing_for_good_does_not_stop_the_crawl(hub_tree, tmp_path: Path, hubrepos) -> None:
    with Zoo.open(tmp_path / "z") as zoo:
        with HubMirror(hub_tree[0], faults=[Fault("error", path="sharded-bert/resolve", status=502)]) as hub:
            s = crawl(zoo, author="acme", endpoint=hub.url, progress=False, retry=hubrepos.FAST)
        assert s.complete and s.failed == {"endpoint-error": 1} and s.errors[0]["repo"] == "acme/sharded-bert"
        assert "502" in s.errors[0]["message"]
        assert _ok(zoo) == ACME_OK - {"acme/sharded-bert"}
        with HubMirror(hub_tree[0]) as hub:  # the next run picks up exactly what failed
            s = crawl(zoo, author="acme", endpoint=hub.url, progress=False, retry=hubrepos.FAST)
            assert s.recorded == 1 and not s.failed and len(hub.requests("/resolve/")) == 3  # index + 2 shards
        assert _ok(zoo) == ACME_OK


def test_listing_rate_limit_is_retried(hub_tree, tmp_path: Path, hubrepos) -> None:
    faults = [Fault("rate-limit", path=r"^/api/models\?.*expand", times=1, retry_after=0)]
    with HubMirror(hub_tree[0], faults=faults) as hub, Zoo.open(tmp_path / "z") as zoo:
        s = crawl(zoo, author="acme", endpoint=hub.url, progress=False, retry=hubrepos.FAST)
        assert s.complete and hub.faults.fired == [1] and _ok(zoo) == ACME_OK


def test_fatal_listing_error_then_resume(hub_tree, tmp_path: Path, hubrepos) -> None:
    with Zoo.open(tmp_path / "z") as zoo:
        with HubMirror(hub_tree[0], page_size=3, faults=[Fault("error", path="cursor=", status=400)]) as hub:
            with pytest.raises(HubError, match="rerun the same command to resume"):
                crawl(zoo, endpoint=hub.url, progress=False, retry=hubrepos.FAST)
            port = hub.port
        assert len(zoo) == 3  # the first page was finished before stopping
        assert [zoo.crawl_state(k)["status"] for k in _keys(zoo)] == ["interrupted"]
        with HubMirror(hub_tree[0], page_size=3, port=port) as hub:  # the same endpoint: the same crawl state
            s = crawl(zoo, endpoint=hub.url, progress=False, retry=hubrepos.FAST)
        assert s.complete and s.skipped["up-to-date"] == 3
        names = [m.name for m in zoo.models()]
        assert sorted(names) == sorted(hub_tree[1]) and len(set(names)) == len(names)
        assert [zoo.crawl_state(k)["status"] for k in _keys(zoo)] == ["complete"]
