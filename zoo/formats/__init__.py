"""Checkpoint readers: validated safetensors, sharded indexes, HF snapshot folders, safe torch pickles,
``nn.Module`` and state dicts — all behind one :func:`open_checkpoint`."""

from .base import Checkpoint, TensorInfo

__all__ = ["Checkpoint", "TensorInfo"]
