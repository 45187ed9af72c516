"""The wheel ships every module, the facade stays lazy, and the console script runs."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIRS = {"weightzoo": "weightzoo", "zoo": "weightzoo.zoo", "metanets": "weightzoo.metanets",
               "hyper": "weightzoo.hyper", "analysis": "weightzoo.analysis", "datasets": "weightzoo.datasets"}


def _source_modules() -> set[str]:
    mods = set()
    for folder, package in SOURCE_DIRS.items():
        for py in (ROOT / folder).rglob("*.py"):
            rel = py.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            mods.add(".".join([package, *parts]))
    return mods


@pytest.mark.slow
def test_wheel_contains_and_imports_every_module(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    wheel = next(tmp_path.glob("weightzoo-*.whl"))
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        zf.extractall(target)
    shipped = {n[:-3].replace("/", ".").removesuffix(".__init__") for n in names if n.endswith(".py")}
    missing = _source_modules() - shipped
    assert not missing, f"modules missing from the wheel (add their packages to pyproject): {sorted(missing)}"
    assert "weightzoo/py.typed" in names
    # Import every module from the unpacked wheel, not from the source tree.
    code = (
        "import importlib, sys; sys.path.insert(0, sys.argv[1]); mods = sys.argv[2:]\n"
        "for m in mods:\n"
        "    mod = importlib.import_module(m)\n"
        "    assert mod.__file__.startswith(sys.argv[1]), (m, mod.__file__)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(target), *sorted(shipped)], check=True, cwd=tmp_path)


def test_facade_is_lazy() -> None:
    code = (
        "import sys, weightzoo, weightzoo.zoo.store\n"
        "heavy = [m for m in ('torch_geometric', 'matplotlib', 'transformers', 'ray') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert weightzoo.Zoo is weightzoo.zoo.store.Zoo\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/")


def test_console_script_help() -> None:
    exe = Path(sys.executable).with_name("weightzoo")
    out = subprocess.run([str(exe), "--help"], check=True, capture_output=True, text=True).stdout
    assert "ingest" in out and "verify" in out


def test_every_public_name_resolves() -> None:
    code = (
        "import weightzoo\n"
        "missing = [n for n in weightzoo.__all__ if n != '__version__' and getattr(weightzoo, n, None) is None]\n"
        "assert not missing, missing\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/")
