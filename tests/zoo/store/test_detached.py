"""Detached models: what a worker reads without the catalogue equals what the zoo reads."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from weightzoo.errors import TensorNotFoundError
from weightzoo.zoo.formats.base import TensorInfo
from weightzoo.zoo.store import Zoo


def test_detached_state_dict_equals_zoo_state_dict(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    sd = {"a": torch.randn(3, 4, generator=g), "b": torch.randn(40_000, generator=g).to(torch.bfloat16),
          "c": torch.tensor(7, dtype=torch.int64)}
    with Zoo.open(tmp_path / "z") as z:
        z.ingest(sd, name="m", metadata={"task": "x"})
        det = pickle.loads(pickle.dumps(z.detach("m")))  # what travels to a worker
        assert det.ref == "m" and det.fields["metadata"] == {"task": "x"}
        got = det.state_dict()
        assert list(got) == list(sd)
        assert [(t.name, t.dtype, t.shape) for t in got.tensor_infos()] == [
            (t.name, t.dtype, t.shape) for t in z.tensors("m")]
        for k, v in z.state_dict("m").items():
            assert got[k].dtype == v.dtype and torch.equal(got[k], v)
        z.add_metadata_only("hub/meta", [TensorInfo("w", "F32", (2, 2))])
        with pytest.raises(TensorNotFoundError, match="metadata-only"):
            z.detach("hub/meta").state_dict()["w"]
