"""Merge recipes in YAML, in the spirit of mergekit's configuration files.

.. code-block:: yaml

    merge_method: ties            # mean | linear | task_arithmetic | ties | dare | dare_ties | slerp
    base_model: org/base          # zoo name or checkpoint path
    models:
      - model: org/ft-math
        parameters: {weight: 1.0, density: 0.2}
      - model: ./ft-code.safetensors
        parameters: {weight: 0.5, density: 0.3}
    parameters: {normalize: true, lambda: 1.0}   # method parameters; weight/density here are defaults
    dtype: bfloat16               # output dtype of floating tensors (default: the base's)
    seed: 0                       # DARE masks
    trim: tensor                  # or global (TIES, one threshold per task vector)

A model listed that is also the ``base_model`` is dropped from the models (mergekit lists it there too);
for ``slerp`` the base is the ``t = 0`` end. Per-layer gradients, ``slices`` and tokenizer options of
mergekit are refused with a clear error rather than ignored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from weightzoo.errors import ConfigError, InvalidOptionError

from .merging import resolve_method

DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "f16": torch.float16, "fp16": torch.float16,
          "float16": torch.float16, "half": torch.float16, "f32": torch.float32, "fp32": torch.float32,
          "float32": torch.float32, "float": torch.float32, "f64": torch.float64, "float64": torch.float64}


def resolve_dtype(name: str | None) -> torch.dtype | None:
    """A torch dtype from ``bf16``/``bfloat16``/``f16``/``f32``/...; ``None`` stays ``None``."""
    if name is None:
        return None
    try:
        return DTYPES[str(name).lower()]
    except KeyError:
        raise InvalidOptionError(f"unknown dtype {name!r}; choose one of {', '.join(sorted(DTYPES))}") from None


@dataclass
class MergeConfig:
    """A parsed merge recipe (what :func:`weightzoo.analysis.merging.merge` takes)."""

    method: str
    models: list[str]
    base: str | None = None
    weights: list[float] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    dtype: torch.dtype | None = None
    seed: int = 0
    trim: str = "tensor"


def _num(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        if isinstance(v, list | dict):
            raise ConfigError(f"{what}: per-layer gradients (lists/filters) are not supported; give one number")
        raise ConfigError(f"{what} must be a number, got {v!r}")
    return float(v)


def parse_merge_config(data: Mapping[str, Any], *, where: str = "merge config") -> MergeConfig:
    """Validate a mergekit-style recipe (already loaded from YAML/JSON)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    unsupported = {"slices", "tokenizer_source", "tokenizer", "chat_template"} & set(data)
    if unsupported:
        raise ConfigError(f"{where}: {', '.join(sorted(unsupported))} not supported (whole-model merges only)")
    known = {"merge_method", "base_model", "models", "parameters", "dtype", "seed", "trim", "out_dtype"}
    extra = set(data) - known
    if extra:
        raise ConfigError(f"{where}: unknown keys {sorted(extra)}; expected {sorted(known)}")
    if "merge_method" not in data:
        raise ConfigError(f"{where}: merge_method is required")
    method = resolve_method(str(data["merge_method"]))
    base = data.get("base_model")
    if base is not None and not isinstance(base, str):
        raise ConfigError(f"{where}: base_model must be a string")
    glob = dict(data.get("parameters") or {})
    if not isinstance(data.get("parameters") or {}, Mapping):
        raise ConfigError(f"{where}: parameters must be a mapping")
    default_w = _num(glob.pop("weight"), "parameters.weight") if "weight" in glob else 1.0
    default_d = glob.pop("density", None)
    entries = data.get("models")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{where}: models must be a non-empty list")
    models: list[str] = []
    weights: list[float] = []
    densities: list[float | None] = []
    for i, e in enumerate(entries):
        if isinstance(e, str):
            e = {"model": e}
        if not isinstance(e, Mapping) or not isinstance(e.get("model"), str):
            raise ConfigError(f"{where}: models[{i}] needs a 'model' string")
        p = dict(e.get("parameters") or {})
        bad = set(p) - {"weight", "density"}
        if bad:
            raise ConfigError(f"{where}: models[{i}].parameters: unknown {sorted(bad)} (weight, density)")
        if e["model"] == base and method != "slerp":
            continue
        models.append(e["model"])
        weights.append(_num(p["weight"], f"models[{i}].weight") if "weight" in p else default_w)
        d = p.get("density", default_d)
        densities.append(None if d is None else _num(d, f"models[{i}].density"))
    if method == "slerp" and base is not None:
        if base in models:
            models.remove(base)
        models = [base, *models]
        weights = [default_w] * len(models)
        densities = [None] * len(models)
        base = None
    params = dict(glob)
    if any(d is not None for d in densities):
        dflt = 0.2 if method == "ties" else 0.5
        params["density"] = [dflt if d is None else d for d in densities]
    trim = str(data.get("trim", "tensor"))
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"{where}: seed must be an integer")
    return MergeConfig(method, models, base, weights, params, resolve_dtype(data.get("dtype", data.get("out_dtype"))),
                       seed, trim)


def load_merge_config(path: str | os.PathLike[str]) -> MergeConfig:
    """Read and validate a YAML (or JSON) merge recipe file."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read merge config {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    return parse_merge_config(data, where=os.fspath(path))


__all__ = ["DTYPES", "MergeConfig", "load_merge_config", "parse_merge_config", "resolve_dtype"]
