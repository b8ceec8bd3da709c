"""Where a setting's value comes from: flag, environment, ini / ``pyproject.toml``, ``mlexp.yaml``.

``lookup`` is the one resolution path; every setting, in the plugin and in
the ``mlexp`` command, is read through it. The typed readers below turn what
it finds into booleans, lists and sizes, or raise ``pytest.UsageError``
naming the source, the key, the value and the accepted forms.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from .options import DEFAULT_CONFIG_FILE, YAML_KEYS

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.I)
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}

_SETTINGS_FILE_KEY = pytest.StashKey[tuple[str, Mapping[str, Any]]]()


def lookup(
    config: pytest.Config,
    *,
    option: str,
    env: str | None = None,
    key: str | None = None,
) -> tuple[Any, str] | None:
    """The first value set for a setting, and where it came from.

    Looks at the command-line option with dest ``option`` (flag
    ``--option-with-dashes``), the environment variable ``env``, the ini key
    named like ``option``, then ``key`` in the settings file. Empty values
    count as unset. Returns ``None`` when no source sets it.
    """
    value = config.getoption(option)
    if value not in (None, "", []):
        return value, "--" + option.replace("_", "-")
    if env is not None and os.environ.get(env, "").strip():
        return os.environ[env].strip(), env
    ini_value = config.getini(option)
    if ini_value not in (None, "", []):
        return (ini_value.strip() if isinstance(ini_value, str) else ini_value), f"ini {option}"
    if key is not None:
        source, values = settings_file(config)
        if values.get(key) is not None:
            return _yaml_scalar(source, values, key), f"{source} {key}"
    return None


def settings_file(config: pytest.Config) -> tuple[str, Mapping[str, Any]]:
    """The settings file's name and contents (empty if there is none), read once per session."""
    cached = config.stash.get(_SETTINGS_FILE_KEY, None)
    if cached is None:
        cached = config.stash[_SETTINGS_FILE_KEY] = _load_yaml(config, Path(config.rootpath))
    return cached


def is_from_file(source: str, config: pytest.Config) -> bool:
    """Whether a value came from the ini or the settings file, whose paths start at the rootdir."""
    return source.startswith(("ini", settings_file(config)[0]))


def base_dir(source: str, config: pytest.Config) -> Path:
    """Where a relative path from ``source`` starts: the cwd for flags, else the rootdir."""
    return Path.cwd() if source.startswith("--") else Path(config.rootpath)


# -- typed readers --------------------------------------------------------------------------


def bool_setting(
    config: pytest.Config, option: str, key: str, default: bool, env: str | None = None
) -> bool:
    """A yes/no setting: true/false, on/off, yes/no, 1/0."""
    found = lookup(config, option=option, env=env, key=key)
    if found is None:
        return default
    value, source = found
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise pytest.UsageError(
        f"{source}: invalid value {value!r} for {key}; accepted: true/false, on/off, yes/no, 1/0"
    )


def list_setting(config: pytest.Config, option: str, key: str) -> tuple[list[str], str] | None:
    """A list setting: repeated flags, ini lines, a YAML list, or comma/space separated text.

    Returns the items and where they came from, or ``None`` when unset.
    """
    found = lookup(config, option=option)
    if found is None:
        source, values = settings_file(config)
        if values.get(key) is None:
            return None
        found = (values[key], f"{source} {key}")
        if not isinstance(found[0], str | list | tuple):
            raise pytest.UsageError(
                f"{found[1]}: expected a list or a string, got {type(found[0]).__name__}"
            )
    value, source = found
    items = value if isinstance(value, list | tuple) else [value]
    return split_items(items), source


def split_items(items: Sequence[Any]) -> list[str]:
    """Split every item on commas and whitespace, dropping empty pieces."""
    return [piece for item in items for piece in re.split(r"[,\s]+", str(item)) if piece]


def size_setting(config: pytest.Config, option: str, key: str, default: int) -> int:
    """A size in bytes: ``500000``, ``100MB``, ``1.5G``, ``2GiB`` (binary units); 0 = no limit."""
    found = lookup(config, option=option, key=key)
    if found is None:
        return default
    value, source = found
    match = _SIZE.match(str(value))
    if match is None or isinstance(value, bool):
        raise pytest.UsageError(
            f"{source}: invalid size {value!r} for {key}; accepted: a number of bytes "
            "or a number with a unit, e.g. 500000, 100MB, 1.5GB (0 means no limit)"
        )
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def parse_tags(lines: Iterable[str], source: str) -> dict[str, str]:
    """Parse ``KEY=VALUE`` strings; raise ``UsageError`` naming the source for a bad one."""
    tags: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise pytest.UsageError(
                f"{source}: malformed tag {line!r}; expected KEY=VALUE, e.g. team=vision"
            )
        tags[key.strip()] = value.strip()
    return tags


def yaml_mapping(config: pytest.Config, key: str, expected: str) -> tuple[Mapping[str, Any], str]:
    """A mapping from the settings file (empty when unset), and the file's name for messages.

    ``expected`` describes the mapping in the error, e.g. ``a mapping of KEY: VALUE``.
    """
    source, values = settings_file(config)
    raw = values.get(key)
    if raw is None:
        return {}, source
    if not isinstance(raw, Mapping):
        raise pytest.UsageError(f"{source}: {key} must be {expected}, got {type(raw).__name__}")
    return raw, source


# -- the settings file -------------------------------------------------------------------------


def _load_yaml(config: pytest.Config, rootdir: Path) -> tuple[str, Mapping[str, Any]]:
    explicit = config.getoption("mlexp_config") or str(config.getini("mlexp_config")).strip()
    path = Path(explicit) if explicit else rootdir / DEFAULT_CONFIG_FILE
    if explicit and not path.is_absolute():
        path = (Path.cwd() if config.getoption("mlexp_config") else rootdir) / path
    if not path.exists():
        if explicit:
            raise pytest.UsageError(
                f"--mlexp-config: {path} does not exist; give the path of an mlexp YAML file"
            )
        return path.name, {}
    import yaml

    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise pytest.UsageError(f"{path}: not valid YAML: {exc}") from None
    if values is None:
        return path.name, {}
    if not isinstance(values, Mapping):
        raise pytest.UsageError(
            f"{path}: expected a mapping of settings at the top level, got {type(values).__name__}"
        )
    unknown = sorted(str(key) for key in values if key not in YAML_KEYS)
    if unknown:
        raise pytest.UsageError(
            f"{path}: unknown key {unknown[0]!r}; accepted keys: {', '.join(YAML_KEYS)}"
        )
    return path.name, values


def _yaml_scalar(source: str, values: Mapping[str, Any], key: str) -> str | int | float | bool:
    value = values[key]
    if not isinstance(value, str | int | float | bool):
        raise pytest.UsageError(
            f"{source}: {key} must be a single value, got {type(value).__name__}"
        )
    return value
