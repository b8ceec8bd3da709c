"""The ``mlexp`` command (also ``python -m pytest_mlexp``): work on stored runs after the fact.

Each subcommand lives in the module of its concern, which exposes
``register(subparsers)``; this module only assembles them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Modules that each add subcommands through ``register(subparsers)``.
COMMAND_MODULES: tuple[str, ...] = (
    "pytest_mlexp.commands",
    "pytest_mlexp.baselines",
    "pytest_mlexp.journal",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlexp", description="Work with the MLflow runs that pytest-mlexp recorded."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    return int(handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
