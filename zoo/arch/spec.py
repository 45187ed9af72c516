"""Architecture specs: a JSON-able description of an MLP or CNN that rebuilds the ``nn.Module``.

A spec is a plain dict, so it can sit in the zoo catalogue next to the weights::

    {"format": "weightzoo.arch/1",
     "input_shape": [1, 8, 8],                      # optional, without the batch dimension
     "layers": [
        {"type": "conv2d", "in": 1, "out": 8, "kernel": [3, 3], "padding": [1, 1]},
        {"type": "batchnorm2d", "num_features": 8},
        {"type": "relu"},
        {"type": "residual", "layers": [...], "shortcut": [...] or null},
        {"type": "global_avg_pool", "dims": 2},
        {"type": "flatten"},
        {"type": "linear", "in": 8, "out": 10}]}

:func:`build_module` turns it into nested ``nn.Sequential`` modules whose ``state_dict()`` names are
deterministic (``"<index or name>.weight"``, residual blocks as ``"<i>.block.<j>.weight"`` and
``"<i>.shortcut.<j>.weight"``), so ``build_module(spec).load_state_dict(stored, strict=True)`` works for
every model recorded with its spec. :func:`spec_from_module` goes the other way for ``nn.Sequential``-style
models, and keeps the module's own parameter names. Hugging Face snapshots use
``{"format": "hf", "class": <architectures[0]>, "config": {...}}`` and need ``transformers`` to build.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from weightzoo.errors import SpecError, UnsupportedLayerError

from .cells import build_cells, validate_cells_spec
from .hf import HF_FORMAT, build_hf
from .reference import CLASS_FORMAT, build_from_reference, class_spec

SPEC_FORMAT = "weightzoo.arch/1"
#: ``{"format": "torch", "class": "MultiheadAttention" | "TransformerEncoderLayer", "config": {kwargs}}``
TORCH_FORMAT = "torch"
TORCH_CLASSES = ("MultiheadAttention", "TransformerEncoderLayer")


class Sine(nn.Module):
    r"""Sine activation of SIRENs (Sitzmann et al., 2020): :math:`y = \sin(\omega_0 x)`.

    Args:
        w0 (float): frequency :math:`\omega_0` (default 30, the SIREN first-layer value).

    Odd (:math:`\sin(-x) = -\sin(x)`), so sign flips of hidden neurons are symmetries of a SIREN.
    """

    def __init__(self, w0: float = 30.0) -> None:
        super().__init__()
        self.w0 = float(w0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.w0 * x)

    def extra_repr(self) -> str:
        return f"w0={self.w0}"


class Residual(nn.Module):
    r"""A residual block: :math:`y = f(x) + s(x)` with ``s`` the identity or a projection shortcut.

    Args:
        block (nn.Sequential): the residual branch :math:`f`.
        shortcut (nn.Sequential, optional): projection :math:`s` (e.g. a 1×1 conv + batch norm);
            ``None`` means the identity.
    """

    def __init__(self, block: nn.Sequential, shortcut: nn.Sequential | None = None) -> None:
        super().__init__()
        self.block = block
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.shortcut is None else self.shortcut(x)
        return self.block(x) + skip


# --- schema ------------------------------------------------------------------------------------------

# type -> {key: default}; a default of ... means required.
_REQ = ...
_SCHEMA: dict[str, dict[str, Any]] = {
    "linear": {"in": _REQ, "out": _REQ, "bias": True},
    "conv1d": {"in": _REQ, "out": _REQ, "kernel": _REQ, "stride": None, "padding": None, "dilation": None,
               "groups": 1, "bias": True, "padding_mode": "zeros"},
    "conv2d": {"in": _REQ, "out": _REQ, "kernel": _REQ, "stride": None, "padding": None, "dilation": None,
               "groups": 1, "bias": True, "padding_mode": "zeros"},
    "batchnorm1d": {"num_features": _REQ, "eps": 1e-5, "momentum": 0.1, "affine": True, "track_running_stats": True},
    "batchnorm2d": {"num_features": _REQ, "eps": 1e-5, "momentum": 0.1, "affine": True, "track_running_stats": True},
    "layernorm": {"normalized_shape": _REQ, "eps": 1e-5, "elementwise_affine": True, "bias": True},
    "groupnorm": {"num_groups": _REQ, "num_channels": _REQ, "eps": 1e-5, "affine": True},
    "relu": {}, "gelu": {"approximate": "none"}, "silu": {}, "tanh": {}, "sigmoid": {},
    "leaky_relu": {"slope": 0.01}, "sine": {"w0": 30.0}, "identity": {},
    "dropout": {"p": 0.5},
    "flatten": {},
    "global_avg_pool": {"dims": 2},
    "global_max_pool": {"dims": 2},
    "residual": {"layers": _REQ, "shortcut": None},
    "sequential": {"layers": _REQ},
    "unsupported": {"module": _REQ, "path": _REQ, "tensors": []},
}
LAYER_TYPES: tuple[str, ...] = tuple(_SCHEMA)
ACTIVATIONS: tuple[str, ...] = ("relu", "gelu", "silu", "tanh", "sigmoid", "leaky_relu", "sine", "identity")
NORMS: tuple[str, ...] = ("batchnorm1d", "batchnorm2d", "layernorm", "groupnorm")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _tuple(where: str, key: str, v: Any, n: int, default: int | None, minimum: int) -> list[int]:
    if v is None:
        if default is None:
            raise SpecError(f"{where}.{key}: required")
        v = default
    if _is_int(v):
        v = [v] * n
    if not isinstance(v, list | tuple) or len(v) != n or not all(_is_int(x) and x >= minimum for x in v):
        raise SpecError(f"{where}.{key}: expected an int >= {minimum} or a list of {n} of them, got {v!r}")
    return list(v)


def _normalize_layer(layer: Any, where: str) -> dict[str, Any]:
    if not isinstance(layer, Mapping):
        raise SpecError(f"{where}: a layer must be a dict, got {type(layer).__name__}")
    kind = layer.get("type")
    if kind not in _SCHEMA:
        raise SpecError(f"{where}.type: unknown layer type {kind!r}; valid: {', '.join(LAYER_TYPES)}")
    schema = _SCHEMA[kind]
    unknown = sorted(set(layer) - set(schema) - {"type", "name"})
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {unknown} for a {kind} layer; valid: {sorted(schema)}")
    out: dict[str, Any] = {"type": kind}
    if "name" in layer:
        name = layer["name"]
        if not isinstance(name, str) or not name or "." in name:
            raise SpecError(f"{where}.name: must be a non-empty string without '.', got {name!r}")
        out["name"] = name
    for key, default in schema.items():
        if key in layer:
            out[key] = copy.deepcopy(layer[key])
        elif default is _REQ:
            raise SpecError(f"{where}.{key}: required for a {kind} layer")
        else:
            out[key] = copy.deepcopy(default)
    w = where
    if kind == "linear":
        for k in ("in", "out"):
            if not _is_int(out[k]) or out[k] < 1:
                raise SpecError(f"{w}.{k}: expected a positive int, got {out[k]!r}")
    elif kind in ("conv1d", "conv2d"):
        n = 1 if kind == "conv1d" else 2
        for k in ("in", "out", "groups"):
            if not _is_int(out[k]) or out[k] < 1:
                raise SpecError(f"{w}.{k}: expected a positive int, got {out[k]!r}")
        if out["in"] % out["groups"] or out["out"] % out["groups"]:
            raise SpecError(f"{w}.groups: {out['groups']} does not divide in={out['in']} and out={out['out']}")
        out["kernel"] = _tuple(w, "kernel", out["kernel"], n, None, 1)
        out["stride"] = _tuple(w, "stride", out["stride"], n, 1, 1)
        out["dilation"] = _tuple(w, "dilation", out["dilation"], n, 1, 1)
        if out["padding"] not in ("same", "valid"):
            out["padding"] = _tuple(w, "padding", out["padding"], n, 0, 0)
        if out["padding_mode"] not in ("zeros", "reflect", "replicate", "circular"):
            raise SpecError(f"{w}.padding_mode: {out['padding_mode']!r} is not a torch padding mode")
    elif kind.startswith("batchnorm"):
        if not _is_int(out["num_features"]) or out["num_features"] < 1:
            raise SpecError(f"{w}.num_features: expected a positive int, got {out['num_features']!r}")
    elif kind == "layernorm":
        ns = out["normalized_shape"]
        ns = [ns] if _is_int(ns) else ns
        if not isinstance(ns, list | tuple) or not ns or not all(_is_int(x) and x >= 1 for x in ns):
            raise SpecError(f"{w}.normalized_shape: expected positive ints, got {ns!r}")
        out["normalized_shape"] = list(ns)
    elif kind == "groupnorm":
        g, c = out["num_groups"], out["num_channels"]
        if not (_is_int(g) and _is_int(c) and g >= 1 and c >= 1 and c % g == 0):
            raise SpecError(f"{w}: num_groups={g!r} must be a positive int dividing num_channels={c!r}")
    elif kind in ("residual", "sequential"):
        out["layers"] = _normalize_layers(out["layers"], f"{w}.layers")
        if kind == "residual":
            if not out["layers"]:
                raise SpecError(f"{w}.layers: a residual block needs at least one layer")
            if out["shortcut"] is not None:
                out["shortcut"] = _normalize_layers(out["shortcut"], f"{w}.shortcut")
    elif kind in ("global_avg_pool", "global_max_pool"):
        if out["dims"] not in (1, 2):
            raise SpecError(f"{w}.dims: expected 1 or 2, got {out['dims']!r}")
    elif kind == "dropout":
        if not isinstance(out["p"], int | float) or not 0 <= out["p"] <= 1:
            raise SpecError(f"{w}.p: expected a probability, got {out['p']!r}")
    for key in ("eps", "momentum", "slope", "w0"):
        if key in out and out[key] is not None and not (isinstance(out[key], int | float) and math.isfinite(out[key])):
            raise SpecError(f"{w}.{key}: expected a finite number, got {out[key]!r}")
    for key in ("bias", "affine", "track_running_stats", "elementwise_affine"):
        if key in out and not isinstance(out[key], bool):
            raise SpecError(f"{w}.{key}: expected true/false, got {out[key]!r}")
    return out


def _normalize_layers(layers: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(layers, list | tuple):
        raise SpecError(f"{where}: expected a list of layers, got {type(layers).__name__}")
    normalized = [_normalize_layer(layer, f"{where}[{i}]") for i, layer in enumerate(layers)]
    names = [layer.get("name", str(i)) for i, layer in enumerate(normalized)]
    if len(set(names)) != len(names):
        raise SpecError(f"{where}: duplicate layer names {names}")
    return normalized


def validate_spec(spec: Any) -> dict[str, Any]:
    """Check a spec and return it normalized (every default filled in, tuples as lists).

    Raises :class:`~weightzoo.errors.SpecError` naming the offending layer path and key, e.g.
    ``layers[2].groups: 3 does not divide in=8 and out=16``.
    """
    if not isinstance(spec, Mapping):
        raise SpecError(f"a spec must be a dict, got {type(spec).__name__}")
    fmt = spec.get("format")
    if fmt == "weightzoo.cells/1":  # cell-based (DARTS-style) networks: see zoo/arch/cells.py
        return validate_cells_spec(spec)
    if fmt == CLASS_FORMAT:
        shape = spec.get("input_shape")
        if shape is not None and not (isinstance(shape, list | tuple) and all(_is_int(x) and x >= 1 for x in shape)):
            raise SpecError(f"input_shape: expected a list of positive ints (no batch dim), got {shape!r}")
        return class_spec(spec.get("class"), None if shape is None else list(shape))  # type: ignore[arg-type]
    if fmt == HF_FORMAT:
        if not isinstance(spec.get("class"), str) or not isinstance(spec.get("config"), Mapping):
            raise SpecError("an hf spec needs 'class' (a transformers class name) and 'config' (a dict)")
        return {"format": HF_FORMAT, "class": spec["class"], "config": copy.deepcopy(dict(spec["config"]))}
    if fmt == TORCH_FORMAT:
        if spec.get("class") not in TORCH_CLASSES or not isinstance(spec.get("config"), Mapping):
            raise SpecError(f"a torch spec needs 'class' (one of {', '.join(TORCH_CLASSES)}) and 'config' (a dict)")
        return {"format": TORCH_FORMAT, "class": spec["class"], "config": copy.deepcopy(dict(spec["config"]))}
    if fmt != SPEC_FORMAT:
        raise SpecError(f"format: expected {SPEC_FORMAT!r}, {HF_FORMAT!r} or {CLASS_FORMAT!r}, got {fmt!r}")
    unknown = sorted(set(spec) - {"format", "layers", "input_shape"})
    if unknown:
        raise SpecError(f"unknown top-level key(s) {unknown}; valid: format, layers, input_shape")
    out: dict[str, Any] = {"format": SPEC_FORMAT, "layers": _normalize_layers(spec.get("layers"), "layers")}
    shape = spec.get("input_shape")
    if shape is not None:
        if not isinstance(shape, list | tuple) or not all(_is_int(x) and x >= 1 for x in shape):
            raise SpecError(f"input_shape: expected a list of positive ints (no batch dim), got {shape!r}")
        out["input_shape"] = list(shape)
    return out


# --- spec -> module ----------------------------------------------------------------------------------


def _build_layer(layer: dict[str, Any], where: str) -> nn.Module:
    t = layer["type"]
    if t == "linear":
        return nn.Linear(layer["in"], layer["out"], bias=layer["bias"])
    if t in ("conv1d", "conv2d"):
        cls = nn.Conv1d if t == "conv1d" else nn.Conv2d
        pad = layer["padding"] if isinstance(layer["padding"], str) else tuple(layer["padding"])
        return cls(layer["in"], layer["out"], tuple(layer["kernel"]), stride=tuple(layer["stride"]), padding=pad,
                   dilation=tuple(layer["dilation"]), groups=layer["groups"], bias=layer["bias"],
                   padding_mode=layer["padding_mode"])
    if t.startswith("batchnorm"):
        cls_bn = nn.BatchNorm1d if t == "batchnorm1d" else nn.BatchNorm2d
        return cls_bn(layer["num_features"], eps=layer["eps"], momentum=layer["momentum"], affine=layer["affine"],
                      track_running_stats=layer["track_running_stats"])
    if t == "layernorm":
        return nn.LayerNorm(layer["normalized_shape"], eps=layer["eps"],
                            elementwise_affine=layer["elementwise_affine"], bias=layer["bias"])
    if t == "groupnorm":
        return nn.GroupNorm(layer["num_groups"], layer["num_channels"], eps=layer["eps"], affine=layer["affine"])
    simple = {"relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "identity": nn.Identity}
    if t in simple:
        return simple[t]()
    if t == "gelu":
        return nn.GELU(approximate=layer["approximate"])
    if t == "leaky_relu":
        return nn.LeakyReLU(layer["slope"])
    if t == "sine":
        return Sine(layer["w0"])
    if t == "dropout":
        return nn.Dropout(layer["p"])
    if t == "flatten":
        return nn.Flatten()
    if t in ("global_avg_pool", "global_max_pool"):
        avg = t == "global_avg_pool"
        pools: dict[tuple[bool, int], type[nn.Module]] = {
            (True, 1): nn.AdaptiveAvgPool1d, (True, 2): nn.AdaptiveAvgPool2d,
            (False, 1): nn.AdaptiveMaxPool1d, (False, 2): nn.AdaptiveMaxPool2d,
        }
        return pools[(avg, layer["dims"])](1)
    if t == "sequential":
        return _build_sequential(layer["layers"], f"{where}.layers")
    if t == "residual":
        sc = None if layer["shortcut"] is None else _build_sequential(layer["shortcut"], f"{where}.shortcut")
        return Residual(_build_sequential(layer["layers"], f"{where}.layers"), sc)
    raise UnsupportedLayerError(layer.get("path", where), layer.get("module", t), "it cannot be rebuilt from a spec")


def _build_sequential(layers: list[dict[str, Any]], where: str) -> nn.Sequential:
    return nn.Sequential(OrderedDict(
        (layer.get("name", str(i)), _build_layer(layer, f"{where}[{i}]")) for i, layer in enumerate(layers)
    ))


def build_module(spec: Mapping[str, Any]) -> nn.Module:
    """Build the ``nn.Module`` a spec describes (fresh PyTorch-default initialisation, train mode).

    Parameter names are deterministic: the same spec always yields the same ``state_dict()`` keys, so the
    stored weights load with ``load_state_dict(strict=True)``. HF specs need ``transformers`` (the ``hf``
    extra) and build ``transformers.<class>(<Config>(**config))``.
    """
    spec = validate_spec(spec)
    if spec["format"] == CLASS_FORMAT:
        return build_from_reference(spec["class"])
    if spec["format"] == HF_FORMAT:
        return build_hf(spec)
    if spec["format"] == TORCH_FORMAT:
        try:
            return getattr(nn, spec["class"])(**spec["config"])  # type: ignore[no-any-return]
        except TypeError as exc:
            raise SpecError(f"torch spec of {spec['class']}: {exc}") from exc
    if spec["format"] == "weightzoo.cells/1":
        return build_cells(spec)
    return _build_sequential(spec["layers"], "layers")


# --- module -> spec ----------------------------------------------------------------------------------

_ACT_MODULES: dict[type[nn.Module], str] = {
    nn.ReLU: "relu", nn.SiLU: "silu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.Identity: "identity",
}


def _pair(v: Any) -> list[int]:
    return list(v) if isinstance(v, tuple | list) else [v]


def _layer_from_module(m: nn.Module, path: str, strict: bool) -> dict[str, Any]:
    t = type(m)
    if t is nn.Linear:
        return {"type": "linear", "in": m.in_features, "out": m.out_features, "bias": m.bias is not None}
    if t in (nn.Conv1d, nn.Conv2d):
        conv: Any = m
        return {"type": "conv1d" if t is nn.Conv1d else "conv2d", "in": conv.in_channels, "out": conv.out_channels,
                "kernel": _pair(conv.kernel_size), "stride": _pair(conv.stride),
                "padding": conv.padding if isinstance(conv.padding, str) else _pair(conv.padding),
                "dilation": _pair(conv.dilation), "groups": conv.groups, "bias": conv.bias is not None,
                "padding_mode": conv.padding_mode}
    if t in (nn.BatchNorm1d, nn.BatchNorm2d):
        bn: Any = m
        if bn.momentum is None:
            raise UnsupportedLayerError(path, t.__name__, "momentum=None (cumulative averaging) has no spec field")
        return {"type": t.__name__.lower(), "num_features": bn.num_features, "eps": bn.eps, "momentum": bn.momentum,
                "affine": bn.affine, "track_running_stats": bn.track_running_stats}
    if t is nn.LayerNorm:
        ln: Any = m
        return {"type": "layernorm", "normalized_shape": list(ln.normalized_shape), "eps": ln.eps,
                "elementwise_affine": ln.elementwise_affine, "bias": ln.bias is not None or not ln.elementwise_affine}
    if t is nn.GroupNorm:
        gn: Any = m
        return {"type": "groupnorm", "num_groups": gn.num_groups, "num_channels": gn.num_channels, "eps": gn.eps,
                "affine": gn.affine}
    if t in _ACT_MODULES:
        return {"type": _ACT_MODULES[t]}
    if t is nn.GELU:
        return {"type": "gelu", "approximate": m.approximate}
    if t is nn.LeakyReLU:
        return {"type": "leaky_relu", "slope": m.negative_slope}
    if t is Sine:
        return {"type": "sine", "w0": m.w0}
    if t is nn.Dropout:
        return {"type": "dropout", "p": m.p}
    if t is nn.Flatten:
        if m.start_dim != 1 or m.end_dim != -1:
            return _unsupported(m, path, strict, "only Flatten(start_dim=1, end_dim=-1) is covered")
        return {"type": "flatten"}
    if t in (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d):
        dims = 1 if t.__name__.endswith("1d") else 2
        size = m.output_size if isinstance(m.output_size, tuple | list) else (m.output_size,)
        if any(s != 1 for s in size) or (t in (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d) and m.return_indices):
            return _unsupported(m, path, strict, "only global pooling (output_size=1) is covered")
        return {"type": "global_avg_pool" if "Avg" in t.__name__ else "global_max_pool", "dims": dims}
    if t is nn.Sequential:
        return {"type": "sequential", "layers": _layers_from_sequential(m, path, strict)}
    if t is Residual:
        res: Any = m
        sc = None if res.shortcut is None else _layers_from_sequential(res.shortcut, _join(path, "shortcut"), strict)
        return {"type": "residual", "layers": _layers_from_sequential(res.block, _join(path, "block"), strict),
                "shortcut": sc}
    return _unsupported(m, path, strict, "")


def _unsupported(m: nn.Module, path: str, strict: bool, hint: str) -> dict[str, Any]:
    if strict:
        raise UnsupportedLayerError(path or "<root>", type(m).__name__, hint or _HINT)
    names = [_join(path, k) for k in m.state_dict()]
    return {"type": "unsupported", "module": type(m).__name__, "path": path, "tensors": names}


_HINT = ("covered: Linear, Conv1d/2d, BatchNorm1d/2d, LayerNorm, GroupNorm, ReLU/GELU/SiLU/Tanh/Sigmoid/"
         "LeakyReLU/Sine, Dropout, Flatten, global pooling, nn.Sequential and weightzoo.zoo.arch.Residual; "
         "pass strict=False to skip it")


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _layers_from_sequential(seq: nn.Module, path: str, strict: bool) -> list[dict[str, Any]]:
    layers = []
    for i, (name, child) in enumerate(seq.named_children()):
        layer = _layer_from_module(child, _join(path, name), strict)
        if name != str(i):
            layer["name"] = name
        layers.append(layer)
    return layers


def spec_from_module(module: nn.Module, *, input_shape: list[int] | tuple[int, ...] | None = None,
                     strict: bool = True) -> dict[str, Any]:
    """The spec of an ``nn.Sequential``-style model built from supported layers.

    The spec keeps the module's child names, so ``build_module(spec).state_dict()`` has exactly the
    module's keys. Raises :class:`~weightzoo.errors.UnsupportedLayerError` naming the module path and
    type for anything else; with ``strict=False`` such a module becomes an ``{"type": "unsupported"}``
    entry that graphs skip (and that :func:`build_module` refuses).
    """
    if type(module) is not nn.Sequential:
        # The layer order of any other container is its forward(), which a spec cannot see.
        raise UnsupportedLayerError("<root>", type(module).__name__,
                                    "only nn.Sequential models (of supported layers) have a spec")
    layers = _layers_from_sequential(module, "", strict)
    spec: dict[str, Any] = {"format": SPEC_FORMAT, "layers": layers}
    if input_shape is not None:
        spec["input_shape"] = list(input_shape)
    return validate_spec(spec)


def load_spec_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """An architecture spec (or a Hugging Face config) from a JSON file; ``SpecError`` if it cannot be read
    or is not a JSON object."""
    try:
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SpecError(f"cannot read spec {os.fspath(path)}: {exc}") from exc
    if not isinstance(spec, dict):
        raise SpecError(f"{os.fspath(path)}: a spec is a JSON object")
    return spec


__all__ = [
    "ACTIVATIONS", "HF_FORMAT", "LAYER_TYPES", "NORMS", "Residual", "SPEC_FORMAT", "Sine", "TORCH_FORMAT", "build_module",
    "load_spec_file", "spec_from_module", "validate_spec",
]
