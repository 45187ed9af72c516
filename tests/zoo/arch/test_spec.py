"""Architecture specs: spec ⇄ module round trips, deterministic names, validation errors."""

from __future__ import annotations

import json
from collections import OrderedDict

import pytest
import torch
from torch import nn

from weightzoo.errors import SpecError, UnsupportedLayerError
from weightzoo.zoo.arch import (
    SPEC_FORMAT,
    Residual,
    Sine,
    build_module,
    hf_spec,
    spec_from_module,
    validate_spec,
)

CNN_SPEC = {
    "format": SPEC_FORMAT,
    "input_shape": [3, 8, 8],
    "layers": [
        {"type": "conv2d", "in": 3, "out": 8, "kernel": 3, "padding": 1},
        {"type": "batchnorm2d", "num_features": 8},
        {"type": "relu"},
        {"type": "residual", "layers": [
            {"type": "conv2d", "in": 8, "out": 8, "kernel": [3, 3], "padding": 1, "groups": 2},
            {"type": "groupnorm", "num_groups": 2, "num_channels": 8},
            {"type": "silu"},
            {"type": "conv2d", "in": 8, "out": 16, "kernel": 1}],
         "shortcut": [{"type": "conv2d", "in": 8, "out": 16, "kernel": 1, "bias": False}]},
        {"type": "global_avg_pool", "dims": 2},
        {"type": "flatten"},
        {"type": "dropout", "p": 0.1},
        {"type": "linear", "in": 16, "out": 10},
    ],
}


def test_build_module_names_are_deterministic_and_loadable() -> None:
    a, b = build_module(CNN_SPEC), build_module(json.loads(json.dumps(CNN_SPEC)))
    assert list(a.state_dict()) == list(b.state_dict())
    assert "3.block.0.weight" in a.state_dict() and "3.shortcut.0.weight" in a.state_dict()
    b.load_state_dict(a.state_dict(), strict=True)
    a.eval(), b.eval()
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(a(x), b(x))
    assert a(x).shape == (2, 10)


def test_spec_from_module_round_trip_keeps_names_and_function() -> None:
    torch.manual_seed(0)
    m = nn.Sequential(OrderedDict([
        ("conv", nn.Conv1d(2, 4, 5, stride=2, dilation=2, padding=3)),
        ("bn", nn.BatchNorm1d(4)),
        ("act", nn.LeakyReLU(0.2)),
        ("pool", nn.AdaptiveMaxPool1d(1)),
        ("flat", nn.Flatten()),
        ("ln_in", nn.Linear(4, 6)),
        ("ln", nn.LayerNorm(6)),
        ("sine", Sine(2.0)),
        ("res", Residual(nn.Sequential(nn.Linear(6, 6), nn.GELU(approximate="tanh"), nn.Linear(6, 6)))),
        ("out", nn.Linear(6, 3)),
    ]))
    spec = spec_from_module(m, input_shape=[2, 16])
    json.dumps(spec)  # JSON-able
    rebuilt = build_module(spec)
    assert list(rebuilt.state_dict()) == list(m.state_dict())
    rebuilt.load_state_dict(m.state_dict(), strict=True)
    m.eval(), rebuilt.eval()
    x = torch.randn(3, 2, 16)
    assert torch.equal(m(x), rebuilt(x))
    assert spec_from_module(rebuilt, input_shape=[2, 16]) == spec


def test_digits_models_rebuild_exactly(digits_cnn, digits_mlp, digits_data) -> None:
    x = digits_data[2]
    for model in (digits_cnn, digits_mlp):
        rebuilt = build_module(spec_from_module(model))
        rebuilt.load_state_dict(model.state_dict(), strict=True)
        rebuilt.eval()
        assert torch.equal(rebuilt(x), model(x))


def test_unsupported_module_names_path_and_type() -> None:
    m = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.ReLU(), nn.LSTM(4, 4)))
    with pytest.raises(UnsupportedLayerError) as err:
        spec_from_module(m)
    assert err.value.path == "1.1" and err.value.kind == "LSTM"
    spec = spec_from_module(m, strict=False)
    entry = spec["layers"][1]["layers"][1]
    assert entry["type"] == "unsupported" and entry["module"] == "LSTM"
    assert "1.1.weight_ih_l0" in entry["tensors"]
    with pytest.raises(UnsupportedLayerError):
        build_module(spec)


def test_non_sequential_root_is_refused() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(2, 2)

    with pytest.raises(UnsupportedLayerError, match="<root>"):
        spec_from_module(Net())


@pytest.mark.parametrize(
    ("layer", "match"),
    [
        ({"type": "conv3d", "in": 1, "out": 1}, r"layers\[1\]\.type: unknown layer type 'conv3d'"),
        ({"type": "conv2d", "in": 4, "out": 6, "kernel": 3, "groups": 4}, r"layers\[1\]\.groups"),
        ({"type": "conv2d", "in": 4, "out": 4, "kernel": [3]}, r"layers\[1\]\.kernel"),
        ({"type": "linear", "in": 4}, r"layers\[1\]\.out: required"),
        ({"type": "linear", "in": 4, "out": 2, "bais": True}, r"layers\[1\]: unknown key\(s\) \['bais'\]"),
        ({"type": "groupnorm", "num_groups": 3, "num_channels": 4}, r"layers\[1\]: num_groups=3"),
        ({"type": "dropout", "p": 2}, r"layers\[1\]\.p"),
        ({"type": "residual", "layers": [{"type": "relu", "slope": 1}]}, r"layers\[1\]\.layers\[0\]: unknown key"),
    ],
)
def test_validate_spec_names_the_offending_layer(layer, match) -> None:
    spec = {"format": SPEC_FORMAT, "layers": [{"type": "linear", "in": 4, "out": 4}, layer]}
    with pytest.raises(SpecError, match=match):
        validate_spec(spec)


def test_validate_spec_format_key() -> None:
    with pytest.raises(SpecError, match="format"):
        validate_spec({"layers": []})
    with pytest.raises(SpecError, match="input_shape"):
        validate_spec({"format": SPEC_FORMAT, "layers": [], "input_shape": [0]})


def test_hf_spec_needs_transformers(minilm_dir) -> None:
    config = json.loads((minilm_dir / "config.json").read_text())
    spec = hf_spec(config)
    assert spec["class"] == "BertModel" and validate_spec(spec)["config"]["hidden_size"] == 384
    try:
        import transformers  # noqa: F401
    except ImportError:
        with pytest.raises(SpecError, match="transformers"):
            build_module(spec)
    else:
        assert sum(p.numel() for p in build_module(spec).parameters()) > 20_000_000


def test_sine_is_sin_w0_x() -> None:
    x = torch.linspace(-1, 1, 11)
    assert torch.allclose(Sine(30.0)(x), torch.sin(30.0 * x))
    assert repr(Sine(2.0)) == "Sine(w0=2.0)"
