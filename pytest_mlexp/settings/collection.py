"""Where experiments are collected: the experiment folders, and files named on the command line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .sources import base_dir, list_setting, split_items

#: Experiment folders, comma-separated, from the rootdir (the test suite's own projects use ``.``).
EXPERIMENT_PATHS_ENV = "MLEXP_EXPERIMENT_PATHS"

#: The experiment folder of a project that names none.
DEFAULT_EXPERIMENT_PATHS = ("experiments",)


def resolve_experiment_paths(config: pytest.Config) -> tuple[Path, ...]:
    """The folders whose ``experiment_*`` files and functions are collected, absolute.

    Flag paths start at the current directory; the environment's, the ini's and
    ``mlexp.yaml``'s at the rootdir.
    """
    flag = config.getoption("mlexp_experiment_paths", None)
    env = os.environ.get(EXPERIMENT_PATHS_ENV, "").strip()
    if flag:
        items, source = split_items(flag), "--mlexp-experiment-paths"
    elif env:
        items, source = split_items([env]), EXPERIMENT_PATHS_ENV
    else:
        found = list_setting(config, "mlexp_experiment_paths", "experiment_paths")
        items, source = found if found is not None else (list(DEFAULT_EXPERIMENT_PATHS), "default")
    base = base_dir(source, config)
    return tuple(Path(os.path.abspath(base / item)) for item in items)
