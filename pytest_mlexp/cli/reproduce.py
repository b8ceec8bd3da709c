"""``mlexp reproduce``: re-run a past run from its lineage, and say whether its metrics came back.

For each run: its code is rebuilt from its ``code/`` artifacts in a scratch
folder (``lineage.restore``), with the params file as it was loaded; its test
id runs there in a pytest of its own, in the current environment, against the
same store and experiment; the new run is tagged ``mlexp.reproduces=<run id>``
and every metric is compared with the original's. Runs of a session that
share their code are re-run by one pytest.

Every run the reproducing pytest makes carries ``mlexp.reproduces`` from its
creation (``--mlexp-tag``), so no other session takes it for a baseline, a
reuse source or a group's member while it runs; its group runs (grid parents,
cell runs, search parents) are then tagged with, and named for, the group run
they reproduce: ``reproduce of experiment_grid · 12-07 09:29:42 · a1b2c3d``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..backend import tags as T
from ..backend.errors import StoreError
from ..settings.tolerances import ACCEPTED_TOLERANCES, RuleError, Tolerance, parse_tolerance
from .project import EXIT_USAGE, Project, open_project, reports_errors, store_options
from .scope import add_anyone_flag, checkout_scope, run_by_name
from .tables import table

if TYPE_CHECKING:
    from ..lineage.restore import RestoredCode
    from ..reports.stored_runs import StoredRun

#: Metrics must come back within this relative difference, unless ``--tolerance`` says.
DEFAULT_TOLERANCE = Tolerance(rel=1e-9)
#: Exit code when a run did not reproduce (a metric moved, or its test failed).
EXIT_NOT_REPRODUCED = 1
#: Lines of the reproducing pytest's output shown when it did not end well.
OUTPUT_TAIL = 30
#: Rebuilt files listed before "... and N more".
FILES_SHOWN = 5
#: The name of a group run of a reproducing session: ``reproduce of <the original's name>``.
GROUP_NAME = "reproduce of {name}"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "reproduce",
        parents=[store_options("look run names and the session up in this experiment only")],
        help="re-run a run from its logged code and compare its metrics",
        description="Rebuild a run's code from its lineage in a scratch folder, run its test "
        "again with the same params in the current environment, against the same store and "
        "experiment (the new run is tagged mlexp.reproduces=RUN_ID), and compare every "
        "metric. Exit 0 when all are within the tolerance, 1 when one moved, 2 when the run "
        "cannot be reproduced (unknown run, no lineage, a module missing from the lineage).",
    )
    parser.add_argument(
        "run",
        nargs="?",
        metavar="RUN_ID",
        help="run id, or run name or test id (FILE::NAME): the latest run of that name",
    )
    parser.add_argument(
        "--session", metavar="ID", help="reproduce every run of this pytest session instead"
    )
    parser.add_argument(
        "--tolerance",
        metavar="TOL",
        help="how far a reproduced metric may be from the original: the gate's forms, "
        "0.01 (absolute), 2%% (relative), '2 std', '0.01 or 2%%' (default: 1e-9 relative)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the rebuilt project (the scratch folder) and print where it is",
    )
    add_anyone_flag(parser, "the latest run of a name")
    parser.set_defaults(handler=run_reproduce)


# -- what is reproduced --------------------------------------------------------------------


class CannotReproduce(Exception):
    """A run that cannot be re-run; the message says why and what to do."""


@dataclass
class Plan:
    """One run to reproduce: the original, and the run whose lineage holds its code."""

    original: StoredRun
    #: The run whose artifacts hold the code: the original, or the run it reused.
    source_id: str
    nodeid: str

    @property
    def group_key(self) -> tuple[str, ...]:
        """Runs with the same key share their code and are re-run by one pytest."""
        tags = self.original.tags
        code = tags.get(T.FINGERPRINT_PREFIX + "code") or self.source_id
        return (
            self.original.experiment_id,
            code,
            tags.get(T.OVERRIDES, ""),
            tags.get(T.RANDOM_SEED, ""),
        )

    @property
    def trial_params(self) -> dict[str, str] | None:
        """A search trial's values, re-run fixed (no study is asked); ``None`` for other runs."""
        if T.TRIAL not in self.original.tags:
            return None
        return dict(self.original.params)


@dataclass
class Row:
    metric: str
    original: float | None
    reproduced: float | None
    verdict: str

    @property
    def moved(self) -> bool:
        return self.verdict != OK


OK, MOVED, MISSING, NEW = "ok", "MOVED", "missing", "new"


@dataclass
class Result:
    """How one run's reproduction went."""

    plan: Plan
    reproduced: StoredRun | None = None
    rows: list[Row] = field(default_factory=list)
    #: Why it could not be reproduced at all (exit 2 for one run).
    problem: str | None = None
    #: Other differences: outcome, params.
    notes: list[str] = field(default_factory=list)
    output: str = ""
    #: The files rebuilt from the lineage, and whether a params file was among them.
    files: tuple[str, ...] = ()
    params_file: bool = False

    @property
    def ok(self) -> bool:
        return (
            self.problem is None
            and self.reproduced is not None
            and not self.notes
            and not any(row.moved for row in self.rows)
        )


# -- the command -----------------------------------------------------------------------------


@reports_errors
def run_reproduce(args: argparse.Namespace) -> int:
    if bool(args.run) == bool(args.session):
        raise pytest.UsageError("give a RUN_ID or --session ID (one of them)")
    tolerance = _tolerance(args.tolerance)
    project = open_project(args)
    if args.session:
        return _reproduce_session(project, args, tolerance)
    original, picked = _get_run(project, args)
    try:
        plan = plan_for(project, original)
    except CannotReproduce as exc:
        print(f"mlexp reproduce: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"mlexp reproduce: run {original.run_id} ({original.name}), experiment "
        f"{original.experiment}, test {original.nodeid}{picked}",
        flush=True,
    )
    (result,) = reproduce(project, [plan], tolerance, keep=args.keep)
    return _print_one(project, result, tolerance)


def _tolerance(text: str | None) -> Tolerance:
    if text is None:
        return DEFAULT_TOLERANCE
    try:
        return parse_tolerance(text)
    except RuleError as exc:
        raise pytest.UsageError(
            f"--tolerance: {exc}; accepted forms: {ACCEPTED_TOLERANCES}"
        ) from None


def _get_run(project: Project, args: argparse.Namespace) -> tuple[StoredRun, str]:
    """The run ``args.run`` names, and how it was picked (``""`` by id).

    By id, whoever made it; by name or test id, the latest of this checkout's runs
    of that name (``cli.scope``: your user name and this project's git remote), or of
    anyone's with ``--anyone``; a name whose runs come from several test files is refused.
    """
    from mlflow.exceptions import MlflowException

    from ..reports.stored_runs import stored_run

    ref = args.run
    client = project.backend.client
    try:
        run = client.get_run(ref)
    except MlflowException:
        run = None
    if run is not None:
        experiment = client.get_experiment(run.info.experiment_id)
        names = {str(experiment.experiment_id): experiment.name}
        return stored_run(project.backend, run, names), ""
    whose = checkout_scope(project, args)
    try:
        found = run_by_name(project.backend, ref, project.experiments(), whose, "name")
    except StoreError as exc:
        raise StoreError(f"{exc}; `mlexp runs` lists the runs") from None
    return found, f"; the latest of that name, {whose.describe()}"


def plan_for(project: Project, run: StoredRun) -> Plan:
    """What reproducing ``run`` takes; ``CannotReproduce`` when its lineage cannot do it."""
    from ..lineage.restore import has_code

    kind = run.tags.get(T.KIND)
    if kind:
        raise CannotReproduce(
            f"run {run.run_id} ({run.name}) is a {kind} run holding other runs' results, "
            "not one test's run; reproduce one of its runs, or all of its session with "
            f"`mlexp reproduce --session {run.session_id or 'ID'}`"
        )
    if not run.nodeid:
        raise CannotReproduce(
            f"run {run.run_id} ({run.name}) was not made by pytest-mlexp (it has no "
            f"{T.NODEID} tag), so nothing says which test made it"
        )
    source = run.tags.get(T.REUSED_FROM) or run.run_id
    if not has_code(project.backend.client, source):
        raise CannotReproduce(
            f"run {run.run_id} ({run.name}) has no lineage: it logged no code (no artifacts "
            "under code/), as when made with --mlexp-lineage=none or without the code part; "
            "run the experiment again with lineage on (the default) to make a reproducible run"
        )
    return Plan(original=run, source_id=source, nodeid=run.nodeid)


def reproduce(
    project: Project, plans: Sequence[Plan], tolerance: Tolerance, *, keep: bool = False
) -> list[Result]:
    """Reproduce every plan, one pytest per group of runs sharing their code; in order."""
    groups: dict[tuple[str, ...], list[Plan]] = {}
    for plan in plans:
        groups.setdefault(plan.group_key, []).append(plan)
    results: dict[str, Result] = {}
    for group in groups.values():
        for result in _reproduce_group(project, group, tolerance, keep=keep):
            results[result.plan.original.run_id] = result
    return [results[plan.original.run_id] for plan in plans]


def _reproduce_group(
    project: Project, plans: list[Plan], tolerance: Tolerance, *, keep: bool
) -> list[Result]:
    from ..lineage.guard import refused
    from ..lineage.restore import LineageError, restore_code

    client = project.backend.client
    scratch = Path(tempfile.mkdtemp(prefix="mlexp-reproduce-"))
    try:
        try:
            restored = restore_code(client, plans[0].source_id, scratch / "project")
        except LineageError as exc:
            return [Result(plan, problem=str(exc)) for plan in plans]
        results = {plan.original.run_id: Result(plan) for plan in plans}
        runnable = []
        for plan in plans:
            module = plan.nodeid.split("::", 1)[0]
            if module in restored.files:
                runnable.append(plan)
                continue
            problem = f"its lineage holds no {module} (the module of test {plan.nodeid})"
            results[plan.original.run_id].problem = problem
        if runnable:
            report = scratch / "refused.jsonl"
            session_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
            _rebuild_rest(project, runnable, restored.root)
            command, env = _pytest_command(project, runnable, restored, session_id, report)
            done = subprocess.run(
                command,
                cwd=restored.root,
                env=env,
                capture_output=True,
                text=True,
                errors="replace",
                check=False,
            )
            output = (done.stdout + done.stderr).rstrip()
            found = _reproduced_runs(project, runnable, session_id)
            for plan in runnable:
                result = results[plan.original.run_id]
                result.output = output
                result.files = restored.files
                result.params_file = restored.params_file is not None
                result.reproduced = found.get(plan.nodeid)
                if result.reproduced is not None:
                    client.set_tag(result.reproduced.run_id, T.REPRODUCES, plan.original.run_id)
                    _compare(result, tolerance)
            name_group_runs(client, [results[plan.original.run_id] for plan in runnable])
            for plan in runnable:
                result = results[plan.original.run_id]
                missing = refused(report, plan.nodeid)
                if missing:
                    result.problem = _missing_modules(missing)
                elif result.reproduced is None:
                    result.problem = _not_run(plan, done.returncode)
        if keep:
            print(f"mlexp reproduce: the rebuilt project is kept in {restored.root}")
        return [results[plan.original.run_id] for plan in plans]
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)


def _pytest_command(
    project: Project,
    plans: list[Plan],
    restored: RestoredCode,
    session_id: str,
    report: Path,
) -> tuple[list[str], dict[str, str]]:
    """The pytest that re-runs the plans' tests in the rebuilt project, and its environment."""
    import importlib.util

    from ..backend.uris import check_uri
    from ..lineage.guard import GUARD_ENV
    from ..search.plugin import FIXED_TRIALS_ENV
    from ..settings.cluster import RAY_ENV, SLURM_ENV
    from ..settings.reuse import REUSE_ENV
    from ..settings.tracking import SESSION_ID_ENV

    first = plans[0].original
    uri = check_uri(project.tracking.tracking_uri, Path.cwd(), reading=True)
    nodeids = list(dict.fromkeys(plan.nodeid for plan in plans))
    command = [sys.executable, "-m", "pytest", *nodeids]
    command += ["--rootdir", str(restored.root), "-p", "pytest_mlexp.lineage.guard"]
    seed = first.tags.get(T.RANDOM_SEED)
    if seed and importlib.util.find_spec("pytest_randomly") is not None:
        command += ["-p", "randomly", f"--randomly-seed={seed}"]
    else:
        command += ["-p", "no:randomly"]
    command += ["--mlexp-tracking-uri", uri, "--mlexp-experiment", first.experiment]
    # Every run of the session, its group runs included, is a reproduction from its creation;
    # with several plans the item runs get their own original's id when the session is over.
    reproduces = first.run_id if len(plans) == 1 else f"session {first.session_id}"
    command += ["--mlexp-tag", f"{T.REPRODUCES}={reproduces}"]
    params = restored.params_file
    command += ["--mlexp-params-file", str(params) if params is not None else "none"]
    # The run alone: no reuse, gate, baseline, model registration, report or cluster.
    command += ["--mlexp-rerun", "--mlexp-no-register", "-p", "no:cacheprovider"]
    # The plugin's own warnings (a params file's function not collected, as it is in a
    # module not reproduced) must not fail the reproduction under filterwarnings=error.
    command += ["-W", "ignore::pytest_mlexp.MlexpWarning"]
    for key in ("mlexp_baseline", "mlexp_baseline_file", "mlexp_html", "mlexp_ray", "mlexp_slurm"):
        command += ["-o", f"{key}="]
    command += ["-o", "mlexp_require_baseline=false", "-o", "mlexp_register="]

    env = dict(os.environ)
    for name in (REUSE_ENV, RAY_ENV, SLURM_ENV):
        env.pop(name, None)
    env[SESSION_ID_ENV] = session_id
    roots = [path.relative_to(restored.root).as_posix() for path in restored.import_roots]
    guard = {"project": str(project.tracking.rootdir), "roots": roots, "report": str(report)}
    env[GUARD_ENV] = json.dumps(guard)
    trials = {plan.nodeid: plan.trial_params for plan in plans if plan.trial_params is not None}
    if trials:
        env[FIXED_TRIALS_ENV] = json.dumps(trials)
    paths = [str(path) for path in restored.import_roots]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return command, env


def _rebuild_rest(project: Project, plans: list[Plan], root: Path) -> None:
    """The project's ini file and the plans' declared inputs, into the rebuilt project."""
    from ..lineage.restore import copy_ini, copy_inputs
    from ..reuse.fingerprint import parse_files
    from ..settings.project import project_config

    config = project_config()
    copy_ini(config.inipath, Path(config.rootpath), root)
    for plan in plans:
        names = parse_files(plan.original.tags.get(T.FINGERPRINT_INPUT_FILES, ""))
        copy_inputs(names, project.tracking.rootdir, root)


def _reproduced_runs(project: Project, plans: list[Plan], session_id: str) -> dict[str, StoredRun]:
    """The new runs, by node id: item runs of the reproducing session."""
    from ..backend.search import tag_equals
    from ..reports.stored_runs import search

    client = project.backend.client
    experiment_ids = {plan.original.experiment_id for plan in plans}
    experiments = [client.get_experiment(experiment_id) for experiment_id in experiment_ids]
    runs = search(project.backend, experiments, tag_equals(T.SESSION_ID, session_id))
    found: dict[str, StoredRun] = {}
    for run in runs:
        if T.KIND not in run.tags and run.nodeid:
            found.setdefault(run.nodeid, run)
    return found


def name_group_runs(client: Any, results: Sequence[Result]) -> None:
    """Tag and name the group runs holding the reproductions for the group runs they reproduce.

    A reproduced run's parent reproduces its original's parent, and so on up:
    ``mlexp.reproduces`` gets the original group run's id, and the name
    ``reproduce of <its name>``. A group run with no counterpart keeps its
    tag and gets ``reproduce of <its own name>``.
    """
    named: set[str] = set()
    for result in results:
        if result.reproduced is None:
            continue
        new_id = result.reproduced.tags.get(T.PARENT_RUN_ID)
        old_id = result.plan.original.tags.get(T.PARENT_RUN_ID)
        while new_id and new_id not in named:
            named.add(new_id)
            new = client.get_run(new_id)
            old = client.get_run(old_id) if old_id else None
            if old is not None:
                client.set_tag(new_id, T.REPRODUCES, old.info.run_id)
            name = (old or new).info.run_name
            client.update_run(new_id, name=GROUP_NAME.format(name=name))
            new_id = new.data.tags.get(T.PARENT_RUN_ID)
            old_id = old.data.tags.get(T.PARENT_RUN_ID) if old is not None else None


def _compare(result: Result, tolerance: Tolerance) -> None:
    original, reproduced = result.plan.original, result.reproduced
    assert reproduced is not None
    for key in sorted(set(original.metrics) | set(reproduced.metrics)):
        a, b = original.metrics.get(key), reproduced.metrics.get(key)
        if a is None:
            verdict = NEW
        elif b is None:
            verdict = MISSING
        else:
            verdict = OK if within(a, b, tolerance, original.metrics.get(f"{key}.std")) else MOVED
        result.rows.append(Row(key, a, b, verdict))
    if original.outcome != reproduced.outcome:
        why = reproduced.tags.get(T.ERROR)
        result.notes.append(
            f"outcome: {original.outcome or '-'} then, {reproduced.outcome or '-'} now"
            + (f" ({why})" if why else "")
        )
    for key in sorted(set(original.params) | set(reproduced.params)):
        a_text, b_text = original.params.get(key), reproduced.params.get(key)
        if a_text != b_text:
            result.notes.append(f"param {key}: {a_text or '-'} then, {b_text or '-'} now")


def within(original: float, reproduced: float, tolerance: Tolerance, std: float | None) -> bool:
    """Whether ``reproduced`` is within ``tolerance`` of ``original`` (NaN matches NaN)."""
    if math.isnan(original) or math.isnan(reproduced):
        return math.isnan(original) and math.isnan(reproduced)
    if math.isinf(original) or math.isinf(reproduced):
        return original == reproduced
    return abs(reproduced - original) <= tolerance.allowed(original, std)


def _missing_modules(missing: list[dict[str, str]]) -> str:
    names = ", ".join(f"{entry['module']!r} ({entry['path']})" for entry in missing)
    it = "it" if len(missing) == 1 else "them"
    return (
        f"its code imports {names} from the project, which the run's lineage does not hold "
        "(lineage logs the project modules imported when the run starts, not those imported "
        f"later, inside a function); import {it} at the top of the experiment module or of a "
        "conftest.py, so that new runs log it, and reproduce one of those"
    )


def _not_run(plan: Plan, code: int) -> str:
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        return f"the logged code has no test {plan.nodeid}"
    return f"pytest made no run of {plan.nodeid} (exit code {code})"


# -- one run ---------------------------------------------------------------------------------


def _print_one(project: Project, result: Result, tolerance: Tolerance) -> int:
    original = result.plan.original
    if result.problem is not None:
        if result.reproduced is None:
            _print_output(result)
        print(f"mlexp reproduce: error: run {original.run_id}: {result.problem}", file=sys.stderr)
        return EXIT_USAGE
    reproduced = result.reproduced
    assert reproduced is not None
    print(_code_line(result))
    print(f"reproduced as run {reproduced.run_id} (tag {T.REPRODUCES}={original.run_id})")
    print()
    if result.rows:
        print(metrics_table(result.rows))
    else:
        print("(neither run logged a metric)")
    print()
    if result.ok:
        if result.rows:
            print(f"reproduced: {_count(len(result.rows))} within {_describe(tolerance)}")
        else:
            print(f"reproduced: no metric to compare; outcome {reproduced.outcome}, as then")
        return 0
    if reproduced.outcome not in ("passed", original.outcome):
        _print_output(result)
    moved = [row.metric for row in result.rows if row.moved]
    if moved:
        print(
            f"NOT reproduced: {len(moved)} of {len(result.rows)} metrics moved beyond "
            f"{_describe(tolerance)}: {', '.join(moved)}"
        )
    else:
        print("NOT reproduced:")
    for note in result.notes:
        print(f"  {note}")
    print()
    print(differences(project, result.plan))
    return EXIT_NOT_REPRODUCED


def _code_line(result: Result) -> str:
    shown = ", ".join(result.files[:FILES_SHOWN])
    more = (
        f", ... and {len(result.files) - FILES_SHOWN} more"
        if len(result.files) > FILES_SHOWN
        else ""
    )
    files = f"{len(result.files)} file" + ("" if len(result.files) == 1 else "s")
    line = f"code: {files} from its lineage ({shown}{more})"
    if result.params_file:
        overrides = result.plan.original.tags.get(T.OVERRIDES)
        line += "; the params file as loaded" + (f", with {overrides}" if overrides else "")
    return line


def metrics_table(rows: Sequence[Row]) -> str:
    return table(
        ["metric", "original", "reproduced", "difference", "verdict"],
        [[row.metric, *_values(row), row.verdict] for row in rows],
    )


def _values(row: Row) -> list[str]:
    return [_number(row.original), _number(row.reproduced), _difference(row)]


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.10g}"


def _difference(row: Row) -> str:
    if row.original is None or row.reproduced is None:
        return ""
    change = row.reproduced - row.original
    if change == 0 or math.isnan(change):
        return "0" if change == 0 else ""
    relative = f" ({change / abs(row.original):+.2%})" if row.original else ""
    return f"{change:+.3g}{relative}"


def _count(metrics: int) -> str:
    return f"{metrics} metric" + ("" if metrics == 1 else "s")


def _describe(tolerance: Tolerance) -> str:
    if tolerance == DEFAULT_TOLERANCE:
        return "1e-9 relative"
    return f"tolerance {tolerance}"


def _print_output(result: Result) -> None:
    if not result.output:
        return
    lines = result.output.splitlines()[-OUTPUT_TAIL:]
    print("the pytest that reproduced it said (last lines):", file=sys.stderr)
    for line in lines:
        print(f"  | {line}", file=sys.stderr)


def differences(project: Project, plan: Plan) -> str:
    """What differs between the run and now: Python, packages, declared inputs, git."""
    from ..lineage.drift import changes_since
    from ..reuse.fingerprint import parse_files

    tags = plan.original.tags
    inputs = parse_files(tags.get(T.FINGERPRINT_INPUT_FILES, ""))
    lines = changes_since(
        project.backend.client, plan.source_id, tags, project.tracking.rootdir, inputs
    )
    return "\n".join(["what differs between the run and now:", *(f"  {line}" for line in lines)])


# -- a session ---------------------------------------------------------------------------------


def _reproduce_session(project: Project, args: argparse.Namespace, tolerance: Tolerance) -> int:
    from ..backend.search import tag_equals
    from ..reports.stored_runs import search

    experiments = project.experiments()
    runs = [
        run
        for run in search(project.backend, experiments, tag_equals(T.SESSION_ID, args.session))
        # Item runs only; an attempt superseded by a rerun is counted by its last attempt.
        if T.KIND not in run.tags and T.REPORT not in run.tags and run.outcome != T.OUTCOME_RERUN
    ]
    if not runs:
        raise StoreError(f"no run of session {args.session!r} in {project.backend.display_uri}")
    runs.reverse()  # oldest first, as the session ran them
    plans: list[Plan] = []
    failed: list[Result] = []
    for run in runs:
        try:
            plans.append(plan_for(project, run))
        except CannotReproduce as exc:
            failed.append(Result(Plan(run, run.run_id, run.nodeid), problem=str(exc)))
    print(f"mlexp reproduce: session {args.session}, {len(runs)} runs", flush=True)
    results = {r.plan.original.run_id: r for r in failed}
    for result in reproduce(project, plans, tolerance, keep=args.keep):
        results[result.plan.original.run_id] = result
    rows = []
    for run in runs:
        result = results[run.run_id]
        rows.append([_word(result), run.name, run.run_id, _summary(result, tolerance)])
    print(table(["", "run", "id", "result"], rows))
    good = sum(result.ok for result in results.values())
    print()
    print(f"{good} of {len(runs)} runs reproduced")
    moved = [r for r in results.values() if not r.ok and r.problem is None]
    if moved:
        print()
        print(differences(project, moved[0].plan))
    return 0 if good == len(runs) else EXIT_NOT_REPRODUCED


def _word(result: Result) -> str:
    if result.problem is not None:
        return "ERROR"
    return "ok" if result.ok else "MOVED"


def _summary(result: Result, tolerance: Tolerance) -> str:
    if result.problem is not None:
        return result.problem
    reproduced = result.reproduced
    assert reproduced is not None
    moved = [row for row in result.rows if row.moved]
    if result.ok:
        return f"as {reproduced.run_id}: {_count(len(result.rows))} within {_describe(tolerance)}"
    parts = [f"{row.metric} {_number(row.original)} -> {_number(row.reproduced)}" for row in moved]
    return f"as {reproduced.run_id}: " + "; ".join(parts + result.notes)
