"""The store through the `weightzoo` command: ingest, ls, show, export, rm, gc, verify, lineage, demo."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from weightzoo.cli import main

EXE = Path(sys.executable).with_name("weightzoo")


def run(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_ingest_ls_show_export_round_trip(tmp_path: Path, minilm_dir: Path, digits_cnn, capsys) -> None:
    zoo = str(tmp_path / "z")
    pt = tmp_path / "digits.pt"
    torch.save(digits_cnn.state_dict(), pt)
    rc, out, _ = run("ingest", str(minilm_dir), str(pt), "--zoo", zoo, "--meta", "seed=0", "--meta", "task=demo", capsys=capsys)
    assert rc == 0 and "ingested" in out
    rc, out, _ = run("ls", "--zoo", zoo, "--json", capsys=capsys)
    models = json.loads(out)
    assert {m["name"] for m in models} == {minilm_dir.name, "digits"}
    assert all(m["metadata"] == {"seed": 0, "task": "demo"} for m in models)
    rc, out, _ = run("ls", "--zoo", zoo, "--filter", "model_type=bert", "--json", capsys=capsys)
    assert [m["name"] for m in json.loads(out)] == [minilm_dir.name]
    rc, out, _ = run("show", "digits", "--zoo", zoo, "--json", capsys=capsys)
    shown = json.loads(out)
    assert [t["name"] for t in shown["tensors"]] == list(digits_cnn.state_dict())
    rc, out, _ = run("show", "digits", "--zoo", zoo, capsys=capsys)
    assert rc == 0 and "0.weight" in out
    out_file = tmp_path / "digits.safetensors"
    rc, _, _ = run("export", "digits", "--zoo", zoo, "--out", str(out_file), capsys=capsys)
    back = load_file(out_file)
    for k, v in digits_cnn.state_dict().items():
        assert torch.equal(back[k], v), k
    shards = tmp_path / "shards"
    rc, _, _ = run("export", minilm_dir.name, "--zoo", zoo, "--out", str(shards), "--max-shard-size", "30MB", capsys=capsys)
    index = json.loads((shards / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) >= 3
    rc, out, _ = run("verify", "--zoo", zoo, "--json", capsys=capsys)
    assert rc == 0 and json.loads(out)["clean"]


def test_rm_gc_lineage(tmp_path: Path, capsys) -> None:
    zoo = str(tmp_path / "z")
    for i in range(2):
        save_file({"w": torch.randn(1000)}, tmp_path / f"m{i}.safetensors")
        assert main(["ingest", str(tmp_path / f"m{i}.safetensors"), "--zoo", zoo]) == 0
    capsys.readouterr()
    rc, out, _ = run("lineage", "m1", "--zoo", zoo, "--add-parent", "m0", "--json", capsys=capsys)
    assert json.loads(out) == [{"child": "m1", "parent": "m0", "relation": "finetune", "evidence": None,
                                "source": "declared", "confidence": None}]
    rc, out, _ = run("lineage", "m0", "--zoo", zoo, capsys=capsys)
    assert "m1" in out
    assert run("rm", "m0", "--zoo", zoo, capsys=capsys)[0] == 0
    rc, out, _ = run("gc", "--zoo", zoo, "--json", capsys=capsys)
    assert json.loads(out)["packs_removed"] == 1


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\xff" * 64)
    zoo = tmp_path / "z"
    for argv in (["ingest", str(bad), "--zoo", str(zoo)], ["show", "missing", "--zoo", str(zoo)],
                 ["ls", "--zoo", str(tmp_path / "nozoo")]):
        res = subprocess.run([str(EXE), *argv], capture_output=True, text=True, cwd="/")
        assert res.returncode == 1, (argv, res)
        assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr, res.stderr
    with __import__("weightzoo").Zoo.open(zoo) as z:  # the failed ingest left nothing behind
        assert len(z) == 0 and z.stats()["packs"] == 0


def test_ambiguous_model_argument(tmp_path: Path, monkeypatch, capsys) -> None:
    from weightzoo.commands._common import resolve_model_ref
    from weightzoo.errors import AmbiguousModelError

    save_file({"w": torch.zeros(2)}, tmp_path / "m.safetensors")
    zoo = str(tmp_path / "z")
    main(["ingest", str(tmp_path / "m.safetensors"), "--zoo", zoo, "--name", "m.safetensors"])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AmbiguousModelError):
        resolve_model_ref("m.safetensors", zoo)
    assert resolve_model_ref("./m.safetensors", zoo) == ("path", "./m.safetensors")
    assert resolve_model_ref("m.safetensors", None) == ("path", "m.safetensors")


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path, minilm_dir: Path) -> None:
    cache = minilm_dir.parent  # the snapshot is already cached there: no second download
    res = subprocess.run([str(EXE), "demo", "--out", str(tmp_path / "demo"), "--cache", str(cache), "--quick"],
                         capture_output=True, text=True, cwd="/", timeout=600)
    assert res.returncode == 0, res.stderr
    assert "clean" in res.stdout and "all-MiniLM-L6-v2" in res.stdout and "digits-cnn" in res.stdout
    assert "2 lineage edges from cards" in res.stdout and "unchanged: True" in res.stdout
    out = res.stdout
    steps = re.findall(r"^\[\d+/(\d+)\]", out, re.M)
    assert len(steps) == int(steps[0]) == len(re.findall(r"\(\d+\.\d s; \d+ s in all\)", out))  # each step's time
    # the learned steps: what each measured, beside its baseline
    assert re.search(r"gmn \(graph metanetwork\), 1 seed\(s\): .* τ (-?\d\.\d+|nan) over every checkpoint of the held-out", out)
    assert "statnn (StatNN baseline" in out
    assert "GatedResidualCNN (a class-based module): 100% of parameter tensors predicted; zero-shot accuracy GHN" in out
    assert re.search(r"nowcasters \(history 5 .* validation loss graph \d\.\d+, mlp \d\.\d+, linear \d\.\d+", out)
    assert re.search(r"100 Adam steps: .*graph -?\d+ % fewer steps", out)
    assert re.search(r"wl encoder, family retrieval over \d+ architectures: MAP@5 \d\.\d+", out)
    assert re.search(r"ops encoder, family retrieval", out) and "GatedResidualCNN (a class-based module) → archs/" in out
    assert re.search(r"against the \d+ declared edges: edge accuracy \d+ %", out)
    report = (tmp_path / "demo" / "report.html").read_text()
    assert report.count("data:image/png;base64,") >= 5
    for run in ("metanet-gmn", "metanet-statnn", "ghn", "nowcast", "retrieval", "lineage-inference"):
        assert f"<h3>{run}</h3>" in report, run
    assert "graph.val.loss" in report  # the nowcast layout (seed0/graph/metrics.json) is read
