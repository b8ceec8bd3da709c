"""Where a run comes from and who ran it (tags ``mlflow.source.name``, ``mlflow.user``)."""

from __future__ import annotations

import functools
import getpass
from pathlib import Path

import pytest


def source_name(item: pytest.Item, rootdir: Path) -> str:
    """The item's module, relative to the rootdir when under it (tag ``mlflow.source.name``)."""
    try:
        return str(item.path.relative_to(rootdir))
    except ValueError:
        return str(item.path)


@functools.cache
def current_user() -> str:
    """Who runs the session (tag ``mlflow.user``)."""
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
