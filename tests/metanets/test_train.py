"""The training harness: every model trains, saves (safetensors + JSON), reloads, resumes and reports."""

from __future__ import annotations

import json

import pytest

from weightzoo.errors import InvalidOptionError
from weightzoo.metanets.data import GraphDataset
from weightzoo.metanets.models import MODELS, model_class
from weightzoo.metanets.train import TrainConfig, TrainedMetanet, best_seed, train


@pytest.fixture(scope="module")
def ds(syn_zoo):  # type: ignore[no-untyped-def]
    return GraphDataset.from_zoo(syn_zoo, target="score", filters={"dataset": "syn"})


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_trains_saves_and_predicts(name, ds, syn_zoo, tmp_path) -> None:  # type: ignore[no-untyped-def]
    if name.startswith("nfn"):
        pytest.importorskip("nfn")
    if getattr(model_class(name), "inr_only", False):
        pytest.skip("needs an INR (tests/metanets/test_inr.py covers it)")
    cfg = TrainConfig(model=name, target="score", filters={"dataset": "syn"}, epochs=2, batch_size=8,
                      model_options={"hidden": 16, "layers": 2} if name in ("gmn", "np", "hnp") else {})
    [m] = train(syn_zoo, cfg, [0], tmp_path / name, dataset=ds)
    files = {p.name for p in (tmp_path / name / "seed-0").iterdir()}
    assert {"model.safetensors", "config.json", "metrics.json", "predictions.json", "featurizer.json"} <= files
    assert not any(p.suffix in (".pt", ".pkl", ".bin") for p in (tmp_path / name).rglob("*"))
    assert m["test"]["n"] == len(ds.final_indices("test"))
    tau = m["test"]["kendall_tau"]
    assert tau is None or -1 <= tau <= 1
    lo, hi = m["test"]["kendall_tau_ci95"]
    assert lo is None or lo <= hi
    # reload and predict on the stored test graphs: the same numbers as predictions.json
    tm = TrainedMetanet.load(tmp_path / name)
    test = ds.final_indices("test")
    pred = tm.predict([ds.graphs[i] for i in test], [ds.records[i] for i in test])
    saved = [p["prediction"] for p in json.loads((tmp_path / name / "seed-0" / "predictions.json").read_text())["test"]]
    assert pred == pytest.approx(saved, abs=1e-4)


def test_statnn_learns_a_weight_determined_target(ds, syn_zoo, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = TrainConfig(model="statnn", target="score", filters={"dataset": "syn"}, model_options={"min_samples_leaf": 3})
    [m] = train(syn_zoo, cfg, [0], tmp_path / "statnn", dataset=ds)
    assert m["test"]["kendall_tau"] > 0.5  # the scale of the weights is easy to read from statistics


def test_resume_continues_and_seeds_are_reproducible(ds, syn_zoo, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from weightzoo.metanets import train as harness

    kw = dict(model="gmn", target="score", filters={"dataset": "syn"}, batch_size=8,
              model_options={"hidden": 8, "layers": 1}, patience=100)
    [a] = train(syn_zoo, TrainConfig(**kw, epochs=3), [1], tmp_path / "a", dataset=ds)  # type: ignore[arg-type]
    with monkeypatch.context() as mp:  # an interrupted run: its last/ checkpoint stays behind
        mp.setattr(harness.shutil, "rmtree", lambda *a, **k: None)
        train(syn_zoo, TrainConfig(**kw, epochs=2), [1], tmp_path / "b", dataset=ds)  # type: ignore[arg-type]
    assert (tmp_path / "b" / "seed-1" / "last" / "trainer_state.json").is_file()
    (tmp_path / "b" / "seed-1" / "metrics.json").unlink()
    [b] = train(syn_zoo, TrainConfig(**kw, epochs=3), [1], tmp_path / "b", dataset=ds)  # type: ignore[arg-type]
    assert b["epochs_run"] == 3 and not (tmp_path / "b" / "seed-1" / "last").exists()
    assert [h["train_loss"] for h in b["history"]] == pytest.approx([h["train_loss"] for h in a["history"]], rel=1e-4)
    assert b["test"]["kendall_tau"] == pytest.approx(a["test"]["kendall_tau"], abs=1e-6)


def test_best_seed_ranks_nan_worst_and_config_errors(ds, syn_zoo, tmp_path) -> None:  # type: ignore[no-untyped-def]
    train(syn_zoo, TrainConfig(model="hparams", target="score", filters={"dataset": "syn"}), [0, 1], tmp_path / "h", dataset=ds)
    m = json.loads((tmp_path / "h" / "seed-0" / "metrics.json").read_text())
    m["val"]["kendall_tau"] = None  # NaN on disk (constant predictions)
    (tmp_path / "h" / "seed-0" / "metrics.json").write_text(json.dumps(m))
    assert best_seed(tmp_path / "h").name == "seed-1"
    assert best_seed(tmp_path / "h", seed=0).name == "seed-0"
    with pytest.raises(InvalidOptionError, match="valid: gmn"):
        TrainConfig(model="resnet")
    with pytest.raises(InvalidOptionError, match="device"):
        TrainConfig(model="gmn", device="tpu")
