"""The environment of a run: installed packages, the pytest command line, the random seed."""

from __future__ import annotations

import functools
import platform
import re
import shlex
import site
import sysconfig
from importlib import metadata

import pytest

from ..redaction import redact_text
from ..workers import given


@functools.cache
def requirements() -> str:
    """The installed distributions as a requirements file, computed once per process.

    Only what is installed in the interpreter's site directories counts (editable
    installs included), not what a library puts on ``sys.path`` at run time: after
    ``import ray``, Ray's vendored ``ray/thirdparty_files`` would otherwise add its
    own copies. The list is the same in a serial session, an xdist worker, a Ray
    worker and an in-process pytester session, whatever was imported before.
    """
    pins: dict[str, str] = {}
    for dist in metadata.distributions(path=list(site_directories())):
        name = dist.metadata["Name"]
        if name:
            pins.setdefault(re.sub(r"[-_.]+", "-", name).lower(), f"{name}=={dist.version}")
    header = (
        f"# Python {platform.python_version()} on {platform.platform()}\n"
        "# installed packages when the run was made (pytest-mlexp)\n"
    )
    return header + "".join(f"{pins[key]}\n" for key in sorted(pins))


def site_directories() -> tuple[str, ...]:
    """Where the interpreter installs distributions: its site-packages, then the user's."""
    paths = sysconfig.get_paths()
    found = [paths["purelib"], paths["platlib"], *site.getsitepackages()]
    if site.ENABLE_USER_SITE:
        found.append(site.getusersitepackages())
    return tuple(dict.fromkeys(found))


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
