"""The confidence bound that judges a repeated cell: is it worse than its baseline, beyond noise?

Pure arithmetic, no pytest and no mlflow; ``scipy.stats`` is imported when a
bound is computed. Each side is a sample of seeds: its mean, its standard
deviation and how many seeds (``Sample``). The difference of the means, in the
metric's good direction (current - baseline, positive = better), gets a
one-sided bound on each side at the given confidence, with Welch's standard
error and the Welch-Satterthwaite degrees of freedom (``Interval``). With the
tolerance ``tau`` (how much worse is acceptable, in the metric's units):

- **regressed** when the upper bound is below ``-tau``: worse by more than the
  tolerance, beyond the noise;
- **improved** when the lower bound is above 0: better, beyond the noise (a
  pass);
- **passed** when the lower bound is at least ``-tau``: not worse by more than
  the tolerance;
- **inconclusive** otherwise: the seeds cannot tell; ``Interval.needed``
  estimates how many seeds per side would.

With nothing changed, a cell is called regressed with probability at most
``1 - confidence`` (less with a tolerance), whatever the noise and the seeds.
The interval is shown for current - baseline, as the verdict tables show a
change, whatever the metric's direction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..settings.gate import DEFAULT_CONFIDENCE

#: Fewer seeds than this on a side: the bound cannot be computed (no spread).
MIN_SEEDS = 2
#: ``needed`` is not estimated beyond this many seeds per side.
MAX_SEEDS = 1000

REGRESSED = "REGRESSED"
IMPROVED = "improved"
PASSED = "passed"
INCONCLUSIVE = "INCONCLUSIVE"


@dataclass(frozen=True)
class Sample:
    """One side of the comparison: the mean of a metric over ``n`` seeds and their std."""

    mean: float
    std: float
    n: int

    @property
    def has_spread(self) -> bool:
        return self.n >= MIN_SEEDS and math.isfinite(self.std) and self.std >= 0


@dataclass(frozen=True)
class Interval:
    """The one-sided bounds of the good-direction difference of the means, and its verdict."""

    #: current - baseline in the good direction (positive = better).
    difference: float
    low: float
    high: float
    confidence: float
    n_current: int
    n_baseline: int
    #: The tolerance, in the metric's units: how much worse is acceptable.
    tolerance: float
    verdict: str
    #: For an inconclusive verdict: seeds per side estimated to decide; None if many.
    needed: int | None = None
    #: Higher is better; else ``low``/``high`` bound the baseline - current difference.
    up: bool = True
    #: The sequential rule's correction (``gate.sequential``), e.g. ``look 2 of 4 at 0.0154
    #: (Wang-Tsiatis), Holm over 2 metrics``; empty for a single look.
    correction: str = ""
    #: Whether no more seeds will come (a single look, or the budget's last look).
    final: bool = True
    #: The seed counts of the sequential rule's looks; empty for a single look.
    looks: tuple[int, ...] = ()

    @property
    def change(self) -> tuple[float, float]:
        """The interval of current - baseline, as the verdict tables show changes."""
        return (self.low, self.high) if self.up else (-self.high, -self.low)

    def __str__(self) -> str:
        """E.g. ``[-0.0123, +0.0041] 95%, n 5/5, ~12 seeds a side to decide``."""
        low, high = self.change
        text = (
            f"[{low:+.4g}, {high:+.4g}] {self.confidence * 100:g}%, "
            f"n {self.n_current}/{self.n_baseline}"
        )
        if self.correction:
            text += f", {self.correction}"
        if self.verdict == INCONCLUSIVE:
            text += (
                f", ~{self.needed} seeds a side to decide"
                if self.needed is not None
                else f", > {MAX_SEEDS} seeds a side to decide"
            )
        return text


def welch(current: Sample, baseline: Sample) -> tuple[float, float]:
    """The standard error of the difference of the means and its Welch-Satterthwaite df."""
    a = current.std**2 / current.n
    b = baseline.std**2 / baseline.n
    se = math.sqrt(a + b)
    if se == 0:
        return 0.0, math.inf
    df = (a + b) ** 2 / (a**2 / (current.n - 1) + b**2 / (baseline.n - 1))
    return se, df


def judge(
    current: Sample,
    baseline: Sample,
    tolerance: float,
    *,
    up: bool,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Interval:
    """The interval of the difference and the verdict it gives; both samples need a spread."""
    from scipy import stats

    difference = current.mean - baseline.mean if up else baseline.mean - current.mean
    se, df = welch(current, baseline)
    margin = 0.0 if se == 0 else float(stats.t.ppf(confidence, df)) * se
    low, high = difference - margin, difference + margin
    if math.isnan(difference) or high < -tolerance:
        verdict = REGRESSED
    elif low > 0:
        verdict = IMPROVED
    elif low >= -tolerance:
        verdict = PASSED
    else:
        verdict = INCONCLUSIVE
    needed = None
    if verdict == INCONCLUSIVE:
        needed = seeds_needed(difference, current.std, baseline.std, tolerance, confidence)
    return Interval(
        difference=difference,
        low=low,
        high=high,
        confidence=confidence,
        n_current=current.n,
        n_baseline=baseline.n,
        tolerance=tolerance,
        verdict=verdict,
        needed=needed,
        up=up,
    )


def seeds_needed(
    difference: float, std_current: float, std_baseline: float, tolerance: float, confidence: float
) -> int | None:
    """Seeds per side that would decide, were the means and stds what they are now.

    The smallest ``n`` (the same on both sides) whose bound keeps off ``-tolerance``:
    ``t(confidence, df) * sqrt((s1^2 + s2^2) / n) <= |difference + tolerance|``.
    ``None`` beyond ``MAX_SEEDS`` (the difference sits on the tolerance).
    """
    from scipy import special  # the functions behind scipy.stats.t and .norm, per scalar

    distance = abs(difference + tolerance)
    spread = math.sqrt(std_current**2 + std_baseline**2)
    if distance == 0:
        return None
    z = float(special.ndtri(confidence))
    n = max(MIN_SEEDS, math.ceil((z * spread / distance) ** 2))
    while n <= MAX_SEEDS:
        se, df = welch(Sample(0, std_current, n), Sample(0, std_baseline, n))
        if float(special.stdtrit(df, confidence)) * se <= distance:
            return n
        n += 1
    return None
