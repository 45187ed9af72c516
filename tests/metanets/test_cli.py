"""``weightzoo metanet train/predict/report`` end to end on the synthetic zoo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from weightzoo.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    rc = main(list(argv))
    out, _ = capsys.readouterr()
    return rc, out


def test_train_predict_report(syn_zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    zoo = str(syn_zoo)
    for model in ("statnn", "hparams"):
        rc, out = run(capsys, "metanet", "train", "--zoo", zoo, "--filter", "dataset=syn", "--target", "score",
                      "--model", model, "--seeds", "0", "1", "--out", str(tmp_path / model), "--json",
                      "--option", "min_samples_leaf=3")
        assert rc == 0
        rows = json.loads(out)
        assert [r["seed"] for r in rows] == [0, 1]
    # predict: a zoo name, a checkpoint path with --arch, and a pkg.module:Class reference
    from weightzoo.zoo.arch import build_module
    from weightzoo.zoo.store import Zoo

    with Zoo.open(zoo, create=False) as z:
        rec = z.models(network=3)[0]
        spec, sd = rec.spec, dict(z.state_dict(rec.ref))
    ckpt = tmp_path / "net.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in sd.items()}, str(ckpt))
    (tmp_path / "arch.json").write_text(json.dumps(spec))
    rc, out = run(capsys, "metanet", "predict", str(tmp_path / "statnn"), rec.name, str(ckpt), "--zoo", zoo,
                  "--arch", str(tmp_path / "arch.json"), "--json")
    assert rc == 0
    preds = json.loads(out)
    assert preds[0]["model"] == rec.name and preds[0]["target"] == pytest.approx(rec.metadata["score"])
    assert preds[1]["target"] is None
    assert preds[0]["prediction"] == pytest.approx(preds[1]["prediction"], abs=1e-6)  # same weights, same answer
    assert isinstance(build_module(spec), torch.nn.Module)
    # report: the hparams run is compared with the best weights-only baseline (statnn)
    rc, out = run(capsys, "metanet", "report", str(tmp_path / "statnn"), str(tmp_path / "hparams"), "--json")
    rep = json.loads(out)
    assert rep["reference"] == "statnn"
    hp = next(r for r in rep["rows"] if r["model"] == "hparams")
    assert "diff_vs_reference" in hp and len(hp["diff_vs_reference"]["ci95"]) == 2
    rc, out = run(capsys, "metanet", "report", str(tmp_path / "statnn"), str(tmp_path / "hparams"))
    assert "| statnn |" in out and "reference" in out


def test_bad_model_name_is_a_clear_error(syn_zoo: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["metanet", "train", "--zoo", str(syn_zoo), "--model", "resnet", "--out", str(tmp_path / "x")])
