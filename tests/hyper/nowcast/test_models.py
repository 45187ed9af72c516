"""Nowcasters: shapes, save/load, linear extrapolation exactness, and the permutation symmetry with a
negative control (a permutation that is not a symmetry moves the graph nowcaster's output)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from weightzoo.datasets.cnn_zoo import cnn_spec
from weightzoo.datasets.mlp_zoo import mlp_spec
from weightzoo.errors import ConfigError
from weightzoo.hyper.nowcast import (
    LinearNowcaster,
    MLPNowcaster,
    Nowcaster,
    ParameterIndex,
    load_nowcaster,
    save_nowcaster,
)
from weightzoo.hyper.nowcast.features import history_features
from weightzoo.zoo.arch import build_module
from weightzoo.zoo.graphs.layout import layout_of
from weightzoo.zoo.symmetry import apply_permutation, permute_hidden


def _history(spec: dict, seed: int, c: int = 5) -> tuple[torch.nn.Module, ParameterIndex, list[dict[str, torch.Tensor]]]:
    torch.manual_seed(seed)
    model = build_module(spec)
    index = ParameterIndex.from_module(model, spec=spec)
    g = torch.Generator().manual_seed(seed + 1)
    drift = {k: 0.05 * torch.randn(v.shape, generator=g) for k, v in model.state_dict().items()}
    states = []
    for i in range(c):
        states.append({k: v + drift[k] * i + 0.01 * torch.randn(v.shape, generator=g) * (i > 0)
                       for k, v in model.state_dict().items()})
    return model, index, states


def _stack(index: ParameterIndex, states: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    return torch.stack([index.flatten(s) for s in states])


@pytest.mark.parametrize("spec", [cnn_spec("relu", 0.0), mlp_spec("tanh", 0.0)], ids=["cnn", "mlp"])
@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_permuting_the_network_permutes_the_nowcast(spec: dict, seed: int) -> None:
    model, index, states = _history(spec, seed)
    layout = layout_of(spec)
    _, perms = permute_hidden(states[-1], torch.Generator().manual_seed(seed), spec=spec, return_perms=True)
    permuted = [apply_permutation(layout, s, perms) for s in states]
    torch.manual_seed(seed)
    for nowcaster in (Nowcaster(hidden=16, layers=2), Nowcaster(hidden=16, layers=1, layer="pyg-general"),
                      MLPNowcaster(hidden=16), LinearNowcaster(gain=0.7)):
        out = nowcaster.predict(index, _stack(index, states))
        out_p = nowcaster.predict(index, _stack(index, permuted))
        expected = index.flatten(apply_permutation(layout, index.unflatten(out), perms))
        assert torch.allclose(out_p, expected, atol=1e-5, rtol=1e-4), type(nowcaster).__name__


def test_negative_control_rewiring_one_layer_changes_the_graph_nowcast() -> None:
    """Permuting the rows of the first weight alone (bias and next layer untouched) is not a symmetry:
    the graph nowcaster's output is no longer the permuted output; the graph-free MLP cannot tell."""
    spec = mlp_spec("relu", 0.0)
    model, index, states = _history(spec, 3)
    name = next(n for n in index.names if n.endswith("weight"))
    perm = torch.randperm(states[0][name].shape[0], generator=torch.Generator().manual_seed(0))

    def rewire(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {**sd, name: sd[name][perm]}

    torch.manual_seed(0)
    graph, pyg, mlp = Nowcaster(hidden=16, layers=2), Nowcaster(hidden=16, layer="pyg-general"), MLPNowcaster(hidden=16)
    for nowcaster, reacts in ((graph, True), (pyg, True), (mlp, False)):
        out = nowcaster.predict(index, _stack(index, states))
        out_r = nowcaster.predict(index, _stack(index, [rewire(s) for s in states]))
        expected = index.flatten(rewire(index.unflatten(out)))
        assert torch.allclose(out_r, expected, atol=1e-5, rtol=1e-4) is not reacts, type(nowcaster).__name__


def test_linear_extrapolation_is_exact_on_a_straight_line() -> None:
    spec = mlp_spec("relu", 0.0)
    model = build_module(spec)
    index = ParameterIndex.from_module(model)
    start = index.flatten(model.state_dict())
    velocity = torch.randn(index.num_params) * 1e-3
    states = torch.stack([start + velocity * 10 * i for i in range(5)])  # spacing 10 steps
    out = LinearNowcaster(history=5, spacing=10, horizon=40).predict(index, states)
    assert torch.allclose(out, start + velocity * 80, atol=1e-6)


def test_features_are_invariant_to_rescaling_a_tensor() -> None:
    index = ParameterIndex.from_module(build_module(mlp_spec("relu", 0.0)))
    states = torch.randn(5, index.num_params)
    f, scale = history_features(states, index.tensor_id, index.num_tensors)
    factor = torch.where(index.tensor_id == 0, 7.0, 1.0)
    f2, scale2 = history_features(states * factor, index.tensor_id, index.num_tensors)
    assert torch.allclose(f, f2, atol=1e-5) and torch.allclose(scale2, scale * factor, rtol=1e-5)
    with pytest.raises(ValueError, match="states must be"):
        history_features(states[:1], index.tensor_id, index.num_tensors)


@pytest.mark.parametrize("cls", [Nowcaster, MLPNowcaster, LinearNowcaster])
def test_save_and_load_round_trip(cls: type, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_module(cnn_spec("gelu", 0.0))
    index = ParameterIndex.from_module(model)
    states = torch.stack([index.flatten(model.state_dict()) + 0.01 * i for i in range(5)])
    nowcaster = cls(horizon=20)
    save_nowcaster(nowcaster, tmp_path / "nc")
    loaded = load_nowcaster(tmp_path / "nc")
    assert type(loaded) is cls and loaded.horizon == 20
    assert torch.equal(loaded.predict(index, states), nowcaster.predict(index, states))
    if cls is Nowcaster:
        assert loaded.layer == "edge-update"
        assert torch.equal(Nowcaster.from_pretrained(tmp_path / "nc").predict(index, states),
                           nowcaster.predict(index, states))


def test_bad_configs_and_folders_raise_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="history"):
        Nowcaster(history=1)
    with pytest.raises(ConfigError, match="layers"):
        Nowcaster(layers=0)
    with pytest.raises(ConfigError, match="unknown layer"):
        Nowcaster(layer="gat")
    with pytest.raises(ConfigError, match="not a nowcaster folder"):
        load_nowcaster(tmp_path)
    index = ParameterIndex.from_module(build_module(mlp_spec("relu", 0.0)))
    with pytest.raises(ConfigError, match="reads 5 states"):
        MLPNowcaster().predict(index, torch.zeros(3, index.num_params))


def test_repr_and_describe() -> None:
    nc = Nowcaster(hidden=8, layers=1)
    assert nc.describe()["kind"] == "graph" and nc.describe()["parameters"] > 0
    assert LinearNowcaster(gain=0.5).describe()["gain"] == 0.5
