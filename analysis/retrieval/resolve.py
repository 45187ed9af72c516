"""The one resolver of encoder names (``ops``, ``wl``, ``learned``) for the API and the CLI."""

from __future__ import annotations

import os
from typing import Any

from weightzoo.errors import InvalidOptionError

from .encoder import Encoder

ENCODERS = ("ops", "wl", "learned")


def resolve_encoder(name: str, *, run: str | os.PathLike[str] | None = None, **kwargs: Any) -> Encoder:
    """The encoder called ``name`` (``ops``, ``wl`` or ``learned``; ``learned`` needs ``run``, a folder
    written by :func:`~weightzoo.analysis.retrieval.train_encoder`); ``kwargs`` go to its constructor."""
    if name == "ops":
        from .op_histogram import OpHistogramEncoder

        return OpHistogramEncoder(**kwargs)
    if name == "wl":
        from .wl import WLEncoder

        return WLEncoder(**kwargs)
    if name == "learned":
        if run is None:
            raise InvalidOptionError("the learned encoder needs its training run (--encoder-run DIR)")
        from .learned import LearnedEncoder

        return LearnedEncoder.load(run, **kwargs)
    raise InvalidOptionError(f"unknown encoder {name!r}; valid: {', '.join(ENCODERS)}")


__all__ = ["ENCODERS", "resolve_encoder"]
