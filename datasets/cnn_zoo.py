"""``digits-cnn`` (the Small CNN Zoo recipe) and ``digits-cnn-wild`` (CNN Wild Park style) on digits.

**digits-cnn**, recipe 1 — the fixed architecture of Unterthiner et al. (2020) scaled to 8×8 digits:
conv 3×3 (1→8) → act → dropout → conv 3×3 stride 2 (8→16) → act → dropout → conv 3×3 stride 2 (16→16)
→ act → global average pooling (over 2×2) → linear (16→10); 3,738 parameters. Per network, from the zoo
seed and the network index:

=================  ===============================================================================
activation         relu, tanh, gelu, silu, leaky_relu (uniform)
w_init, init_std   kaiming_normal / kaiming_uniform / xavier_normal / xavier_uniform (no std), or
                   normal / trunc_normal with std log-uniform in [0.02, 0.5]; biases zero
dropout            uniform [0, 0.5]
l2reg              log-uniform [1e-6, 1e-2] (weight decay)
optimizer, lr      adam / rmsprop with lr log-uniform [3e-4, 1e-2]; sgd (momentum 0.9) with lr
                   log-uniform [3e-3, 1e-1]
train_fraction     uniform [0.1, 1.0] of the 1,297 training images (a seeded subset)
batch size         32; checkpoints after epochs 0, 1, 2, 4, 8, 12
=================  ===============================================================================

Each checkpoint carries ``epoch``, ``seed``, ``train_accuracy`` / ``train_loss`` (all 1,297 training
images), ``test_accuracy`` / ``test_loss`` (the 500 test images), ``test_accuracy_a`` / ``_b`` (the two
fixed halves of the test images), the hyperparameters, ``network``, ``split`` and ``final``.

**digits-cnn-wild**, recipe 1: the same training recipe over varying architectures: depth 2–5 stages,
each a conv or a residual block (two convs, identity or 1×1-projection shortcut; the last two stages
stride 2), widths from {8, 12, 16, 24, 32}, one kernel size per network from {3, 5, 7}, batch norm with
probability 0.3.

**Trajectories** (``trajectory_every=K``, ``--trajectory-every K``; both builders and ``digits-mlp``):
the parameters are also stored every K optimizer steps (step 0 = the initialisation) as
``<dataset>/<network>-s<step>`` with ``trajectory_step`` in their metadata, each linked to the previous
snapshot by a ``checkpoint-of`` lineage edge; tensors are deduplicated like every other checkpoint.
These dense trajectories are the training set of the nowcasters (:mod:`weightzoo.hyper.nowcast`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from .builder import DatasetBuilder, ModelItem, UnitResult, WorkUnit, derive_seed, numeric_summary
from .builder import split_half_reliability as _reliability

EPOCHS = (0, 1, 2, 4, 8, 12)
ACTIVATIONS = ("relu", "tanh", "gelu", "silu", "leaky_relu")
W_INITS = ("kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform", "normal", "trunc_normal")
OPTIMIZERS = ("adam", "rmsprop", "sgd")
LR_RANGES = {"adam": (3e-4, 1e-2), "rmsprop": (3e-4, 1e-2), "sgd": (3e-3, 1e-1)}
CHANCE = 0.2  # "at chance" threshold used in the labels summary (10 classes: 0.1 is pure chance)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def sample_hyperparameters(rng: np.random.Generator) -> dict[str, Any]:
    """One network's training hyperparameters (the table in the module docstring)."""
    w_init = str(rng.choice(W_INITS))
    optimizer = str(rng.choice(OPTIMIZERS))
    return {
        "activation": str(rng.choice(ACTIVATIONS)),
        "w_init": w_init,
        "init_std": _log_uniform(rng, 0.02, 0.5) if w_init in ("normal", "trunc_normal") else None,
        "dropout": float(rng.uniform(0.0, 0.5)),
        "l2reg": _log_uniform(rng, 1e-6, 1e-2),
        "optimizer": optimizer,
        "learning_rate": _log_uniform(rng, *LR_RANGES[optimizer]),
        "train_fraction": float(rng.uniform(0.1, 1.0)),
        "batch_size": 32,
    }


def _act(name: str) -> dict[str, Any]:
    return {"type": name}


def cnn_spec(activation: str, dropout: float) -> dict[str, Any]:
    """The fixed digits-cnn architecture as a ``weightzoo.arch/1`` spec."""
    layers: list[dict[str, Any]] = []
    for i, (cin, cout, stride) in enumerate([(1, 8, 1), (8, 16, 2), (16, 16, 2)]):
        layers += [{"type": "conv2d", "in": cin, "out": cout, "kernel": [3, 3], "stride": [stride, stride],
                    "padding": [1, 1]}, _act(activation)]
        if i < 2:
            layers.append({"type": "dropout", "p": dropout})
    layers += [{"type": "global_avg_pool", "dims": 2}, {"type": "flatten"}, {"type": "linear", "in": 16, "out": 10}]
    return {"format": "weightzoo.arch/1", "input_shape": [1, 8, 8], "layers": layers}


def sample_wild_arch(rng: np.random.Generator, activation: str, dropout: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """A CNN Wild Park style architecture: ``(spec, description)`` (depth, widths, kernel, residual, norm)."""
    depth = int(rng.integers(2, 6))
    kernel = int(rng.choice([3, 5, 7]))
    norm = bool(rng.random() < 0.3)
    pad = kernel // 2
    layers: list[dict[str, Any]] = []
    widths, kinds = [], []
    cin = 1
    for stage in range(depth):
        cout = int(rng.choice([8, 12, 16, 24, 32]))
        residual = stage > 0 and bool(rng.random() < 0.5)
        stride = 2 if stage > 0 and stage >= depth - 2 else 1  # 8×8 → 4×4 → 2×2 before pooling

        def conv(a: int, b: int, s: int = 1) -> list[dict[str, Any]]:
            c = [{"type": "conv2d", "in": a, "out": b, "kernel": [kernel, kernel], "stride": [s, s],
                  "padding": [pad, pad]}]
            return c + ([{"type": "batchnorm2d", "num_features": b}] if norm else [])

        if residual:
            block = conv(cin, cout, stride) + [_act(activation)] + conv(cout, cout)
            shortcut = None if cin == cout and stride == 1 else [
                {"type": "conv2d", "in": cin, "out": cout, "kernel": [1, 1], "stride": [stride, stride]}]
            layers += [{"type": "residual", "layers": block, "shortcut": shortcut}, _act(activation)]
        else:
            layers += conv(cin, cout, stride) + [_act(activation)]
        if stage < depth - 1:
            layers.append({"type": "dropout", "p": dropout})
        widths.append(cout)
        kinds.append("residual" if residual else "conv")
        cin = cout
    layers += [{"type": "global_avg_pool", "dims": 2}, {"type": "flatten"}, {"type": "linear", "in": cin, "out": 10}]
    spec = {"format": "weightzoo.arch/1", "input_shape": [1, 8, 8], "layers": layers}
    desc = {"depth": depth, "widths": widths, "kernel": kernel, "norm": "bn" if norm else "none",
            "residual_blocks": kinds.count("residual")}
    return spec, desc


def init_weights(model: nn.Module, w_init: str, init_std: float | None, generator: torch.Generator) -> None:
    """Initialise every conv/linear weight with ``w_init`` (biases zero), drawing from ``generator``."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            w = m.weight
            with torch.no_grad():
                if w_init == "kaiming_normal":
                    nn.init.kaiming_normal_(w, nonlinearity="relu", generator=generator)
                elif w_init == "kaiming_uniform":
                    nn.init.kaiming_uniform_(w, nonlinearity="relu", generator=generator)
                elif w_init == "xavier_normal":
                    nn.init.xavier_normal_(w, generator=generator)
                elif w_init == "xavier_uniform":
                    nn.init.xavier_uniform_(w, generator=generator)
                elif w_init == "normal":
                    nn.init.normal_(w, 0.0, float(init_std or 0.05), generator=generator)
                elif w_init == "trunc_normal":
                    s = float(init_std or 0.05)
                    nn.init.trunc_normal_(w, 0.0, s, -2 * s, 2 * s, generator=generator)
                else:
                    raise ValueError(f"unknown w_init {w_init!r}; valid: {', '.join(W_INITS)}")
                if m.bias is not None:
                    m.bias.zero_()


def train_network(unit: WorkUnit) -> UnitResult:
    """Train one CNN with its sampled hyperparameters and measure every checkpoint (a work-unit function).

    With ``trajectory`` in the unit's params (``{step: name}``), the parameters are also snapshotted after
    those optimizer steps (step 0 = the initialisation); each snapshot carries ``trajectory_step`` and is
    linked to the previous one by a ``checkpoint-of`` lineage edge.
    """
    from weightzoo.zoo.arch import build_module

    from .digits import digits_split, make_optimizer, measure, numpy_state, train_epoch

    p = dict(unit.params)
    hp, spec, seed = p["hyperparameters"], p["spec"], p["seed"]
    data = digits_split()
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout masks
    model = build_module(spec)
    init_weights(model, hp["w_init"], hp["init_std"], gen)
    n_sub = max(hp["batch_size"], int(round(hp["train_fraction"] * len(data.y_train))))
    sub = torch.randperm(len(data.y_train), generator=gen)[:n_sub]
    x, y = data.x_train[sub], data.y_train[sub]
    opt = make_optimizer(hp["optimizer"], list(model.parameters()), hp["learning_rate"], hp["l2reg"])
    items = []
    lineage: list[tuple[str, str, str]] = []
    trajectory: dict[int, str] = dict(p.get("trajectory") or {})
    steps = [0]
    previous: list[str] = []

    def snapshot() -> None:
        name = trajectory.get(steps[0])
        if name is None:
            return
        md = {"dataset": p["dataset"], "network": p["index"], "trajectory_step": steps[0], "seed": seed,
              "split": p["split"], "final": False, "train_images": n_sub, **hp, **p.get("arch", {})}
        items.append(ModelItem(name, numpy_state(model), spec, md))
        if previous:
            lineage.append((name, previous[0], "checkpoint-of"))
        previous[:] = [name]

    def on_step() -> None:
        steps[0] += 1
        snapshot()

    snapshot()
    epochs = list(p["epochs"])
    done = 0
    for epoch, name in zip(epochs, p["names"]):
        while done < epoch:
            train_epoch(model, opt, x, y, batch_size=hp["batch_size"], generator=gen,
                        on_step=on_step if trajectory else None)
            done += 1
        tr = measure(model, data.x_train, data.y_train)
        te = measure(model, data.x_test, data.y_test)
        md = {"dataset": p["dataset"], "network": p["index"], "epoch": epoch, "seed": seed, "split": p["split"],
              "final": epoch == epochs[-1], "train_accuracy": tr["accuracy"], "train_loss": tr["loss"],
              "test_accuracy": te["accuracy"], "test_loss": te["loss"], "test_accuracy_a": te["accuracy_a"],
              "test_accuracy_b": te["accuracy_b"], "train_images": n_sub, **hp, **p.get("arch", {})}
        items.append(ModelItem(name, numpy_state(model), spec, md))
    return UnitResult(unit.key, items, lineage)


def trajectory_steps(hp: dict[str, Any], epochs: int, every: int) -> list[int]:
    """The optimizer steps a trajectory of ``epochs`` epochs snapshots every ``every`` steps (0 included)."""
    from .digits import N_IMAGES, N_TEST

    n_sub = max(hp["batch_size"], int(round(hp["train_fraction"] * (N_IMAGES - N_TEST))))
    total = epochs * math.ceil(n_sub / hp["batch_size"])
    return list(range(0, total + 1, every))


class DigitsCNNBuilder(DatasetBuilder):
    """digits-cnn: one fixed small CNN, hyperparameters sampled per network (see module docstring)."""

    name = "digits-cnn"
    recipe_version = 1
    default_size = 2000

    def __init__(self, epochs: tuple[int, ...] = EPOCHS, trajectory_every: int | None = None) -> None:
        if not epochs or list(epochs) != sorted(set(epochs)) or epochs[0] < 0:
            raise ValueError(f"{type(self).__name__}: epochs must be increasing non-negative ints, got {epochs!r}")
        if trajectory_every is not None and (not isinstance(trajectory_every, int) or trajectory_every < 1):
            raise ValueError(f"{type(self).__name__}: trajectory_every must be an int >= 1, got {trajectory_every!r}")
        self.epochs = tuple(int(e) for e in epochs)
        self.trajectory_every = trajectory_every

    def recipe(self) -> dict[str, Any]:
        return {"epochs": list(self.epochs), "activations": list(ACTIVATIONS), "w_inits": list(W_INITS),
                "optimizers": {k: list(v) for k, v in LR_RANGES.items()}, "init_std": [0.02, 0.5],
                "dropout": [0.0, 0.5], "l2reg": [1e-6, 1e-2], "train_fraction": [0.1, 1.0], "batch_size": 32,
                "architecture": self._arch_note(),
                **({"trajectory_every": self.trajectory_every} if self.trajectory_every else {})}

    def _arch_note(self) -> str:
        return "conv3x3(1-8)-conv3x3s2(8-16)-conv3x3s2(16-16)-gap-linear(16-10)"

    def _arch(self, rng: np.random.Generator, hp: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        return cnn_spec(hp["activation"], hp["dropout"]), {}

    def units(self, size: int, seed: int) -> list[WorkUnit]:
        out = []
        for i in range(size):
            key = f"n{i:05d}"
            net_seed = derive_seed(self.name, seed, key)
            rng = np.random.default_rng(net_seed)
            hp = sample_hyperparameters(rng)
            spec, arch = self._arch(rng, hp)
            names = tuple(f"{self.name}/{key}-e{e:02d}" for e in self.epochs)
            trajectory = {s: f"{self.name}/{key}-s{s:05d}"
                          for s in trajectory_steps(hp, self.epochs[-1], self.trajectory_every)
                          } if self.trajectory_every else {}
            params = {"dataset": self.name, "index": i, "seed": net_seed, "hyperparameters": hp, "spec": spec,
                      "arch": arch, "epochs": self.epochs, "names": names, "split": self.split_of(seed, key),
                      "trajectory": trajectory}
            group = names + tuple(trajectory.values())
            out.append(WorkUnit(key, train_network, {key: group}, (names[-1],), params))
        return out

    def summarize(self, final: list[Any]) -> dict[str, Any]:
        acc = [r.metadata.get("test_accuracy") for r in final]
        return {"test_accuracy": numeric_summary(acc, chance=CHANCE),
                "train_accuracy": numeric_summary([r.metadata.get("train_accuracy") for r in final]),
                "split_half_kendall_tau": _reliability(final)}


class DigitsCNNWildBuilder(DigitsCNNBuilder):
    """digits-cnn-wild: depth, width, kernel size, residual blocks and norm vary per network."""

    name = "digits-cnn-wild"
    recipe_version = 1
    default_size = 2000

    def _arch_note(self) -> str:
        return "2-5 stages (conv or residual block), widths {8,12,16,24,32}, kernel {3,5,7}, bn p=0.3"

    def _arch(self, rng: np.random.Generator, hp: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        return sample_wild_arch(rng, hp["activation"], hp["dropout"])


__all__ = ["ACTIVATIONS", "CHANCE", "DigitsCNNBuilder", "DigitsCNNWildBuilder", "EPOCHS", "OPTIMIZERS", "W_INITS",
           "cnn_spec", "init_weights", "sample_hyperparameters", "sample_wild_arch", "train_network", "trajectory_steps"]
