"""Where a run comes from and who ran it (tags ``mlflow.source.name``, ``mlflow.user``)."""

from __future__ import annotations

import functools
import getpass
from pathlib import Path

import pytest

from ..keys import DEFINED_KEY


def source_name(item: pytest.Item, rootdir: Path) -> str:
    """The item's module, relative to the rootdir when under it (tag ``mlflow.source.name``)."""
    try:
        return str(item.path.relative_to(rootdir))
    except ValueError:
        return str(item.path)


def run_name(item: pytest.Item, name: str | None = None) -> str:
    """``name`` (the item's by default), with its file when another collected file defines a
    function of the same name: ``experiment_wine.py::experiment_gbm[2-10]``.

    The file's name, or its path from the rootdir when two such files share a name too.
    """
    name = item.name if name is None else name
    files = item.config.stash.get(DEFINED_KEY, {}).get(getattr(item, "originalname", item.name))
    if not files or len(files) < 2:
        return name
    path = item.nodeid.split("::", 1)[0]
    short = path.rpartition("/")[2]
    unique = len({each.rpartition("/")[2] for each in files}) == len(files)
    return f"{short if unique else path}::{name}"


@functools.cache
def current_user() -> str:
    """Who runs the session (tag ``mlflow.user``)."""
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
