"""metanets.data: records, split, graph cache, train-only normalisation, batches."""

from __future__ import annotations

import pytest
import torch

from weightzoo.errors import DatasetError
from weightzoo.metanets.data import GraphDataset, load_records
from weightzoo.zoo.store import Zoo


def test_records_split_by_network_and_cache(syn_zoo) -> None:  # type: ignore[no-untyped-def]
    ds = GraphDataset.from_zoo(syn_zoo, target="score", filters={"dataset": "syn"})
    d = ds.describe()
    assert d["task"] == "regression" and sum(d["splits"].values()) == 40
    assert all(d["splits"][s] > 0 for s in ("train", "val", "test"))
    # graphs are cached as safetensors in the zoo folder and read back identically
    files = list((syn_zoo / "metanet-cache").rglob("*.safetensors"))
    assert len(files) == 40
    again = GraphDataset.from_zoo(syn_zoo, target="score", filters={"dataset": "syn"})
    assert torch.equal(again.graphs[0].edge_attr, ds.graphs[0].edge_attr)
    # the same seed gives the same split, another seed another one
    other = load_records(Zoo.open(syn_zoo, create=False), target="score", filters={"dataset": "syn"}, split_seed=1)
    assert [r.split for r in again.records] == [r.split for r in ds.records]
    assert [r.split for r in other] != [r.split for r in ds.records]


def test_normalisation_uses_the_training_split_only(syn_zoo) -> None:  # type: ignore[no-untyped-def]
    ds = GraphDataset.from_zoo(syn_zoo, target="score", filters={"dataset": "syn"})
    train = ds.indices("train")
    sub = GraphDataset([ds.records[i] for i in train] + [ds.records[i] for i in ds.indices("test")],
                       [ds.graphs[i] for i in train] + [ds.graphs[i] for i in ds.indices("test")], target="score")
    assert sub.normalizer.state() == ds.normalizer.state()  # val networks played no part
    assert sub.target_mean == pytest.approx(ds.target_mean)
    ys = torch.tensor([ds.data(i).y.item() for i in train])
    assert abs(float(ys.mean())) < 1e-5  # standardised with the training targets
    b = next(ds.loader(train, batch_size=5))
    assert b.num_graphs == 5 and b.edge_attr.shape[1] == 49


def test_classification_target_and_errors(syn_zoo) -> None:  # type: ignore[no-untyped-def]
    ds = GraphDataset.from_zoo(syn_zoo, target="label", filters={"dataset": "syn"})
    assert ds.task == "classification" and ds.classes == ['"relu"', '"tanh"']
    with pytest.raises(DatasetError, match="no checkpoints with target"):
        GraphDataset.from_zoo(syn_zoo, target="nope", filters={"dataset": "syn"})
    with pytest.raises(DatasetError, match="no manifest"):
        GraphDataset.from_zoo(syn_zoo, target="score", dataset="digits-cnn")
