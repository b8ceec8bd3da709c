"""The project's pytest configuration, for the ``mlexp`` command.

``mlexp`` reads its settings exactly as a pytest session started in the same
folder would: pytest itself finds the rootdir and the ini file
(``pytest.ini``, ``pyproject.toml``, ``tox.ini``, ``setup.cfg``), and the
same ``settings`` functions resolve flag > environment > ini > ``mlexp.yaml``
> default. Only this plugin is loaded, and no ``conftest.py`` is imported.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import pytest


def project_config(flags: Sequence[str] = ()) -> pytest.Config:
    """A parsed (not configured) ``pytest.Config`` of the project around the current folder.

    ``flags`` are pytest-mlexp options as ``--name=value`` (a separate value
    that names a file would be taken for a test path, and move the rootdir).
    Raises ``pytest.UsageError`` for a broken ini file or a bad flag.
    """
    saved = os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    # Other plugins (and the ini's addopts) have no say in where runs are stored.
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        # No conftest, no output capture, no assertion rewriting: nothing is run here.
        args = [
            "--noconftest",
            "--capture=no",
            "--assert=plain",
            "-p",
            "pytest_mlexp.plugin",
            "-p",
            "no:cacheprovider",
            *flags,
        ]
        return pytest.Config.fromdictargs({}, args)
    finally:
        if saved is None:
            del os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"]
        else:
            os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = saved
