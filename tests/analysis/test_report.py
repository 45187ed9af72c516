"""The HTML report: sections with data, sentences without, self-contained, through the CLI and a browser."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from torch import nn

from weightzoo.analysis.report import build_report, read_run, runs_section
from weightzoo.cli import main
from weightzoo.errors import InvalidOptionError
from weightzoo.zoo.store import Zoo


def _cnn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


def _finetune(base: nn.Module, seed: int) -> nn.Module:
    out = _cnn(0)
    torch.manual_seed(seed)
    out.load_state_dict({k: v + 0.01 * torch.randn_like(v) for k, v in base.state_dict().items()})
    return out


@pytest.fixture()
def lineage_zoo(tmp_path: Path) -> Path:
    path = tmp_path / "zoo"
    with Zoo.open(path) as z:
        for t in range(2):
            base = _cnn(t)
            z.ingest(base, name=f"t{t}-base")
            for f in range(2):
                z.ingest(_finetune(base, 10 * t + f), name=f"t{t}-ft{f}")
                z.add_lineage(f"t{t}-ft{f}", f"t{t}-base", "finetune")
        z.add_lineage("t1-ft0", "t0-ft1", "finetune", evidence={"source": "inferred", "score": 0.4})
    return path


def _runs(tmp_path: Path) -> list[Path]:
    gmn = tmp_path / "runs" / "gmn"
    for seed, tau in enumerate((0.80, 0.82, 0.84)):
        (gmn / f"seed-{seed}").mkdir(parents=True)
        (gmn / f"seed-{seed}" / "metrics.json").write_text(json.dumps(
            {"model": "gmn", "target": "test_accuracy", "test": {"kendall_tau": tau, "r2": 0.5 + seed / 10}}))
    statnn = tmp_path / "runs" / "statnn"
    statnn.mkdir()
    (statnn / "metrics.json").write_text(json.dumps({"model": "statnn", "test": {"kendall_tau": 0.78}}))
    broken = tmp_path / "runs" / "broken"
    broken.mkdir()
    (broken / "metrics.json").write_text("{not json")
    return [gmn, statnn, broken]


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


def test_report_has_every_section_and_no_external_resource(lineage_zoo: Path, tmp_path: Path) -> None:
    out, sections = build_report(lineage_zoo, tmp_path / "r" / "report.html", runs=_runs(tmp_path))
    html = out.read_text()
    by_key = {s.key: s for s in sections}
    assert all(by_key[k].has_data for k in ("overview", "lineage", "filters", "task_vectors", "runs"))
    imgs = _images(html)
    assert len(imgs) == sum(s.figures for s in sections) >= 5
    assert all(i.startswith(b"\x89PNG\r\n\x1a\n") and len(i) > 1000 for i in imgs)
    assert not re.search(r"(src|href)=\"(https?:)?//", html) and "<link" not in html and "@import" not in html
    assert "0.82 ± 0.02" in html  # mean ± std over the three seeds of the gmn run
    assert "Unreadable" in html  # the broken run is named, not fatal
    assert "inferred" in html and "5 models" not in html
    assert "t1-ft0" in html
    siblings = re.search(r"<td>same parent</td><td>2</td><td>([-0-9.]+)</td>", html)
    assert siblings and abs(float(siblings.group(1))) < 0.5  # independent noise: near-orthogonal task vectors


def test_empty_zoo_says_so_in_sentences(tmp_path: Path) -> None:
    with Zoo.open(tmp_path / "empty"):
        pass
    out, sections = build_report(tmp_path / "empty", tmp_path / "empty.html")
    assert not any(s.has_data for s in sections)
    html = out.read_text()
    assert html.count('class="empty"') == 5 and not _images(html)
    with pytest.raises(InvalidOptionError):
        build_report(tmp_path / "empty", tmp_path / "report.txt")


def test_read_run_averages_seed_folders(tmp_path: Path) -> None:
    gmn, statnn, broken = _runs(tmp_path)
    run = read_run(gmn)
    assert set(run["seeds"]) == {"seed-0", "seed-1", "seed-2"}
    assert run["seeds"]["seed-1"]["test.kendall_tau"] == pytest.approx(0.82)
    assert run["info"]["model"] == "gmn"
    assert read_run(statnn)["seeds"]["-"]["test.kendall_tau"] == pytest.approx(0.78)
    assert read_run(broken)["errors"] and not read_run(broken)["seeds"]


def test_read_run_reads_the_nowcast_layout(tmp_path: Path) -> None:
    """``weightzoo nowcast train`` writes OUT/seed<k>/<kind>/metrics.json: one model per kind and seed."""
    root = tmp_path / "runs" / "nowcast"
    for seed in (0, 1):
        for kind, loss in (("graph", 0.2), ("linear", 0.3)):
            (root / f"seed{seed}" / kind).mkdir(parents=True)
            (root / f"seed{seed}" / kind / "metrics.json").write_text(json.dumps(
                {"kind": kind, "val": {"loss": loss + seed / 10, "relative_error": 0.9}, "seed": seed}))
    (root / "run.json").write_text(json.dumps({"settings": {}}))
    run = read_run(root)
    assert list(run["seeds"]) == ["seed0", "seed1"]
    assert run["seeds"]["seed1"]["graph.val.loss"] == pytest.approx(0.3)
    assert run["seeds"]["seed0"]["linear.val.loss"] == pytest.approx(0.3)
    assert run["info"]["kinds"] == "graph, linear" and "kind" not in run["info"]
    out, sections = build_report(_empty_zoo(tmp_path), tmp_path / "r.html", runs=[root])
    assert sections[-1].has_data
    assert "graph.val.loss" in out.read_text() and "0.25 ± 0.071" in out.read_text()
    assert "graph.seed" not in out.read_text()


def test_runs_table_leads_with_test_metrics_and_leaves_settings_out(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "gmn"
    (run / "seed-0").mkdir(parents=True)
    (run / "seed-0" / "metrics.json").write_text(json.dumps(
        {"model": "gmn", "config": {"epochs": 60, "lr": 1e-3}, "data": {"train": 120}, "wall_seconds": 3.5,
         "val": {"kendall_tau": 0.5}, "test": {"kendall_tau": 0.6, "r2": 0.3}, "seed": 0}))
    html = runs_section([run]).body
    rows = re.findall(r"<tr><td>([^<]+)</td>", html)
    assert rows == ["test.kendall_tau", "test.r2", "val.kendall_tau", "wall_seconds"]


def _empty_zoo(tmp_path: Path) -> Path:
    with Zoo.open(tmp_path / "empty-zoo"):
        pass
    return tmp_path / "empty-zoo"


def test_report_cli(lineage_zoo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.html"
    assert main(["report", "--zoo", str(lineage_zoo), "--out", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["path"] == str(out) and out.is_file()
    assert [s["key"] for s in printed["sections"]] == ["overview", "lineage", "filters", "task_vectors", "runs"]
    assert not printed["sections"][-1]["has_data"]


def _chromium() -> str | None:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for cmd in (["apt-get", "install", "-y", "-q", "chromium"], ["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", "chromium"]):
            subprocess.run(cmd, env=env, capture_output=True, timeout=600, check=False)
            exe = shutil.which("chromium")
            if exe:
                break
    return exe


@pytest.mark.slow
def test_report_renders_in_headless_chromium(lineage_zoo: Path, tmp_path: Path) -> None:
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium is not installed and could not be installed with apt-get")
    out, sections = build_report(lineage_zoo, tmp_path / "report.html", runs=_runs(tmp_path))
    flags = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
             "--virtual-time-budget=3000"]
    dom = subprocess.run([*flags, "--dump-dom", out.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    total = re.search(r'data-figures-total="(\d+)"', dom.stdout)
    loaded = re.search(r'data-figures-loaded="(\d+)"', dom.stdout)
    assert total and loaded, dom.stdout[:500]
    assert int(total.group(1)) == int(loaded.group(1)) == sum(s.figures for s in sections)
    console = [ln for ln in dom.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert not console, console
    shot = tmp_path / "shot.png"
    res = subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,2400", out.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and shot.is_file() and shot.stat().st_size > 20_000, res.stderr[-2000:]


def test_overview_labels_name_hub_downloads_and_spec_groups() -> None:
    from weightzoo.analysis.report import architecture_label, source_label

    assert source_label("/x/hf-cache/models--org--m/snapshots/abc") == "Hub download"
    assert source_label("/data/my-checkpoints/run3") == "local files"
    assert source_label("state-dict") == "state-dict" and source_label(None) == "unknown"
    spec = {"format": "weightzoo.arch/1", "layers": []}
    assert architecture_label("digits-cnn/n00001-e00", None, None, spec) == "digits-cnn (layer spec)"
    assert architecture_label("archs/a00001", None, None, {"format": "weightzoo.cells/1"}) == "archs (cell spec)"
    assert architecture_label("m", "BertModel", "bert", spec) == "BertModel"
    assert architecture_label("m", None, None, None) == "unknown"
