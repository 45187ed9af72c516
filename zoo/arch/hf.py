"""Architecture specs of Hugging Face models: a ``config.json`` names its class (``architectures[0]``),
and ``transformers`` (optional extra ``weightzoo[hf]``) builds it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from weightzoo.errors import SpecError

HF_FORMAT = "hf"


def hf_spec(config: Mapping[str, Any]) -> dict[str, Any]:
    """The spec of a Hugging Face snapshot from its ``config.json`` (class = ``architectures[0]``)."""
    archs = config.get("architectures") or []
    if not archs or not isinstance(archs[0], str):
        raise SpecError("config.json has no 'architectures' entry to name the model class")
    return {"format": HF_FORMAT, "class": archs[0], "config": dict(config)}




def hf_module_spec(module: nn.Module) -> dict[str, Any] | None:
    """The ``hf`` spec of a ``transformers`` model object (its class name and full config), else ``None``;
    ``transformers`` is not imported (the module brings its config)."""
    import json

    config = getattr(module, "config", None)
    if config is None or not type(module).__module__.startswith("transformers.") or \
            not hasattr(config, "to_json_string"):
        return None
    return {"format": HF_FORMAT, "class": type(module).__name__, "config": json.loads(config.to_json_string(use_diff=False))}


def build_hf(spec: dict[str, Any]) -> nn.Module:
    try:
        import transformers
    except ImportError as exc:
        raise SpecError(
            f"building {spec['class']} needs the optional dependency transformers: pip install 'weightzoo[hf]'"
        ) from exc
    cls = getattr(transformers, spec["class"], None)
    if cls is None or not hasattr(cls, "config_class"):
        raise SpecError(f"transformers {transformers.__version__} has no model class {spec['class']!r}")
    config = cls.config_class.from_dict(spec["config"])
    return cls(config)


__all__ = ["HF_FORMAT", "build_hf", "hf_module_spec", "hf_spec"]
