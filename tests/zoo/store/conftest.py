"""Shared fixtures of the store tests."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

ZooState = tuple[dict[str, list[str]], set[str]]


def _zoo_state(zoo_dir: Path) -> ZooState:
    """Every catalogue row (as text) and every pack file name: equal before and after means nothing changed."""
    con = sqlite3.connect(zoo_dir / "catalog.sqlite")
    try:
        rows = {t: sorted(map(repr, con.execute(f"SELECT * FROM {t}"))) for t in
                ("models", "tensors", "blobs", "packs", "metadata", "lineage")}
    finally:
        con.close()
    return rows, {p.name for p in (zoo_dir / "packs").iterdir()}


@pytest.fixture
def zoo_state() -> Callable[[Path], ZooState]:
    return _zoo_state
