"""`weightzoo crawl` and `weightzoo serve-hub` end to end, through the CLI entry point."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from weightzoo.cli import main

EXE = Path(sys.executable).with_name("weightzoo")
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_crawl_then_lineage_and_show(mirror, tmp_path: Path, capsys) -> None:
    zoo = str(tmp_path / "z")
    rc, out, _ = run(capsys, "crawl", "--search", "minilm", "--endpoint", mirror.url, "--zoo", zoo, "--json",
                     "--workers", "2")
    assert rc == 0
    summary = json.loads(out)
    assert summary["complete"] and summary["listed"] == 5 and summary["recorded"] == 5
    rc, out, _ = run(capsys, "lineage", MINILM, "--zoo", zoo)
    assert rc == 0 and "acme/minilm-lora  --adapter-->  " + MINILM in out
    rc, out, _ = run(capsys, "crawl", "--search", "minilm", "--endpoint", mirror.url, "--zoo", zoo, "--no-progress")
    assert rc == 0 and "5 listed, 0 recorded" in out and "up-to-date 5" in out
    rc, out, _ = run(capsys, "ls", "--zoo", zoo, "--json")
    assert {m["name"] for m in json.loads(out)} >= {MINILM, "acme/minilm-quant"}


def test_crawl_endpoint_down_is_one_line(tmp_path: Path, capsys) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    rc, out, err = run(capsys, "crawl", "--endpoint", f"http://127.0.0.1:{port}", "--zoo", str(tmp_path / "z"))
    assert rc == 1 and err.count("\n") == 1 and "cannot reach the Hub" in err and out == ""


def test_serve_hub_bad_arguments(capsys, tmp_path: Path) -> None:
    rc, _, err = run(capsys, "serve-hub")
    assert rc == 1 and "DIR" in err
    rc, _, err = run(capsys, "serve-hub", str(tmp_path), "--fault", "meteor")
    assert rc == 1 and "not one of" in err


@pytest.mark.slow
@pytest.mark.skipif(not EXE.exists(), reason="console script not installed")
def test_serve_hub_process_serves_until_interrupted(hub_tree) -> None:
    proc = subprocess.Popen([str(EXE), "serve-hub", str(hub_tree[0]), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"serving {len(hub_tree[1])} repositories at http://127.0.0.1:")
        url = line.split(" at ")[1].split()[0]
        r = httpx2.get(f"{url}/api/models", params={"search": "all-minilm"})
        assert [m["id"] for m in r.json()] == [MINILM]
    finally:
        proc.send_signal(signal.SIGINT)
        deadline = time.time() + 10
        while proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
    assert proc.returncode == 0
