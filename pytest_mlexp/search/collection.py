"""A search's trials as pytest items: ``experiment_svm[trial-0]`` ... ``[trial-39]``.

Called from the pipeline's ``pytest_generate_tests`` for functions whose
marker (or params file section) declares ``search=``. Each search param is
parametrized with one ``Pending`` value per trial, with ids ``trial-N``: the
items exist up front, so ``-k``, xdist and the reports see them; the values
are asked from the study in the trial's setup (``plugin``), before its
fixtures are set up, and replace the pending ones.

A bad declaration does not stop collection here (pytest would show the
error with a traceback): it is kept, and ``check_searches`` raises it as a
``UsageError`` once collection is done, naming the test, the key and the
accepted forms.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from ..params.collection import FileSearch as FileSearch
from ..params.collection import default_arguments
from ..runs.markers import marker_options
from .declaration import EXTRA, SEARCH_KWARGS, DeclarationError, SearchSpec, read_declaration

if TYPE_CHECKING:
    from ..settings import Settings
    from ..settings.params import Override

#: Names a search cannot give values to.
RESERVED = frozenset({"request", "params", "mlflow_run"})
#: The fixture giving every param of the cell as a dict.
PARAMS_FIXTURE = "params"


@dataclass(frozen=True)
class Pending:
    """A trial's value for one param until the study is asked, in the trial's setup."""

    spec: SearchSpec
    index: int
    name: str

    def __repr__(self) -> str:
        return f"<{self.name} of trial-{self.index}: asked from the study in setup>"


@dataclass
class SearchState:
    """The searches collection met in this process."""

    #: Definition node id -> the UsageError message of its declaration.
    errors: dict[str, str] = field(default_factory=dict)


_STATE_KEY = pytest.StashKey[SearchState]()


def parametrize_search(
    metafunc: pytest.Metafunc, settings: Settings, file_search: FileSearch | None
) -> None:
    """One item per trial; a bad declaration is kept for ``check_searches``."""
    state = metafunc.config.stash.setdefault(_STATE_KEY, SearchState())
    definition = metafunc.definition
    try:
        spec = _declaration(metafunc, settings, file_search)
        _check_arguments(metafunc, spec, file_search)
        if not _optuna_installed():
            raise DeclarationError(
                "search", f"searches run on Optuna, which is not installed: {EXTRA}"
            )
    except DeclarationError as exc:
        override = _overrides(settings, definition, file_search).get(exc.key)
        where = (
            f"--mlexp-set {override.text}: {definition.name}."
            if override is not None
            else f"{file_search.where(exc.key.partition('[')[0])}: {definition.name}."
            if file_search is not None and exc.key.partition("[")[0] in file_search.options
            else f"@pytest.mark.mlexp on {definition.nodeid}: "
        )
        state.errors[definition.nodeid] = where + str(exc)
        return
    names = list(spec.space)
    for name in names:
        if name not in metafunc.fixturenames:
            # Not an argument: still a param of the trial (logged, and in `params`).
            metafunc.fixturenames.append(name)
    metafunc.parametrize(
        names,
        [tuple(Pending(spec, index, name) for name in names) for index in range(spec.trials)],
        ids=[f"trial-{index}" for index in range(spec.trials)],
    )


def check_searches(config: pytest.Config, tracked: Sequence[pytest.Item]) -> dict[str, Any]:
    """Raise ``UsageError`` for a bad search among ``tracked``; else the trial slots by node id."""
    state = config.stash.get(_STATE_KEY, None)
    if state is None:
        return {}
    slots: dict[str, Any] = {}
    for item in tracked:
        error = state.errors.get(_definition_id(item))
        if error is not None:
            raise pytest.UsageError(error)
        callspec = getattr(item, "callspec", None)
        if callspec is None:
            continue
        pending = next((v for v in callspec.params.values() if isinstance(v, Pending)), None)
        if pending is not None:
            slots[item.nodeid] = pending
    return slots


# -- internals ------------------------------------------------------------------------------


def _declaration(
    metafunc: pytest.Metafunc, settings: Settings, file_search: FileSearch | None
) -> SearchSpec:
    definition = metafunc.definition
    marked = {
        key: value
        for key, value in marker_options(definition).items()
        if key in SEARCH_KWARGS and value is not None
    }
    options: dict[str, Any] = {}
    source = f"@pytest.mark.mlexp on {definition.nodeid}"
    if file_search is not None:
        if "search" in marked:
            raise DeclarationError(
                "search",
                f"{definition.name} has a search in the marker and one in the params file "
                f"({file_search.where('search')}); declare it in one place",
            )
        options.update(file_search.options)
        source = file_search.where("search")
    options.update(marked)
    overrides = _overrides(settings, definition, file_search)
    if overrides and "search" in options:
        for key, override in overrides.items():
            options[key] = override.value
        source += " with --mlexp-set " + " ".join(o.text for o in overrides.values())
    if "search" not in options:
        given = next(iter(marked), "trials")
        raise DeclarationError(
            given, f"{given}= is given without search=; declare the space to search"
        )
    function = definition.nodeid
    return read_declaration(function, options, settings.gate.directions, source)


def _overrides(
    settings: Settings, definition: pytest.Function, file_search: FileSearch | None
) -> dict[str, Override]:
    """The ``--mlexp-set`` texts setting this search's trials, sampler, seed or objective."""
    fixed = set(file_search.fixed) if file_search is not None else set()
    path = definition.nodeid.split("::", 1)[0]
    found = {}
    for override in settings.params.overrides:
        setting = override.sets_search_of(definition.name, path)
        if setting is not None and setting not in fixed:
            found[setting] = override
    return found


def _check_arguments(
    metafunc: pytest.Metafunc, spec: SearchSpec, file_search: FileSearch | None
) -> None:
    definition = metafunc.definition
    if any(marker.kwargs.get(k) is not None for marker in definition.iter_markers("mlexp")
           for k in ("repeats", "seeds")):  # fmt: skip
        raise DeclarationError(
            "search",
            "a search cannot be repeated (repeats=/seeds=); give the seed to the search: "
            "search={..., 'seed': [0, 1, 2]}, or search a space and repeat its best later",
        )
    if any(True for _ in definition.iter_markers("parametrize")):
        raise DeclarationError(
            "search",
            "a search cannot be combined with @pytest.mark.parametrize: each trial is one "
            "point of the space; put the parametrized values into search as a list, "
            "e.g. search={..., 'dataset': ['iris', 'wine']}",
        )
    if file_search is not None and file_search.grid:
        raise DeclarationError(
            "search",
            f"{definition.name} has grid axes in the params file ({', '.join(file_search.grid)}) "
            "and a search; move the axes into search: as lists",
        )
    taken = set(metafunc.fixturenames)
    defaults = default_arguments(metafunc)
    for name in spec.space:
        key = f"search[{name!r}]"
        if name in RESERVED:
            raise DeclarationError(key, f"{name!r} is a reserved name (pytest or pytest-mlexp)")
        if file_search is not None and name in file_search.fixed:
            raise DeclarationError(
                key,
                f"{name!r} is also a fixed value of {definition.name} in the params file; "
                "search it or fix it, not both",
            )
        if name in defaults:
            raise DeclarationError(
                key,
                f"{definition.name}() gives {name!r} a default value, which pytest cannot "
                f"replace; remove the default from the function's {name} argument",
            )
        if name not in taken and PARAMS_FIXTURE not in taken:
            raise DeclarationError(
                key,
                f"{definition.name}() takes no argument {name!r}, so its trials would not "
                f"differ; add {name} to the function's arguments, or request the "
                f"{PARAMS_FIXTURE!r} fixture and read {PARAMS_FIXTURE}[{name!r}]",
            )


def _optuna_installed() -> bool:
    """Whether Optuna can be imported, without importing it (collection stays cheap)."""
    try:
        return importlib.util.find_spec("optuna") is not None
    except (ImportError, ValueError):
        return False


def _definition_id(item: pytest.Item) -> str:
    parent = item.parent.nodeid if item.parent is not None else ""
    name = getattr(item, "originalname", item.name)
    return f"{parent}::{name}" if parent else name
