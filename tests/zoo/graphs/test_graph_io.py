"""Graph files are read through the validated safetensors reader: malformed or lying files are refused."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from weightzoo.errors import CheckpointError
from weightzoo.zoo.graphs import ComputeGraph, ParameterGraph

_spec = importlib.util.spec_from_file_location(
    "weightzoo_graph_attacks", Path(__file__).parents[1] / "formats" / "attacks" / "generators.py")
assert _spec is not None and _spec.loader is not None
attacks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(attacks)


@pytest.mark.parametrize("cls", [ParameterGraph, ComputeGraph])
@pytest.mark.parametrize("make", [attacks.write_duplicate_names, attacks.write_offsets_out_of_bounds,
                                  lambda d: attacks.write_truncated(d, "mid-tensor")])
def test_malformed_graph_files_are_refused(cls, make, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError):
        cls.load(make(tmp_path))


@pytest.mark.parametrize("cls", [ParameterGraph, ComputeGraph])
def test_a_checkpoint_is_not_a_graph(cls, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, tmp_path / "plain.safetensors")
    with pytest.raises(CheckpointError, match="format"):
        cls.load(tmp_path / "plain.safetensors")
