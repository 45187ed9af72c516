"""GHN prediction time for a ResNet-50-size module, against PyTorch's own initialisation of it.

* ``resnet50``: ``transformers.ResNetModel(ResNetConfig())`` (ResNet-50, 23.5 M parameters; needs
  ``transformers``). Times, each the minimum over ``--repeat`` runs after one warm-up: recording the
  ComputeGraph (eager, virtual edges), the GHN prediction of every parameter (``predict_parameters`` on
  that graph, which copies the module), and the total. Baseline in the same run: PyTorch's default
  initialisation of the same module (``reset_parameters`` on every submodule) — printed as the ratio
  ``GHN total / default init``.
* a meta-batch training step of ``--meta-batch`` architectures of the ``archs`` generator (GHN forward,
  the networks' forward on 64 digits images, backward, AdamW step): seconds per step.

The GHN is untrained (timing does not depend on its weights); its parameter count is printed.
Usage: ``python benchmarks/hyper.py [--repeat 3] [--threads 1] [--hidden 32] [--encoder gated] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    out = fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _reset(module: nn.Module) -> None:
    for m in module.modules():
        if hasattr(m, "reset_parameters") and callable(m.reset_parameters):
            m.reset_parameters()


def main() -> None:
    ap = argparse.ArgumentParser(description="GHN prediction and training-step times")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--encoder", default="gated")
    ap.add_argument("--meta-batch", type=int, default=8)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import ResNetConfig, ResNetModel

    from weightzoo.hyper import GHN, predict_parameters
    from weightzoo.zoo.graphs import ComputeGraph

    torch.manual_seed(0)
    ghn = GHN(hidden=args.hidden, encoder=args.encoder).eval()
    model = ResNetModel(ResNetConfig()).eval()
    graph_s, graph = _best(lambda: ComputeGraph.record(model), args.repeat)
    predict_s, result = _best(lambda: predict_parameters(ghn, model, graph=graph), args.repeat)
    default_s, _ = _best(lambda: _reset(model), args.repeat)
    total = graph_s + predict_s
    fig: dict[str, Any] = {
        "model": "transformers ResNetModel(ResNetConfig()) (ResNet-50)",
        "model_parameters": sum(p.numel() for p in model.parameters()), "graph_nodes": graph.num_nodes,
        "ghn_parameters": sum(p.numel() for p in ghn.parameters()), "encoder": args.encoder, "hidden": args.hidden,
        "graph_seconds": graph_s, "predict_seconds": predict_s, "total_seconds": total,
        "predicted_fraction": result.report.fraction, "default_init_seconds": default_s,
        "ratio_total_over_default_init": total / default_s, "target_total_seconds": 0.5, "threads": args.threads}

    import numpy as np

    from weightzoo.datasets.archs import sample_cells_spec
    from weightzoo.hyper.archs import Architecture, image_splits
    from weightzoo.hyper.train import predict_prepared, prepare

    archs = [Architecture(f"b{i}", sample_cells_spec(np.random.default_rng(i), "mixed"), "train", "mixed")
             for i in range(args.meta_batch)]
    prepared = [prepare(a) for a in archs]
    images = image_splits()
    x, y = images.x_train[:64], images.y_train[:64]
    train_ghn = GHN(hidden=args.hidden, encoder=args.encoder)
    opt = torch.optim.AdamW(train_ghn.parameters(), lr=1e-3)

    def step() -> None:
        predicted = predict_prepared(train_ghn, prepared)
        loss = torch.stack([nn.functional.cross_entropy(torch.func.functional_call(p.module, params, (x,),
                                                                                   strict=False), y)
                            for p, params in zip(prepared, predicted, strict=True)]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    fig["train_step_seconds"], _ = _best(step, args.repeat)
    fig["train_step_meta_batch"] = args.meta_batch
    if args.json:
        print(json.dumps(fig, indent=1))
        return
    print(f"{fig['model']}: {fig['model_parameters'] / 1e6:.1f} M parameters, {graph.num_nodes} graph nodes; "
          f"GHN ({args.encoder}, hidden {args.hidden}) {fig['ghn_parameters']:,} parameters")
    print(f"  ComputeGraph {graph_s:.3f} s + prediction {predict_s:.3f} s = {total:.3f} s (target <= 0.5 s); "
          f"{result.report.fraction:.0%} of parameter tensors predicted")
    print(f"  baseline PyTorch default init of the same module: {default_s:.3f} s -> ratio GHN/default "
          f"{total / default_s:.2f}")
    print(f"  training step, meta-batch of {args.meta_batch} architectures: {fig['train_step_seconds']:.3f} s")


if __name__ == "__main__":
    main()
