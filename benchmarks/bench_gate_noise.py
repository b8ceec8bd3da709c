"""The gate on noisy repeated cells, by simulation: false failures and detected regressions.

No ML and no MLflow: each simulated gate draws a metric per seed from a
normal distribution for a baseline cell and a current cell, summarizes each
side as a cell run does (mean, sample std, seeds) and judges them with the
gate's own function, ``gate.rules.compare_cell``, under the default tolerance
(1%), once by today's default rule (``gate="mean"``: the difference of the
means against the tolerance) and once by the confidence bound (``gate="bound"``,
confidence 0.95). Run from the repository root:

    .venv/bin/python benchmarks/bench_gate_noise.py [--gates 4000] [--seed 0]

It prints two markdown tables:

- **false failures**: nothing changed (both sides drawn around 0.80), noise
  (the per-seed standard deviation) 0.5%, 1%, 2% and 5% of the metric, 3, 5
  and 10 seeds a side: the share of gates calling the cell regressed, and for
  the bound also the share it calls inconclusive (which does not fail);
- **detection**: the current cell worse by the tolerance plus 3 standard
  errors, with 5 seeds a side, at each noise level, and for reference by 3.5
  and 4 standard errors. The standard error is that of the difference of two
  means of n seeds at the true noise: ``sigma * sqrt(2 / n)``.

- **seeds on demand**: the sequential rule (``gate.sequential``, a seed budget
  ``repeats=(5, 20)``: looks at 5, 10, 15 and 20 seeds, each at its level of
  the Wang-Tsiatis boundary) against the fixed five, at each noise level: the level at the
  tolerance's edge (a true change of exactly -tolerance called regressed), the
  false failures with nothing changed, the detection of a regression of the
  tolerance + 3 standard errors of a 5 + 5 comparison, the share decided as
  passed with nothing changed, and the mean seeds spent. Against a 5-seed
  baseline, and against a baseline recorded as ``--mlexp-update-baseline``
  records it under a budget: all 20 seeds (``--design grown`` runs only
  those rows).

The rates depend on the draws only, not on the machine or its load.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time

from pytest_mlexp.gate.bounds import INCONCLUSIVE
from pytest_mlexp.gate.rules import IMPROVED, OK, REGRESSED, Rules, compare_cell

MEAN = 0.80
NOISES = (0.005, 0.01, 0.02, 0.05)
SEEDS = (3, 5, 10)
TOLERANCE = 0.01  # the default, relative: 1% of the baseline's mean
DETECT_SEEDS = 5
RULES = {"mean": Rules(directions={"accuracy": "up"}, gate="mean")}
RULES["bound"] = Rules(directions={"accuracy": "up"}, gate="bound")
FIRST, BUDGET = 5, 20
SEQUENTIAL = Rules(directions={"accuracy": "up"}, first_seeds=FIRST, seed_budget=BUDGET)


def summary(values: list[float], n: int) -> dict[str, float]:
    """A cell run's metrics for the first ``n`` of ``values``.

    The sample std in floating point (``statistics.stdev`` computes it exactly, in
    fractions, several times slower; the looks call this most).
    """
    mean = math.fsum(values[:n]) / n
    return {
        "accuracy": mean,
        "accuracy.std": math.sqrt(math.fsum((x - mean) ** 2 for x in values[:n]) / (n - 1)),
        "accuracy.n": float(n),
    }


def baseline_seeds(grow: bool) -> int:
    """5, or the seeds a baseline recorded under the budget keeps: the whole budget."""
    return BUDGET if grow else FIRST


def sequential_gate(
    rng: random.Random, shift: float, sigma: float, *, sequential: bool, grow: bool
) -> tuple[str, int]:
    """One cell judged look after look (or once, fixed): its verdict and the seeds it ran."""
    before_values = [rng.gauss(MEAN, sigma) for _ in range(BUDGET)]
    now_values = [rng.gauss(MEAN + shift, sigma) for _ in range(BUDGET)]
    before = summary(before_values, baseline_seeds(grow))
    if not sequential:
        (row,) = compare_cell(summary(now_values, FIRST), before, RULES["bound"])
        return row.verdict, FIRST
    n = FIRST
    while True:
        (row,) = compare_cell(summary(now_values, n), before, SEQUENTIAL)
        if row.verdict != INCONCLUSIVE or n >= BUDGET:
            return row.verdict, n
        n += FIRST


def sequential_row(
    rng: random.Random, sigma: float, gates: int, *, sequential: bool, grow: bool
) -> dict[str, float]:
    """The figures of one design at one noise level."""
    tau = TOLERANCE * MEAN
    se5 = sigma * math.sqrt(2 / FIRST)
    figures: dict[str, float] = {}
    for name, shift in (("edge", -tau), ("zero", 0.0), ("regression", -(tau + 3 * se5))):
        verdicts: list[str] = []
        seeds: list[int] = []
        for _ in range(gates):
            verdict, n = sequential_gate(rng, shift, sigma, sequential=sequential, grow=grow)
            verdicts.append(verdict)
            seeds.append(n)
        figures[f"{name} regressed"] = verdicts.count(REGRESSED) / gates
        figures[f"{name} passed"] = (verdicts.count(OK) + verdicts.count(IMPROVED)) / gates
        figures[f"{name} seeds"] = statistics.fmean(seeds)
    return figures


def cell(rng: random.Random, mean: float, sigma: float, n: int) -> dict[str, float]:
    """What a cell run holds for ``n`` seeds: the mean, the std and (from its tag) n."""
    values = [rng.gauss(mean, sigma) for _ in range(n)]
    return {
        "accuracy": statistics.fmean(values),
        "accuracy.std": statistics.stdev(values),
        "accuracy.n": float(n),
    }


def verdicts(
    rng: random.Random, shift: float, sigma: float, n: int, gates: int
) -> dict[str, dict[str, float]]:
    """Rule -> share of gates per row verdict, the current mean ``shift`` from the baseline's."""
    counts: dict[str, dict[str, int]] = {rule: {} for rule in RULES}
    for _ in range(gates):
        before = cell(rng, MEAN, sigma, n)
        now = cell(rng, MEAN + shift, sigma, n)
        for rule, rules in RULES.items():
            (row,) = compare_cell(now, before, rules)
            counts[rule][row.verdict] = counts[rule].get(row.verdict, 0) + 1
    return {
        rule: {verdict: count / gates for verdict, count in found.items()}
        for rule, found in counts.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gates", type=int, default=4000, help="simulated gates per cell")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--design",
        action="append",
        choices=("fixed", "sequential", "grown"),
        help="only these rows of the seeds-on-demand table (repeatable), and no other table",
    )
    parser.add_argument(
        "--noise",
        action="append",
        type=float,
        help="only these noise levels (%% of the metric, repeatable) of the seeds-on-demand table",
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    started = time.perf_counter()
    if not args.design:
        fixed_tables(rng, args.gates)
    chosen = set(args.design or ("fixed", "sequential", "grown"))
    noises = tuple(n / 100 for n in args.noise) if args.noise else NOISES
    sequential_table(rng, args.gates, chosen, noises)
    print(f"\n{time.perf_counter() - started:.0f} s")


def fixed_tables(rng: random.Random, gates: int) -> None:
    """The false-failure and detection tables of the fixed-seed rules."""
    print(f"False failures with nothing changed ({gates} gates each, tolerance 1%):\n")
    print("| noise (% of metric) | seeds a side | mean rule: failed | bound: failed | "
          "bound: inconclusive |")  # fmt: skip
    print("|---|---|---|---|---|")
    worst = 0.0
    for noise in NOISES:
        for n in SEEDS:
            shares = verdicts(rng, 0.0, noise * MEAN, n, gates)
            failed = shares["bound"].get(REGRESSED, 0.0)
            worst = max(worst, failed)
            print(
                f"| {noise * 100:g}% | {n} | {shares['mean'].get(REGRESSED, 0.0):.1%} | "
                f"{failed:.1%} | {shares['bound'].get(INCONCLUSIVE, 0.0):.1%} |"
            )
    print(f"\nworst false-failure rate of the bound: {worst:.1%}\n")

    print(
        f"Detection of a regression of the tolerance + k standard errors, {DETECT_SEEDS} seeds "
        f"a side (SE = sigma * sqrt(2/{DETECT_SEEDS})):\n"
    )
    print("| noise (% of metric) | k | regression | mean rule: failed | bound: failed | "
          "bound: inconclusive |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for noise in NOISES:
        sigma = noise * MEAN
        se = sigma * math.sqrt(2 / DETECT_SEEDS)
        for k in (3.0, 3.5, 4.0):
            shift = -(TOLERANCE * MEAN + k * se)
            shares = verdicts(rng, shift, sigma, DETECT_SEEDS, gates)
            print(
                f"| {noise * 100:g}% | {k:g} | {shift:+.4f} | "
                f"{shares['mean'].get(REGRESSED, 0.0):.1%} | "
                f"{shares['bound'].get(REGRESSED, 0.0):.1%} | "
                f"{shares['bound'].get(INCONCLUSIVE, 0.0):.1%} |"
            )


def sequential_table(
    rng: random.Random, gates: int, chosen: set[str], noises: tuple[float, ...] = NOISES
) -> None:
    """The seeds-on-demand table: the fixed five, and the sequential rule against two baselines."""
    print(
        f"\nSeeds on demand: repeats=({FIRST}, {BUDGET}), looks at 5, 10, 15, 20 seeds, "
        f"against the fixed {FIRST} ({gates} gates a row, tolerance 1%; regression: "
        f"tolerance + 3 SE of a 5 + 5 comparison):\n"
    )
    print("| noise (% of metric) | noise / tolerance | design | baseline | level at the edge | "
          "false failures, nothing changed | nothing changed, decided passed | "
          "seeds, nothing changed | detection | seeds on a regression |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    designs = (
        ("fixed", "fixed 5", False, False, "5 seeds"),
        ("sequential", "sequential 5 to 20", True, False, "5 seeds"),
        ("grown", "sequential 5 to 20", True, True, "recorded under the budget: 20"),
    )
    for noise in noises:
        sigma = noise * MEAN
        for name, label, sequential, grow, baseline in designs:
            if name not in chosen:
                continue
            f = sequential_row(rng, sigma, gates, sequential=sequential, grow=grow)
            print(
                f"| {noise * 100:g}% | {sigma / (TOLERANCE * MEAN):g} | {label} | {baseline} | "
                f"{f['edge regressed']:.1%} | {f['zero regressed']:.1%} | "
                f"{f['zero passed']:.1%} | {f['zero seeds']:.1f} | "
                f"{f['regression regressed']:.1%} | {f['regression seeds']:.1f} |"
            )


if __name__ == "__main__":
    main()
