"""What a checkpoint file is, by its content — the extension is only a claim to check against.

Magic bytes:

=================  =================================================================================
``safetensors``    little-endian u64 header length, then ``{`` (the JSON header) at byte 8
``torch-zip``      ``PK\\x03\\x04`` (a zip local file header; torch ≥ 1.6 ``torch.save``)
``torch-legacy``   pickle protocol 2 (``\\x80\\x02``) whose first object is torch's magic number
                   ``0x1950a86a20f9469cfc6c`` (``torch.save(..., _use_new_zipfile_serialization=False)``)
``pickle``         any other pickle (``\\x80`` + protocol 2–5): not a torch format; handed to
                   ``torch.load(weights_only=True)``, which refuses anything but tensors
``torch-tar``      ``ustar`` at offset 257: torch's pre-0.4 tar format, which ``weights_only`` cannot
                   read — refused
``json``           ``{`` after optional whitespace (a sharded checkpoint's ``*.index.json``)
=================  =================================================================================

A file whose extension names one format while its content is another (a zip called ``.safetensors``, a
safetensors file called ``.bin``) is refused: something renamed it, and the other readers of that file
would disagree with us about what it holds.
"""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

from weightzoo.errors import CheckpointError, UnsupportedFormatError

from .paths import check_input_path, read_error

SAFETENSORS = "safetensors"
TORCH_ZIP = "torch-zip"
TORCH_LEGACY = "torch-legacy"
PICKLE = "pickle"
TORCH_TAR = "torch-tar"
JSON = "json"

#: torch's legacy magic number (``torch.serialization.MAGIC_NUMBER``), pickled with protocol 2 as a LONG1.
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")

_TORCH_FORMATS = frozenset({TORCH_ZIP, TORCH_LEGACY, PICKLE, TORCH_TAR})
#: What each extension claims the content is.
EXTENSIONS: dict[str, frozenset[str]] = {
    ".safetensors": frozenset({SAFETENSORS}),
    ".bin": _TORCH_FORMATS,
    ".pt": _TORCH_FORMATS,
    ".pth": _TORCH_FORMATS,
    ".ckpt": _TORCH_FORMATS,
    ".pkl": _TORCH_FORMATS,
    ".pickle": _TORCH_FORMATS,
    ".tar": _TORCH_FORMATS,
    ".json": frozenset({JSON}),
}

_HEAD = 512  # enough for the tar magic at 257


def sniff_bytes(head: bytes) -> str | None:
    """The format the first bytes of a file show, or ``None`` when they match none we know."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return TORCH_ZIP
    if len(head) >= 262 and head[257:262] == b"ustar":
        return TORCH_TAR
    if head.startswith(_LEGACY_MAGIC):
        return TORCH_LEGACY
    if len(head) >= 9 and head[8:9] == b"{":
        # Before the pickle test: a header of 640 bytes starts b"\x80\x02", like a protocol-2 pickle.
        # No pickle has "{" at byte 8 right after zero bytes 5-7, which any length below 2**40 implies.
        (n,) = struct.unpack("<Q", head[:8])
        if 2 <= n < 2**40:
            return SAFETENSORS
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return PICKLE
    if head.lstrip()[:1] == b"{":
        return JSON
    return None


def sniff_format(path: str | os.PathLike[str], *, check_extension: bool = True) -> str:
    """The format of the checkpoint file at ``path``, decided by its content.

    Args:
        path: a file.
        check_extension: refuse a file whose extension (``.safetensors``, ``.bin``/``.pt``/``.pth``/
            ``.ckpt``, ``.json``) claims a different format than its content shows (default ``True``).

    Returns:
        one of ``"safetensors"``, ``"torch-zip"``, ``"torch-legacy"``, ``"pickle"``, ``"torch-tar"``,
        ``"json"``. (Reading a ``"torch-tar"`` file is refused later by :func:`open_checkpoint`.)

    Raises:
        CheckpointError: the file is empty.
        UnsupportedFormatError: the content is no format we know, or disagrees with the extension.
        NoWeightsError: there is no such file.
    """
    p = Path(path)
    if stat.S_ISDIR(check_input_path(p).st_mode):  # FIFOs and devices refused before any open
        raise UnsupportedFormatError(p, "is a folder, not a checkpoint file")
    try:
        # O_NONBLOCK: should the path be swapped for a FIFO after the check, open() still cannot hang.
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise UnsupportedFormatError(p, "is not a regular file")
            head = f.read(_HEAD)
    except OSError as exc:
        raise read_error(p, exc) from None
    if not head:
        raise CheckpointError(p, "empty file (0 bytes)")
    ext = p.suffix.lower()
    claimed = EXTENSIONS.get(ext) if check_extension else None
    found = sniff_bytes(head)
    if found is None:
        if claimed == {SAFETENSORS} and len(head) < 9:
            # Too short to show the header's first byte: the safetensors parser says precisely why.
            return SAFETENSORS
        raise UnsupportedFormatError(p, f"unrecognised content (first bytes {head[:8]!r})")
    if claimed is not None and found not in claimed:
        raise UnsupportedFormatError(
            p, f"content is {found} but the extension {ext!r} claims {' or '.join(sorted(claimed))}; "
            "refusing a file whose name and content disagree"
        )
    return found


__all__ = ["EXTENSIONS", "JSON", "PICKLE", "SAFETENSORS", "TORCH_LEGACY", "TORCH_TAR", "TORCH_ZIP",
           "sniff_bytes", "sniff_format"]
