"""Reuse: whether unchanged experiments are recorded from their latest run instead of executed."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from .sources import bool_setting, settings_file, split_items

#: The environment variable switching reuse on (or off).
REUSE_ENV = "MLEXP_REUSE"
#: The dataset context of declared inputs unless a marker names another.
DEFAULT_INPUT_CONTEXT = "training"


@dataclass(frozen=True)
class ReuseSettings:
    """``--mlexp-reuse`` / ``--mlexp-rerun`` and the session-wide declared inputs."""

    #: Reuse is on (flag, env, ini or yaml) and ``--mlexp-rerun`` does not force execution.
    enabled: bool = False
    #: Globs (from the rootdir) of data files every tracked item reads (ini ``mlexp_inputs``).
    inputs: tuple[str, ...] = ()


def resolve_reuse(config: pytest.Config) -> ReuseSettings:
    """Reuse on or off, and the session-wide inputs; ``UsageError`` for a bad value."""
    enabled = bool_setting(config, "mlexp_reuse", "reuse", False, env=REUSE_ENV)
    if config.getoption("mlexp_rerun"):
        enabled = False
    return ReuseSettings(enabled=enabled, inputs=_inputs(config))


def _inputs(config: pytest.Config) -> tuple[str, ...]:
    lines = config.getini("mlexp_inputs")
    if lines:
        return tuple(split_items(lines))
    source, values = settings_file(config)
    raw = values.get("inputs")
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise pytest.UsageError(
            f"{source} inputs: expected a list of globs from the rootdir, e.g. "
            f"['data/train.csv', 'data/*.parquet'], got {raw!r}"
        )
    return tuple(split_items(raw))
