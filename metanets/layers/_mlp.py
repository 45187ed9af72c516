"""The small per-element MLP every layer uses (applied row-wise, so it commutes with any permutation)."""

from __future__ import annotations

from torch import nn


def mlp(d_in: int, d_hidden: int, d_out: int, *, layers: int = 2, dropout: float = 0.0) -> nn.Sequential:
    """``layers`` Linear maps with SiLU between them: ``[*, d_in] -> [*, d_out]``."""
    if layers < 1:
        raise ValueError(f"mlp: layers must be >= 1, got {layers}")
    mods: list[nn.Module] = []
    d = d_in
    for _ in range(layers - 1):
        mods += [nn.Linear(d, d_hidden), nn.SiLU()]
        if dropout > 0:
            mods.append(nn.Dropout(dropout))
        d = d_hidden
    mods.append(nn.Linear(d, d_out))
    return nn.Sequential(*mods)
