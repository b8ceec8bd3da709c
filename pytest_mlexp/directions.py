"""Which way a metric is better: one vocabulary for a grid's best cell and for the gate.

A metric's direction is ``up`` (higher is better), ``down`` (lower is
better) or ``ignore``. It comes from what the user configured (the marker's
``direction=``, ini ``mlexp_directions``, ``directions:`` in ``mlexp.yaml``,
or ``best="loss:min"``), else it is guessed from the metric's name. A metric
whose direction can be neither found nor guessed (``throughput``,
``latency``, ``time``) is not gated, and does not pick a best cell.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

UP = "up"
DOWN = "down"
IGNORE = "ignore"
DIRECTIONS = (UP, DOWN, IGNORE)
ACCEPTED_DIRECTIONS = "'up' (higher is better), 'down' (lower is better), 'ignore'"

#: Names, or parts of names split on anything but letters and digits, whose direction is known.
HIGHER_IS_BETTER = frozenset(
    {
        *("accuracy", "acc", "f1", "auc", "roc", "roc_auc", "pr_auc", "precision", "recall"),
        *("r2", "score", "map", "ndcg", "iou", "dice", "bleu", "rouge", "top1", "top5"),
        "sharpe",
    }
)
LOWER_IS_BETTER = frozenset(
    {
        *("loss", "rmse", "mae", "mse", "mape", "error", "err", "logloss", "perplexity"),
        *("wer", "cer"),
    }
)


@dataclass(frozen=True)
class Direction:
    """A metric's direction (``up``, ``down``, ``ignore``, or ``None`` when unknown)."""

    metric: str
    direction: str | None
    #: True when the direction was guessed from the name rather than configured.
    guessed: bool = False

    @property
    def known(self) -> bool:
        return self.direction in (UP, DOWN)


def guess_direction(metric: str) -> str | None:
    """``up`` or ``down`` for names like ``val_accuracy`` or ``test/rmse``; else ``None``."""
    name = metric.lower()
    if name in HIGHER_IS_BETTER:
        return UP
    if name in LOWER_IS_BETTER:
        return DOWN
    parts = {part for part in re.split(r"[^a-z0-9]+", name) if part}
    # Two-word names such as roc_auc are matched whole above and by their parts here.
    up, down = bool(parts & HIGHER_IS_BETTER), bool(parts & LOWER_IS_BETTER)
    if up == down:
        return None
    return UP if up else DOWN


def direction_of(metric: str, configured: Mapping[str, str] | None = None) -> Direction:
    """The configured direction of ``metric``, else the guessed one, else unknown."""
    if configured and metric in configured:
        return Direction(metric, configured[metric])
    guessed = guess_direction(metric)
    return Direction(metric, guessed, guessed=guessed is not None)


def parse_direction(value: object) -> str:
    """``up``/``higher``/``max``, ``down``/``lower``/``min``, or ``ignore``; ``ValueError`` else."""
    text = value.strip().lower() if isinstance(value, str) else None
    text = {"higher": UP, "max": UP, "lower": DOWN, "min": DOWN}.get(text or "", text)
    if text not in DIRECTIONS:
        raise ValueError(f"bad direction {value!r}")
    return text


def max_or_min(direction: str) -> str:
    """How a best cell's direction is shown: ``max`` for up, ``min`` for down."""
    return "max" if direction == UP else "min"


@dataclass(frozen=True)
class BestSpec:
    """Which metric picks the best of several runs, and in which direction."""

    metric: str | None
    #: ``up`` or ``down``; ``None``: from the configured directions, else guessed.
    direction: str | None = None
    #: Where the metric was chosen, as the grid line says it (``returned``, ``params file``).
    source: str = field(default="", compare=False)

    @classmethod
    def parse(cls, text: str | None, source: str = "") -> BestSpec:
        """``"r2"``, ``"loss:min"`` or ``"score:max"``; empty: the first metric logged.

        ``ValueError`` for anything else.
        """
        if not text:
            return cls(None)
        name, _, direction = str(text).strip().partition(":")
        direction = direction.strip().lower()
        if not name.strip() or direction not in ("", "max", "min"):
            raise ValueError(
                f"bad best metric {text!r}; expected NAME, NAME:max or NAME:min, "
                "e.g. r2 or val_loss:min"
            )
        return cls(name.strip(), parse_direction(direction) if direction else None, source)

    def resolve(self, metric: str, configured: Mapping[str, str] | None = None) -> Direction:
        """The direction ``metric`` is ranked by under this spec."""
        if self.direction is not None:
            return Direction(metric, self.direction)
        return direction_of(metric, configured)

    def __str__(self) -> str:
        if self.metric is None:
            return ""
        if self.direction is None:
            return self.metric
        return f"{self.metric}:{max_or_min(self.direction)}"
