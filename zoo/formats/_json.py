"""Strict JSON for checkpoint headers, indexes and configs.

Python's :mod:`json` silently keeps the *last* of two equal keys (so does the safetensors library), accepts
``NaN``/``Infinity`` literals, and happily decodes whatever bytes it is given. A header that names one
tensor twice can show one reader one set of bytes and another reader another, so every JSON document a
checkpoint carries goes through :func:`loads_strict`: UTF-8 only, duplicate keys refused at any depth,
non-standard constants refused.

Bounded as well, because JSON is an easy memory bomb: 99 MB of ``[],`` becomes 33 million Python lists
(5 GB). Before parsing, the number of containers is bounded by the size of the document (one ``[`` or
``{`` per :data:`MIN_BYTES_PER_CONTAINER` bytes: a safetensors entry spends ~17, a config far more); after
parsing, depth is at most :data:`MAX_DEPTH`, every number is finite (``1e400`` parses to ``inf``, which
no later ``json.dumps(allow_nan=False)`` accepts), and every string is valid Unicode (a ``\ud800`` escape
decodes to a lone surrogate that SQLite and the file system cannot encode).
"""

from __future__ import annotations

import json
import math
import re
from os import PathLike
from typing import Any

from weightzoo.errors import CheckpointError


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):  # rare: find the first key seen twice
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return out


#: Deepest nesting accepted in any JSON document (headers are 3 deep, configs rarely 6).
MAX_DEPTH = 64
#: A document may hold at most one container (``[`` or ``{``) per this many bytes (plus a small allowance).
MIN_BYTES_PER_CONTAINER = 8
_CONTAINER_ALLOWANCE = 4096
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range for a float")
    return value


def json_problem(obj: Any, *, max_depth: int = MAX_DEPTH) -> str | None:
    """What makes a decoded JSON value unfit to store, or ``None``: nesting deeper than ``max_depth``, a
    non-finite float, a string or key that is not valid Unicode (a lone surrogate), a key that is not a
    string, or a value of a type JSON has not. Iterative, so a 50,000-deep value cannot overflow the stack."""
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if not _is_unicode(value):
                return f"string {value[:40]!r} is not valid Unicode (a lone surrogate)"
        elif isinstance(value, bool) or value is None or isinstance(value, int):
            continue
        elif isinstance(value, float):
            if not math.isfinite(value):
                return f"number {value} is not finite"
        elif isinstance(value, dict | list | tuple):
            if depth > max_depth:
                return f"nested deeper than {max_depth} levels"
            if isinstance(value, dict):
                for k, v in value.items():
                    if not isinstance(k, str):
                        if isinstance(k, int | float | bool) or k is None:  # json.dumps writes them as strings
                            stack.append((v, depth + 1))
                            continue
                        return f"key {k!r} is not a string"
                    if not _is_unicode(k):
                        return f"key {k[:40]!r} is not valid Unicode (a lone surrogate)"
                    stack.append((v, depth + 1))
            else:
                stack.extend((v, depth + 1) for v in value)
        else:
            return f"a {type(value).__name__} is not a JSON value"
    return None


def _is_unicode(s: str) -> bool:
    if s.isascii():
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _no_constants(name: str) -> Any:
    # json accepts NaN, Infinity and -Infinity, which are not JSON; a header has no use for them.
    raise ValueError(f"non-standard JSON constant {name}")


def loads_strict(data: bytes, path: str | PathLike[str] | None, what: str, *, check_values: bool = True) -> Any:
    """Decode ``data`` as UTF-8 JSON, refusing duplicate keys, ``NaN``/``Infinity`` and invalid UTF-8.

    Args:
        data: the raw bytes of the document.
        path: the file it came from (for the error message).
        what: what the document is ("safetensors header", "index", "config.json"), for the message.
        check_values: walk the whole document with :func:`json_problem` (depth, Unicode). Callers that
            validate every value's type themselves (the safetensors header parser) pass ``False``: the
            walk then runs only when the text holds a ``\\uD8..``-``\\uDF..`` escape, the one way a lone
            surrogate gets into decoded JSON.

    Raises:
        CheckpointError: for invalid UTF-8, malformed JSON, or a key that appears twice in one object.
    """
    containers = data.count(b"[") + data.count(b"{")  # an upper bound: brackets inside strings count too
    if containers > len(data) // MIN_BYTES_PER_CONTAINER + _CONTAINER_ALLOWANCE:
        raise CheckpointError(path, f"{what} holds {containers} lists/objects in {len(data)} bytes: far more than "
                              "any real document (a memory bomb); refused before parsing")
    try:
        text = data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as e:
        raise CheckpointError(path, f"{what} is not valid UTF-8 (byte {e.start})") from None
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants,
                         parse_float=_finite_float)
    except _DuplicateKey as e:
        raise CheckpointError(path, f"{what} names {e.key!r} twice (duplicate keys are refused)") from None
    except ValueError as e:  # json.JSONDecodeError is a ValueError, and so is _no_constants' error
        raise CheckpointError(path, f"{what} is not valid JSON: {e}") from None
    except RecursionError:
        raise CheckpointError(path, f"{what} nests too deeply to be JSON we read") from None
    problem = json_problem(doc) if check_values or _SURROGATE_ESCAPE.search(data) else None
    if problem:
        raise CheckpointError(path, f"{what}: {problem}")
    return doc
