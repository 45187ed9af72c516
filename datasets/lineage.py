"""``digits-lineage``: fine-tune trees with known parents — ground truth for lineage recovery and task vectors.

Recipe 1. Each tree (``size`` trees) starts from a **base**: the digits-cnn architecture (relu, Kaiming
normal init, no dropout) trained with Adam (lr 3e-3, batch 32) for 8 epochs on all training images.
It gets 2–4 **fine-tunes**, each on a random subset of 3–5 digits (Adam lr 1e-3, 3 epochs, only the
training images of those digits); each fine-tune gets 0–2 fine-tunes of its own on another subset
(2 epochs). With probability 0.5 two first-level fine-tunes are **merged** by weight averaging.

Names: ``digits-lineage/t0003-base``, ``…-ft1`` (first level), ``…-ft1-ft0`` (second level),
``…-merge-ft0-ft2``. Lineage edges in the catalogue (``zoo.lineage(name)``): every fine-tune →
its parent with relation ``finetune``; a merge → each of its parents with relation ``merge``.
Metadata: ``tree``, ``role`` (base/finetune/merge), ``depth``, ``digits`` (the subset trained on; all
ten for the base), ``epochs``, ``learning_rate``, accuracies and losses on all test images, and
``subset_accuracy`` (test images of the model's digits). Splits are by tree.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .builder import (
    DatasetBuilder,
    ModelItem,
    UnitResult,
    WorkUnit,
    categorical_summary,
    derive_seed,
    numeric_summary,
)


def _plan(rng: np.random.Generator, prefix: str) -> list[dict[str, Any]]:
    """The tree's nodes in training order: name, role, parent(s), digits, epochs, lr."""
    nodes: list[dict[str, Any]] = [{"name": f"{prefix}-base", "role": "base", "parents": [], "digits": list(range(10)),
                                    "epochs": 8, "lr": 3e-3, "depth": 0}]
    level1: list[dict[str, Any]] = []
    for i in range(int(rng.integers(2, 5))):
        digits = sorted(int(d) for d in rng.choice(10, size=int(rng.integers(3, 6)), replace=False))
        n: dict[str, Any] = {"name": f"{prefix}-ft{i}", "role": "finetune", "parents": [f"{prefix}-base"], "digits": digits,
             "epochs": 3, "lr": 1e-3, "depth": 1}
        nodes.append(n)
        level1.append(n)
    for n1 in level1:
        for j in range(int(rng.integers(0, 3))):
            digits = sorted(int(d) for d in rng.choice(10, size=int(rng.integers(3, 6)), replace=False))
            nodes.append({"name": f"{n1['name']}-ft{j}", "role": "finetune", "parents": [n1["name"]],
                          "digits": digits, "epochs": 2, "lr": 1e-3, "depth": 2})
    if rng.random() < 0.5:
        a, b = sorted(int(x) for x in rng.choice(len(level1), size=2, replace=False))
        pa, pb = level1[a], level1[b]
        nodes.append({"name": f"{prefix}-merge-ft{a}-ft{b}", "role": "merge", "parents": [pa["name"], pb["name"]],
                      "digits": sorted(set(pa["digits"]) | set(pb["digits"])), "epochs": 0, "lr": None, "depth": 2})
    return nodes


def lineage_spec() -> dict[str, Any]:
    """The digits-cnn architecture without dropout (fine-tunes keep the base's architecture)."""
    from .cnn_zoo import cnn_spec

    spec = cnn_spec("relu", 0.0)
    spec["layers"] = [layer for layer in spec["layers"] if layer["type"] != "dropout"]
    return spec


def train_tree(unit: WorkUnit) -> UnitResult:
    """Train one tree: base, fine-tunes, fine-tunes of fine-tunes, merges (a work-unit function)."""
    from weightzoo.zoo.arch import build_module

    from .cnn_zoo import init_weights
    from .digits import digits_split, make_optimizer, measure, numpy_state, train_epoch

    p = dict(unit.params)
    data = digits_split()
    spec = lineage_spec()
    gen = torch.Generator().manual_seed(p["seed"])
    states: dict[str, dict[str, torch.Tensor]] = {}
    items, edges = [], []
    for node in p["nodes"]:
        model = build_module(spec)
        if node["role"] == "base":
            init_weights(model, "kaiming_normal", None, gen)
        elif node["role"] == "finetune":
            model.load_state_dict(states[node["parents"][0]])
        else:
            sds = [states[q] for q in node["parents"]]
            model.load_state_dict({k: sum(sd[k] for sd in sds) / len(sds) for k in sds[0]})
        if node["epochs"]:
            mask = torch.isin(data.y_train, torch.tensor(node["digits"]))
            opt = make_optimizer("adam", list(model.parameters()), node["lr"], 0.0)
            for _ in range(node["epochs"]):
                train_epoch(model, opt, data.x_train[mask], data.y_train[mask], batch_size=32, generator=gen)
        model.eval()
        states[node["name"]] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        tmask = torch.isin(data.y_test, torch.tensor(node["digits"]))
        te, tr = measure(model, data.x_test, data.y_test), measure(model, data.x_train, data.y_train)
        sub = measure(model, data.x_test[tmask], data.y_test[tmask])
        md = {"dataset": p["dataset"], "tree": p["index"], "role": node["role"], "depth": node["depth"],
              "digits": node["digits"], "epochs": node["epochs"], "learning_rate": node["lr"], "seed": p["seed"],
              "split": p["split"], "test_accuracy": te["accuracy"], "test_loss": te["loss"],
              "train_accuracy": tr["accuracy"], "train_loss": tr["loss"], "subset_accuracy": sub["accuracy"]}
        items.append(ModelItem(node["name"], numpy_state(model), spec, md))
        relation = "merge" if node["role"] == "merge" else "finetune"
        edges += [(node["name"], parent, relation) for parent in node["parents"]]
    return UnitResult(unit.key, items, edges)


class DigitsLineageBuilder(DatasetBuilder):
    """digits-lineage: ``size`` fine-tune trees (base → fine-tunes → fine-tunes, some merged)."""

    name = "digits-lineage"
    recipe_version = 1
    default_size = 100
    size_unit = "trees"

    def recipe(self) -> dict[str, Any]:
        return {"base": {"epochs": 8, "lr": 3e-3}, "finetunes": [2, 4], "finetune_digits": [3, 5],
                "finetune_epochs": [3, 2], "finetune_lr": 1e-3, "children_per_finetune": [0, 2], "merge_p": 0.5}

    def units(self, size: int, seed: int) -> list[WorkUnit]:
        out = []
        for i in range(size):
            key = f"t{i:04d}"
            tree_seed = derive_seed(self.name, seed, key)
            nodes = _plan(np.random.default_rng(tree_seed), f"{self.name}/{key}")
            names = tuple(n["name"] for n in nodes)
            params = {"dataset": self.name, "index": i, "seed": tree_seed, "nodes": nodes,
                      "split": self.split_of(seed, key)}
            out.append(WorkUnit(key, train_tree, {key: names}, names, params))
        return out

    def summarize(self, final: list[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"role": categorical_summary(r.metadata["role"] for r in final)}
        for role in ("base", "finetune", "merge"):
            rs = [r for r in final if r.metadata["role"] == role]
            out[f"{role}_test_accuracy"] = numeric_summary([r.metadata["test_accuracy"] for r in rs])
            out[f"{role}_subset_accuracy"] = numeric_summary([r.metadata["subset_accuracy"] for r in rs])
        return out


__all__ = ["DigitsLineageBuilder", "lineage_spec", "train_tree"]
