"""The environment of a run: installed packages, the pytest command line, the random seed."""

from __future__ import annotations

import functools
import platform
import re
import shlex
from importlib import metadata

import pytest

from ..redaction import redact_text
from ..workers import given


@functools.cache
def requirements() -> str:
    """The installed distributions as a requirements file, computed once per process."""
    pins: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            pins.setdefault(re.sub(r"[-_.]+", "-", name).lower(), f"{name}=={dist.version}")
    header = (
        f"# Python {platform.python_version()} on {platform.platform()}\n"
        "# installed packages when the run was made (pytest-mlexp)\n"
    )
    return header + "".join(f"{pins[key]}\n" for key in sorted(pins))


def command_line(config: pytest.Config) -> str:
    """The pytest command line, credentials redacted; in a worker, the controller's."""
    handed = given(config)
    args = handed.args if handed is not None else map(str, config.invocation_params.args)
    return redact_text(shlex.join(["pytest", *args]))


def random_seed(config: pytest.Config) -> int | None:
    """pytest-randomly's seed when that plugin is active."""
    if not config.pluginmanager.hasplugin("randomly"):
        return None
    seed = config.getoption("randomly_seed", None)
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None
