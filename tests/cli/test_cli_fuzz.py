"""Fuzzing the CLI's name and metadata arguments (issue 22): whatever text a user (or a shell with an odd
locale) passes to ``--name``, ``--meta``, ``--filter``, ``lineage --add-parent`` or a MODEL argument, the
command exits 0, or exits 1 with one line on stderr, or 2 for a usage error — never a traceback, and the
zoo stays consistent (``verify`` clean)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from weightzoo.cli import main
from weightzoo.zoo.store import Zoo

# Text as argv can carry it: any code point, lone surrogates from undecodable bytes included (Python
# decodes argv with surrogateescape); plus a few hostile shapes of JSON.
_TEXT = st.one_of(
    st.text(st.characters(codec=None, exclude_categories=()), max_size=12),
    st.sampled_from(["", " x", "a@b", "\udcff", "x\x00y", "[" * 2000, "1e400", "NaN", "-Infinity", '{"a": 1}',
                     "é" * 600, "org/name", "../..", "--json"]),
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("cli-fuzz")
    src = d / "m.safetensors"
    save_file({"w": torch.ones(3)}, src)
    zoo = d / "zoo"
    assert main(["ingest", str(src), "--zoo", str(zoo), "--name", "base"]) == 0
    return src, zoo


def _ok(rc: int, err: str) -> None:
    assert rc in (0, 1), rc
    if rc == 1:
        assert err.count("\n") == 1 and "error:" in err, err
    assert "Traceback" not in err


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=_TEXT, key=_TEXT, value=_TEXT, parent=_TEXT)
def test_cli_arguments_never_crash(setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str],
                                   name: str, key: str, value: str, parent: str) -> None:
    src, zoo = setup
    for argv in (["ingest", str(src), f"--zoo={zoo}", f"--name={name}", f"--meta={key}={value}", "--replace"],
                 ["ls", f"--zoo={zoo}", f"--filter={key}={value}", "--json"],
                 ["show", "--zoo", str(zoo), "--", name],
                 ["lineage", "--zoo", str(zoo), f"--add-parent={parent}", "--", "base"]):
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse: usage errors exit 2 with a message, by design
            assert exc.code == 2
            capsys.readouterr()
            continue
        _, err = capsys.readouterr()
        _ok(rc, err)
    with Zoo.open(zoo) as z:
        assert z.verify(rehash=False).clean
