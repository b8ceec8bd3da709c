"""``--mlexp-set KEY=VALUE`` applied to the params file's values.

``KEY`` is ``alpha`` (every function of the file that has ``alpha``) or
``experiment_ridge.alpha`` (that function only); the second kind is applied
after the first, so the more precise override wins. A scalar replaces a
fixed value, or makes a grid axis of one cell; a YAML list makes a grid
axis, replacing the axis or the fixed value of that name.

``experiment_rf.trials`` (also ``sampler``, ``seed``, ``objective``) sets a
search's setting when the function has no param of that name: those are left
to ``search.collection``, which applies them to the marker's or the file's
search.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .loading import FIXED, GRID, Entry, ParamsError, ParamsFile

if TYPE_CHECKING:
    from ..settings.params import Override


@dataclass
class FunctionParams:
    """An experiment function's values from the params file, overrides applied."""

    entry: Entry
    fixed: dict[str, Any]
    grid: dict[str, list[Any]]
    #: The overrides that changed this function, as given on the command line.
    overrides: list[str] = field(default_factory=list)


def apply_overrides(file: ParamsFile, overrides: Sequence[Override]) -> dict[str, FunctionParams]:
    """Every function's values with the overrides applied; ``ParamsError`` for an unknown key."""
    resolved = {
        function: FunctionParams(
            entry, dict(entry.fixed), {axis: list(values) for axis, values in entry.grid.items()}
        )
        for function, entry in file.entries.items()
    }
    overrides = [o for o in overrides if not is_search_setting(o, file, resolved)]
    targets = [(override, *_split(override.key, file)) for override in overrides]
    # Overrides for every function first, then those naming one: the more precise one wins.
    targets.sort(key=lambda target: target[1] is not None)
    for override, function, name in targets:
        if function is None:
            names = [f for f, params in resolved.items() if _has(params, name)]
            if not names:
                raise ParamsError(_unknown(override, name, file, resolved))
        elif not _has(resolved[function], name):
            params = resolved[function]
            known = ", ".join([*params.fixed, *params.grid]) or "nothing"
            raise ParamsError(
                f"--mlexp-set {override.text}: {function} in {file.where(params.entry.line)} has "
                f"no param or grid axis {name!r} (it has: {known}); fix the name, or add "
                f"{name} under {function}'s params: or grid: in the file"
            )
        else:
            names = [function]
        for target in names:
            _apply(resolved[target], name, override)
    return resolved


def is_search_setting(
    override: Override, file: ParamsFile | None, resolved: dict[str, FunctionParams]
) -> bool:
    """``experiment_rf.trials=2`` naming no param of the function: a search's setting."""
    setting = override.search_setting
    if setting is None:
        return False
    function, name = setting
    params = resolved.get(function)
    return params is None or not _has(params, name)


def overridden_data(file: ParamsFile, resolved: dict[str, FunctionParams]) -> dict[str, Any]:
    """The params file's content with the overrides applied, to be written as YAML."""
    data: dict[str, Any] = {}
    for function, params in resolved.items():
        entry = params.entry
        section: dict[str, Any] = {}
        if params.fixed or FIXED in entry.lines:
            section[FIXED] = params.fixed
        if params.grid or GRID in entry.lines:
            section[GRID] = params.grid
        if entry.search is not None:
            section["search"] = entry.search
        if entry.trials is not None:
            section["trials"] = entry.trials
        section.update(entry.search_options)
        data[function] = section or None
    return data


def _split(key: str, file: ParamsFile) -> tuple[str | None, str]:
    """``experiment_ridge.alpha`` or ``experiments/ridge.py::experiment_ridge.alpha``: the
    function's key in the file and the name; ``(None, key)`` for a name alone."""
    for function in sorted(file.entries, key=len, reverse=True):
        if key.startswith(function + ".") and len(key) > len(function) + 1:
            return function, key[len(function) + 1 :]
    return None, key


def _has(params: FunctionParams, name: str) -> bool:
    return name in params.fixed or name in params.grid


def _unknown(
    override: Override, name: str, file: ParamsFile, resolved: dict[str, FunctionParams]
) -> str:
    known = sorted({n for params in resolved.values() for n in (*params.fixed, *params.grid)})
    function, dot, _ = name.partition(".")
    if dot:
        functions = ", ".join(file.entries) or "none"
        return (
            f"--mlexp-set {override.text}: {file.display} has no experiment function "
            f"{function!r} (it has: {functions}) and no param {name!r}; fix the name, or add "
            "the function to the file"
        )
    return (
        f"--mlexp-set {override.text}: no experiment function in {file.display} has a param "
        f"or grid axis {name!r} (known: {', '.join(known) or 'none'}); fix the name, or add it "
        "to a function's params: or grid: in the file"
    )


def _apply(params: FunctionParams, name: str, override: Override) -> None:
    value = override.value
    if isinstance(value, list):
        if not value:
            raise ParamsError(
                f"--mlexp-set {override.text}: a grid axis needs at least one value, "
                f"e.g. {name}=[0.1,1.0]"
            )
        params.fixed.pop(name, None)
        params.grid[name] = list(value)
    elif name in params.grid:
        params.grid[name] = [value]
    else:
        params.fixed[name] = value
    params.overrides.append(override.text)
