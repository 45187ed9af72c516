r"""``digits-inr``: one SIREN per digit image, several fits per image, fitted many at a time.

Recipe 1 (the NFN/DWSNets INR protocol on scikit-learn digits): each 8×8 image (pixels in [0, 1]) is
upsampled bilinearly to ``resolution`` × ``resolution`` (16 by default; 28 gives MNIST's size) and fitted
by a SIREN 2→32→32→1 with :math:`\omega_0 = 30` on coordinates in [-1, 1]²:

.. math:: f(x) = W_3\,\sin(\omega_0(W_2 \sin(\omega_0(W_1 x + b_1)) + b_2)) + b_3

with SIREN initialisation (first layer :math:`U(-1/2, 1/2)`, later layers :math:`U(\pm\sqrt{6/n}/\omega_0)`,
biases :math:`U(\pm 1/\sqrt{n})`) and full-batch Adam (lr 1e-3) on the pixel MSE until the fit reaches
``target_psnr`` (40 dB by default, :math:`\mathrm{PSNR} = 10\log_{10}(1/\mathrm{MSE})`); the weights are
taken at the first step a fit reaches the target (so all fits have the same quality), or after
``max_steps``. Each image gets ``fits`` fits (10 by default) from different initialisations.

Initialisation: independent per fit by default. ``shared_init=True`` starts fit *f* of every image
from the same weights (one initialisation per fit index): the weights then differ across images only
by what the image taught them, which makes classification easy for models that are not permutation
equivariant — an optimistic benchmark; keep it for ablations.

Many SIRENs train at once: their weights are stacked (B×32×2, B×32×32, …) and every layer is one
batched matmul (``torch.bmm``), so 640 fits cost about as much as a handful run one by one. The loss is
the *sum* of per-network MSEs, so every network's gradient is exactly its own.

Splits are by image: all fits of one image share its split.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from weightzoo.errors import DatasetError

from .builder import (
    DatasetBuilder,
    ModelItem,
    UnitResult,
    WorkUnit,
    categorical_summary,
    derive_seed,
    numeric_summary,
)

HIDDEN = 32
W0 = 30.0
CHUNK_IMAGES = 64


def siren_spec(hidden: int = HIDDEN, w0: float = W0) -> dict[str, Any]:
    """The SIREN 2→hidden→hidden→1 as a ``weightzoo.arch/1`` spec (tensors ``0.*``, ``2.*``, ``4.*``)."""
    return {"format": "weightzoo.arch/1", "input_shape": [2], "layers": [
        {"type": "linear", "in": 2, "out": hidden}, {"type": "sine", "w0": w0},
        {"type": "linear", "in": hidden, "out": hidden}, {"type": "sine", "w0": w0},
        {"type": "linear", "in": hidden, "out": 1}]}


def grid_coordinates(resolution: int) -> torch.Tensor:
    """Pixel-centre coordinates in [-1, 1]², row-major (``resolution² × 2``, (y, x) order)."""
    t = (torch.arange(resolution, dtype=torch.float32) + 0.5) / resolution * 2 - 1
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([yy.reshape(-1), xx.reshape(-1)], 1)


def upsampled_images(indices: list[int], resolution: int) -> torch.Tensor:
    """Digits images ``indices`` in [0, 1], bilinearly upsampled: ``len(indices) × resolution²``."""
    from .digits import digits_images

    images, _ = digits_images()
    x = torch.from_numpy((images[indices] + 1.0) / 2.0).unsqueeze(1)  # back from [-1, 1] to [0, 1]
    up = torch.nn.functional.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    return up.reshape(len(indices), -1).clamp(0, 1)


def psnr(mse: torch.Tensor) -> torch.Tensor:
    """PSNR in dB for signals in [0, 1]: ``10·log10(1/MSE)``."""
    return -10.0 * torch.log10(mse.clamp_min(1e-12))


def siren_init(seeds: list[int], hidden: int = HIDDEN, w0: float = W0) -> list[torch.Tensor]:
    """Stacked SIREN initialisations, one per seed: ``[W1, b1, W2, b2, W3, b3]`` with a leading batch dim."""
    shapes = [((hidden, 2), 1 / 2), ((hidden,), 1 / math.sqrt(2)), ((hidden, hidden), math.sqrt(6 / hidden) / w0),
              ((hidden,), 1 / math.sqrt(hidden)), ((1, hidden), math.sqrt(6 / hidden) / w0),
              ((1,), 1 / math.sqrt(hidden))]
    out: list[list[torch.Tensor]] = [[] for _ in shapes]
    for s in seeds:
        g = torch.Generator().manual_seed(s)
        for k, (shape, bound) in enumerate(shapes):
            out[k].append((torch.rand(shape, generator=g) * 2 - 1) * bound)
    return [torch.stack(t) for t in out]


def siren_forward(params: list[torch.Tensor], coords: torch.Tensor, w0: float = W0) -> torch.Tensor:
    """Batched SIREN forward: ``B`` networks on shared ``coords`` (P×2) → ``B × P``."""
    w1, b1, w2, b2, w3, b3 = params
    h = torch.sin(w0 * (torch.einsum("pi,boi->bpo", coords, w1) + b1[:, None, :]))
    h = torch.sin(w0 * (torch.bmm(h, w2.transpose(1, 2)) + b2[:, None, :]))
    return (torch.bmm(h, w3.transpose(1, 2)) + b3[:, None, :]).squeeze(-1)


def fit_sirens(targets: torch.Tensor, seeds: list[int], *, resolution: int, target_psnr: float,
               max_steps: int = 2000, lr: float = 1e-3) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Fit ``B`` SIRENs (``targets``: B×P) at once. Returns (stacked params, PSNR per fit, steps per fit).

    Each fit's weights are snapshotted at the first step its PSNR reaches ``target_psnr`` (steps = that
    step); fits that never reach it keep their last weights (steps = ``max_steps``).
    """
    coords = grid_coordinates(resolution)
    params = [p.requires_grad_() for p in siren_init(seeds)]
    best = [p.detach().clone() for p in params]
    reached = torch.zeros(len(seeds), dtype=torch.bool)
    steps = torch.full((len(seeds),), max_steps, dtype=torch.long)
    opt = torch.optim.Adam(params, lr=lr)
    for step in range(max_steps + 1):
        out = siren_forward(params, coords)
        mse = ((out - targets) ** 2).mean(1)
        with torch.no_grad():
            now = (psnr(mse) >= target_psnr) & ~reached
            if now.any():
                for b, p in zip(best, params):
                    b[now] = p.detach()[now]
                steps[now] = step
                reached |= now
            if bool(reached.all()) or step == max_steps:
                break
        opt.zero_grad(set_to_none=True)
        mse.sum().backward()
        opt.step()
    with torch.no_grad():
        for b, p in zip(best, params):
            b[~reached] = p.detach()[~reached]
        final_psnr = psnr(((siren_forward(best, coords) - targets) ** 2).mean(1))
    return best, final_psnr, steps


def fit_chunk(unit: WorkUnit) -> UnitResult:
    """Fit every (image, fit) SIREN of a chunk in one batch (a work-unit function)."""
    from .digits import digits_images

    p = dict(unit.params)
    _, labels = digits_images()
    jobs = [(img, f) for img in p["images"] for f in range(p["fits"])]
    seeds = [p["init_seeds"][f] if p["shared_init"] else derive_seed(p["dataset"], p["seed"], img, f)
             for img, f in jobs]
    targets = upsampled_images([img for img, _ in jobs], p["resolution"])
    params, quality, steps = fit_sirens(targets, seeds, resolution=p["resolution"], target_psnr=p["target_psnr"],
                                        max_steps=p["max_steps"])
    spec = siren_spec()
    keys = ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    items = []
    for k, ((img, f), s) in enumerate(zip(jobs, seeds)):
        state = {name: t[k].numpy().copy() for name, t in zip(keys, params)}
        q = float(quality[k])
        md = {"dataset": p["dataset"], "image": img, "label": int(labels[img]), "fit": f, "seed": s,
              "shared_init": p["shared_init"], "resolution": p["resolution"], "w0": W0, "psnr": q,
              "target_psnr": p["target_psnr"], "reached": q >= p["target_psnr"], "steps": int(steps[k]),
              "split": p["splits"][img]}
        items.append(ModelItem(f"{p['dataset']}/i{img:04d}-f{f}", state, spec, md))
    return UnitResult(unit.key, items)


class DigitsINRBuilder(DatasetBuilder):
    """digits-inr: SIRENs fitted to digits images; ``size`` = images (≤ 1,797), ``fits`` per image."""

    name = "digits-inr"
    recipe_version = 1
    default_size = 1797
    size_unit = "images"

    def __init__(self, fits: int = 10, resolution: int = 16, target_psnr: float = 40.0, shared_init: bool = False,
                 max_steps: int = 2000) -> None:
        if fits < 1 or resolution not in (16, 28) or not 10 <= target_psnr <= 60 or max_steps < 1:
            raise ValueError(f"{type(self).__name__}: need fits >= 1, resolution 16 or 28, 10 <= target_psnr <= 60, "
                             f"max_steps >= 1; got fits={fits}, resolution={resolution}, target_psnr={target_psnr}, "
                             f"max_steps={max_steps}")
        self.fits, self.resolution, self.target_psnr = fits, resolution, float(target_psnr)
        self.shared_init, self.max_steps = bool(shared_init), max_steps

    def recipe(self) -> dict[str, Any]:
        return {"fits": self.fits, "resolution": self.resolution, "target_psnr": self.target_psnr,
                "shared_init": self.shared_init, "max_steps": self.max_steps, "hidden": HIDDEN, "w0": W0,
                "optimizer": "adam", "lr": 1e-3}

    def units(self, size: int, seed: int) -> list[WorkUnit]:
        from .digits import N_IMAGES

        if size > N_IMAGES:
            raise DatasetError(f"digits-inr: size is a number of images, at most {N_IMAGES}; got {size}")
        init_seeds = [derive_seed(self.name, seed, "shared-init", f) for f in range(self.fits)]
        out = []
        for start in range(0, size, CHUNK_IMAGES):
            images = list(range(start, min(size, start + CHUNK_IMAGES)))
            groups = {f"i{i:04d}": tuple(f"{self.name}/i{i:04d}-f{f}" for f in range(self.fits)) for i in images}
            params = {"dataset": self.name, "seed": seed, "images": images, "fits": self.fits,
                      "resolution": self.resolution, "target_psnr": self.target_psnr, "shared_init": self.shared_init,
                      "init_seeds": init_seeds, "max_steps": self.max_steps,
                      "splits": {i: self.split_of(seed, f"i{i:04d}") for i in images}}
            final = tuple(n for names in groups.values() for n in names)
            out.append(WorkUnit(f"c{start:04d}", fit_chunk, groups, final, params))
        return out

    def summarize(self, final: list[Any]) -> dict[str, Any]:
        by_split: dict[str, list[int]] = {}
        for r in final:
            by_split.setdefault(r.metadata.get("split", "?"), []).append(r.metadata["label"])
        return {"label": categorical_summary(r.metadata["label"] for r in final),
                "label_by_split": {s: categorical_summary(v) for s, v in sorted(by_split.items())},
                "psnr": numeric_summary([r.metadata["psnr"] for r in final], lo=0.0, hi=60.0, bins=12),
                "steps": numeric_summary([r.metadata["steps"] for r in final], lo=0.0, hi=float(self.max_steps)),
                "reached_target": float(np.mean([bool(r.metadata["reached"]) for r in final])) if final else None}


__all__ = ["DigitsINRBuilder", "fit_chunk", "fit_sirens", "grid_coordinates", "psnr", "siren_forward",
           "siren_init", "siren_spec", "upsampled_images"]
