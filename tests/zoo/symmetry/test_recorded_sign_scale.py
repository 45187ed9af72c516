"""Sign flips and positive scaling of ANY module from its recorded data flow (zoo.symmetry.any_module
.scaling_groups): function preservation as property tests, negative controls, and the reasons reported
for neurons that do not qualify."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from weightzoo.errors import UnsupportedLayerError
from weightzoo.zoo.arch import Sine
from weightzoo.zoo.graphs import ParameterGraph
from weightzoo.zoo.symmetry import check_symmetry, flip_signs, scale
from weightzoo.zoo.symmetry.any_module import apply_recorded_scaling, recorded_layout, scaling_groups


class TanhMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(5, 12), nn.Linear(12, 9), nn.Linear(9, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(torch.tanh(self.fc2(torch.tanh(self.fc1(x)))))


class Siren(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Linear(2, 16), nn.Linear(16, 16), nn.Linear(16, 1)
        self.s1, self.s2 = Sine(3.0), Sine(3.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(self.s2(self.b(self.s1(self.a(x)))))


class ReluCNN(nn.Module):
    """conv → ReLU → max pool → conv → LeakyReLU → flatten → linear (no norms)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.max_pool2d(F.relu(self.c1(x)), 2)
        return self.fc(torch.flatten(F.leaky_relu(self.c2(h), 0.1), 1))


class TanhCNN(nn.Module):
    """conv → tanh → avg pool → conv → tanh → spatial mean → linear."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2, self.fc = nn.Conv2d(2, 5, 3), nn.Conv2d(5, 7, 1), nn.Linear(7, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.avg_pool2d(torch.tanh(self.c1(x)), 2)
        return self.fc(torch.tanh(self.c2(h)).mean((-2, -1)))


class Mixed(nn.Module):
    """Only ``fc1``'s neurons scale: ``fc2`` feeds a GELU, ``fc3`` a LayerNorm, ``skip`` a residual add, and
    ``fc4``'s pre-activation is also returned."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(6, 10), nn.Linear(10, 8), nn.Linear(8, 8)
        self.norm, self.skip, self.fc4, self.out = nn.LayerNorm(8), nn.Linear(8, 8), nn.Linear(8, 6), nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.gelu(self.fc2(F.relu(self.fc1(x))))
        h = self.norm(F.relu(self.fc3(h)))
        h = h + F.relu(self.skip(h))
        pre = self.fc4(h)
        return self.out(F.relu(pre)), pre


class BNNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1, self.bn, self.fc = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.bn(self.c1(x))).mean((-2, -1)))


def _build(cls: type[nn.Module]) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    m = cls().eval()
    shapes = {TanhMLP: (4, 5), Siren: (4, 2), ReluCNN: (2, 3, 8, 8), TanhCNN: (2, 2, 6, 6), Mixed: (4, 6),
              BNNet: (2, 3, 6, 6)}
    return m, torch.randn(*shapes[cls], generator=torch.Generator().manual_seed(1))


FLIPPABLE = {TanhMLP: 2, Siren: 2, TanhCNN: 2}
SCALABLE = {ReluCNN: 2, Mixed: 1}


@pytest.mark.parametrize("cls,count", list(FLIPPABLE.items()))
def test_flippable_groups(cls: type[nn.Module], count: int) -> None:
    m, x = _build(cls)
    lay = recorded_layout(m, x)
    assert len(scaling_groups(lay, "flip")[0]) == count
    assert scaling_groups(lay, "scale")[0] == []  # tanh/sine are not positively homogeneous


@pytest.mark.parametrize("cls,count", list(SCALABLE.items()))
def test_scalable_groups(cls: type[nn.Module], count: int) -> None:
    m, x = _build(cls)
    lay = recorded_layout(m, x)
    assert len(scaling_groups(lay, "scale")[0]) == count
    assert scaling_groups(lay, "flip")[0] == []  # ReLU is not odd


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), which=st.sampled_from(["flip", "scale"]))
def test_transforms_preserve_the_function(seed: int, which: str) -> None:
    for cls in (FLIPPABLE if which == "flip" else SCALABLE):
        m, x = _build(cls)
        g = torch.Generator().manual_seed(seed)
        if which == "flip":
            new, factors = flip_signs(m, g, return_signs=True, example_input=x)
        else:
            new, factors = scale(m, g, low=0.25, high=4.0, return_scales=True, example_input=x)
        assert isinstance(new, type(m)) and new is not m
        assert check_symmetry(m, new, x, atol=1e-5, rtol=1e-4), cls.__name__
        changed = [k for k, v in m.state_dict().items() if not torch.equal(v, new.state_dict()[k])]
        if any(bool((f != 1).any()) for f in factors.values()):
            assert changed  # the transform did something


@pytest.mark.parametrize("which", ["flip", "scale"])
def test_state_dict_route_matches_the_module_route(which: str) -> None:
    cls = TanhMLP if which == "flip" else ReluCNN
    m, x = _build(cls)
    spec = ParameterGraph.from_module(m, x).spec
    fn = flip_signs if which == "flip" else scale
    a = fn(m, torch.Generator().manual_seed(3), example_input=x).state_dict()
    b = fn(m.state_dict(), torch.Generator().manual_seed(3), spec=spec)
    assert isinstance(b, dict) and all(torch.equal(a[k], b[k]) for k in a)


def test_negative_controls_change_the_function() -> None:
    # the same factors on groups that do not qualify, or only on one side of a layer, change the outputs
    m, x = _build(Mixed)
    lay = recorded_layout(m, x)
    ok, why = scaling_groups(lay, "scale")
    labels = lay.info["symmetry"]["labels"]
    for g in why:
        bad = {g: torch.linspace(0.5, 2.0, lay.groups[g].size, dtype=torch.float64)}
        new = type(m)().eval()
        new.load_state_dict(apply_recorded_scaling(lay, m.state_dict(), bad))
        assert not check_symmetry(m, new, x), labels[g]
    m, x = _build(TanhMLP)
    lay = recorded_layout(m, x)
    g = scaling_groups(lay, "flip")[0][0]
    sd = m.state_dict()
    flipped = apply_recorded_scaling(lay, sd, {g: -torch.ones(lay.groups[g].size, dtype=torch.float64)})
    half = dict(sd)
    half["fc1.weight"], half["fc1.bias"] = flipped["fc1.weight"], flipped["fc1.bias"]  # incoming side only
    new = TanhMLP().eval()
    new.load_state_dict(half)
    assert not check_symmetry(m, new, x)
    new.load_state_dict(flipped)
    assert check_symmetry(m, new, x)
    m, x = _build(ReluCNN)  # a sign flip through ReLU is not a symmetry
    lay = recorded_layout(m, x)
    g = scaling_groups(lay, "scale")[0][0]
    new = ReluCNN().eval()
    new.load_state_dict(apply_recorded_scaling(lay, m.state_dict(), {g: -torch.ones(lay.groups[g].size,
                                                                                       dtype=torch.float64)}))
    assert not check_symmetry(m, new, x)


def test_reasons_name_what_blocks_each_group() -> None:
    m, x = _build(Mixed)
    lay = recorded_layout(m, x)
    labels = lay.info["symmetry"]["labels"]
    ok, why = scaling_groups(lay, "scale")
    assert [labels[g] for g in ok] == ["fc1 (linear)"]
    by_label = {labels[g]: w for g, w in why.items()}
    assert "GELU" in by_label["fc2 (linear)"] or "gelu" in by_label["fc2 (linear)"]
    assert "fc4 (linear)" not in by_label  # returned: a network output, never transformed
    assert any("LayerNorm" in w or "tied" in w for w in by_label.values())
    with pytest.raises(ValueError, match="kind"):
        scaling_groups(lay, "rotate")


def test_factors_go_onto_the_affine_norm_after_a_layer() -> None:
    m, x = _build(BNNet)
    with torch.no_grad():  # non-trivial statistics, so the eval-mode norm depends on every tensor
        m.bn.running_mean.uniform_(-0.5, 0.5)
        m.bn.running_var.uniform_(0.5, 1.5)
        m.bn.weight.uniform_(0.5, 1.5)
    with pytest.raises(UnsupportedLayerError, match="read by relu"):
        flip_signs(m, example_input=x)
    new, factors = scale(m, torch.Generator().manual_seed(0), return_scales=True, example_input=x)
    assert check_symmetry(m, new, x)
    assert torch.equal(new.c1.weight, m.c1.weight) and torch.equal(new.bn.running_mean, m.bn.running_mean)
    assert not torch.equal(new.bn.weight, m.bn.weight) and not torch.equal(new.fc.weight, m.fc.weight)
    (g, f), = factors.items()
    wrong = {k: v.clone() for k, v in m.state_dict().items()}  # negative control: the factor on the conv instead
    wrong["c1.weight"] *= f.to(torch.float32).view(-1, 1, 1, 1)
    wrong["c1.bias"] *= f.to(torch.float32)
    wrong["fc.weight"] /= f.to(torch.float32)
    bad = BNNet().eval()
    bad.load_state_dict(wrong)
    assert not check_symmetry(m, bad, x)


def _sweep(m: nn.Module, x: object) -> int:
    """Every eligible group of ``m`` transforms without changing outputs, the incoming side alone does change
    them (negative control; for at least one group per transform — a group whose ReLUs are all off on the
    example input cannot show it), and a module without eligible groups is refused with a typed error."""
    from weightzoo.zoo.symmetry.permutation import fast_spec

    if fast_spec(m) is not None:  # spec/family fast path: not a recorded layout
        return 0
    lay = recorded_layout(m, x)
    found = 0
    for kind, fn in (("flip", flip_signs), ("scale", scale)):
        ok, _ = scaling_groups(lay, kind)
        if not ok:
            with pytest.raises(UnsupportedLayerError):
                fn(m, example_input=x)
            continue
        found += len(ok)
        assert check_symmetry(m, fn(m, torch.Generator().manual_seed(0), example_input=x), x, atol=1e-4, rtol=1e-4)
        sd = m.state_dict()
        visible = []
        for g in ok:
            n = lay.groups[g].size
            f = -torch.ones(n, dtype=torch.float64) if kind == "flip" else torch.linspace(0.5, 2.0, n,
                                                                                          dtype=torch.float64)
            full = apply_recorded_scaling(lay, sd, {g: f})
            incoming = {s.name for s in lay.slots if s.out_group == g}
            half = {k: full[k] if k in incoming else v for k, v in sd.items()}
            new = type(m)(m.config).eval() if hasattr(m, "config") else type(m)().eval()
            new.load_state_dict(half)
            visible.append(not check_symmetry(m, new, x))
        assert any(visible), (type(m).__name__, kind)
    return found


@pytest.mark.parametrize("name", ["mlp_class", "densenet", "inception", "mobilenet_se", "swin_like", "resnet", "unet",
                                  "convnext"])
def test_test_bed_modules(name: str) -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "graphs"))
    import testbed

    m, x = testbed.build(name)
    assert (_sweep(m, x) > 0) == (name != "convnext")  # ConvNeXt: GELU MLPs, LayerNorm, residuals only


@pytest.mark.slow
@pytest.mark.parametrize("family", ["t5_encoder", "regnet", "resnet", "efficientnet", "deit"])
def test_transformers_families(family: str) -> None:
    import importlib.util
    import sys
    from pathlib import Path

    if importlib.util.find_spec("transformers") is None:
        pytest.skip("transformers is not installed")
    sys.path.insert(0, str(Path(__file__).parents[1] / "graphs"))
    import testbed

    m, x = testbed.build_hf(family)
    assert (_sweep(m, x) > 0) == (family != "deit")  # DeiT: GELU MLPs and pre-norm attention only
