"""A small archs zoo (untrained architectures: seconds to build) shared by the retrieval tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def archs_zoo_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from weightzoo.analysis.retrieval import OpHistogramEncoder, build_index
    from weightzoo.datasets import build

    path = tmp_path_factory.mktemp("archs") / "zoo"
    build("archs", path, size=16, seed=0, workers=1, trained_fraction=0.0, progress=False)
    build_index(path, OpHistogramEncoder(), save=False)  # fills the zoo's graph cache once
    return path


@pytest.fixture
def archs_zoo(archs_zoo_session: Path, tmp_path: Path) -> Path:
    """A private copy with the cached graphs but no index (tests write indexes into the zoo folder)."""
    dst = tmp_path / "zoo"
    shutil.copytree(archs_zoo_session, dst, ignore=shutil.ignore_patterns("ops-*", "wl-*", "learned-*"))
    return dst
