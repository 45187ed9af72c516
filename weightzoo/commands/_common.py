"""Pieces shared by CLI commands: the --zoo and --json options, JSON output, MODEL resolution."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from weightzoo.errors import InvalidOptionError


def add_zoo(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """Add ``--zoo DIR`` (defaults to ``$WEIGHTZOO_ZOO`` when set)."""
    default = os.environ.get("WEIGHTZOO_ZOO")
    parser.add_argument(
        "--zoo",
        metavar="DIR",
        default=default,
        required=required and default is None,
        help="zoo folder (default: $WEIGHTZOO_ZOO)",
    )


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def print_json(obj: Any) -> None:
    """Print ``obj`` as JSON (paths, tuples and numpy scalars made plain)."""
    json.dump(obj, sys.stdout, indent=2, default=_plain, allow_nan=False)
    sys.stdout.write("\n")


def _plain(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, set | frozenset):
        return sorted(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def add_executor(parser: argparse.ArgumentParser, *, workers: bool = True) -> None:
    """Add ``--ray [ADDRESS]`` and ``--ray-address ADDRESS`` (and ``--workers N``): where the heavy job runs."""
    if workers:
        parser.add_argument("--workers", type=int, default=None,
                            help="local worker processes (1 = in-process), or the CPUs of a local Ray instance")
    parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                        help="run as Ray tasks: on the cluster at ADDRESS (auto, ray://head:10001), or bare: at "
                        "$WEIGHTZOO_RAY_ADDRESS, else a local Ray instance; put a bare --ray after positional "
                        "arguments (default: Ray only when $WEIGHTZOO_RAY_ADDRESS is set)")
    parser.add_argument("--ray-address", default=None, metavar="ADDRESS", help="same as --ray ADDRESS")
    parser.add_argument("--no-ray", action="store_true", help="never Ray, even with $WEIGHTZOO_RAY_ADDRESS set")


def ray_choice(args: argparse.Namespace) -> bool | str | None:
    """The ``ray=`` argument of :func:`weightzoo.zoo.store.executors.make_executor` from the options."""
    if getattr(args, "no_ray", False):
        return False
    if getattr(args, "ray_address", None):
        return str(args.ray_address)
    value = getattr(args, "ray", None)
    return None if value is None else (value or True)


def wants_workers(args: argparse.Namespace) -> bool:
    """Whether the job should go to an executor (``--workers`` > 1 or Ray chosen or set in the environment)."""
    from weightzoo.zoo.store.executors import resolve_ray

    return (getattr(args, "workers", None) or 1) > 1 or resolve_ray(ray_choice(args)) is not None


def require_zoo(args: argparse.Namespace) -> str:
    if not getattr(args, "zoo", None):
        raise InvalidOptionError(f"{args.command} needs --zoo DIR (or $WEIGHTZOO_ZOO)")
    return str(args.zoo)


def resolve_model_ref(ref: str, zoo_dir: str | None) -> tuple[str, str]:
    """Decide whether a MODEL argument is a checkpoint path or a zoo model name: ``("path", path)`` or
    ``("zoo", name)``, by :func:`weightzoo.zoo.store.resolve.classify_ref` (``./path`` always means the path)."""
    from weightzoo.zoo.store.resolve import classify_ref

    if zoo_dir is None or ref.startswith(("./", "../", "/")):
        return (classify_ref(ref, None), ref)
    from weightzoo.zoo.store import Zoo

    with Zoo.open(zoo_dir, create=False) as zoo:
        return (classify_ref(ref, zoo), ref)
