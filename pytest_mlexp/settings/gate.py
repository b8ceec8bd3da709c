"""The regression gate's settings: the baseline source, tolerances, directions, reports."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import pytest

from .baselines import ACCEPTED_SPECS, BaselineSpec, parse_spec
from .sources import base_dir, bool_setting, lookup, settings_file, yaml_mapping
from .tolerances import ACCEPTED_TOLERANCES, RuleError, Tolerance, parse_tolerance

T = TypeVar("T")

#: How a repeated cell with seeds on both sides is judged: a confidence bound, or the means.
BOUND = "bound"
MEAN = "mean"
#: On a grid's marker: the grid is gated as a whole, by its best cell (like a search).
BEST = "best"
GATE_RULES = (BOUND, MEAN)
ACCEPTED_GATES = "bound (a one-sided confidence bound over the seeds) or mean (the means alone)"
MARKER_GATES = (BOUND, MEAN, BEST)
ACCEPTED_MARKER_GATES = ACCEPTED_GATES + ", or best (a grid gated by its best cell)"
ACCEPTED_CONFIDENCE = "a level from 0.5 to below 1, such as 0.95 or '95%'"
DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class GateSettings:
    """The gate's resolved settings (CLI > ini > mlexp.yaml > default).

    Only what is configured is parsed, so a session that gates nothing does
    not load the gate's rules.
    """

    spec: BaselineSpec | None = None
    baseline_file: Path | None = None
    #: The baseline file as shown: relative to the rootdir when inside it.
    file_label: str = ""
    update: bool = False
    require: bool = False
    promote: bool = False
    report_md: Path | None = None
    #: The tolerance of every metric without its own; ``None``: the built-in 1%.
    default_tolerance: Tolerance | None = None
    tolerances: Mapping[str, Tolerance] = field(default_factory=dict)
    #: The project's metric directions; also used to rank a grid's cells.
    directions: Mapping[str, str] = field(default_factory=dict)
    #: How repeated cells are judged: ``bound`` or ``mean`` (markers override it).
    rule: str = BOUND
    #: The confidence of the bound (markers override it).
    confidence: float = DEFAULT_CONFIDENCE
    #: An inconclusive cell fails the session.
    strict: bool = False
    #: ``--mlexp-judge``: the metrics judged, named; ``None``: the default (``Rules.judges``).
    judge: frozenset[str] | None = None
    #: ``--mlexp-seed-budget``: the most seeds of an inconclusive repeated cell; 0: none.
    seed_budget: int = 0

    @property
    def compares(self) -> bool:
        """A baseline source is given and this session compares with it."""
        return self.spec is not None or (self.baseline_file is not None and not self.update)

    @property
    def source(self) -> str:
        if self.spec is not None:
            return f"--mlexp-baseline {self.spec}"
        return self.file_label


def resolve_gate(config: pytest.Config) -> GateSettings:
    """Resolve the gate's settings, or raise ``UsageError`` naming the source and the value."""
    rootdir = Path(config.rootpath)
    spec = None
    found = lookup(config, option="mlexp_baseline", key="baseline")
    if found is not None:
        try:
            spec = parse_spec(str(found[0]))
        except ValueError as exc:
            raise pytest.UsageError(f"{found[1]}: {exc}; accepted: {ACCEPTED_SPECS}") from None
    baseline_file = None
    found_file = lookup(config, option="mlexp_baseline_file", key="baseline_file")
    if found_file is not None:
        baseline_file = Path(str(found_file[0]))
        if not baseline_file.is_absolute():
            baseline_file = base_dir(found_file[1], config) / baseline_file
    if found is not None and found_file is not None:
        raise pytest.UsageError(
            f"{found[1]} and {found_file[1]} are two baseline sources; give only one "
            "(the store with --mlexp-baseline, or a file with --mlexp-baseline-file)"
        )
    update = bool(config.getoption("mlexp_update_baseline"))
    if update and baseline_file is None:
        raise pytest.UsageError(
            "--mlexp-update-baseline: no baseline file to write; "
            "give one with --mlexp-baseline-file PATH"
        )
    default = None
    found_tol = lookup(config, option="mlexp_tolerance", key="tolerance")
    if found_tol is not None:
        default = tolerance(found_tol[0], found_tol[1])
    report_md = config.getoption("mlexp_report_md")
    rule = BOUND
    found_rule = lookup(config, option="mlexp_gate", key="gate")
    if found_rule is not None:
        rule = gate_rule(found_rule[0], found_rule[1])
    confidence = DEFAULT_CONFIDENCE
    found_confidence = lookup(config, option="mlexp_confidence", key="confidence")
    if found_confidence is not None:
        confidence = confidence_level(found_confidence[0], found_confidence[1])
    budget = 0
    found_budget = lookup(config, option="mlexp_seed_budget", key="seed_budget")
    if found_budget is not None:
        budget = seed_count(found_budget[0], found_budget[1])
    return GateSettings(
        spec=spec,
        baseline_file=baseline_file,
        update=update,
        require=bool(config.getoption("mlexp_require_baseline"))
        or bool(config.getini("mlexp_require_baseline")),
        promote=bool(config.getoption("mlexp_promote_baseline")),
        file_label=_display_path(baseline_file, rootdir) if baseline_file else "",
        report_md=Path(report_md).absolute() if report_md else None,
        default_tolerance=default,
        tolerances=MappingProxyType(
            {
                **_yaml_pairs(config, "tolerances", tolerance),
                **_ini_pairs(config, "mlexp_tolerances", tolerance),
            }
        ),
        directions=MappingProxyType(
            {
                **_yaml_pairs(config, "directions", direction),
                **_ini_pairs(config, "mlexp_directions", direction),
            }
        ),
        rule=rule,
        confidence=confidence,
        strict=bool_setting(config, "mlexp_gate_strict", "gate_strict", False),
        judge=resolve_judge(config),
        seed_budget=budget,
    )


ACCEPTED_SEED_BUDGET = "a number of seeds of 2 or more, such as 20"


def seed_count(value: Any, where: str) -> int:
    """A seed budget such as ``20``, or ``UsageError`` naming ``where``."""
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) < 2:
        raise pytest.UsageError(
            f"{where}: bad seed budget {value!r}; accepted: {ACCEPTED_SEED_BUDGET}"
        )
    return int(text)


def resolve_judge(config: pytest.Config) -> frozenset[str] | None:
    """``--mlexp-judge``, ini ``mlexp_judge`` or ``judge:`` in the settings file, else None."""
    found: Any = config.getoption("mlexp_judge")
    where = "--mlexp-judge"
    if not found:
        found, where = config.getini("mlexp_judge"), "ini mlexp_judge"
    if not found:
        source, values = settings_file(config)
        found, where = values.get("judge"), f"{source} judge"
    if found in (None, "", []):
        return None
    return metric_names(found, where)


def metric_names(value: Any, where: str) -> frozenset[str]:
    """Metric names from ``"a, b"`` or a list, or ``UsageError`` naming ``where``."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise pytest.UsageError(
            f"{where}: expected metric names, comma-separated or a list, such as "
            f"'accuracy, val_loss' or ['accuracy', 'val_loss'], got {value!r}"
        )
    names = frozenset(n.strip() for item in items for n in item.split(",") if n.strip())
    if not names:
        raise pytest.UsageError(f"{where}: names no metric; e.g. accuracy, val_loss")
    return names


def gate_rule(value: Any, where: str, *, marker: bool = False) -> str:
    """``bound`` or ``mean`` (or, on a marker, ``best``), or ``UsageError`` naming ``where``."""
    text = str(value).strip().lower()
    if text not in (MARKER_GATES if marker else GATE_RULES):
        accepted = ACCEPTED_MARKER_GATES if marker else ACCEPTED_GATES
        raise pytest.UsageError(f"{where}: unknown gate {value!r}; accepted: {accepted}")
    return text


def confidence_level(value: Any, where: str) -> float:
    """A confidence level such as ``0.95`` or ``"95%"``, or ``UsageError`` naming ``where``."""
    text = str(value).strip()
    try:
        if isinstance(value, bool):
            raise ValueError
        level = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        level = math.nan
    if not 0.5 <= level < 1:
        raise pytest.UsageError(
            f"{where}: bad confidence {value!r}; accepted: {ACCEPTED_CONFIDENCE}"
        )
    return level


def tolerance(value: Any, where: str) -> Tolerance:
    """A tolerance in any accepted spelling, or ``UsageError`` naming ``where``."""
    try:
        return parse_tolerance(value)
    except RuleError as exc:
        raise pytest.UsageError(f"{where}: {exc}; accepted forms: {ACCEPTED_TOLERANCES}") from None


def direction(value: Any, where: str) -> str:
    """``up``, ``down`` or ``ignore``, or ``UsageError`` naming ``where``."""
    from .. import directions

    try:
        return directions.parse_direction(value)
    except ValueError as exc:
        raise pytest.UsageError(
            f"{where}: {exc}; accepted: {directions.ACCEPTED_DIRECTIONS}"
        ) from None


def _yaml_pairs(config: pytest.Config, key: str, parse: Callable[[Any, str], T]) -> dict[str, T]:
    raw, source = yaml_mapping(config, key, "a mapping of metric: value")
    return {str(metric): parse(value, f"{source} {key}.{metric}") for metric, value in raw.items()}


def _ini_pairs(config: pytest.Config, name: str, parse: Callable[[Any, str], T]) -> dict[str, T]:
    pairs = {}
    for line in config.getini(name):
        metric, sep, value = str(line).partition("=")
        if not sep or not metric.strip():
            raise pytest.UsageError(
                f"ini {name}: malformed line {line!r}; expected METRIC=VALUE, e.g. accuracy=0.01"
            )
        pairs[metric.strip()] = parse(value.strip(), f"ini {name} {metric.strip()}")
    return pairs


def _display_path(path: Path, rootdir: Path) -> str:
    try:
        return str(path.relative_to(rootdir))
    except ValueError:
        return str(path)
