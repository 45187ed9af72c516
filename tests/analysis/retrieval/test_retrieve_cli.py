"""``weightzoo retrieve`` end to end: build the index, search (text and --json), evaluate, typed errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from weightzoo.cli import main

pytestmark = pytest.mark.slow


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_build_search_evaluate(archs_zoo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    zoo = str(archs_zoo)
    rc, out, _ = run(capsys, "retrieve", "--build-index", "--zoo", zoo, "--encoder", "ops", "--json", "--no-progress")
    assert rc == 0 and json.loads(out)["entries"] == 16
    rc, out, _ = run(capsys, "retrieve", "archs/a00002", "--zoo", zoo, "-k", "4", "--json")
    got = json.loads(out)
    assert got["query"] == "archs/a00002" and got["encoder"] == "wl"
    assert [r["rank"] for r in got["results"]] == [1, 2, 3, 4]
    assert set(got["results"][0]) == {"rank", "model", "similarity", "family", "differing_ops"}
    assert "archs/a00002" not in [r["model"] for r in got["results"]]
    sims = [r["similarity"] for r in got["results"]]
    assert sims == sorted(sims, reverse=True)
    rc, out, _ = run(capsys, "retrieve", "archs/a00002", "--zoo", zoo, "-k", "2", "--encoder", "ops")
    assert rc == 0 and "similarity" in out and out.count("archs/") == 3
    rc, out, _ = run(capsys, "retrieve", "--evaluate", "--zoo", zoo, "-k", "5", "--json")
    res = json.loads(out)["results"]
    assert {r["encoder"] for r in res} == {"ops", "wl"}
    assert all(r["metrics"]["mrr@5"] is None or 0.0 <= r["metrics"]["mrr@5"] <= 1.0 for r in res)
    assert any(r["metrics"]["mrr@5"] is not None for r in res)


def test_errors_are_one_line_and_typed(archs_zoo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    zoo = str(archs_zoo)
    rc, _, err = run(capsys, "retrieve", "archs/a00002", "--zoo", zoo, "--encoder", "bag")
    assert rc == 1 and "valid: ops, wl, learned" in err
    rc, _, err = run(capsys, "retrieve", "--zoo", zoo)
    assert rc == 1 and "needs a QUERY" in err
    rc, _, err = run(capsys, "retrieve", "archs/a00002", "--zoo", zoo, "--no-update")
    assert rc == 1 and "--build-index" in err
    rc, _, err = run(capsys, "retrieve", "archs/nope", "--zoo", zoo)
    assert rc == 1 and "archs/nope" in err


def test_train_then_search_with_the_learned_encoder(archs_zoo: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    zoo, run_dir = str(archs_zoo), str(tmp_path / "enc")
    rc, out, _ = run(capsys, "retrieve", "--train-encoder", "--zoo", zoo, "--out", run_dir, "--epochs", "1",
                     "--json", "--no-progress")
    trained = json.loads(out)
    assert rc == 0 and trained["epochs"] == 1 and len(trained["history"]) == 1
    assert {"model.safetensors", "config.json", "training.json"} <= {p.name for p in Path(run_dir).iterdir()}
    rc, out, err = run(capsys, "retrieve", "archs/a00002", "--zoo", zoo, "-k", "3", "--encoder", "learned",
                     "--encoder-run", run_dir, "--json")
    assert rc == 0, err
    got = json.loads(out)
    assert rc == 0 and got["encoder"] == "learned" and len(got["results"]) == 3
    rc, _, err = run(capsys, "retrieve", "archs/a00002", "--zoo", zoo, "--encoder", "learned",
                     "--encoder-run", str(tmp_path / "nothing"))
    assert rc == 1 and "not a trained encoder run" in err
