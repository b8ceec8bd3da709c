"""Tolerances: how much worse than its baseline a metric may get (settings, markers, the gate).

A value type of the settings, so that resolving them needs none of the gate;
the gate's ``rules`` judge metrics with them.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ACCEPTED_TOLERANCES = (
    "0.01 (absolute), '2%' (relative), '2 std' (times <metric>.std), "
    "several joined by 'or' ('0.01 or 2 std'), or {'abs': 0.01, 'rel': 0.02, 'std': 2}"
)

_NUMBER_RE = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TOLERANCE_PART_RE = re.compile(rf"^\s*({_NUMBER_RE})\s*(%|std)?\s*$")


class RuleError(ValueError):
    """A bound, tolerance or direction that cannot be understood; the message says why."""


@dataclass(frozen=True)
class Tolerance:
    """How much worse a metric may get: the largest of abs, rel * |baseline| and std * sigma."""

    abs: float = 0.0
    rel: float = 0.0
    std: float = 0.0

    def allowed(self, baseline: float, std: float | None) -> float:
        candidates = [self.abs, self.rel * abs(baseline)]
        if self.std and std is not None and math.isfinite(std):
            candidates.append(self.std * std)
        return max(candidates)

    def __str__(self) -> str:
        parts = []
        if self.abs or not (self.rel or self.std):
            parts.append(format_number(self.abs))
        if self.rel:
            parts.append(f"{format_number(self.rel * 100)}%")
        if self.std:
            parts.append(f"{format_number(self.std)} std")
        return " or ".join(parts)


def parse_tolerance(value: Any) -> Tolerance:
    """A tolerance in any accepted spelling; ``RuleError`` otherwise."""
    if isinstance(value, bool):
        raise RuleError(f"bad tolerance {value!r}")
    if isinstance(value, numbers.Real):
        return _checked(Tolerance(abs=float(value)), value)
    if isinstance(value, Mapping):
        unknown = sorted(str(k) for k in value if k not in ("abs", "rel", "std"))
        if unknown or not value:
            raise RuleError(f"bad tolerance {dict(value)!r}")
        parts = {}
        for key, number in value.items():
            if isinstance(number, bool) or not isinstance(number, numbers.Real):
                raise RuleError(f"bad tolerance {dict(value)!r}")
            parts[str(key)] = float(number)
        return _checked(Tolerance(**parts), value)
    if isinstance(value, str):
        found: dict[str, float] = {}
        for part in re.split(r"\bor\b", value):
            match = _TOLERANCE_PART_RE.match(part)
            if match is None:
                raise RuleError(f"bad tolerance {value!r}")
            number, unit = float(match.group(1)), match.group(2)
            kind = {"%": "rel", "std": "std"}.get(unit or "", "abs")
            if kind in found:
                raise RuleError(f"bad tolerance {value!r} ({kind} given twice)")
            found[kind] = number / 100 if kind == "rel" else number
        return _checked(Tolerance(**found), value)
    raise RuleError(f"bad tolerance {value!r}")


def _checked(tolerance: Tolerance, raw: Any) -> Tolerance:
    values = (tolerance.abs, tolerance.rel, tolerance.std)
    if any(v < 0 or not math.isfinite(v) for v in values):
        raise RuleError(f"bad tolerance {raw!r} (must be finite and not negative)")
    return tolerance


def format_number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}"
