"""digits-lineage: every fine-tune and merge has its parents in the catalogue, merges are exact averages."""

from __future__ import annotations

from pathlib import Path

import pytest

from weightzoo.datasets import build, read_manifest
from weightzoo.datasets.lineage import DigitsLineageBuilder
from weightzoo.zoo.store import Zoo


def test_plans_have_the_documented_shape() -> None:
    units = DigitsLineageBuilder().units(30, 0)
    for u in units:
        nodes = u.params["nodes"]
        assert nodes[0]["role"] == "base" and 2 <= sum(n["depth"] == 1 for n in nodes) <= 4
        seen = set()
        for n in nodes:  # parents are trained before their children
            assert set(n["parents"]) <= seen
            seen.add(n["name"])
    assert any(n["role"] == "merge" for u in units for n in u.params["nodes"])


@pytest.mark.slow
def test_lineage_edges_and_merges(tmp_path: Path) -> None:
    builder = DigitsLineageBuilder()
    seed = next(s for s in range(50) if any(n["role"] == "merge" for n in builder.units(1, s)[0].params["nodes"]))
    build("digits-lineage", tmp_path, size=1, seed=seed, workers=1, progress=False)
    nodes = builder.units(1, seed)[0].params["nodes"]
    with Zoo.open(tmp_path) as z:
        assert len(z) == len(nodes)
        base = nodes[0]["name"]
        edges = z.lineage(base, direction="down")
        want = {(n["name"], p, "merge" if n["role"] == "merge" else "finetune") for n in nodes for p in n["parents"]}
        assert {(e["child"], e["parent"], e["relation"]) for e in edges} == want
        merge = next(n for n in nodes if n["role"] == "merge")
        sd = z.state_dict(merge["name"])
        pa, pb = (z.state_dict(p) for p in merge["parents"])
        for k in sd:
            assert (sd[k] - (pa[k] + pb[k]) / 2).abs().max() < 1e-6
        ft = next(n for n in nodes if n["role"] == "finetune")
        md = z.model(ft["name"]).metadata
        assert md["digits"] == ft["digits"] and 0 <= md["subset_accuracy"] <= 1
        assert z.model(base).metadata["test_accuracy"] > 0.5
    assert read_manifest(tmp_path, "digits-lineage")["labels"]["role"]["base"] == 1
