"""Every malformed, lying or malicious checkpoint is refused by `Zoo.ingest` with a typed error, and the zoo
(catalogue rows, set of packs) is unchanged afterwards with `verify` clean."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from weightzoo.errors import CheckpointError, NoWeightsError, UnsafeCheckpointError, UnsupportedFormatError
from weightzoo.zoo.store import Zoo

_spec = importlib.util.spec_from_file_location(
    "weightzoo_store_attacks", Path(__file__).parents[1] / "formats" / "attacks" / "generators.py")
assert _spec is not None and _spec.loader is not None
attacks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(attacks)

CASES: dict[str, tuple[Callable[[Path], Path], type[Exception]]] = {
    "truncated-header": (lambda d: attacks.write_truncated(d, "header"), CheckpointError),
    "truncated-mid-tensor": (lambda d: attacks.write_truncated(d, "mid-tensor"), CheckpointError),
    "truncated-last-byte": (lambda d: attacks.write_truncated(d, "last-byte"), CheckpointError),
    "header-longer-than-file": (attacks.write_header_longer_than_file, CheckpointError),
    "header-over-100MB": (attacks.write_header_over_limit, CheckpointError),
    "offsets-out-of-bounds": (attacks.write_offsets_out_of_bounds, CheckpointError),
    "overlapping": (attacks.write_overlapping, CheckpointError),
    "hole": (attacks.write_hole, CheckpointError),
    "trailing-bytes": (attacks.write_trailing_bytes, CheckpointError),
    "unknown-dtype": (attacks.write_unknown_dtype, CheckpointError),
    "shape-mismatch": (attacks.write_shape_mismatch, CheckpointError),
    "duplicate-names": (attacks.write_duplicate_names, CheckpointError),
    "invalid-json": (attacks.write_invalid_json, CheckpointError),
    "invalid-utf8": (attacks.write_invalid_utf8, CheckpointError),
    "empty-file": (attacks.write_empty, CheckpointError),
    "deflated-members": (attacks.write_deflated, CheckpointError),
    "zip-bomb": (attacks.write_zip_bomb, UnsafeCheckpointError),
    "legacy-tar": (attacks.write_legacy_tar, UnsupportedFormatError),
    "zip-named-safetensors": (attacks.write_zip_named_safetensors, UnsupportedFormatError),
    "safetensors-named-bin": (attacks.write_safetensors_named_bin, UnsupportedFormatError),
    "index-dotdot": (lambda d: attacks.write_index_escape(d, "dotdot", d.parent / "outside"), UnsafeCheckpointError),
    "index-absolute": (lambda d: attacks.write_index_escape(d, "absolute", d.parent / "outside"), UnsafeCheckpointError),
    "index-symlink": (lambda d: attacks.write_index_escape(d, "symlink", d.parent / "outside"), UnsafeCheckpointError),
    "weights-symlink": (lambda d: attacks.write_symlinked_weights(d, d.parent / "outside"), UnsafeCheckpointError),
    "no-weights": (attacks.write_no_weights, NoWeightsError),
    "expanded-view-memory-bomb": (attacks.write_expanded_view, UnsafeCheckpointError),
}




@pytest.fixture
def populated(tmp_path: Path) -> Path:
    zoo_dir = tmp_path / "zoo"
    with Zoo.open(zoo_dir) as zoo:
        zoo.ingest({"w": torch.randn(10)}, name="existing", metadata={"seed": 1})
        zoo.add_lineage("existing", "its-base")
    return zoo_dir


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_checkpoint_is_refused_and_zoo_unchanged(case: str, populated: Path, tmp_path: Path, zoo_state: Callable[[Path], Any]) -> None:
    make, error = CASES[case]
    work = tmp_path / "work"
    work.mkdir()
    path = make(work)
    before = zoo_state(populated)
    with Zoo.open(populated) as zoo:
        with pytest.raises(error):
            zoo.ingest(path, name="intruder")
        assert zoo_state(populated) == before
        assert zoo.verify().clean
        assert not zoo.has_model("intruder")


@pytest.mark.parametrize("kind", ["zip", "legacy", "plain"])
def test_code_in_pickle_never_runs(kind: str, populated: Path, tmp_path: Path, zoo_state: Callable[[Path], Any]) -> None:
    sentinel = tmp_path / "pwned"
    path = attacks.write_code_pickle(tmp_path, sentinel, kind)
    before = zoo_state(populated)
    with Zoo.open(populated) as zoo, pytest.raises(UnsafeCheckpointError):
        zoo.ingest(path, name="intruder")
    assert not sentinel.exists()
    assert zoo_state(populated) == before


def test_bad_item_in_a_batch_aborts_the_whole_batch(populated: Path, tmp_path: Path, zoo_state: Callable[[Path], Any]) -> None:
    bad = attacks.write_duplicate_names(tmp_path)
    before = zoo_state(populated)
    with Zoo.open(populated) as zoo, pytest.raises(CheckpointError):
        zoo.ingest_many([dict(source={"w": torch.randn(4)}, name="good"), dict(source=bad, name="bad")])
    assert zoo_state(populated) == before
