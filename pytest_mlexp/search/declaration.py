"""A search as declared: the marker's (or the params file's) arguments, checked, in one value.

``@pytest.mark.mlexp(search={...}, trials=40, objective="val_loss:min",
sampler="tpe", seed=0, pruner="median", study="svm-v1")``, or the same keys
under the function's section of the params file. Checking needs no Optuna:
strings are checked by name, objects by their class once the user has
imported Optuna to make them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..directions import DOWN, BestSpec, max_or_min
from .space import ACCEPTED_FORMS, Dimension, SpaceError, parse_dimension

#: The marker's (and the params file's) search arguments.
SEARCH_KWARGS = ("search", "trials", "objective", "sampler", "seed", "pruner", "study")
SAMPLERS = ("tpe", "random", "qmc")
PRUNERS = ("median", "hyperband", "successive_halving", "none")
#: What the missing extra's error tells to install.
EXTRA = "pip install 'pytest-mlexp[search]'"

_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,199}$")


class DeclarationError(ValueError):
    """A search argument that cannot be used; ``key`` names it (``search['lr']``, ``trials``)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


@dataclass(frozen=True, eq=False)
class SearchSpec:
    """One experiment function's search, checked."""

    #: The function's node id (``experiments/test_svm.py::experiment_svm``): the search's test id.
    function: str
    space: dict[str, Dimension]
    trials: int
    objective: str
    #: ``up`` (maximize) or ``down`` (minimize).
    direction: str
    #: ``tpe``, ``random``, ``qmc``, or an Optuna sampler object.
    sampler: Any = "tpe"
    seed: int | None = None
    #: ``median``, ``hyperband``, ``successive_halving``, an Optuna pruner object, or None.
    pruner: Any = None
    #: A named study continues across sessions; None: one study per session and function.
    study: str | None = None
    #: Where it was declared, for messages.
    source: str = ""

    @property
    def objective_spec(self) -> str:
        """``val_loss:min``: the objective as ``best=`` would name it."""
        return f"{self.objective}:{max_or_min(self.direction)}"

    @property
    def optuna_direction(self) -> str:
        return "minimize" if self.direction == DOWN else "maximize"

    def sampler_text(self) -> str:
        text = self.sampler if isinstance(self.sampler, str) else type(self.sampler).__name__
        return text + (f" (seed {self.seed})" if self.seed is not None else "")

    def pruner_text(self) -> str:
        if self.pruner is None:
            return "none"
        return self.pruner if isinstance(self.pruner, str) else type(self.pruner).__name__


def read_declaration(
    function: str,
    options: Mapping[str, Any],
    directions: Mapping[str, str],
    source: str,
) -> SearchSpec:
    """A ``SearchSpec`` from the search arguments in ``options``; ``DeclarationError`` if bad."""
    space = _space(options.get("search"))
    trials = options.get("trials")
    if trials is None:
        raise DeclarationError("trials", "a search needs a number of trials, e.g. trials=40")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise DeclarationError("trials", f"expected a positive number of trials, got {trials!r}")
    objective, direction = _objective(options.get("objective"), directions)
    seed = options.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise DeclarationError("seed", f"expected an integer seed, got {seed!r}")
    study = options.get("study")
    if study is not None and (not isinstance(study, str) or not _STUDY_NAME.match(study)):
        raise DeclarationError(
            "study",
            f"expected a study name of letters, digits and _ . @ - (e.g. 'svm-v1'), got {study!r}",
        )
    return SearchSpec(
        function=function,
        space=space,
        trials=trials,
        objective=objective,
        direction=direction,
        sampler=_choice("sampler", options.get("sampler", "tpe"), SAMPLERS, "BaseSampler"),
        seed=seed,
        pruner=_pruner(options.get("pruner")),
        study=study,
        source=source,
    )


def search_names(options: Mapping[str, Any]) -> list[str] | None:
    """The names a search declares, or None when ``search`` is not a usable mapping."""
    search = options.get("search")
    if not isinstance(search, Mapping) or not search:
        return None
    if not all(isinstance(name, str) and name for name in search):
        return None
    return list(search)


# -- internals ------------------------------------------------------------------------------


def _space(search: Any) -> dict[str, Dimension]:
    if not isinstance(search, Mapping) or not search:
        raise DeclarationError(
            "search",
            "expected a dict of param name to distribution, e.g. "
            "search={'lr': 'loguniform(1e-4, 1e-1)', 'kernel': ['rbf', 'linear']}, "
            f"got {search!r}",
        )
    space = {}
    for name, spec in search.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise DeclarationError(
                "search", f"param names are the function's argument names, got {name!r}"
            )
        try:
            space[name] = parse_dimension(spec)
        except SpaceError as exc:
            raise DeclarationError(
                f"search[{name!r}]", f"{exc}; accepted forms: {ACCEPTED_FORMS}"
            ) from None
    return space


def _objective(value: Any, directions: Mapping[str, str]) -> tuple[str, str]:
    if not isinstance(value, str) or not value.strip():
        raise DeclarationError(
            "objective",
            "a search needs the metric it optimizes, as NAME:min or NAME:max, e.g. "
            f"objective='val_loss:min', got {value!r}",
        )
    try:
        spec = BestSpec.parse(value)
    except ValueError as exc:
        raise DeclarationError("objective", str(exc)) from None
    assert spec.metric is not None
    direction = spec.resolve(spec.metric, directions)
    if not direction.known:
        raise DeclarationError(
            "objective",
            f"the direction of {spec.metric!r} is not known; write "
            f"objective='{spec.metric}:min' or objective='{spec.metric}:max'",
        )
    assert direction.direction is not None
    return spec.metric, direction.direction


def _choice(key: str, value: Any, names: tuple[str, ...], base: str) -> Any:
    if isinstance(value, str):
        if value.strip().lower() in names:
            return value.strip().lower()
        raise DeclarationError(
            key, f"unknown {key} {value!r}; accepted: {', '.join(names)}, or an Optuna {base}"
        )
    module = type(value).__module__
    if module.startswith("optuna"):
        import optuna

        kind = optuna.samplers.BaseSampler if key == "sampler" else optuna.pruners.BasePruner
        if isinstance(value, kind):
            return value
    raise DeclarationError(
        key, f"expected one of {', '.join(names)} or an Optuna {base} object, got {value!r}"
    )


def _pruner(value: Any) -> Any:
    if value is None:
        return None
    chosen = _choice("pruner", value, PRUNERS, "BasePruner")
    return None if chosen == "none" else chosen
