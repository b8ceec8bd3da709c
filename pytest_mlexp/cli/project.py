"""What every ``mlexp`` subcommand shares: the project's settings, its store, and one-line errors.

The store and the experiment are resolved exactly as ``pytest`` resolves them
in the same folder: ``--tracking-uri`` / ``--experiment`` / ``--config``,
then MLflow's environment variables, then the ini file or
``[tool.pytest.ini_options]``, then ``mlexp.yaml``, then the defaults.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from ..backend.errors import StoreError
from ..redaction import redact_text

if TYPE_CHECKING:
    from ..backend.client import Backend
    from ..settings import TrackingConfig

#: Exit code for a mistake in what the user asked for (as argparse uses for bad usage).
EXIT_USAGE = 2
#: Exit code when the store fails while we read it.
EXIT_FAILURE = 1

#: The command's flags, and the pytest options they stand for.
_FLAGS = {"tracking_uri": "--mlexp-tracking-uri", "experiment": "--mlexp-experiment"}
_FLAGS_SHOWN = {"--mlexp-tracking-uri": "--tracking-uri", "--mlexp-experiment": "--experiment"}


def store_options(experiment_help: str) -> argparse.ArgumentParser:
    """The options every subcommand takes to find the store: a parent parser."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="MLflow store to read (default: as pytest resolves it here: MLFLOW_TRACKING_URI, "
        "ini mlexp_tracking_uri, mlexp.yaml, else sqlite:///<rootdir>/mlflow.db)",
    )
    parent.add_argument("--experiment", metavar="NAME", help=experiment_help)
    parent.add_argument(
        "--config",
        metavar="PATH",
        help="mlexp YAML settings file (default: mlexp.yaml in the rootdir, when present)",
    )
    return parent


@dataclass(frozen=True)
class Project:
    """The project's tracking settings and its opened store."""

    tracking: TrackingConfig
    backend: Backend

    def experiments(self) -> list[Any]:
        """The configured experiment when the project or the command names one, else all."""
        if self.tracking.experiment_configured:
            return [self.backend.find_experiment(self.tracking.experiment)]
        return self.backend.experiments()

    @property
    def experiment_name(self) -> str | None:
        return self.tracking.experiment if self.tracking.experiment_configured else None

    def pytest_experiment(self) -> Any | None:
        """The experiment ``pytest`` logs to in this folder: the configured one, else the one
        named after the rootdir; ``None`` when that one was never created."""
        if self.tracking.experiment_configured:
            return self.backend.find_experiment(self.tracking.experiment)
        found = self.backend.client.get_experiment_by_name(self.tracking.experiment)
        if found is None or found.lifecycle_stage == "deleted":
            return None
        return found


def project_tracking(args: argparse.Namespace) -> TrackingConfig:
    """The tracking settings of the project around the current folder, with the command's flags."""
    from ..settings.project import project_config
    from ..settings.tracking import resolve_tracking

    flags = []
    for name, option in _FLAGS.items():
        value = getattr(args, name, None)
        if value:
            flags.append(f"{option}={value}")
    if getattr(args, "config", None):
        flags.append(f"--mlexp-config={args.config}")
    tracking = resolve_tracking(project_config(flags), reading=True)
    sources = {key: _FLAGS_SHOWN.get(value, value) for key, value in tracking.sources.items()}
    return _with_sources(tracking, sources)


def open_project(args: argparse.Namespace) -> Project:
    """The project's settings and its store, opened for reading (never created)."""
    from ..backend.client import Backend

    tracking = project_tracking(args)
    backend = Backend.for_reading(tracking.tracking_uri, tracking.uri_source)
    return Project(tracking, backend)


def reports_errors(handler: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    """Turn settings and store problems into one line on stderr and an exit code."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        from mlflow.exceptions import MlflowException

        try:
            return handler(args)
        except (StoreError, pytest.UsageError) as exc:
            print(f"mlexp {args.command}: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except MlflowException as exc:
            message = redact_text(str(exc.message).strip().splitlines()[0])
            print(f"mlexp {args.command}: error: the store failed: {message}", file=sys.stderr)
            return EXIT_FAILURE
        except OSError as exc:
            print(f"mlexp {args.command}: error: {exc}", file=sys.stderr)
            return EXIT_FAILURE

    return run


def _with_sources(tracking: TrackingConfig, sources: dict[str, str]) -> TrackingConfig:
    from dataclasses import replace
    from types import MappingProxyType

    return replace(tracking, sources=MappingProxyType(sources))
