"""The error hierarchy: every error is a WeightzooError and the nearest builtin; call sites raise exact types."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch

from weightzoo import errors
from weightzoo.errors import (
    AnalysisError,
    CheckpointError,
    ConfigError,
    HeaderTooLargeError,
    HubError,
    InvalidOptionError,
    TruncatedResponseError,
    WeightzooError,
)

CATEGORIES = {WeightzooError, errors.ZooError}  # grouping bases, never raised themselves
ERRORS = [c for _, c in inspect.getmembers(errors, inspect.isclass)
          if issubclass(c, WeightzooError) and c not in CATEGORIES]


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_every_error_also_inherits_a_builtin(cls: type[Exception]) -> None:
    builtins = [b for b in cls.__mro__ if b.__module__ == "builtins" and b not in (Exception, BaseException, object)]
    assert builtins, f"{cls.__name__} inherits no builtin besides Exception"


def test_category_bases_are_never_raised() -> None:
    root = Path(__file__).resolve().parents[1]
    sources = [p for d in ("weightzoo", "zoo", "metanets", "hyper", "analysis", "datasets") for p in (root / d).rglob("*.py")]
    hits = [f"{p.relative_to(root)}" for p in sources for c in CATEGORIES if f"raise {c.__name__}(" in p.read_text()]
    assert not hits


def test_every_error_is_exported() -> None:
    assert {c.__name__ for c in ERRORS} <= set(errors.__all__)


def test_hub_errors_live_in_the_hierarchy() -> None:
    assert issubclass(HeaderTooLargeError, CheckpointError)
    assert issubclass(TruncatedResponseError, HubError) and issubclass(TruncatedResponseError, OSError)


def test_merge_config_errors_are_config_errors(tmp_path: Path) -> None:
    from weightzoo.analysis import load_merge_config, parse_merge_config

    with pytest.raises(ConfigError, match="merge_method is required"):
        parse_merge_config({"models": [{"model": "a"}]})
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_merge_config(bad)
    assert issubclass(ConfigError, InvalidOptionError) and issubclass(ConfigError, ValueError)


def test_analysis_call_sites_raise_exact_types() -> None:
    from weightzoo.analysis import TaskVector, learn_coefficients, merge
    from weightzoo.analysis.merge_kernels import global_magnitude_threshold

    sd = {"w": torch.zeros(2)}
    with pytest.raises(InvalidOptionError, match="both a fine-tuned model and its base"):
        TaskVector(sd, None)
    with pytest.raises(InvalidOptionError, match="at least one model"):
        merge("mean", [])
    with pytest.raises(InvalidOptionError, match="at least one task vector"):
        learn_coefficients(sd, [], objective=None)  # type: ignore[arg-type]
    with pytest.raises(AnalysisError, match="one dtype"):
        global_magnitude_threshold(lambda: [torch.ones(2), torch.ones(2, dtype=torch.float64)], 0.5)
