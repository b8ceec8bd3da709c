"""Model registration's settings: which functions register their best cell, the alias, on/off."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pytest

from .options import DEFAULT_REGISTER_ALIAS
from .sources import lookup, yaml_mapping

#: MLflow's rule for alias names (``mlflow.utils.validation``), checked without importing mlflow.
_ALIAS = re.compile(r"^[\w\-]+$")
_VERSION_ALIAS = re.compile(r"^[vV]\d+$")
MAX_ALIAS_LENGTH = 255

ACCEPTED_NAMES = "a non-empty name without '/' or ':', e.g. churn-clf"
ACCEPTED_ALIASES = "letters, digits, _ and -, not 'latest' nor a version like 'v3', e.g. candidate"


@dataclass(frozen=True)
class RegisterSettings:
    """Registration at session end (CLI > ini > mlexp.yaml > default)."""

    #: ``False`` with ``--mlexp-no-register``.
    enabled: bool = True
    alias: str = DEFAULT_REGISTER_ALIAS
    #: Registered model name per experiment function (its name or node id), from ini / yaml.
    names: Mapping[str, str] = field(default_factory=dict)
    #: Where each key of ``names`` came from, for messages.
    sources: Mapping[str, str] = field(default_factory=dict)
    #: ``--mlexp-keep-models K``: keep logged models of the best K members of each grid or
    #: search only; ``None`` (``all``, the default) keeps every model.
    keep: int | None = None

    def name_for(self, function_id: str, function_name: str) -> str:
        """The name ``names`` gives a function (``path::name`` or ``name``), or ``""``."""
        return self.names.get(function_id) or self.names.get(function_name) or ""


def resolve_register(config: pytest.Config) -> RegisterSettings:
    """Resolve registration's settings, or raise ``UsageError`` naming the source and the value."""
    alias = DEFAULT_REGISTER_ALIAS
    found = lookup(config, option="mlexp_register_alias", key="register_alias")
    if found is not None:
        alias = check_alias(found[0], found[1])
    names: dict[str, str] = {}
    sources: dict[str, str] = {}
    raw, source = yaml_mapping(config, "register", "a mapping of test: registered model name")
    for test, name in raw.items():
        names[str(test)] = check_model_name(name, f"{source} register.{test}")
        sources[str(test)] = f"{source} register"
    for line in config.getini("mlexp_register"):
        test, sep, name = str(line).partition("=")
        if not sep or not test.strip():
            raise pytest.UsageError(
                f"ini mlexp_register: malformed line {line!r}; expected TEST=NAME, "
                "e.g. experiment_classifier=churn-clf"
            )
        names[test.strip()] = check_model_name(name.strip(), f"ini mlexp_register {test.strip()}")
        sources[test.strip()] = "ini mlexp_register"
    return RegisterSettings(
        enabled=not config.getoption("mlexp_no_register"),
        alias=alias,
        names=MappingProxyType(names),
        sources=MappingProxyType(sources),
        keep=resolve_keep_models(config),
    )


def resolve_keep_models(config: pytest.Config) -> int | None:
    """``--mlexp-keep-models`` (ini ``mlexp_keep_models``, yaml ``keep_models``): K, or None."""
    found = lookup(config, option="mlexp_keep_models", key="keep_models")
    if found is None:
        return None
    value, source = str(found[0]).strip().lower(), found[1]
    if value == "all":
        return None
    try:
        keep = int(value)
    except ValueError:
        keep = -1
    if keep < 1 or isinstance(found[0], bool):
        raise pytest.UsageError(
            f"{source}: invalid value {found[0]!r} for keep_models; accepted: a whole number "
            "of best members whose models are kept (at least 1, e.g. 3), or all"
        )
    return keep


def check_model_name(value: Any, where: str) -> str:
    """A registered model name, or ``UsageError`` naming ``where``, the value and the rule."""
    if not isinstance(value, str) or not value.strip():
        raise pytest.UsageError(
            f"{where}: invalid registered model name {value!r}; expected {ACCEPTED_NAMES}"
        )
    name = value.strip()
    if "/" in name or ":" in name or name in (".", ".."):
        raise pytest.UsageError(
            f"{where}: invalid registered model name {value!r}; expected {ACCEPTED_NAMES}"
        )
    return name


def check_alias(value: Any, where: str) -> str:
    """A model version alias MLflow accepts, or ``UsageError`` naming ``where`` and the rule."""
    text = str(value).strip()
    if (
        not _ALIAS.match(text)
        or _VERSION_ALIAS.match(text)
        or text.lower() == "latest"
        or len(text) > MAX_ALIAS_LENGTH
    ):
        raise pytest.UsageError(f"{where}: invalid alias {value!r}; accepted: {ACCEPTED_ALIASES}")
    return text
