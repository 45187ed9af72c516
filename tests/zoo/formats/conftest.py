"""Fixtures for the reader tests: the attack-file generators in ``attacks/`` as a module."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

_GENERATORS = Path(__file__).parent / "attacks" / "generators.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("weightzoo_format_attacks", _GENERATORS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_MODULE = _load()


@pytest.fixture(scope="session")
def attacks() -> ModuleType:
    """``tests/zoo/formats/attacks/generators.py``: one ``write_*`` function per malformed input."""
    return _MODULE
