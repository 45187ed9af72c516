"""Reading graph files: safetensors (tensors) plus string metadata (JSON), through our validated reader.

Graph files come from users as often as from us, so they get the same checks as any checkpoint (bounded
header, no duplicate names, offsets in bounds) rather than the ``safetensors`` library's laxer parser.
"""

from __future__ import annotations

import os

import torch

from weightzoo.errors import CheckpointError


def read_graph_file(path: str | os.PathLike[str]) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """``(metadata, tensors)`` of a graph file; ``CheckpointError`` if it is not a valid safetensors file."""
    from weightzoo.zoo.formats import open_checkpoint

    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such graph file: {os.fspath(path)}")
    ckpt = open_checkpoint(path, allow_pickle=False)
    try:
        if ckpt.format != "safetensors":
            raise CheckpointError(path, f"a graph file is one safetensors file, not {ckpt.format}")
        return dict(ckpt.metadata), {t.name: ckpt.read(t.name) for t in ckpt.tensors}
    finally:
        ckpt.close()


__all__ = ["read_graph_file"]
