"""Fixtures for the Hub tests: a tree of generated repositories served by a real HTTP mirror."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from weightzoo.zoo.hub.mirror import HubMirror

_SPEC = importlib.util.spec_from_file_location("weightzoo_hub_repos", Path(__file__).with_name("repos.py"))
assert _SPEC is not None and _SPEC.loader is not None
repos: ModuleType = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(repos)

TOKEN = repos.TOKEN


@pytest.fixture(scope="session")
def hubrepos() -> ModuleType:
    """``tests/zoo/hub/repos.py``: generators of test repositories, ``TOKEN`` and ``FAST`` (retry policy)."""
    return repos


@pytest.fixture(scope="session")
def hub_tree(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> tuple[Path, dict[str, str]]:
    """``(root, {repo_id: expected crawl outcome})`` of every layout and failure the crawler meets."""
    root = tmp_path_factory.mktemp("hub") / "repos"
    return root, repos.build_test_hub(root, minilm_dir)


@pytest.fixture(autouse=True)
def _no_ambient_hub_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No token, endpoint or offline flag from the environment leaks into a test."""
    import huggingface_hub.constants as c

    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(c, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", False)


@pytest.fixture
def mirror(hub_tree: tuple[Path, dict[str, str]]) -> Iterator[HubMirror]:
    """A mirror of ``hub_tree`` on 127.0.0.1 (small pages, so listings paginate), stopped afterwards."""
    with HubMirror(hub_tree[0], page_size=5, tokens=[TOKEN]) as m:
        yield m
