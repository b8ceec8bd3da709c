"""Seeds on demand: the group-sequential rule that judges a repeated cell after each batch of seeds.

Pure arithmetic, no pytest and no mlflow; ``scipy`` is imported when a level
is computed. A cell with a seed budget (``repeats=(5, 20)``) is looked at
after its first seeds and after each further batch: ``Design(5, 20)`` looks at
5, 10, 15 and 20 seeds. At every look each judged metric gets the confidence
bound of ``gate.bounds`` (Welch), at that look's level: strict at the first
looks, laxer at the last, by the boundary shape of Wang and Tsiatis ("Approximately
optimal one-parameter boundaries for group sequential trials", Biometrics 1987)
with ``SHAPE`` 0.25, between Pocock's constant level (0.5) and O'Brien and
Fleming's (0): the look at ``n`` of ``N`` seeds rejects beyond ``C * (n / N) **
(SHAPE - 0.5)`` on the normal scale. Few of a regression's seeds can show it
against a 5-seed baseline at the first look, so most of the error is kept for
the last looks, where the seeds have the power to use it; a clear regression
still stops at the first look.

The looks are correlated (the baseline's seeds are shared by every look,
and each look's seeds include the earlier ones'), and with few seeds their
Welch statistics are far from normal, so ``C`` is not read from normal-theory
tables: ``look_levels`` simulates the looks' Welch p-values at the tolerance's
edge (100,000 sequences, a fixed seed, cached) and takes the ``C`` that keeps
a call of regressed, at one look or another, below the design level, at the
upper confidence end of the simulation (``CALIBRATION_SE``). The design level
is ``DESIGN_SHARE`` (90%) of ``1 - confidence``, 4.5% at the default 95%, a
design choice: the simulation assumes equal spreads on both sides, and the
level over several Welch looks rises when the current seeds spread more than
the baseline's. Calibrated to exactly 5%, the looks at 5, 10, 15 and 20 seeds
against 5 baseline seeds would call 5.3% of the cells at the edge regressed
when the current seeds spread 1.4 times as much as the baseline's, 5.6% at
twice; calibrated as they are, 4.3% with equal spreads, 4.5% and 4.8%
(simulated, 200,000 draws each). Their levels: 0.0052, 0.0156, 0.0258 and
0.0350; a single look keeps ``1 - confidence``.

When several metrics are judged, the regressed and improved calls are
corrected by Holm's step-down procedure over the metrics (Holm, "A simple
sequentially rejective multiple test procedure", Scand. J. Statist. 1979) at
the look's level, so that a cell is called regressed by mistake with at
most that chance, whatever its number of metrics. A cell passes only when
every metric passes, which needs no correction (an intersection-union test).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from .bounds import (
    IMPROVED,
    INCONCLUSIVE,
    PASSED,
    REGRESSED,
    Interval,
    Sample,
    seeds_needed,
    welch,
)

#: The most looks a design may have (its levels are solved over all of them).
MAX_LOOKS = 20


@dataclass(frozen=True)
class Design:
    """``first`` seeds, then batches of ``step`` more while undecided, up to ``budget``."""

    first: int
    budget: int
    step: int = 0

    @property
    def batch(self) -> int:
        return self.step or self.first

    @property
    def looks(self) -> tuple[int, ...]:
        """The seed counts the cell is judged at: ``(5, 10, 15, 20)`` for ``Design(5, 20)``."""
        counts = list(range(self.first, self.budget + 1, self.batch))
        if counts[-1] != self.budget:
            counts.append(self.budget)
        return tuple(counts)

    def batch_of(self, index: int) -> int:
        """The batch of the seed at ``index`` (0: the first seeds, 1: the first extra batch...)."""
        if index < self.first:
            return 0
        return 1 + (index - self.first) // self.batch


def look_levels(alpha: float, looks: Sequence[int], n_baseline: int) -> tuple[float, ...]:
    """Each look's level, so that all looks together keep ``alpha`` (Wang and Tsiatis).

    Each rounded down to four significant digits; ``(alpha,)`` for a single look.
    """
    looks = tuple(sorted(set(looks)))
    if len(looks) <= 1:
        return (alpha,)
    return _look_levels(round(alpha, 6), looks, max(int(n_baseline), 2))


#: The boundary's shape (Wang and Tsiatis' Delta): 0.5 is Pocock's constant level, 0
#: O'Brien and Fleming's; 0.25 keeps most of the error for the last looks.
SHAPE = 0.25
#: The share of ``1 - confidence`` the looks together are calibrated to (a reserve for
#: spreads that differ between the sides, which the calibration does not simulate).
DESIGN_SHARE = 0.9
#: Simulated sequences of looks behind the levels (fewer for long budgets).
DRAWS = 100_000
#: The simulation's seed: the same levels on every machine and in every session.
DRAW_SEED = 29
#: Standard errors of the simulated level kept below the design level (its upper end).
CALIBRATION_SE = 3.0


@functools.lru_cache(maxsize=128)
def _look_levels(alpha: float, looks: tuple[int, ...], n_baseline: int) -> tuple[float, ...]:
    """The boundary ``C * (n / N) ** (SHAPE - 0.5)`` whose looks keep the design level.

    Simulated: normal seeds of equal spread on both sides, the baseline's drawn
    once, the current ones growing look after look, each look's Welch
    p-value as ``judge_look`` computes it, at the tolerance's edge. ``C`` is
    the quantile of the largest look's z-score over its boundary's shape,
    taken at the upper confidence end of the simulation (``CALIBRATION_SE``):
    at 100,000 draws the design level 0.045 becomes 0.0430 in the draws, so
    that the true level is at most the design level although the draws only
    estimate it.
    """
    import numpy as np
    from scipy import special

    rng = np.random.default_rng(DRAW_SEED)
    draws = max(10_000, min(DRAWS, 20_000_000 // (looks[-1] + n_baseline)))
    baseline = rng.standard_normal((draws, n_baseline))
    mean_b, var_b = baseline.mean(axis=1), baseline.var(axis=1, ddof=1)
    current = rng.standard_normal((draws, looks[-1]))
    sums, squares = np.cumsum(current, axis=1), np.cumsum(current**2, axis=1)
    shape = np.array([(n / looks[-1]) ** (SHAPE - 0.5) for n in looks])
    largest = np.full(draws, -np.inf)
    for n, weight in zip(looks, shape, strict=True):
        mean = sums[:, n - 1] / n
        var = (squares[:, n - 1] - n * mean**2) / (n - 1)
        a, b = var / n, var_b / n_baseline
        se = np.sqrt(a + b)
        df = (a + b) ** 2 / (a**2 / (n - 1) + b**2 / (n_baseline - 1))
        p = special.stdtr(df, -(mean_b - mean) / se)  # the regressed p-value at the edge
        largest = np.maximum(largest, -special.ndtri(p) / weight)
    # The level's true chance at the edge is only estimated by the draws: take the
    # quantile CALIBRATION_SE binomial standard errors below the design level, so that
    # it keeps it unless the draws were off by more than that (a chance of 0.13%).
    design = alpha * DESIGN_SHARE
    upper_end = design - CALIBRATION_SE * math.sqrt(design * (1 - design) / draws)
    boundary = float(np.quantile(largest, 1 - max(upper_end, design / 2)))
    levels = []
    for weight in shape:
        level = float(special.ndtr(-boundary * weight))
        if level <= 0:  # a boundary beyond floating point: that look cannot call regressed
            levels.append(0.0)
            continue
        digits = 3 - math.floor(math.log10(level))
        levels.append(math.floor(level * 10**digits) / 10**digits)
    return tuple(levels)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's adjusted p-values, in the order given."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class Comparison:
    """One metric at one look: its two samples, its tolerance and its direction."""

    current: Sample
    baseline: Sample
    tolerance: float
    up: bool


def judge_look(
    comparisons: Sequence[Comparison], design: Design, confidence: float
) -> list[Interval]:
    """Each metric's interval and verdict at this look, over the looks and the metrics.

    The intervals are shown at the look's level; the regressed and improved
    calls are Holm's over the metrics. The look is the last of ``design`` at
    or below the current seeds (fewer seeds than the first look: the first).
    """
    from scipy import special

    if not comparisons:
        return []
    alpha = 1 - confidence
    n_baseline = max(c.baseline.n for c in comparisons)
    looks = design.looks
    n_now = min(c.current.n for c in comparisons)
    look = max(1, sum(1 for n in looks if n <= n_now))
    level = look_levels(alpha, looks, n_baseline)[min(look, len(looks)) - 1]
    stats_ = []
    for c in comparisons:
        difference = c.current.mean - c.baseline.mean
        if not c.up:
            difference = -difference
        se, df = welch(c.current, c.baseline)
        stats_.append((difference, se, df))

    def p_above(statistic: float, df: float) -> float:
        """The one-sided p-value of the difference being above ``statistic`` standard errors."""
        return float(special.stdtr(df, -statistic))

    p_regressed, p_passed, p_improved = [], [], []
    for (difference, se, df), c in zip(stats_, comparisons, strict=True):
        if se == 0 or math.isnan(difference):
            below, above, better = (
                difference < -c.tolerance or math.isnan(difference),
                difference >= -c.tolerance,
                difference > 0,
            )
            p_regressed.append(0.0 if below else 1.0)
            p_passed.append(0.0 if above else 1.0)
            p_improved.append(0.0 if better else 1.0)
            continue
        p_regressed.append(p_above((-c.tolerance - difference) / se, df))
        p_passed.append(p_above((difference + c.tolerance) / se, df))
        p_improved.append(p_above(difference / se, df))
    regressed, improved = holm(p_regressed), holm(p_improved)
    correction = f"look {look} of {len(looks)} at {level:.4g} (Wang-Tsiatis)"
    if len(comparisons) > 1:
        correction += f", Holm over {len(comparisons)} metrics"
    intervals = []
    for i, ((difference, se, df), c) in enumerate(zip(stats_, comparisons, strict=True)):
        margin = 0.0 if se == 0 else -float(special.stdtrit(df, level)) * se
        if regressed[i] <= level:
            verdict = REGRESSED
        elif improved[i] <= level:
            verdict = IMPROVED
        elif p_passed[i] <= level:
            verdict = PASSED
        else:
            verdict = INCONCLUSIVE
        needed = None
        if verdict == INCONCLUSIVE:
            needed = seeds_needed(difference, c.current.std, c.baseline.std, c.tolerance, 1 - level)
        intervals.append(
            Interval(
                difference=difference,
                low=difference - margin,
                high=difference + margin,
                confidence=1 - level,
                n_current=c.current.n,
                n_baseline=c.baseline.n,
                tolerance=c.tolerance,
                verdict=verdict,
                needed=needed,
                up=c.up,
                correction=correction,
                final=look >= len(looks),
                looks=looks,
            )
        )
    return intervals


@dataclass(frozen=True)
class Power:
    """What a sample's spread lets its seeds decide, for the power lines."""

    metric: str
    spread: float
    seeds: int
    #: The smallest change ``seeds`` seeds a side can tell from no change.
    decidable: float
    tolerance: float
    #: Seeds a side the tolerance needs, were the noise the spread seen; None beyond
    #: ``bounds.MAX_SEEDS``.
    needed: int | None

    def __str__(self) -> str:
        """``val_accuracy: spread 0.012 over 5 seeds; 5 seeds decide changes >= 0.016; ...``."""
        text = (
            f"{self.metric}: spread {self.spread:.3g} over {self.seeds} seeds; "
            f"{self.seeds} seeds decide changes >= {self.decidable:.3g}"
        )
        if self.tolerance <= 0:
            return text + "; the tolerance 0 cannot be decided by any number of seeds"
        needed = f"about {self.needed}" if self.needed is not None else "more than 1000"
        return text + f"; the tolerance {self.tolerance:.3g} needs {needed} seeds a side"


def power(
    metric: str, sample: Sample, tolerance: float, confidence: float, *, spread: float | None = None
) -> Power | None:
    """The power line of ``metric`` from its seeds' spread (or ``spread``); None without one."""
    from scipy import stats

    if not sample.has_spread:
        return None
    se, df = welch(sample, sample)
    decidable = float(stats.t.ppf(confidence, df)) * se
    noise = sample.std if spread is None else spread
    needed = seeds_needed(0.0, noise, noise, tolerance, confidence) if tolerance > 0 else None
    return Power(metric, sample.std, sample.n, decidable, tolerance, needed)
