"""weightzoo.cells/1 specs: validation, deterministic names, reductions, the arch.build_module dispatch."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from weightzoo.datasets.archs import FAMILIES, sample_cells_spec
from weightzoo.errors import SpecError
from weightzoo.zoo.arch import build_module, validate_spec
from weightzoo.zoo.arch.cells import (
    OPS,
    CellNetwork,
    SpatialSelfAttention,
    make_op,
    op_counts,
    validate_cells_spec,
)

SPEC = {"format": "weightzoo.cells/1", "input_shape": [1, 8, 8], "num_classes": 10, "norm": "bn",
        "stem": {"channels": 8, "kernel": 3},
        "genotype": {"normal": [[["sep3", 0], ["id", 1]], [["attn", 2], ["conv5", 0]]],
                     "reduce": [[["max3", 0], ["dil3", 1]], [["zero", 2], ["avg3", 0]]]},
        "cells": [{"type": "normal", "channels": 8}, {"type": "reduce", "channels": 16},
                  {"type": "normal", "channels": 16}]}


def test_build_module_dispatches_and_names_are_deterministic() -> None:
    a, b = build_module(SPEC), build_module(copy.deepcopy(SPEC))
    assert isinstance(a, CellNetwork) and list(a.state_dict()) == list(b.state_dict())
    names = list(a.state_dict())
    assert names[0] == "stem.0.weight" and "head.weight" in names and "cells.1.pre0.1.weight" in names
    assert validate_spec(SPEC) == validate_cells_spec(SPEC)
    b.load_state_dict(a.state_dict(), strict=True)
    x = torch.randn(3, 1, 8, 8)
    a.eval(), b.eval()
    assert torch.equal(a(x), b(x)) and a(x).shape == (3, 10)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("stride", [1, 2])
def test_every_op_keeps_channels_and_halves_with_stride(op: str, stride: int) -> None:
    y = make_op(op, 8, stride, "bn")(torch.randn(2, 8, 8, 8))
    assert y.shape == (2, 8, 8 // stride, 8 // stride)


def test_attention_mixes_positions() -> None:
    torch.manual_seed(0)
    att = SpatialSelfAttention(8).eval()
    x = torch.randn(1, 8, 4, 4)
    x2 = x.clone()
    x2[..., 0, 0] += 5.0  # change one position: every output position reacts
    assert ((att(x) - att(x2)).abs().amax(1) > 0).all()


def test_norm_none_has_no_batchnorm_and_biases() -> None:
    spec = dict(SPEC, norm="none")
    m = build_module(spec)
    assert not any(isinstance(x, torch.nn.BatchNorm2d) for x in m.modules())
    assert "stem.0.bias" in m.state_dict()


@pytest.mark.parametrize("bad, match", [
    ({"norm": "ln"}, "norm"),
    ({"stem": {"channels": 0, "kernel": 3}}, "stem"),
    ({"genotype": {"normal": [[["conv9", 0]]], "reduce": [[["id", 0]]]}}, "conv9"),
    ({"genotype": {"normal": [[["conv3", 2]]], "reduce": [[["id", 0]]]}}, r"input in 0\.\.1"),
    ({"cells": [{"type": "huge", "channels": 8}]}, "cells"),
    ({"cells": [{"type": "reduce", "channels": 8}] * 4}, "reductions"),
    ({"extra": 1}, "unknown top-level"),
])
def test_bad_specs_raise_spec_error(bad: dict, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        build_module({**SPEC, **bad})


@pytest.mark.parametrize("family", list(FAMILIES))
def test_sampled_families_build_and_respect_their_op_sets(family: str) -> None:
    rng = np.random.default_rng(0)
    for _ in range(2):
        spec = sample_cells_spec(rng, family)
        used = {op for op, n in op_counts(spec).items() if n}
        assert used <= set(FAMILIES[family]["ops"])
        lo, hi = FAMILIES[family]["cells"]
        assert lo <= len(spec["cells"]) <= hi
        assert build_module(spec).eval()(torch.zeros(1, 1, 8, 8)).shape == (1, 10)
