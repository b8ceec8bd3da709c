"""Settings: resolved once per session, for the plugin and for the ``mlexp`` command alike.

Precedence, highest first: command-line flag, environment variable, ini /
``[tool.pytest.ini_options]`` key, ``mlexp.yaml``, default. ``options``
declares every flag and key; ``sources.lookup`` is the one resolution path;
one module per feature turns what it finds into a frozen value, and
``resolved`` gathers them into one ``Settings``. The ``mlexp`` command builds
the same ``pytest.Config`` from the project (``project.project_config``), so
it reads exactly what pytest would.

Importing this package imports none of them: the plugin declares its options
(``options``) in every pytest run, and a session without experiments resolves
nothing. ``Settings``, ``TrackingConfig`` and ``resolve`` load on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .resolved import Settings, resolve
    from .tracking import TrackingConfig

__all__ = ["Settings", "TrackingConfig", "resolve"]


def __getattr__(name: str) -> Any:
    if name in ("Settings", "resolve"):
        from . import resolved

        return getattr(resolved, name)
    if name == "TrackingConfig":
        from .tracking import TrackingConfig

        return TrackingConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
