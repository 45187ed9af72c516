"""Architecture retrieval results: ops, WL and learned encoders on the archs zoo (in-distribution families,
unseen architectures = split ``test``; unseen families = split ``heldout``) and on real architectures
(tiny Hugging Face configs of several model types at several sizes, family = model type); a 2-D t-SNE
projection of the embeddings coloured by family.

Protocol: relevance = same family; the query is excluded; textbook metrics @10 (weightzoo.analysis.
retrieval.metrics). The learned encoder is trained on the ``train`` split (early stopping on ``val``
MAP@10) with seeds 0..S-1; mean ± std over seeds; a paired bootstrap (10,000 resamples over queries) of
the per-query MAP@10 difference between the learned encoder (averaged over seeds) and the best baseline.

Run (from the repo root, CPU only):
    weightzoo datasets build archs --zoo runs/archs-400 --size 400 --trained-fraction 0 --workers 1
    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python docs/experiments/retrieval_archs.py --zoo runs/archs-400 \
        --seeds 0 1 2 --epochs 25 --max-minutes 8 --out docs/experiments/retrieval_archs.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from weightzoo.analysis.retrieval import (
    OpHistogramEncoder,
    RetrievalIndex,
    WLEncoder,
    evaluate_zoo,
    graph_of_spec,
    resolve_encoder,
    retrieval_metrics,
    train_encoder,
)
from weightzoo.zoo.arch import hf_spec

K = 10

# model type -> (config class, model class, config kwargs for a size (hidden, layers))
def _text(h: int, n: int) -> dict[str, Any]:
    return {"hidden_size": h, "num_hidden_layers": n, "num_attention_heads": max(2, h // 32),
            "intermediate_size": 4 * h, "vocab_size": 128, "max_position_embeddings": 64}


HF_FAMILIES: dict[str, tuple[str, str, Any]] = {
    "bert": ("BertConfig", "BertModel", _text),
    "distilbert": ("DistilBertConfig", "DistilBertModel",
                   lambda h, n: {"dim": h, "n_layers": n, "n_heads": max(2, h // 32), "hidden_dim": 4 * h,
                                 "vocab_size": 128, "max_position_embeddings": 64}),
    "albert": ("AlbertConfig", "AlbertModel", lambda h, n: {**_text(h, n), "embedding_size": max(16, h // 2)}),
    "electra": ("ElectraConfig", "ElectraModel", lambda h, n: {**_text(h, n), "embedding_size": max(16, h // 2)}),
    "gpt2": ("GPT2Config", "GPT2Model", lambda h, n: {"n_embd": h, "n_layer": n, "n_head": max(2, h // 32),
                                                      "vocab_size": 128, "n_positions": 64}),
    "gpt_neo": ("GPTNeoConfig", "GPTNeoModel",
                lambda h, n: {"hidden_size": h, "num_layers": n, "num_heads": max(2, h // 32), "vocab_size": 128,
                              "max_position_embeddings": 64, "attention_types": [[["global", "local"], max(1, n // 2)]]
                              if n % 2 == 0 else [[["global"], n]]}),
    "opt": ("OPTConfig", "OPTModel", lambda h, n: {"hidden_size": h, "num_hidden_layers": n,
                                                   "num_attention_heads": max(2, h // 32), "ffn_dim": 4 * h,
                                                   "vocab_size": 128, "max_position_embeddings": 64,
                                                   "word_embed_proj_dim": h}),
    "llama": ("LlamaConfig", "LlamaModel", _text),
    "bloom": ("BloomConfig", "BloomModel", lambda h, n: {"hidden_size": h, "n_layer": n, "n_head": max(2, h // 32),
                                                         "vocab_size": 128}),
    "mobilebert": ("MobileBertConfig", "MobileBertModel",
                   lambda h, n: {**_text(h, n), "embedding_size": max(16, h // 2), "intra_bottleneck_size": max(16, h // 2),
                                 "true_hidden_size": max(16, h // 2), "num_feedforward_networks": 2}),
    "vit": ("ViTConfig", "ViTModel", lambda h, n: {**_text(h, n), "image_size": 32, "patch_size": 8, "num_channels": 3}),
    "resnet": ("ResNetConfig", "ResNetModel", lambda h, n: {"embedding_size": h // 2, "hidden_sizes": [h // 2 * 2 ** i for i in range(4)],
                                                            "depths": [max(1, n // 2)] * 4, "num_channels": 3}),
    "convnext": ("ConvNextConfig", "ConvNextModel", lambda h, n: {"hidden_sizes": [h // 2 * 2 ** i for i in range(4)],
                                                                  "depths": [max(1, n // 2)] * 4, "num_channels": 3}),
}
SIZES = ((32, 2), (64, 3), (96, 4), (128, 6))


def hf_graphs() -> tuple[list[Any], list[str], list[str], dict[str, str]]:
    import transformers

    graphs, fams, names, failed = [], [], [], {}
    for fam, (cfg_cls, model_cls, kw) in HF_FAMILIES.items():
        for h, n in SIZES:
            name = f"{fam}-h{h}-l{n}"
            try:
                cfg = getattr(transformers, cfg_cls)(**kw(h, n)).to_dict()
                cfg["architectures"] = [model_cls]
                graphs.append(graph_of_spec(hf_spec(cfg)))
                fams.append(fam)
                names.append(name)
            except Exception as exc:  # noqa: BLE001 - a family transformers cannot build here is reported, not fatal
                failed[name] = f"{type(exc).__name__}: {str(exc)[:120]}"
    return graphs, fams, names, failed


def bootstrap_diff(a: np.ndarray, b: np.ndarray, n: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of a − b and its 95 % percentile bootstrap interval (paired, over queries)."""
    d = np.asarray(a) - np.asarray(b)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(n, d.size))].mean(axis=1)
    return float(d.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def mean_std(xs: list[float]) -> tuple[float, float]:
    return float(statistics.mean(xs)), float(statistics.stdev(xs)) if len(xs) > 1 else 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--zoo", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--max-minutes", type=float, default=8.0)
    ap.add_argument("--runs", default="runs/retrieval-enc")
    ap.add_argument("--out", default="docs/experiments/retrieval_archs.json")
    ap.add_argument("--figure", default="docs/img/retrieval_projection.png")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    res: dict[str, Any] = {"k": K, "zoo": args.zoo, "seeds": args.seeds, "epochs": args.epochs}
    baselines = {}
    for enc in (OpHistogramEncoder(), WLEncoder()):
        t = time.perf_counter()
        baselines[enc.name] = {r.group: r for r in evaluate_zoo(args.zoo, [enc], k=K)}
        res.setdefault("wall_s", {})[enc.name] = time.perf_counter() - t
        print(enc.name, {g: r.metrics for g, r in baselines[enc.name].items()}, flush=True)
    learned: dict[str, list[Any]] = {}
    trains = []
    for seed in args.seeds:
        t = time.perf_counter()
        tr = train_encoder(args.zoo, f"{args.runs}/seed{seed}", epochs=args.epochs, max_minutes=args.max_minutes,
                           seed=seed)
        trains.append(tr.to_dict())
        enc = resolve_encoder("learned", run=f"{args.runs}/seed{seed}")
        for r in evaluate_zoo(args.zoo, [enc], k=K):
            learned.setdefault(r.group, []).append(r)
        res.setdefault("wall_s", {})[f"learned_seed{seed}"] = time.perf_counter() - t
        print("learned", seed, tr.best_epoch, tr.best_val_map, {g: v[-1].metrics for g, v in learned.items()}, flush=True)
    res["training"] = trains
    table = {}
    for group in baselines["ops"]:
        row: dict[str, Any] = {}
        for name in ("ops", "wl"):
            row[name] = baselines[name][group].to_dict()
        ms = {m: mean_std([r.metrics[m] for r in learned[group]]) for m in learned[group][0].metrics}
        row["learned"] = {"size": learned[group][0].size, "metrics": ms}
        best = max(("ops", "wl"), key=lambda n: baselines[n][group].metrics[f"map@{K}"])
        lq = np.mean([r.per_query["map"] for r in learned[group]], axis=0)
        row["bootstrap_map_learned_minus_best"] = {"baseline": best,
                                                    "diff_ci95": bootstrap_diff(lq, baselines[best][group].per_query["map"])}
        row["bootstrap_map_wl_minus_ops"] = bootstrap_diff(baselines["wl"][group].per_query["map"],
                                                          baselines["ops"][group].per_query["map"])
        table[group] = row
    res["archs"] = table
    # real architectures: Hugging Face configs, family = model type
    t = time.perf_counter()
    graphs, fams, names, failed = hf_graphs()
    res["hf"] = {"models": names, "failed": failed, "families": sorted(set(fams))}
    hf_encoders = [OpHistogramEncoder(), WLEncoder()] + [resolve_encoder("learned", run=f"{args.runs}/seed{s}")
                                                          for s in args.seeds]
    hf_rows: dict[str, list[dict[str, float]]] = {}
    hf_emb = {}
    for enc in hf_encoders:
        idx = RetrievalIndex(enc)
        idx.add_many([(n, g, f, None) for n, g, f in zip(names, graphs, fams, strict=True)])
        hf_rows.setdefault(enc.name, []).append(retrieval_metrics(idx.similarity_matrix(), fams, K))
        hf_emb.setdefault(enc.name, idx.embeddings())
    res["hf"]["metrics"] = {n: {m: mean_std([r[m] for r in rows]) for m in rows[0]} for n, rows in hf_rows.items()}
    res["wall_s"]["hf"] = time.perf_counter() - t
    res["wall_s"]["total"] = time.perf_counter() - t0
    Path(args.out).write_text(json.dumps(res, indent=1, default=float))
    print(json.dumps(res["hf"]["metrics"], indent=1))
    # figure: t-SNE of the archs test + heldout embeddings (WL, learned seed 0) and of the HF set (WL)
    try:
        _figure(args, hf_emb["wl"], fams)
    except Exception as exc:  # noqa: BLE001
        print("figure failed:", exc)
    print("total wall", res["wall_s"]["total"])


def _figure(args: argparse.Namespace, hf_wl: np.ndarray, hf_fams: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    from weightzoo.analysis.retrieval import load_index
    from weightzoo.analysis.retrieval.evaluate import default_groups
    from weightzoo.analysis.retrieval.index import select

    groups = default_groups(args.zoo)
    names = groups.get("test", []) + groups.get("heldout", [])
    panels = []
    for title, enc in (("archs test+heldout, WL", WLEncoder()),
                       ("archs test+heldout, learned (seed 0)", resolve_encoder("learned", run=f"{args.runs}/seed{args.seeds[0]}"))):
        sub = select(load_index(args.zoo, enc), [n for n in names])
        panels.append((title, sub.embeddings(), [str(f) for f in sub.families]))
    panels.append(("Hugging Face configs, WL", hf_wl, hf_fams))
    fig, axes = plt.subplots(1, 3, figsize=(18, 6))
    for ax, (title, emb, fam) in zip(axes, panels, strict=True):
        xy = TSNE(n_components=2, random_state=0, init="pca", perplexity=min(30, len(emb) // 4)).fit_transform(emb)
        for f in sorted(set(fam)):
            m = np.asarray([x == f for x in fam])
            ax.scatter(xy[m, 0], xy[m, 1], s=12, label=f)
        ax.set_title(title)
        ax.legend(fontsize=7, markerscale=1.5)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(args.figure, dpi=110)


if __name__ == "__main__":
    main()
