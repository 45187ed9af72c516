"""Trajectory zoos as training sets: dense parameter snapshots grouped into per-network trajectories.

A zoo built with ``--trajectory-every K`` (``digits-cnn``, ``digits-cnn-wild``, ``digits-mlp``) holds
snapshots ``<dataset>/<network>-s<step>`` carrying ``trajectory_step``. :func:`load_trajectories` groups
them per network into a :class:`Trajectory` (``[T, P]`` states in step order, with the network's
:class:`~.index.ParameterIndex`), and :func:`samples` cuts a trajectory into nowcasting examples:
``history`` states ``spacing`` steps apart and the state ``horizon`` steps after the last one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from weightzoo.errors import DatasetError

from .index import ParameterIndex

if TYPE_CHECKING:
    from weightzoo.zoo.store import ZooLike


@dataclass
class Trajectory:
    """One network's snapshots: ``states[i]`` is the flat parameter vector after ``steps[i]`` steps."""

    network: str
    split: str
    steps: list[int]
    states: torch.Tensor
    index: ParameterIndex
    metadata: dict[str, Any]

    @property
    def every(self) -> int:
        """Steps between consecutive snapshots."""
        gaps = {b - a for a, b in zip(self.steps[:-1], self.steps[1:])}
        if len(gaps) != 1:
            raise DatasetError(f"{self.network}: snapshots are not evenly spaced ({sorted(gaps)[:5]})")
        return gaps.pop()


def load_trajectories(zoo: ZooLike, dataset: str, *, splits: Iterable[str] = ("train",),
                      optimizers: Iterable[str] | None = None, limit: int | None = None) -> list[Trajectory]:
    """The trajectories of ``dataset`` in ``zoo`` whose network is in one of ``splits`` (manifest splits).

    Args:
        optimizers: keep only networks trained with these optimizers (e.g. ``("adam",)``); default all.
        limit: at most this many networks (in catalogue order).
    """
    from weightzoo.zoo.arch import build_module
    from weightzoo.zoo.store import Zoo

    z = zoo if isinstance(zoo, Zoo) else Zoo.open(zoo, create=False)
    try:
        wanted = set(splits)
        keep = set(optimizers) if optimizers is not None else None
        groups: dict[str, list[Any]] = {}
        for rec in z.models(name=f"{dataset}/*"):
            md = rec.metadata
            if "trajectory_step" not in md or md.get("split") not in wanted:
                continue
            if keep is not None and md.get("optimizer") not in keep:
                continue
            groups.setdefault(rec.name.rsplit("-s", 1)[0], []).append(rec)
        if not groups:
            raise DatasetError(f"{dataset}: no trajectory snapshots in splits {sorted(wanted)} of {z.path}; build the "
                               f"dataset with --trajectory-every K")
        out = []
        for network, recs in list(groups.items())[:limit]:
            recs.sort(key=lambda r: int(r.metadata["trajectory_step"]))
            spec = recs[0].spec
            if spec is None:
                raise DatasetError(f"{network}: snapshots carry no architecture spec")
            index = ParameterIndex.from_module(build_module(spec), spec=spec, max_kernel=7)
            states = torch.stack([index.flatten(z.state_dict(r.ref)) for r in recs])
            md = {k: v for k, v in recs[0].metadata.items() if k != "trajectory_step"}
            out.append(Trajectory(network, str(md.get("split")), [int(r.metadata["trajectory_step"]) for r in recs],
                                  states, index, md))
        return out
    finally:
        if z is not zoo:
            z.close()


def samples(trajectory: Trajectory, *, history: int, spacing: int, horizon: int,
            stride: int | None = None) -> Iterator[tuple[ParameterIndex, torch.Tensor, torch.Tensor]]:
    """``(index, history states [history, P], future state [P])`` examples along one trajectory.

    ``spacing`` and ``horizon`` must be multiples of the trajectory's snapshot interval; examples start
    every ``stride`` steps (default ``spacing``).
    """
    every = trajectory.every
    if spacing % every or horizon % every or (stride or spacing) % every:
        raise DatasetError(f"{trajectory.network}: spacing {spacing}, horizon {horizon} and stride must be "
                           f"multiples of the snapshot interval {every}")
    sp, ho, st = spacing // every, horizon // every, (stride or spacing) // every
    n = len(trajectory.steps)
    for last in range((history - 1) * sp, n - ho, st):
        idx = torch.arange(last - (history - 1) * sp, last + 1, sp)
        yield trajectory.index, trajectory.states[idx], trajectory.states[last + ho]


__all__ = ["Trajectory", "load_trajectories", "samples"]
