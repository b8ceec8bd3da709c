"""Each experiment function's section of the params file, turned into ``parametrize`` calls.

Called from the pipeline's ``pytest_generate_tests`` for tracked functions,
after ``@pytest.mark.parametrize`` and before repeats:

- fixed values are parametrized as one hidden cell (``pytest.HIDDEN_PARAM``):
  they reach the function as arguments, the run logs them as params, and
  the test id is unchanged;
- each grid axis is one ``metafunc.parametrize`` call, in file order, so the
  cells and their ids are those the same ``@pytest.mark.parametrize`` would
  make (``experiment_ridge[0.1]``);
- a value the function does not take as an argument is still a param of the
  cell (logged, and in the ``params`` fixture's dict): its name is added to
  the names pytest lets the function be parametrized by.

The file is read once per process, on the first tracked function, and only
if it exists. xdist workers read the same file and apply the same overrides,
so they collect the same cells in the same order.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..runs.markers import BEST_FROM_FILE_KEY
from .loading import FIXED, GRID, ParamsError, ParamsFile, dump, load_params_file
from .overrides import FunctionParams, apply_overrides, is_search_setting, overridden_data

if TYPE_CHECKING:
    from ..settings.params import ParamsSettings

#: The fixture returning the cell's params as a dict.
PARAMS_FIXTURE = "params"
#: Names a params file cannot give a value to.
RESERVED = frozenset({"request", PARAMS_FIXTURE, "mlflow_run"})


@dataclass(frozen=True)
class ItemParams:
    """What a tracked item took from the params file (``params.keys.PARAMS_KEY``)."""

    #: The params file, as messages show it.
    display: str
    #: The file as loaded (``lineage/params.yaml``); part of the code fingerprint for reuse.
    text: str
    #: The file with the session's overrides applied, when there are any.
    overridden_text: str | None
    #: The overrides that changed this item's function, as given.
    overrides: tuple[str, ...]
    #: Names of the fixed values: params of the run, but not grid axes.
    fixed: frozenset[str]


@dataclass
class ParamsState:
    """The params file of this process's session, once collection met an experiment."""

    file: ParamsFile | None = None
    functions: dict[str, FunctionParams] = field(default_factory=dict)
    overridden_text: str | None = None
    #: Names of the tracked functions collection met (before ``-k`` deselects any), and
    #: the ``file.py::function`` keys of the file that matched one.
    seen: set[str] = field(default_factory=set)
    #: Name of each tracked function collection met -> the files defining it.
    defined: dict[str, set[str]] = field(default_factory=dict)
    #: Definition node id -> what its items take from the file.
    applied: dict[str, ItemParams] = field(default_factory=dict)
    #: Definition node id -> the ``resources:`` of its section (``mark_resources``).
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Definition node id -> its ``best:`` and ``judge:`` (``mark_resources``).
    marks: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: bool = False


_STATE_KEY = pytest.StashKey[ParamsState]()


def session_state(config: pytest.Config) -> ParamsState | None:
    """The params state, if collection loaded a params file."""
    state = config.stash.get(_STATE_KEY, None)
    return state if state is not None and state.file is not None else None


def mark_resources(config: pytest.Config, items: Iterable[pytest.Item]) -> None:
    """Give the items of a function with ``resources:``, ``best:`` or ``judge:`` in the
    params file those marker arguments.

    The file's section wins over the function's own ``@pytest.mark.mlexp(resources=...)``,
    as the file's values do, so a cluster's reservations (or the metric picking the best
    cell) change without editing code.
    """
    state = session_state(config)
    if state is None or not (state.resources or state.marks):
        return
    for item in items:
        resources = state.resources.get(definition_id(item))
        if resources is not None:
            item.add_marker(pytest.mark.mlexp(resources=resources), append=False)
        marks = state.marks.get(definition_id(item))
        if marks:
            item.add_marker(pytest.mark.mlexp(**marks), append=False)
            if "best" in marks:
                item.stash[BEST_FROM_FILE_KEY] = True


def definition_id(item: pytest.Item) -> str:
    """The node id of the function an item was generated from (``f[0.1]`` -> ``f``)."""
    parent = item.parent.nodeid if item.parent is not None else ""
    name = getattr(item, "originalname", item.name)
    return f"{parent}::{name}" if parent else name


def parametrize_from_file(metafunc: pytest.Metafunc, settings: ParamsSettings) -> None:
    """Parametrize a tracked function with its section of the params file, if it has one."""
    state = _state(metafunc.config, settings)
    if state is None or state.file is None:
        return
    name = metafunc.definition.name
    state.seen.add(name)
    state.defined.setdefault(name, set()).add(_file_of(metafunc))
    key, params = _section(state, metafunc)
    state.seen.add(key)
    if name in state.functions:
        _check_unambiguous(state, state.file, name)
    _check_search_settings(metafunc, settings, state.file, params)
    if params is None:
        return
    if params.entry.resources is not None:
        state.resources[metafunc.definition.nodeid] = params.entry.resources
    if params.entry.marks:
        state.marks[metafunc.definition.nodeid] = params.entry.marks
    _check(metafunc, params, state.file)
    _parametrize(metafunc, params)
    state.applied[metafunc.definition.nodeid] = ItemParams(
        display=state.file.display,
        text=state.file.text,
        overridden_text=state.overridden_text,
        overrides=tuple(params.overrides),
        fixed=frozenset(params.fixed),
    )


@dataclass(frozen=True)
class FileSearch:
    """A search declared in the params file, with where each key is, for messages.

    Read here, checked and parametrized by ``search.collection``.
    """

    options: Mapping[str, Any]
    #: ``where("search")`` -> ``experiments/params.yaml:7``.
    where: Callable[[str], str]
    #: The function's grid axes in the file (a search cannot have any).
    grid: Sequence[str] = ()
    #: The function's fixed values in the file (a search cannot search them too).
    fixed: Sequence[str] = ()


def search_from_file(metafunc: pytest.Metafunc) -> FileSearch | None:
    """The search the function's section declares (``search:``, ``trials:``...), if any.

    Its values are checked, and its trials parametrized, by ``search.collection``.
    """
    state = metafunc.config.stash.get(_STATE_KEY, None)
    if state is None or state.file is None:
        return None
    _, params = _section(state, metafunc)
    if params is None:
        return None
    entry, file = params.entry, state.file
    options: dict[str, Any] = dict(entry.search_options)
    if entry.search is not None:
        options["search"] = entry.search
    if entry.trials is not None:
        options["trials"] = entry.trials
    if not options:
        return None
    return FileSearch(
        options=options,
        where=lambda key: file.where(entry.line_of(key)),
        grid=tuple(params.grid),
        fixed=tuple(params.fixed),
    )


def display_path(path: Path, rootdir: Path) -> str:
    """``path`` from the rootdir when it is under it, else absolute."""
    try:
        return path.resolve().relative_to(rootdir.resolve()).as_posix()
    except ValueError:
        return str(path)


# -- internals ------------------------------------------------------------------------------


def _file_of(metafunc: pytest.Metafunc) -> str:
    """The function's file, from the rootdir: ``experiments/experiment_gbm.py``."""
    return metafunc.definition.nodeid.split("::", 1)[0]


def _section(state: ParamsState, metafunc: pytest.Metafunc) -> tuple[str, FunctionParams | None]:
    """The function's key in the file and its values: ``file.py::function`` first, else its name.

    ``file.py`` is the function's file from the rootdir, or its end after a ``/``:
    ``experiment_wine.py::experiment_gbm`` matches ``experiments/experiment_wine.py``.
    """
    name, path = metafunc.definition.name, _file_of(metafunc)
    for key, params in state.functions.items():
        where, qualified, function = key.rpartition("::")
        if qualified and function == name and (path == where or path.endswith("/" + where)):
            return key, params
    return name, state.functions.get(name)


def _check_unambiguous(state: ParamsState, file: ParamsFile, name: str) -> None:
    """``ParamsError`` when a section keyed by a bare name matches functions of several files."""
    files = sorted(state.defined.get(name, ()))
    if len(files) < 2:
        return
    raise ParamsError(
        f"{file.where(file.entries[name].line)}: {name} names an experiment function of "
        f"{len(files)} files ({', '.join(files)}), and would give each this section's values; "
        f"key the section by its file instead, e.g. {files[0]}::{name}: (the file's name alone, "
        f"{files[0].rpartition('/')[2]}::{name}:, is enough where it is unique)"
    )


def _state(config: pytest.Config, settings: ParamsSettings) -> ParamsState | None:
    state = config.stash.get(_STATE_KEY, None)
    if state is None:
        # Stored before loading: a broken file is reported once, by the first module.
        state = config.stash[_STATE_KEY] = ParamsState()
        try:
            _load(state, config, settings)
        except ParamsError:
            state.failed = True
            raise
    return None if state.failed else state


def _check_search_settings(
    metafunc: pytest.Metafunc,
    settings: ParamsSettings,
    file: ParamsFile,
    params: FunctionParams | None,
) -> None:
    """``ParamsError`` for ``experiment_f.trials=2`` when ``experiment_f`` has no search to set."""
    name = metafunc.definition.name
    resolved = {name: params} if params is not None else {}
    marked = any("search" in m.kwargs for m in metafunc.definition.iter_markers("mlexp"))
    for override in settings.overrides:
        setting = override.sets_search_of(name, _file_of(metafunc))
        if setting is None or not is_search_setting(override, file, resolved):
            continue
        if marked or (params is not None and params.entry.search is not None):
            continue
        raise ParamsError(
            f"--mlexp-set {override.text}: {setting} is a search's setting, and {name} "
            f"declares no search; declare one (search= in @pytest.mark.mlexp, or search: under "
            f"{name} in {file.display}), or drop the override"
        )


def _load(state: ParamsState, config: pytest.Config, settings: ParamsSettings) -> None:
    path = settings.file
    if path is None:
        return
    display = display_path(path, Path(config.rootpath))
    overrides = [o for o in settings.overrides if o.search_setting is None]
    if not path.is_file():
        if overrides:
            raise ParamsError(
                f"--mlexp-set {overrides[0].text}: there is no params file to "
                f"override: {display} does not exist; create it, or name one with "
                "--mlexp-params-file"
            )
        return
    file = load_params_file(path, display)
    state.functions = apply_overrides(file, settings.overrides)
    if settings.overrides:
        header = (
            f"# {display} with the overrides of this session applied:\n"
            f"# {' '.join('--mlexp-set ' + o.text for o in settings.overrides)}\n"
        )
        state.overridden_text = header + dump(overridden_data(file, state.functions))
    state.file = file


def _check(metafunc: pytest.Metafunc, params: FunctionParams, file: ParamsFile) -> None:
    """``ParamsError`` for values the function cannot receive, naming the line and the fix."""
    entry, function = params.entry, metafunc.definition.name
    taken = set(metafunc.fixturenames)
    uses_fixture = PARAMS_FIXTURE in taken
    defaults = default_arguments(metafunc)
    marked = _parametrized_by_marker(metafunc.definition)
    for name in (*params.fixed, *params.grid):
        section = GRID if name in params.grid else FIXED
        where = f"{file.where(entry.line_of(name))}: {function}.{section}.{name}"
        if name in RESERVED:
            raise ParamsError(
                f"{where}: {name!r} is a reserved name (pytest or pytest-mlexp uses it); "
                "rename it in the file"
            )
        if name in marked:
            raise ParamsError(
                f"{where}: {metafunc.definition.nodeid} is also parametrized by "
                f"@pytest.mark.parametrize for {name!r}; give {name} its values in one place: "
                "remove it from the decorator or from the file"
            )
        if name in defaults:
            raise ParamsError(
                f"{where}: {function}() gives {name!r} a default value, which pytest cannot "
                f"replace; remove the default from the function's {name} argument"
            )
        if section == GRID and name not in taken and not uses_fixture:
            raise ParamsError(
                f"{where}: {function}() takes no argument {name!r}, so its cells would not "
                f"differ; add {name} to the function's arguments, or request the "
                f"{PARAMS_FIXTURE!r} fixture and read {PARAMS_FIXTURE}[{name!r}]"
            )


def _parametrize(metafunc: pytest.Metafunc, params: FunctionParams) -> None:
    for name in (*params.fixed, *params.grid):
        if name not in metafunc.fixturenames:
            # Not an argument: still a param of every cell (logged, and in `params`).
            metafunc.fixturenames.append(name)
    if params.fixed:
        metafunc.parametrize(
            list(params.fixed), [tuple(params.fixed.values())], ids=[pytest.HIDDEN_PARAM]
        )
    for axis, values in params.grid.items():
        metafunc.parametrize([axis], [(value,) for value in values])


def default_arguments(metafunc: pytest.Metafunc) -> set[str]:
    """The function's arguments that have a default value (pytest does not parametrize those)."""
    try:
        signature = inspect.signature(metafunc.function)
    except (TypeError, ValueError):
        return set()
    return {
        name
        for name, parameter in signature.parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }


def _parametrized_by_marker(definition: pytest.Item) -> set[str]:
    names: set[str] = set()
    for mark in definition.iter_markers("parametrize"):
        argnames = mark.args[0] if mark.args else mark.kwargs.get("argnames", ())
        if isinstance(argnames, str):
            names.update(name.strip() for name in argnames.split(",") if name.strip())
        else:
            names.update(str(name) for name in argnames)
    return names
