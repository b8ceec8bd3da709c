"""An item's verdict from the rows of its comparison, and how it is told: tags, lines, messages."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping, Sequence

from ..backend import tags as T
from ..runs.summary import Verdict
from ..settings.gate import GateSettings
from . import rules
from .baselines import Baseline
from .rules import FAILING, N_SUFFIX, STD_SUFFIX, Row

# Verdicts of an item.
PASSED = "passed"
IMPROVED = "improved"
REGRESSED = "regressed"
NO_BASELINE = "no-baseline"
#: A repeated cell whose seeds cannot tell a regression from noise (``gate.bounds``).
INCONCLUSIVE = "inconclusive"


def verdict_of(rows: list[Row], compares: bool, baseline: Baseline | None) -> str:
    """regressed, no-baseline, inconclusive, improved or passed, from a comparison's rows."""
    if any(row.verdict in FAILING for row in rows):
        return REGRESSED
    if compares and baseline is None:
        return NO_BASELINE
    if any(row.verdict == rules.INCONCLUSIVE for row in rows):
        return INCONCLUSIVE
    if any(row.verdict == rules.IMPROVED for row in rows):
        return IMPROVED
    return PASSED


def verdict_tags(verdict: str, baseline: Baseline | None) -> dict[str, str]:
    """The tags a judged run gets: its verdict and where its baseline came from."""
    tags = {T.VERDICT: verdict}
    if baseline is not None:
        tags[T.BASELINE_SOURCE] = baseline.source
        if baseline.run_id:
            tags[T.BASELINE_RUN_ID] = baseline.run_id
    return tags


def failure_message(rows: list[Row], failing: list[Row], baseline: Baseline | None) -> str:
    """The item's failure: a headline, the verdict table, and a last line naming the culprits."""
    against = f" against baseline {baseline.source}" if baseline is not None else ""
    noun = "metric" if len(failing) == 1 else "metrics"
    lines = [f"mlexp: {len(failing)} {noun} out of bounds{against}", ""]
    lines.append(rules.format_table(rows))
    lines.append("")
    lines.append(failure_line(failing))
    return "\n".join(lines)


def failure_line(failing: list[Row]) -> str:
    """One line naming each failing metric, e.g. for the run's ``mlexp.error`` tag."""
    return "; ".join(row_summary(row) for row in failing)


def row_summary(row: Row) -> str:
    shown = row.interval_text if isinstance(row, rules.CellRow) else "-"
    interval = f", interval {shown}" if shown != "-" else ""
    if row.verdict == rules.MISSING:
        return f"{row.metric} not logged (baseline {rules.format_number(row.baseline)})"
    if row.baseline is None:
        return f"{row.metric} = {row.current:.4g}, {row.allowed}"
    return (
        f"{row.metric} {row.verdict.lower()}: {row.baseline:.4g} -> {row.current:.4g}, "
        f"change {row.change_text}, allowed {row.allowed}{interval}"
    )


def how_to_record(settings: GateSettings) -> str:
    """The command that records a baseline where the session looks for one."""
    # This interpreter's pytest: `pytest` is on PATH only in an activated virtualenv.
    runner = [sys.executable, "-m", "pytest"]
    if settings.baseline_file is not None:
        return shlex.join(
            [
                *runner,
                "--mlexp-baseline-file",
                str(settings.baseline_file),
                "--mlexp-update-baseline",
            ]
        )
    if settings.spec is not None and settings.spec.kind == "promoted":
        return f"{shlex.join([*runner, '--mlexp-promote-baseline'])} on the reference code"
    return "run the experiments once on the reference code"


def with_counts(metrics: dict[str, float], seeds: str | None) -> dict[str, float]:
    """A cell run's metrics with ``<metric>.n``, the seeds behind each mean (tag ``seeds``)."""
    if not seeds or not seeds.isdigit():
        return metrics
    counts = {
        name + rules.N_SUFFIX: int(seeds) for name in metrics if name + rules.STD_SUFFIX in metrics
    }
    return {**metrics, **counts}


def gate_tags(rows: list[Row]) -> dict[str, str]:
    """A repeated cell's rule (``bound`` or ``mean``) and each metric's interval, as tags."""
    cells = [row for row in rows if isinstance(row, rules.CellRow)]
    if not cells:
        return {}
    rule = rules.BOUND if any(row.rule == rules.BOUND for row in cells) else rules.MEAN
    intervals = "; ".join(f"{row.metric} {row.interval_text}" for row in cells)
    return {T.GATE_RULE: rule, T.GATE_INTERVAL: intervals[:5000]}


def inconclusive_line(rows: list[Row]) -> str:
    """``accuracy: change -0.01, interval [...]`` for each inconclusive row."""
    return "; ".join(
        f"{row.metric}: change {row.change_text}, allowed {row.allowed}, "
        f"interval {row.interval_text}"
        for row in rows
        if isinstance(row, rules.CellRow) and row.verdict == rules.INCONCLUSIVE
    )


def judged_metrics_line(verdicts: Sequence[Verdict], limit: int = 8) -> str:
    """``metrics judged: accuracy; recorded only (...): train_loss``, or ``""``."""
    judged = sorted(
        {
            key
            for verdict in verdicts
            for key in verdict.metrics
            if not key.endswith((STD_SUFFIX, N_SUFFIX))
        }
    )
    recorded = sorted({key for verdict in verdicts for key in verdict.recorded})
    if not judged and not recorded:
        return ""
    line = f"metrics judged: {_names(judged, limit)}"
    if recorded:
        line += (
            f"; recorded only (logged at several steps, named by no rule; "
            f"judge= names them): {_names(recorded, limit)}"
        )
    return line


def _names(names: Sequence[str], limit: int) -> str:
    shown = ", ".join(names[:limit]) or "-"
    return shown + (f" (+{len(names) - limit})" if len(names) > limit else "")


def seed_notes(
    nodeid: str,
    verdict: str,
    rows: list[Row],
    metrics: dict[str, float],
    item_rules: rules.Rules,
    *,
    recording: bool,
    first_used: Baseline | None = None,
) -> list[str]:
    """What a repeated cell's seeds did and could do, for the terminal.

    - with seeds on demand and extra seeds run: ``f[64]: passed after 10 seeds (5 + 5:
      inconclusive at 5)``;
    - inconclusive at its last look, recorded into a baseline file, or the first
      of its kind in the store (no baseline yet): each judged metric's power
      (``sequential.power``), e.g. ``val_accuracy: spread 0.012 over 5 seeds; 5 seeds
      decide changes >= 0.0141; the tolerance 0.008 needs about 14 seeds a side``;
    - judged against a store baseline for the first time (``first_used``, see
      ``group_runs._first_use``): the same of the baseline's seeds, ``f[64]: baseline run
      1f2e... (latest), first used: accuracy: spread 0.012 over 5 seeds; ...``.
    """
    from .sequential import power

    notes = []
    intervals = [row.interval for row in rows if isinstance(row, rules.CellRow) and row.interval]
    looked = [i for i in intervals if i.looks]
    if looked:
        seeds = max(i.n_current for i in looked)
        looks = looked[0].looks
        before = [n for n in looks if n < seeds]
        if before:
            sizes = [b - a for a, b in zip([0, *before], [*before, seeds], strict=True)]
            notes.append(
                f"{nodeid}: {verdict} after {seeds} seeds ("
                + " + ".join(map(str, sizes))
                + f": inconclusive at {', '.join(map(str, before))})"
            )
    if verdict == INCONCLUSIVE:
        for interval, row in ((r.interval, r) for r in rows if isinstance(r, rules.CellRow)):
            if interval is None or interval.verdict != rules.INCONCLUSIVE:
                continue
            found = power(
                row.metric,
                rules.sample_of(metrics, row.metric),
                interval.tolerance,
                interval.confidence,
            )
            if found is not None:
                notes.append(f"{nodeid}: {found}")
    elif recording or verdict == NO_BASELINE:  # the cell is the baseline of later sessions
        notes.extend(f"{nodeid}: {line}" for line in _powers(metrics, item_rules))
    if first_used is not None:
        judged = {row.metric for row in rows if isinstance(row, rules.CellRow)}
        prefix = f"{nodeid}: baseline {first_used.source}, first used: "
        notes.extend(prefix + line for line in _powers(first_used.metrics, item_rules, judged))
    return notes


def _powers(
    metrics: Mapping[str, float],
    item_rules: rules.Rules,
    only: set[str] | None = None,
) -> list[str]:
    """The power line of each metric of ``metrics`` that has a spread (of ``only``, if given)."""
    from .sequential import power

    lines = []
    for metric in sorted(metrics):
        if metric.endswith((STD_SUFFIX, N_SUFFIX)) or metric + STD_SUFFIX not in metrics:
            continue
        if only is not None and metric not in only:
            continue
        sample = rules.sample_of(metrics, metric)
        tau = item_rules.tolerance(metric).allowed(sample.mean, sample.std)
        found = power(metric, sample, tau, item_rules.confidence)
        if found is not None:
            lines.append(str(found))
    return lines


def undecided_cells(verdicts: Sequence[Verdict]) -> list[str]:
    """The cells with a seed budget that ended it inconclusive: no verdict for registration.

    A cell without a budget keeps today's rule (inconclusive does not fail, and does not
    stop registration); one with a budget asked for seeds until the gate decides.
    """
    return [
        verdict.nodeid
        for verdict in verdicts
        if verdict.cell_run_id
        and verdict.verdict == INCONCLUSIVE
        and any(
            isinstance(row, rules.CellRow) and row.interval is not None and row.interval.looks
            for row in verdict.rows
        )
    ]
