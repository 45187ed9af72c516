"""Fitting nowcasters, run folders, the speed-up harness and the CLI end to end (tiny sizes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from weightzoo.cli import main
from weightzoo.datasets import build
from weightzoo.datasets.mlp_zoo import mlp_spec
from weightzoo.errors import ConfigError
from weightzoo.hyper.nowcast import LinearNowcaster, MLPNowcaster, ParameterIndex
from weightzoo.hyper.nowcast.evaluate import bootstrap_difference, eval_networks, speedup, steps_to_target
from weightzoo.hyper.nowcast.training import fit_gain, fit_nowcaster, make_nowcaster
from weightzoo.zoo.arch import build_module


def _line_examples(gain: float, n: int = 6) -> list[tuple[ParameterIndex, torch.Tensor, torch.Tensor]]:
    """Straight-line histories whose future lies ``gain`` × the extrapolated distance ahead."""
    index = ParameterIndex.from_module(build_module(mlp_spec("relu", 0.0)))
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        start, v = torch.randn(index.num_params, generator=g), torch.randn(index.num_params, generator=g) * 1e-2
        hist = torch.stack([start + v * i for i in range(3)])
        out.append((index, hist, hist[-1] + gain * v * 4))
    return out


def test_linear_gain_is_recovered_and_mlp_learns() -> None:
    ex = _line_examples(0.5)
    lin = LinearNowcaster(history=3, spacing=1, horizon=4)
    assert fit_gain(lin, ex) == pytest.approx(0.5, rel=1e-4)
    mlp = MLPNowcaster(history=3, spacing=1, horizon=4, hidden=8)
    m = fit_nowcaster(mlp, ex[:4], ex[4:], epochs=8, lr=1e-2, batch=2)
    hist = m["history"]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] and m["stopped"] in ("epochs", "early")
    with pytest.raises(ConfigError, match="unknown nowcaster kind"):
        make_nowcaster("cubic")


def test_steps_to_target_and_bootstrap() -> None:
    curve = [(0, 2.0, 0.1), (10, 1.0, 0.5), (20, float("nan"), 0.1), (30, 0.4, 0.9)]
    assert steps_to_target(curve, 1.0) == 10 and steps_to_target(curve, 0.5) == 30 and steps_to_target(curve, 0.1) is None
    mean, lo, hi = bootstrap_difference([0.3, 0.4, 0.5], [0.1, 0.1, 0.1])
    assert mean == pytest.approx(0.3) and lo <= mean <= hi


def test_eval_networks_are_seeded_and_tasks_differ() -> None:
    a, b = eval_networks("digits-subset", seed=0, count=2), eval_networks("digits-subset", seed=0, count=2)
    assert all(torch.equal(a[0].init[k], b[0].init[k]) for k in a[0].init) and a[0].lr == b[0].lr
    assert int(a[0].y.max()) == 4
    with pytest.raises(ConfigError, match="unknown nowcast task"):
        eval_networks("cifar", seed=0, count=1)


def test_speedup_counts_every_network() -> None:
    res = speedup({"linear": LinearNowcaster(history=3, spacing=5, horizon=10)}, "digits-mlp", seed=0, networks=1,
                  steps=30, eval_every=5)
    row = res["networks"][0]
    assert row["adam_steps"] <= 30 and row["methods"]["linear"]["attempted"] >= 1
    assert res["methods"]["linear"]["misses"] + (row["methods"]["linear"]["steps"] is not None) == 1


@pytest.mark.slow
def test_cli_train_and_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    zoo, run = tmp_path / "zoo", tmp_path / "run"
    build("digits-cnn", zoo, size=8, seed=0, workers=1, epochs=(0, 1), trajectory_every=5, progress=False)
    rc = main(["nowcast", "train", "--zoo", str(zoo), "--dataset", "digits-cnn", "--out", str(run), "--epochs", "1",
               "--history", "3", "--spacing", "5", "--horizon", "10", "--hidden", "8", "--layers", "1",
               "--seeds", "0", "--no-progress", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and set(out["val_loss"]) == {"seed0/graph", "seed0/mlp", "seed0/linear"}
    assert (run / "seed0" / "graph" / "model.safetensors").is_file()
    rc = main(["nowcast", "eval", str(run), "--task", "digits-cnn-wild", "--networks", "1", "--steps", "20",
               "--eval-every", "5", "--out", str(tmp_path / "eval.json")])
    text = capsys.readouterr().out
    assert rc == 0 and "graph" in text and "vs linear" in text
    full = json.loads((tmp_path / "eval.json").read_text())
    assert set(full["summary"]["methods"]) == {"graph", "mlp", "linear", "adam"}
    assert main(["nowcast", "eval", str(tmp_path / "nothing")]) == 1
    assert main(["hyper", "nowcast-eval", str(tmp_path / "nothing")]) == 1


def test_hyper_nowcast_names_are_the_same_commands() -> None:
    """``weightzoo hyper nowcast-train/-eval`` (the issue's names) parse exactly like ``nowcast train/eval``."""
    from weightzoo.cli import build_parser

    parser = build_parser()
    train = ["--zoo", "z", "--out", "r", "--kinds", "linear", "--seeds", "0", "1", "--horizon", "20"]
    a, b = parser.parse_args(["nowcast", "train", *train]), parser.parse_args(["hyper", "nowcast-train", *train])
    assert a.func is b.func and a.func.__name__ == "run_train"
    keep = lambda ns: {k: v for k, v in vars(ns).items() if not k.endswith("command")}  # noqa: E731
    assert keep(a) == keep(b)
    a, b = parser.parse_args(["nowcast", "eval", "r", "--task", "digits-mlp"]), \
        parser.parse_args(["hyper", "nowcast-eval", "r", "--task", "digits-mlp"])
    assert a.func is b.func and a.func.__name__ == "run_eval" and keep(a) == keep(b)
