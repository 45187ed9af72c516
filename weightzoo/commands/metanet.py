"""``weightzoo metanet``: train metanetworks and baselines, predict from weights, compare runs."""

from __future__ import annotations

import argparse
import json
from typing import Any

from weightzoo.errors import InvalidOptionError

from ._common import add_json, add_zoo, print_json, require_zoo


def _kv(items: list[str] | None, what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for it in items or []:
        if "=" not in it:
            raise InvalidOptionError(f"{what} expects key=value, got {it!r}")
        k, v = it.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


#: ``--option`` keys that configure training, not the model's constructor (see ``TrainConfig``).
TRAIN_OPTIONS = ("augment", "mixup", "mixup_p", "fits", "fraction", "views")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from weightzoo.metanets.models import MODELS

    p = sub.add_parser("metanet", help="metanetworks: predict properties of networks from their weights",
                       description="Train graph metanetworks, NP/HNP models and baselines on a zoo, predict with "
                       "them, and compare runs.")
    msub = p.add_subparsers(dest="metanet_command", required=True)
    t = msub.add_parser("train", help="train a model (one folder per seed)")
    add_zoo(t)
    t.add_argument("--dataset", default=None, help="dataset whose manifest gives the split (e.g. digits-cnn)")
    t.add_argument("--filter", nargs="+", default=None, metavar="KEY=VALUE",
                   help="select zoo models by metadata (without --dataset a seeded split by network is used)")
    t.add_argument("--target", default="test_accuracy", help="metadata key to predict (default test_accuracy)")
    t.add_argument("--model", required=True, choices=list(MODELS), help="model to train")
    t.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds (default 0)")
    t.add_argument("--out", required=True, metavar="DIR", help="run folder (seed-K/ per seed)")
    t.add_argument("--epochs", type=int, default=60, help="maximum epochs (default 60)")
    t.add_argument("--patience", type=int, default=15, help="early-stopping patience in epochs (default 15)")
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--checkpoints", default="final", help="final (default), all (earlier epochs as extra "
                   "training data) or an epoch number")
    t.add_argument("--split-seed", type=int, default=0, help="seed of the by-network split without --dataset")
    t.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget per seed")
    t.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    t.add_argument("--option", nargs="+", default=None, metavar="KEY=VALUE",
                   help="model constructor options (hidden=32 layers=2 positional=false sign_invariant=true probes=16 "
                   "...) and training options: augment=signflip,shift,noise:0.1 (per epoch, training networks "
                   "only), mixup=plain|permuted|aligned, mixup_p=0.5, fits=N (per training group, e.g. INR fits "
                   "per image), fraction=F (seeded share of the groups), views=N (flat mlp)")
    t.add_argument("--no-progress", action="store_true")
    add_json(t)
    t.set_defaults(func=run_train)

    e = msub.add_parser("edit", help="train a weight-space editor: predict the INR of an edited image from an INR",
                        description="Equivariant INR editing: each model predicts a residual edit of the weights whose "
                        "render should match the edited (dilated, eroded, contrast-changed) render of the input INR; "
                        "loss and metric are the render MSE. Compare runs with `weightzoo metanet report`.")
    add_zoo(e)
    e.add_argument("--dataset", default="digits-inr", help="dataset whose manifest gives the split (default digits-inr)")
    e.add_argument("--filter", nargs="+", default=None, metavar="KEY=VALUE", help="select zoo models by metadata")
    e.add_argument("--edit", default="dilate", help="dilate (default), erode or contrast")
    e.add_argument("--model", required=True, choices=["gmn", "np", "mlp", "identity"], help="editor to train")
    e.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds (default 0)")
    e.add_argument("--out", required=True, metavar="DIR", help="run folder (seed-K/ per seed)")
    e.add_argument("--epochs", type=int, default=30, help="maximum epochs (default 30)")
    e.add_argument("--patience", type=int, default=10, help="early-stopping patience in epochs (default 10)")
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--lr", type=float, default=1e-3)
    e.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget per seed")
    e.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    e.add_argument("--option", nargs="+", default=None, metavar="KEY=VALUE",
                   help="model options (hidden=32 layers=2 probes=16 for gmn) and fits=N (per training image, default "
                   "1), fraction=F (seeded share of the training images), resolution=R (render grid side)")
    e.add_argument("--no-progress", action="store_true")
    add_json(e)
    e.set_defaults(func=run_edit)

    pr = msub.add_parser("predict", help="predict with a trained run")
    pr.add_argument("run", metavar="RUN", help="run folder (the seed with the best validation metric is used)")
    pr.add_argument("models", nargs="+", metavar="MODEL",
                    help="zoo names (with --zoo), checkpoint paths (with --arch or a config beside them), or pkg.module:Class")
    add_zoo(pr)
    pr.add_argument("--arch", default=None, metavar="SPEC", help="architecture spec / config.json for checkpoint paths")
    pr.add_argument("--seed", type=int, default=None, help="use this seed instead of the best one")
    add_json(pr)
    pr.set_defaults(func=run_predict)

    rp = msub.add_parser("report", help="compare runs: mean ± std over seeds, bootstrap Δ vs the best baseline")
    rp.add_argument("runs", nargs="+", metavar="RUN")
    rp.add_argument("--reference", default=None, help="run folder or model name to compare against")
    add_json(rp)
    rp.set_defaults(func=run_report)


def run_train(args: argparse.Namespace) -> int:
    from weightzoo.metanets.train import TrainConfig, train

    options = _kv(args.option, "--option")
    training = {k: options.pop(k) for k in TRAIN_OPTIONS if k in options}
    if "augment" in training or "mixup" in training:
        training = {**training, "augment": str(training.get("augment", "")), "mixup": str(training.get("mixup", ""))}
    cfg = TrainConfig(model=args.model, target=args.target, dataset=args.dataset, filters=_kv(args.filter, "--filter"),
                      checkpoints=int(args.checkpoints) if str(args.checkpoints).isdigit() else args.checkpoints,
                      split_seed=args.split_seed, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      patience=args.patience, max_minutes=args.max_minutes, device=args.device,
                      model_options=options, **training)
    results = train(require_zoo(args), cfg, args.seeds, args.out, progress=not args.no_progress and not args.json)
    if args.json:
        print_json([{k: r[k] for k in ("model", "seed", "val", "test", "best_epoch", "epochs_run", "wall_seconds",
                                       "cpu_seconds")} for r in results])
    else:
        key = "kendall_tau" if results[0]["data"]["task"] == "regression" else "accuracy"
        for r in results:
            print(f"{args.model} seed {r['seed']}: val {key} {r['val'].get(key)}, test {key} {r['test'].get(key)} "
                  f"(CI {r['test'].get(key + '_ci95')}), {r['epochs_run']} epochs, {r['wall_seconds']:.0f} s")
        print(f"saved to {args.out}")
    return 0


def run_edit(args: argparse.Namespace) -> int:
    from weightzoo.metanets.editing import EditConfig, edit_train

    options = _kv(args.option, "--option")
    training = {k: options.pop(k) for k in ("fits", "fraction", "resolution") if k in options}
    cfg = EditConfig(model=args.model, edit=args.edit, dataset=args.dataset, filters=_kv(args.filter, "--filter"),
                     epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, patience=args.patience,
                     max_minutes=args.max_minutes, device=args.device, model_options=options, **training)
    results = edit_train(require_zoo(args), cfg, args.seeds, args.out, progress=not args.no_progress and not args.json)
    if args.json:
        print_json([{k: r[k] for k in ("model", "seed", "val", "test", "best_epoch", "epochs_run", "wall_seconds",
                                       "cpu_seconds")} for r in results])
    else:
        for r in results:
            t = r["test"]
            print(f"edit {args.edit} {args.model} seed {r['seed']}: val render MSE {r['val']['render_mse']:.4f}, test "
                  f"{t['render_mse']:.4f} (CI {[round(v, 4) for v in t['render_mse_ci95']]}; identity edit "
                  f"{t['identity_render_mse']:.4f}), {r['epochs_run']} epochs, {r['wall_seconds']:.0f} s")
        print(f"saved to {args.out}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from weightzoo.metanets.train import TrainedMetanet, graphs_for

    tm = TrainedMetanet.load(args.run, args.seed)
    if not args.json:
        print(f"using {tm.folder} ({tm.name}, target {tm.data['target']})")
    graphs, records, targets = graphs_for(args.models, zoo=args.zoo, arch=args.arch,
                                          max_kernel=tm.featurizer.state.get("max_kernel", (7, 7)), target=tm.data["target"])
    preds = tm.predict(graphs, records)
    rows = [{"model": m, "prediction": p, "target": t} for m, p, t in zip(args.models, preds, targets)]
    if args.json:
        print_json(rows)
    else:
        for r in rows:
            print(f"{r['model']}: {r['prediction']}" + (f" (recorded {r['target']})" if r["target"] is not None else ""))
    return 0


def run_report(args: argparse.Namespace) -> int:
    from weightzoo.metanets.report import compare, format_table

    result = compare(args.runs, reference=args.reference)
    if args.json:
        print_json(result)
    else:
        print(format_table(result))
        if result["reference"]:
            print(f"\nreference: {result['reference']} (best weights-only baseline by validation metric)")
    return 0
