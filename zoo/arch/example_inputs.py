"""Example inputs for one forward pass of a module: from a spec's ``input_shape``, from a Hugging Face
config (token ids or pixel values), or from the module's first layer (Linear, Conv, Embedding).

Used to record compute graphs and, later, parameter graphs and symmetry checks of any module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from weightzoo.errors import ComputeGraphError, SpecError

from .spec import validate_spec

_DEFAULT_SEQ_LEN = 16
_DEFAULT_IMAGE_SIZE = 32


def example_input(spec: Mapping[str, Any], batch: int = 2, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random input of the spec's ``input_shape`` (standard normal), for tests and tracing."""
    spec = validate_spec(spec)
    if "input_shape" not in spec:
        raise SpecError("input_shape: required to make an example input")
    return torch.randn(batch, *spec["input_shape"], generator=generator)


# --- example inputs -------------------------------------------------------------------------------------


def example_inputs(module: nn.Module, example_input: Any = None,
                   spec: Mapping[str, Any] | None = None) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Positional and keyword arguments for one forward pass (see :meth:`ComputeGraph.record`)."""
    if example_input is not None:
        if isinstance(example_input, torch.Tensor):
            return (example_input,), {}
        if isinstance(example_input, tuple | list):
            return tuple(example_input), {}
        if isinstance(example_input, Mapping):
            return (), dict(example_input)
        raise ComputeGraphError(f"example_input must be a tensor, a tuple of them or a dict of keyword "
                                f"arguments, got {type(example_input).__name__}")
    args, kwargs = _derived_inputs(module, spec)
    first = next(module.parameters(), None)
    if first is not None and first.device.type != "cpu":  # e.g. a module built on the meta device: no compute
        return (tuple(a.to(first.device) for a in args),
                {k: v.to(first.device) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()})
    return args, kwargs


def _derived_inputs(module: nn.Module, spec: Mapping[str, Any] | None) -> tuple[tuple[Any, ...], dict[str, Any]]:
    gen = torch.Generator().manual_seed(0)
    if spec is not None and spec.get("input_shape"):
        return (torch.randn(1, *[int(s) for s in spec["input_shape"]], generator=gen),), {}
    config = getattr(module, "config", None)
    if config is None and spec is not None and spec.get("format") == "hf":
        config = spec.get("config")
    if config is not None and hasattr(module, "main_input_name"):
        return (), _hf_inputs(module, config, gen)
    for m in module.modules():
        if isinstance(m, nn.Linear):
            return (torch.randn(1, m.in_features, generator=gen),), {}
        if isinstance(m, nn.modules.conv._ConvNd) and not m.transposed:
            dims = len(m.kernel_size)
            return (torch.randn(1, m.in_channels, *([32] * dims), generator=gen),), {}
        if isinstance(m, nn.Embedding):
            return (torch.randint(0, m.num_embeddings, (1, _DEFAULT_SEQ_LEN), generator=gen),), {}
    raise ComputeGraphError(f"cannot derive an example input for {type(module).__name__}: pass example_input= "
                            "(a tensor, a tuple or a dict of keyword arguments) or a spec with input_shape",
                            path="<root>", kind=type(module).__name__)


def _cfg(config: Any, *keys: str) -> Any:
    for k in keys:
        v = config.get(k) if isinstance(config, Mapping) else getattr(config, k, None)
        if v is not None:
            return v
    return None


def _hf_inputs(module: nn.Module, config: Any, gen: torch.Generator) -> dict[str, Any]:
    import inspect

    name = str(module.main_input_name)
    params = inspect.signature(module.forward).parameters
    kwargs: dict[str, Any] = {}
    if name == "pixel_values":
        size = _cfg(config, "image_size") or _DEFAULT_IMAGE_SIZE
        h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[-1]))
        kwargs[name] = torch.randn(1, int(_cfg(config, "num_channels") or 3), h, w, generator=gen)
    elif name == "input_ids":
        limit = _cfg(config, "max_position_embeddings", "n_positions", "max_seq_len", "seq_length")
        length = min(int(limit), _DEFAULT_SEQ_LEN) if limit else _DEFAULT_SEQ_LEN
        vocab = int(_cfg(config, "vocab_size") or 2)
        kwargs[name] = torch.randint(0, vocab, (1, length), generator=gen)
    else:
        raise ComputeGraphError(f"cannot derive an example input for {type(module).__name__} (main input "
                                f"{name!r}): pass example_input=", path="<root>", kind=type(module).__name__)
    if "use_cache" in params:  # a KV cache is state, not computation
        kwargs["use_cache"] = False
    return kwargs


__all__ = ["example_input", "example_inputs"]
