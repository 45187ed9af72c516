"""Small zoos built once per session for the dataset tests (tiny sizes: seconds, not minutes)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def cnn_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """digits-cnn, 3 networks, checkpoints after epochs 0 and 1, seed 0."""
    from weightzoo.datasets import build

    path = tmp_path_factory.mktemp("cnn") / "zoo"
    build("digits-cnn", path, size=3, seed=0, workers=1, epochs=(0, 1), progress=False)
    return path
