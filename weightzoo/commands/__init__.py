"""Subcommands of the ``weightzoo`` CLI, one module per group; each defines ``register(subparsers)``."""
