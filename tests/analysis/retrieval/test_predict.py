"""Accuracy prediction from the architecture: the pipeline keeps predictions aligned with their
architectures (a target the parameter count determines is ranked perfectly by the params baseline),
the WL regression names readable features, every predictor runs, bad input raises."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from weightzoo.analysis.retrieval import kendall_tau, predict_accuracy
from weightzoo.cli import main
from weightzoo.errors import RetrievalError
from weightzoo.zoo.store import Zoo

pytestmark = pytest.mark.slow


def _label(zoo: Path) -> None:
    with Zoo.open(zoo) as z:
        for r in z.models():
            z.set_metadata(r.name, test_accuracy=0.5 + 0.05 * math.log10(r.parameter_count + 1))


def test_predictors_on_a_parameter_determined_target(archs_zoo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RetrievalError, match="test_accuracy"):
        predict_accuracy(archs_zoo, seeds=[0])
    _label(archs_zoo)
    res = predict_accuracy(archs_zoo, seeds=[0], epochs=1, train_fraction=0.6)
    assert res.taus["params"] == [pytest.approx(1.0)]
    assert set(res.taus) == {"params", "ops", "wl", "gcn"} and all(len(v) == 1 for v in res.taus.values())
    assert all(-1.0 <= t <= 1.0 for v in res.taus.values() for t in v)
    assert res.top_features and all(f["description"] for f in res.top_features)
    rc = main(["retrieve", "--predict-accuracy", "--zoo", str(archs_zoo), "--seeds", "1", "--epochs", "1", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["summary"]["params"]["mean"] == pytest.approx(1.0)
    with pytest.raises(RetrievalError, match="valid: params, ops, wl, gcn"):
        predict_accuracy(archs_zoo, predictors=["oracle"])


def test_kendall_tau() -> None:
    assert kendall_tau([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    assert kendall_tau([1, 1, 1], [1, 2, 3]) == 0.0
