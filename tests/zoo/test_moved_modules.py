"""Module paths from before the restructure into floors still import, as the modules that hold the code now."""

from __future__ import annotations

import importlib

import pytest

from weightzoo.zoo import MOVED_MODULES


@pytest.mark.parametrize("old", sorted(MOVED_MODULES))
def test_old_path_is_the_new_module(old: str) -> None:
    assert importlib.import_module(old) is importlib.import_module(MOVED_MODULES[old])


def test_from_imports_of_old_paths() -> None:
    from weightzoo.zoo.arch import build_cells as new_build_cells
    from weightzoo.zoo.cells import build_cells
    from weightzoo.zoo.hub import HubMirror as NewHubMirror
    from weightzoo.zoo.hub_mirror import HubMirror
    from weightzoo.zoo.resolve import load_state_dict
    from weightzoo.zoo.store import load_state_dict as new_load_state_dict

    assert (build_cells, HubMirror, load_state_dict) == (new_build_cells, NewHubMirror, new_load_state_dict)


def test_unknown_paths_still_fail() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("weightzoo.zoo.no_such_module")
