"""Trajectory zoos: dense snapshots with steps and checkpoint-of lineage, read back as training examples."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from weightzoo.datasets import build
from weightzoo.errors import DatasetError
from weightzoo.hyper.nowcast.trajectories import load_trajectories, samples
from weightzoo.zoo.store import Zoo


@pytest.fixture(scope="module")
def traj_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("traj") / "zoo"
    build("digits-mlp", path, size=3, seed=0, workers=1, epochs=(0, 1), trajectory_every=5, progress=False)
    return path


def test_snapshots_carry_steps_and_lineage(traj_zoo: Path) -> None:
    with Zoo.open(traj_zoo, create=False) as z:
        snaps = sorted((r for r in z.models(name="digits-mlp/n00000-s*")), key=lambda r: r.metadata["trajectory_step"])
        steps = [r.metadata["trajectory_step"] for r in snaps]
        assert steps[0] == 0 and steps == list(range(0, 5 * len(steps), 5)) and len(steps) >= 3
        up = z.lineage(snaps[2].name, direction="up", depth=1)
        assert {(e["parent"], e["relation"]) for e in up} == {(snaps[1].name, "checkpoint-of")}
        # the step-0 snapshot is the initialisation, equal to the epoch-0 checkpoint
        a, b = z.state_dict(snaps[0].name), z.state_dict("digits-mlp/n00000-e00")
        assert all(torch.equal(a[k], b[k]) for k in b.keys())


def test_resume_builds_nothing_new(traj_zoo: Path) -> None:
    report = build("digits-mlp", traj_zoo, size=3, seed=0, workers=1, epochs=(0, 1), trajectory_every=5, progress=False)
    assert report.units_built == 0 and report.models_ingested == 0


def test_trajectories_become_examples(traj_zoo: Path) -> None:
    trajs = load_trajectories(traj_zoo, "digits-mlp", splits=("train", "val", "test"))
    assert len(trajs) == 3 and all(t.every == 5 for t in trajs)
    t = trajs[0]
    assert t.states.shape == (len(t.steps), t.index.num_params) and t.index.has_graph
    ex = list(samples(t, history=3, spacing=5, horizon=10))
    n = len(t.steps)
    assert len(ex) == n - 2 - 2
    index, hist, future = ex[0]
    assert torch.equal(hist, t.states[0:3]) and torch.equal(future, t.states[4])
    with pytest.raises(DatasetError, match="multiples"):
        list(samples(t, history=3, spacing=7, horizon=10))
    with pytest.raises(DatasetError, match="no trajectory snapshots"):
        load_trajectories(traj_zoo, "digits-cnn")


def test_trajectory_every_is_validated() -> None:
    from weightzoo.datasets.registry import get_builder

    with pytest.raises(DatasetError, match="trajectory_every"):
        get_builder("digits-cnn", trajectory_every=0)
