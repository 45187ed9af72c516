"""Strict JSON for checkpoint headers, indexes and configs.

Python's :mod:`json` silently keeps the *last* of two equal keys (so does the safetensors library), accepts
``NaN``/``Infinity`` literals, and happily decodes whatever bytes it is given. A header that names one
tensor twice can show one reader one set of bytes and another reader another, so every JSON document a
checkpoint carries goes through :func:`loads_strict`: UTF-8 only, duplicate keys refused at any depth,
non-standard constants refused.
"""

from __future__ import annotations

import json
from os import PathLike
from typing import Any

from weightzoo.errors import CheckpointError


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    # json accepts NaN, Infinity and -Infinity, which are not JSON; a header has no use for them.
    raise ValueError(f"non-standard JSON constant {name}")


def loads_strict(data: bytes, path: str | PathLike[str] | None, what: str) -> Any:
    """Decode ``data`` as UTF-8 JSON, refusing duplicate keys, ``NaN``/``Infinity`` and invalid UTF-8.

    Args:
        data: the raw bytes of the document.
        path: the file it came from (for the error message).
        what: what the document is ("safetensors header", "index", "config.json"), for the message.

    Raises:
        CheckpointError: for invalid UTF-8, malformed JSON, or a key that appears twice in one object.
    """
    try:
        text = data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as e:
        raise CheckpointError(path, f"{what} is not valid UTF-8 (byte {e.start})") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except _DuplicateKey as e:
        raise CheckpointError(path, f"{what} names {e.key!r} twice (duplicate keys are refused)") from None
    except ValueError as e:  # json.JSONDecodeError is a ValueError, and so is _no_constants' error
        raise CheckpointError(path, f"{what} is not valid JSON: {e}") from None
    except RecursionError:
        raise CheckpointError(path, f"{what} nests too deeply to be JSON we read") from None
