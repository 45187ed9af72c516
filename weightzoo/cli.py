"""The ``weightzoo`` command: a thin layer over the Python API.

Each module in :mod:`weightzoo.commands` registers its subcommands (``register(subparsers)``); modules are
discovered, so a new command is a new file there. Command modules import heavy dependencies inside their
run functions, so ``weightzoo --help`` and quick commands start fast.

Expected failures (:class:`~weightzoo.errors.WeightzooError`) print one line and exit 1; usage errors
exit 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from weightzoo import __version__, commands
from weightzoo.errors import WeightzooError


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every discovered subcommand."""
    parser = argparse.ArgumentParser(
        prog="weightzoo",
        description="Trained neural networks as data: ingest, inspect, graph, learn on and merge weights.",
    )
    parser.add_argument("--version", action="version", version=f"weightzoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        rc = args.func(args)
    except WeightzooError as exc:
        message = " ".join(str(exc).split())  # one line, whatever a library put in the text
        print(f"weightzoo {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"weightzoo {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `weightzoo ls | head`
        return 0
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
