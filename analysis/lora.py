r"""LoRA adapters (PEFT layout) as task vectors.

A LoRA adapter stores, for each adapted module ``m``, two low-rank factors ``m.lora_A.weight``
(:math:`A \in \mathbb{R}^{r\times d_{in}}`) and ``m.lora_B.weight`` (:math:`B \in \mathbb{R}^{d_{out}\times r}`),
under the prefix ``base_model.model.``. Merged into the base, the module's weight becomes
:math:`W + s\,BA` with :math:`s = \alpha/r` (``lora_alpha / r``), or :math:`s = \alpha/\sqrt{r}` with
``use_rslora``. So the adapter *is* a task vector with :math:`\Delta W = s\,BA` keyed by ``m.weight``:

- Linear: ``B @ A`` (transposed when ``fan_in_fan_out``, GPT-2's Conv1D);
- Embedding (``lora_embedding_A`` of shape ``(r, num_embeddings)``, ``lora_embedding_B`` of shape
  ``(dim, r)``): ``(B @ A).T``;
- Conv (``A`` of shape ``(r, c_in, k_h, k_w)``, ``B`` of shape ``(c_out, r, 1, 1)``): ``B A`` over the
  flattened kernels, reshaped to ``(c_out, c_in, k_h, k_w)``.

Other tensors in the adapter file (``modules_to_save`` copies, trained biases) are full values and become
``saved - base``. DoRA adapters (``lora_magnitude_vector``) are refused: they are not additive.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from weightzoo.errors import CheckpointError, InvalidOptionError, UnsupportedFormatError

from .sources import (
    compute_dtype,
    find_weights_file,
    open_source,
    pattern_value,
    read_json,
    tensor_specs,
)

_PREFIX = "base_model.model."
_LORA = re.compile(r"^(?P<mod>.+)\.lora_(?P<kind>A|B|embedding_A|embedding_B)(?:\.(?P<adapter>[^.]+))?(?:\.weight)?$")


def _strip(name: str) -> str:
    name = name[len(_PREFIX):] if name.startswith(_PREFIX) else name
    return name.replace(".modules_to_save.default.", ".").replace(".original_module.", ".")


def lora_deltas(adapter: str | os.PathLike[str] | Mapping[str, torch.Tensor], base: Any, *,
                config: Mapping[str, Any] | None, zoo: Any = None
                ) -> tuple[dict[str, tuple[int, ...]], Callable[[str], torch.Tensor], Mapping[str, torch.Tensor] | None]:
    """Shapes and a per-tensor function of the adapter's deltas, plus the opened base (or ``None``)."""
    if isinstance(adapter, Mapping):
        if config is None:
            raise InvalidOptionError("from_lora with a mapping of tensors needs config= (the adapter_config.json dict)")
        sd: Mapping[str, torch.Tensor] = adapter
        cfg = dict(config)
        where = "adapter"
    else:
        folder = Path(adapter)
        if folder.is_file():
            folder, weights = folder.parent, folder
        else:
            weights = find_weights_file(folder, ["adapter_model"])
        cfg = dict(config) if config is not None else read_json(folder / "adapter_config.json")
        sd = open_source(str(weights))
        where = str(weights)
    if cfg.get("use_dora"):
        raise UnsupportedFormatError(where, "DoRA adapters rescale weights per column and are not additive task vectors")
    alpha0 = float(cfg.get("lora_alpha", cfg.get("r", 8)))
    alphas = cfg.get("alpha_pattern") or {}
    rslora = bool(cfg.get("use_rslora", False))
    fifo = bool(cfg.get("fan_in_fan_out", False))

    specs = tensor_specs(sd)
    pairs: dict[str, dict[str, str]] = {}
    full: dict[str, str] = {}  # base name -> adapter key of a full replacement tensor
    for key in specs:
        if "lora_magnitude_vector" in key:
            raise UnsupportedFormatError(where, f"{key} is a DoRA magnitude; DoRA adapters are not additive task vectors")
        m = _LORA.match(key)
        if m:
            mod = _strip(m.group("mod"))
            pairs.setdefault(mod, {})[m.group("kind")] = key
        elif specs[key].is_float:
            full[_strip(key)] = key

    shapes: dict[str, tuple[int, ...]] = {}
    plan: dict[str, tuple[str, Any]] = {}
    for mod, ab in pairs.items():
        emb = "embedding_A" in ab or "embedding_B" in ab
        ka, kb = (ab.get("embedding_A"), ab.get("embedding_B")) if emb else (ab.get("A"), ab.get("B"))
        if ka is None or kb is None:
            raise CheckpointError(where, f"module {mod!r} has only one of its LoRA factors")
        a, b = specs[ka].shape, specs[kb].shape
        r = a[0]
        if b[1] != r:
            raise CheckpointError(where, f"module {mod!r}: lora_A {a} and lora_B {b} disagree on the rank")
        alpha = float(pattern_value(alphas, mod, alpha0))
        s = alpha / math.sqrt(r) if rslora else alpha / r
        shape: tuple[int, ...]
        if emb:
            shape = (a[1], b[0])
        elif len(a) == 4:
            shape = (b[0], a[1], a[2], a[3])
        else:
            shape = (a[1], b[0]) if fifo else (b[0], a[1])
        name = f"{mod}.weight"
        shapes[name] = shape
        plan[name] = ("lora", (ka, kb, s, emb, len(a) == 4, fifo))

    base_sd = open_source(base, zoo=zoo) if base is not None else None
    if full and base_sd is None:
        raise InvalidOptionError(f"{where}: the adapter saves full tensors ({', '.join(list(full)[:5])}); pass base= to "
                             "turn them into differences")
    for name, key in full.items():
        if name in shapes:
            raise CheckpointError(where, f"{name} is both LoRA-adapted and saved in full")
        shapes[name] = specs[key].shape
        plan[name] = ("full", key)

    def get(name: str) -> torch.Tensor:
        kind, arg = plan[name]
        if kind == "full":
            saved, ref = sd[arg], base_sd[name]  # type: ignore[index]
            dt = compute_dtype(saved.dtype, ref.dtype)
            return saved.to(dt, copy=True).sub_(ref.to(dt))
        ka, kb, s, emb, conv, fan = arg
        A, B = sd[ka], sd[kb]
        dt = compute_dtype(A.dtype, B.dtype)
        A, B = A.to(dt), B.to(dt)
        if conv:
            d = (B.flatten(1) @ A.flatten(1)).reshape(shapes[name])
        else:
            d = B @ A
            if emb or fan:
                d = d.T.contiguous()
        return d.mul_(s)

    return shapes, get, base_sd


__all__ = ["lora_deltas"]
