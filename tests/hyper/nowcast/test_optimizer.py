"""NowcastOptimizer in a plain PyTorch loop: delegation, jump schedule, loss guard, state reset, and a
user's class-based module."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from weightzoo.errors import ConfigError
from weightzoo.hyper.nowcast import LinearNowcaster, MLPNowcaster, Nowcaster, NowcastOptimizer
from weightzoo.hyper.nowcast.models import NowcasterBase


class UserNet(nn.Module):
    """A class-based module with a residual add and a plain parameter (no spec can describe it)."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(8, 16)
        self.block = nn.Linear(16, 16)
        self.out = nn.Linear(16, 3)
        self.temperature = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.inp(x))
        h = h + torch.relu(self.block(h))
        return self.out(h) / self.temperature


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long()


def _train(model: nn.Module, opt: object, steps: int, *, closure: bool) -> list[float]:
    x, y = _data()
    losses = []
    for _ in range(steps):
        if closure:
            def fn() -> torch.Tensor:
                opt.zero_grad()  # type: ignore[attr-defined]
                loss = nn.functional.cross_entropy(model(x), y)
                loss.backward()
                return loss
            losses.append(float(opt.step(fn)))  # type: ignore[attr-defined]
        else:
            opt.zero_grad()  # type: ignore[attr-defined]
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()  # type: ignore[attr-defined]
            losses.append(loss.item())
    return losses


class TwoInputs(nn.Module):
    """A module whose forward needs an input nobody can guess (no graph without example_input)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return self.a(x) * scale


def test_user_class_module_trains_with_nowcasts_and_delegates() -> None:
    torch.manual_seed(0)
    model = UserNet()
    adam = torch.optim.Adam(model.parameters(), lr=1e-2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        opt = NowcastOptimizer(adam, Nowcaster(history=3, spacing=2, horizon=4, hidden=8, layers=1), model=model, every=6)
    assert not [w for w in caught if "no ParameterGraph" in str(w.message)]  # recorded graph: no fallback
    assert opt.index.has_graph and int((opt.index.site_kind == 0).sum()) == 0
    assert opt.param_groups is adam.param_groups and opt.state is adam.state
    losses = _train(model, opt, 20, closure=False)
    assert [e["step"] for e in opt.log] == [6, 12, 18]
    assert all(e["applied"] and e["loss_before"] is None for e in opt.log)
    assert opt.state_dict()["param_groups"] == adam.state_dict()["param_groups"]
    assert all(torch.isfinite(p).all() for p in model.parameters()) and len(losses) == 20


def test_a_module_without_graph_warns_or_refuses() -> None:
    model = TwoInputs()
    adam = torch.optim.Adam(model.parameters(), lr=1e-2)
    nc = Nowcaster(history=3, spacing=2, horizon=4, hidden=8, layers=1)
    with pytest.warns(UserWarning, match="no ParameterGraph for TwoInputs"):
        opt = NowcastOptimizer(adam, nc, model=model)
    x = torch.randn(16, 8)
    for _ in range(4):
        opt.zero_grad()
        model(x, torch.tensor(2.0)).pow(2).mean().backward()
        opt.step()
    assert opt.log[0]["applied"]
    with pytest.raises(ConfigError, match="no ParameterGraph"):
        NowcastOptimizer(adam, nc, model=model, require_graph=True)
    graph_opt = NowcastOptimizer(adam, nc, model=model, example_input=(x, torch.tensor(2.0)))
    assert graph_opt.index.has_graph


def test_linear_nowcast_moves_parameters_along_the_trajectory_and_resets_adam() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    adam = torch.optim.Adam(model.parameters(), lr=1e-2)
    opt = NowcastOptimizer(adam, LinearNowcaster(history=3, spacing=2, horizon=4), model=model)
    assert opt.every == 4
    seen = {}

    def spy(index: object, states: torch.Tensor) -> torch.Tensor:
        seen["states"] = states.clone()
        return orig(index, states)

    orig = opt.nowcaster.predict
    opt.nowcaster.predict = spy  # type: ignore[method-assign]
    _train(model, opt, 4, closure=False)
    assert opt.log[0]["applied"] and len(adam.state) == 0  # Adam's moments were reset
    s = seen["states"]
    expected = s[-1] + (s[-1] - s[0]) / 2 * 2  # slope per spacing × horizon / spacing
    now = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    assert torch.allclose(now, expected, atol=1e-5)


class _Wild(NowcasterBase):
    """A deliberately bad nowcaster: jumps far away (or to NaN)."""

    kind = "test"

    def __init__(self, value: float) -> None:
        super().__init__(3, 2, 4)
        self.value = value

    def predict(self, index: object, states: torch.Tensor) -> torch.Tensor:
        return states[-1] + self.value


@pytest.mark.parametrize("value", [50.0, float("nan")])
def test_guard_rejects_a_nowcast_that_raises_the_loss(value: float) -> None:
    torch.manual_seed(0)
    model = UserNet()
    adam = torch.optim.Adam(model.parameters(), lr=1e-2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt = NowcastOptimizer(adam, _Wild(value), model=model, every=4)
    before = {}

    def keep() -> None:
        before.update({n: p.detach().clone() for n, p in model.named_parameters()})

    _train(model, opt, 3, closure=True)
    keep()
    _train(model, opt, 1, closure=True)  # step 4: adam step, then the rejected nowcast
    rec = opt.log[0]
    assert rec["step"] == 4 and rec["applied"] is False
    if value == value:  # finite: the guard measured both losses
        assert rec["loss_after"] > rec["loss_before"]
    assert len(adam.state) > 0  # nothing applied, nothing reset
    stepped = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    assert torch.isfinite(stepped).all()
    # only Adam's small step remains (lr 1e-2), not the jump
    assert all(float((p.detach() - before[n]).abs().max()) < 0.05 for n, p in model.named_parameters())


def test_bad_schedules_raise_config_errors() -> None:
    model = nn.Sequential(nn.Linear(4, 4))
    adam = torch.optim.SGD(model.parameters(), lr=0.1)
    nc = MLPNowcaster(history=3, spacing=2, horizon=4)
    with pytest.raises(ConfigError, match="every must be"):
        NowcastOptimizer(adam, nc, model=model, every=3)
    with pytest.raises(ConfigError, match="history=4"):
        NowcastOptimizer(adam, nc, model=model, history=4)
    assert "every=4" in repr(NowcastOptimizer(adam, nc, model=model))


def test_parameters_outside_the_optimizer_never_move() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    frozen = model[2].weight.detach().clone()
    adam = torch.optim.Adam(list(model[0].parameters()) + [model[2].bias], lr=1e-2)
    opt = NowcastOptimizer(adam, LinearNowcaster(history=3, spacing=2, horizon=4), model=model)
    _train(model, opt, 8, closure=False)
    assert len(opt.log) == 2 and torch.equal(model[2].weight.detach(), frozen)
