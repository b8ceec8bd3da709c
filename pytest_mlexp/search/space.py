"""A search space: each param's distribution, parsed without importing Optuna.

The forms a user writes, in the marker or in the params file::

    "uniform(0, 1)"          a float between 0 and 1
    "loguniform(1e-4, 1e-1)" a float, sampled on a log scale
    "int(2, 12)"             an integer from 2 to 12 (both included)
    "int(1, 1024, log)"      an integer, on a log scale
    ["rbf", "linear"]        one of these values (a categorical)

Optuna distribution objects (``FloatDistribution``, ``IntDistribution``,
``CategoricalDistribution``) are accepted too. Every form becomes a
``Dimension``, which knows its text for the MLflow UI, its JSON for the
search parent run, and (``to_distribution``) its Optuna distribution once a
search runs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

FLOAT, INT, CATEGORICAL = "float", "int", "categorical"

ACCEPTED_FORMS = (
    "'uniform(a, b)', 'loguniform(a, b)', 'int(a, b)', 'int(a, b, log)', a list of values "
    "(a categorical, e.g. ['rbf', 'linear']), or an Optuna distribution object"
)

_NUMBER = r"[-+]?(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_CALL = re.compile(r"^\s*(uniform|loguniform|int)\s*\((.*)\)\s*$", re.IGNORECASE)
_NUMBER_RE = re.compile(rf"^\s*{_NUMBER}\s*$")


class SpaceError(ValueError):
    """A distribution that cannot be understood; the message says why, without the key."""


@dataclass(frozen=True)
class Dimension:
    """One param's distribution: a float or int range (maybe log, maybe stepped), or choices."""

    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    def describe(self) -> str:
        """The form a user would write: ``loguniform(0.0001, 0.1)``, ``int(2, 12)``, ``[...]``."""
        if self.kind == CATEGORICAL:
            return "[" + ", ".join(repr(c) for c in self.choices) + "]"
        step = f", step={_text(self.step)}" if self.step is not None else ""
        if self.kind == INT:
            log = ", log" if self.log else ""
            return f"int({_text(self.low)}, {_text(self.high)}{log}{step})"
        name = "loguniform" if self.log else "uniform"
        return f"{name}({_text(self.low)}, {_text(self.high)}{step})"

    def to_json(self) -> dict[str, Any]:
        if self.kind == CATEGORICAL:
            return {"kind": CATEGORICAL, "choices": list(self.choices)}
        data: dict[str, Any] = {"kind": self.kind, "low": self.low, "high": self.high}
        if self.log:
            data["log"] = True
        if self.step is not None:
            data["step"] = self.step
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Dimension:
        if data["kind"] == CATEGORICAL:
            return cls(CATEGORICAL, choices=tuple(data["choices"]))
        return cls(
            str(data["kind"]),
            low=data["low"],
            high=data["high"],
            log=bool(data.get("log", False)),
            step=data.get("step"),
        )

    def to_distribution(self) -> BaseDistribution:
        """The Optuna distribution (imports Optuna)."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.kind == CATEGORICAL:
            return CategoricalDistribution(list(self.choices))
        assert self.low is not None
        assert self.high is not None
        if self.kind == INT:
            step = int(self.step) if self.step is not None else 1
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=step)
        step_f = float(self.step) if self.step is not None else None
        return FloatDistribution(float(self.low), float(self.high), log=self.log, step=step_f)

    def value_of(self, text: str) -> Any:
        """This dimension's value whose MLflow param text is ``text``; ``ValueError`` if none."""
        if self.kind == INT:
            return int(float(text))
        if self.kind == FLOAT:
            return float(text)
        for choice in self.choices:
            if str(choice) == text:
                return choice
        raise ValueError(f"{text!r} is not one of {self.describe()}")


def parse_dimension(spec: Any) -> Dimension:
    """A ``Dimension`` from any accepted form; ``SpaceError`` saying what is wrong."""
    if isinstance(spec, str):
        return _parse_text(spec)
    if isinstance(spec, list | tuple):
        return _categorical(spec)
    if type(spec).__module__.startswith("optuna"):
        return _from_optuna(spec)
    raise SpaceError(f"cannot read {spec!r} as a distribution")


def space_to_json(space: Mapping[str, Dimension]) -> dict[str, Any]:
    return {name: dimension.to_json() for name, dimension in space.items()}


def space_from_json(data: Mapping[str, Any]) -> dict[str, Dimension]:
    return {str(name): Dimension.from_json(value) for name, value in data.items()}


# -- internals ------------------------------------------------------------------------------


def _parse_text(text: str) -> Dimension:
    match = _CALL.match(text)
    if match is None:
        raise SpaceError(f"cannot read {text!r}")
    name = match.group(1).lower()
    parts = [part.strip() for part in match.group(2).split(",")]
    log = False
    if name == "int" and len(parts) == 3 and parts[2].lower() == "log":
        parts, log = parts[:2], True
    if len(parts) != 2 or not all(_NUMBER_RE.match(part) for part in parts):
        extra = " or int(a, b, log)" if name == "int" else ""
        raise SpaceError(f"{text!r}: expected {name}(a, b){extra} with two numbers")
    if name == "int":
        try:
            low_i, high_i = (int(part.replace("_", "")) for part in parts)
        except ValueError:
            raise SpaceError(f"{text!r}: int() takes whole numbers, e.g. int(2, 12)") from None
        return _checked(Dimension(INT, low_i, high_i, log=log))
    low, high = (float(part.replace("_", "")) for part in parts)
    return _checked(Dimension(FLOAT, low, high, log=name == "loguniform"))


def _checked(dimension: Dimension) -> Dimension:
    low, high = dimension.low, dimension.high
    assert low is not None
    assert high is not None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise SpaceError(f"{dimension.describe()}: the bounds must be finite numbers")
    if low > high:
        raise SpaceError(f"{dimension.describe()}: the low bound {low} is above the high {high}")
    if dimension.log and low <= 0:
        raise SpaceError(
            f"{dimension.describe()}: a log scale needs a low bound above 0, got {low}"
        )
    return dimension


def _categorical(values: Any) -> Dimension:
    choices = tuple(values)
    if not choices:
        raise SpaceError("an empty list has nothing to choose from")
    for choice in choices:
        if choice is not None and not isinstance(choice, str | bool | int | float):
            raise SpaceError(
                f"the choice {choice!r} is a {type(choice).__name__}; Optuna stores choices "
                "that are None, bool, int, float or str (map names to objects in the function)"
            )
    if len({repr(choice) for choice in choices}) != len(choices):
        raise SpaceError(f"{list(choices)!r} has the same choice twice")
    return Dimension(CATEGORICAL, choices=choices)


def _from_optuna(spec: Any) -> Dimension:
    # The user imported Optuna to make this object: importing its distributions is free.
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if isinstance(spec, CategoricalDistribution):
        return _categorical(spec.choices)
    if isinstance(spec, IntDistribution):
        step = None if spec.step == 1 else int(spec.step)
        return Dimension(INT, int(spec.low), int(spec.high), log=spec.log, step=step)
    if isinstance(spec, FloatDistribution):
        return Dimension(FLOAT, spec.low, spec.high, log=spec.log, step=spec.step)
    raise SpaceError(f"cannot use the Optuna object {spec!r} as a distribution")


def _text(value: float | int | None) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return repr(value)
    return f"{value:g}" if isinstance(value, float) else str(value)
