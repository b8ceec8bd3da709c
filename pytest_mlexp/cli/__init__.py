"""The ``mlexp`` command (also ``python -m pytest_mlexp``): work on stored runs after the fact.

One module per subcommand, each with ``register(subparsers)``; this module
only assembles them. Every subcommand reads the project's settings as pytest
does (``cli.project``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import compare, promote, report, reproduce, runs, sync

#: The subcommands, in the order ``mlexp --help`` lists them.
SUBCOMMANDS = (report, compare, runs, promote, sync, reproduce)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlexp", description="Work with the MLflow runs that pytest-mlexp recorded."
    )
    parser.add_argument("--version", action="version", version=version_text())
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in SUBCOMMANDS:
        command.register(subparsers)
    return parser


def version_text() -> str:
    """``mlexp 0.1.0 (mlflow 3.17.2, pytest 9.0.1, Python 3.11.7)``: what answers the commands."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    def of(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "not installed"

    return (
        f"mlexp {of('pytest-mlexp')} (mlflow {of('mlflow')}, pytest {of('pytest')}, "
        f"Python {platform.python_version()})"
    )


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
