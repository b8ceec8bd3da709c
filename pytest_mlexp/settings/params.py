"""Where the params file is, and the ``--mlexp-set`` overrides of its values.

Resolution reads no file: the params file is read at collection, and only
when it exists. YAML is imported here only to parse ``--mlexp-set`` values,
when some are given.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .sources import base_dir, lookup

#: The params file of a project that names none, from the rootdir.
DEFAULT_PARAMS_FILE = Path("experiments") / "params.yaml"
#: Values of ``params_file`` that switch the params file off.
OFF = ("none", "off")
#: A search's settings ``--mlexp-set experiment_rf.trials=2`` can change (marker or file).
SEARCH_SETTINGS = ("trials", "sampler", "seed", "objective")


@dataclass(frozen=True)
class Override:
    """One ``--mlexp-set KEY=VALUE``: ``key`` is ``alpha`` or ``experiment_ridge.alpha``."""

    #: As given on the command line, for messages and the ``mlexp.overrides`` tag.
    text: str
    key: str
    #: The value parsed as YAML: a scalar, or a list that makes a grid axis.
    value: Any

    @property
    def search_setting(self) -> tuple[str, str] | None:
        """``("experiment_rf", "trials")`` for ``experiment_rf.trials=2``: maybe a search's setting.

        It is one when the function declares a search (in its marker or the params
        file) and has no param of that name; else it is an ordinary param override.
        """
        function, name = split_key(self.key)
        return (function, name) if function and name in SEARCH_SETTINGS else None

    def sets_search_of(self, function: str, path: str) -> str | None:
        """The search setting this override gives ``function`` of file ``path``, if any.

        Its key names the function alone (``experiment_rf.trials``) or with its file
        from the rootdir, or that path's end (``experiment_rf.py::experiment_rf.trials``).
        """
        setting = self.search_setting
        if setting is None:
            return None
        where, qualified, name = setting[0].rpartition("::")
        if name != function or (qualified and path != where and not path.endswith("/" + where)):
            return None
        return setting[1]


def split_key(key: str) -> tuple[str, str]:
    """``("experiment_ridge", "alpha")`` for ``experiment_ridge.alpha``; ``("", key)`` for a name.

    A ``file.py::function`` prefix is taken whole: ``("dir/x.py::experiment_f", "trials")``
    for ``dir/x.py::experiment_f.trials``.
    """
    where, qualified, rest = key.rpartition("::")
    function, dot, name = rest.partition(".")
    return (where + qualified + function, name) if dot else ("", key)


@dataclass(frozen=True)
class ParamsSettings:
    """The session's params file and overrides."""

    #: The params file; ``None`` when switched off (``params_file: none``).
    file: Path | None
    #: Where ``file`` came from: ``default``, ``--mlexp-params-file``, ``ini ...``.
    source: str = "default"
    overrides: tuple[Override, ...] = ()

    @property
    def enabled(self) -> bool:
        return self.file is not None


def resolve_params(config: pytest.Config) -> ParamsSettings:
    """``--mlexp-params-file`` / ini / yaml ``params_file``, and ``--mlexp-set``.

    Raises ``UsageError`` for a named file that does not exist or a malformed override.
    """
    found = lookup(config, option="mlexp_params_file", key="params_file")
    overrides = _overrides(config.getoption("mlexp_set") or [])
    if found is None:
        file: Path | None = Path(config.rootpath) / DEFAULT_PARAMS_FILE
        source = "default"
    else:
        value, source = str(found[0]).strip(), found[1]
        if value.lower() in OFF:
            file = None
        else:
            file = Path(value)
            if not file.is_absolute():
                file = base_dir(source, config) / file
            if not file.is_file():
                raise pytest.UsageError(
                    f"{source}: params file {file} does not exist; give the path of a YAML "
                    f"file of experiment params, or {OFF[0]} for no params file"
                )
    params = [o for o in overrides if o.search_setting is None]
    if file is None and params:
        raise pytest.UsageError(
            f"--mlexp-set {params[0].text}: the params file is switched off ({source}); "
            "overrides change the values of a params file"
        )
    return ParamsSettings(file=file, source=source, overrides=overrides)


def _overrides(texts: list[str]) -> tuple[Override, ...]:
    if not texts:
        return ()
    overrides = []
    for text in texts:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise pytest.UsageError(
                f"--mlexp-set {text}: expected KEY=VALUE, where KEY is a param (alpha) or "
                "a function and a param (experiment_ridge.alpha), e.g. --mlexp-set alpha=0.5"
            )
        try:
            value = parse_value(raw)
        except ValueError as exc:
            raise pytest.UsageError(
                f"--mlexp-set {text}: the value is not valid YAML ({exc}); give a number, a "
                "string, true/false, or a list such as [0.1,1.0]"
            ) from None
        overrides.append(Override(text=text, key=key, value=value))
    return tuple(overrides)


_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


def parse_value(text: str) -> Any:
    """A ``--mlexp-set`` value read as YAML, the way the params file is; ``ValueError`` if bad."""
    import yaml

    try:
        return yaml.load(text, Loader=params_loader())  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ValueError(" ".join(str(exc).split())) from None


@functools.cache
def params_loader() -> type[Any]:
    """The YAML loader of the params file and of ``--mlexp-set`` values."""
    import yaml

    # libyaml's parser when PyYAML was built with it: ten times faster, the same marks.
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class ParamsLoader(base):  # type: ignore[valid-type,misc]
        """PyYAML's safe loader, reading ``1e-3`` as a number (YAML 1.2, as DVC does)."""

    ParamsLoader.add_implicit_resolver(
        "tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+.0123456789")
    )
    return ParamsLoader
