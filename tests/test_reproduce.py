"""``mlexp reproduce``: a run re-made from its lineage, its metrics compared with the original's.

The command itself starts one pytest per group of runs sharing their code (a
process boundary is its subject: the rebuilt project runs apart from the
user's tree); everything else runs in this process.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow import MlflowClient

from conftest import logged_metrics
from pytest_mlexp.backend import tags as T
from pytest_mlexp.reports.ui_view import VIEW_KEY, read_view_state
from pytest_mlexp.runs.identity import current_user

PREMADE_STORE = True

EXPERIMENTS = """
    import os
    from pathlib import Path

    import pytest
    from repro_helpers import FACTOR


    def experiment_scaled(mlflow_run, alpha):
        return {"y": alpha * FACTOR, "third": alpha / 3}


    def experiment_noise(mlflow_run):
        return {"noise": int.from_bytes(os.urandom(4), "big") / 2**32, "steady": 1.0}


    def experiment_lazy(mlflow_run):
        from repro_late import VALUE  # imported in the call: lineage does not log it

        return {"z": VALUE}


    @pytest.mark.mlexp(search={"lr": [0.1, 0.2, 0.3]}, trials=1, objective="loss:min", seed=3)
    def experiment_search(mlflow_run, lr):
        return {"loss": lr * FACTOR}


    @pytest.mark.mlexp(inputs=["data/level.txt"])
    def experiment_level(mlflow_run):
        level = Path(__file__).parents[1] / "data" / "level.txt"
        return {"accuracy": float(level.read_text())}
"""


def files_of(root: Path) -> dict[str, bytes]:
    """The project's files, but the store's (and ``.config``: pytester's HOME), by path."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
        and "mlruns" not in path.parts
        and ".config" not in path.parts
        and ".git" not in path.parts
        and "__pycache__" not in path.parts
        and not path.name.startswith("mlflow.db")
    }


@pytest.fixture
def project(ourtester: pytest.Pytester, git: Callable[..., str]) -> pytest.Pytester:
    """A git repository whose helper module is changed, not committed, when the runs are made."""
    ourtester.makeini("[pytest]\npythonpath = .\n")
    ourtester.makepyfile(repro_helpers="FACTOR = 1\n", repro_late="VALUE = 7\n")
    (ourtester.path / "data").mkdir()
    (ourtester.path / "data" / "level.txt").write_text("0.9\n")
    (ourtester.path / "experiments").mkdir()
    (ourtester.path / "experiments" / "params.yaml").write_text(
        "experiment_scaled:\n  grid: {alpha: [1.0, 2.0]}\n"
    )
    (ourtester.path / "experiments" / "experiment_demo.py").write_text(textwrap.dedent(EXPERIMENTS))
    git(ourtester.path, "init", "-q")
    git(ourtester.path, "add", ".")
    git(ourtester.path, "commit", "-qm", "first")
    (ourtester.path / "repro_helpers.py").write_text("FACTOR = 2\n")
    return ourtester


def test_a_run_comes_back_from_its_logged_code_and_a_session_says_what_moved(
    project, mlexp, client, git
):
    result = project.runpytest("experiments", "--mlexp-experiment", "demo", "-p", "no:randomly")
    result.assert_outcomes(passed=6)
    experiment = client.get_experiment_by_name("demo")
    everything = client.search_runs([experiment.experiment_id])
    originals = {r.info.run_name: r for r in everything if "mlexp.kind" not in r.data.tags}
    original_groups = {r.info.run_id: r for r in everything if "mlexp.kind" in r.data.tags}
    cell = originals["experiment_scaled[2.0]"]
    session = cell.data.tags["mlexp.session_id"]

    # The working tree moves on: the experiment, its helper and the params file change.
    # The runs were made from a dirty tree (FACTOR = 2 not committed): their code holds it.
    as_run = files_of(project.path)
    module = project.path / "experiments" / "experiment_demo.py"
    module.write_text(module.read_text().replace("alpha * FACTOR", "alpha * FACTOR + 1"))
    (project.path / "repro_helpers.py").write_text("FACTOR = 5\n")
    (project.path / "experiments" / "params.yaml").write_text(
        "experiment_scaled:\n  grid: {alpha: [3.0]}\n"
    )
    before = files_of(project.path)

    # From a subfolder of the project, with the project's settings.
    done = mlexp(project.path / "experiments", "reproduce", cell.info.run_id)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"mlexp reproduce: run {cell.info.run_id} (experiment_scaled[2.0])")
    assert lines[1] == (
        "code: 2 files from its lineage (experiments/experiment_demo.py, repro_helpers.py); "
        "the params file as loaded"
    )
    assert lines[4].split() == ["metric", "original", "reproduced", "difference", "verdict"]
    assert lines[5].split() == ["third", "0.6666666667", "0.6666666667", "0", "ok"]
    assert lines[6].split() == ["y", "4", "4", "0", "ok"]
    assert lines[-1] == "reproduced: 2 metrics within 1e-9 relative"
    new = client.get_run(lines[2].split()[3])
    assert new.data.tags["mlexp.reproduces"] == cell.info.run_id
    assert new.data.tags["mlexp.nodeid"] == "experiments/experiment_demo.py::experiment_scaled[2.0]"
    assert logged_metrics(new) == logged_metrics(cell) == {"y": 4.0, "third": 2.0 / 3}
    assert new.data.params == cell.data.params == {"alpha": "2.0"}
    assert new.info.experiment_id == cell.info.experiment_id
    # The grid parent the reproducing session made is named and tagged for the one it
    # reproduces: not a second ordinary parent of the grid.
    grid = original_groups[cell.data.tags["mlflow.parentRunId"]]
    copy_parent = client.get_run(new.data.tags["mlflow.parentRunId"])
    assert copy_parent.info.run_name == f"reproduce of {grid.info.run_name}"
    assert copy_parent.data.tags["mlexp.reproduces"] == grid.info.run_id
    assert copy_parent.data.tags["mlexp.kind"] == "grid"
    # The original is untouched, and so is the working tree.
    again = client.get_run(cell.info.run_id)
    assert again.data.tags == cell.data.tags
    assert logged_metrics(again) == logged_metrics(cell)
    assert client.get_run(grid.info.run_id).data.tags == grid.data.tags
    assert files_of(project.path) == before

    # The whole session, in one pytest: the grid cells from the params file and the
    # search trial come back, the non-deterministic metric moved, the lazy import is named,
    # and the run whose declared input changed since does not reproduce.
    (project.path / "data" / "level.txt").write_text("0.95\n")
    before = files_of(project.path)
    done = mlexp(project.path, "reproduce", "--session", session)
    assert done.returncode == 1, done.stdout + done.stderr
    rows = {line.split()[1]: line for line in done.stdout.splitlines()[2:8]}
    assert rows["experiment_scaled[1.0]"].startswith("ok ")
    assert rows["experiment_scaled[2.0]"].startswith("ok ")
    assert rows["experiment_search[trial-0]"].startswith("ok ")
    assert rows["experiment_level"].startswith("MOVED ")
    assert rows["experiment_level"].endswith(": accuracy 0.9 -> 0.95")
    assert rows["experiment_noise"].startswith("MOVED ")
    assert " noise 0." in rows["experiment_noise"]
    assert "steady" not in rows["experiment_noise"]
    # A module the experiment imported in its call is not in the lineage: it is named.
    lazy = originals["experiment_lazy"]
    assert rows["experiment_lazy"].split(None, 3)[:3] == [
        "ERROR",
        "experiment_lazy",
        lazy.info.run_id,
    ]
    assert rows["experiment_lazy"].endswith(
        "its code imports 'repro_late' (repro_late.py) from the project, which the run's "
        "lineage does not hold (lineage logs the project modules imported when the run "
        "starts, not those imported later, inside a function); import it at the top of the "
        "experiment module or of a conftest.py, so that new runs log it, and reproduce one "
        "of those"
    )
    assert "3 of 6 runs reproduced" in done.stdout
    assert "what differs between the run and now:" in done.stdout
    assert "  packages: the same versions" in done.stdout
    head = git(project.path, "rev-parse", "HEAD").strip()
    assert (
        f"  git commit: {head} (dirty), the same, but the uncommitted changes differ"
    ) in done.stdout

    copies = [
        r
        for r in client.search_runs([experiment.experiment_id], "tags.`mlexp.reproduces` != ''")
        if "mlexp.kind" not in r.data.tags
    ]
    assert sorted(r.data.tags["mlexp.reproduces"] for r in copies) == sorted(
        [cell.info.run_id] + [run.info.run_id for run in originals.values()]
    )
    trial = originals["experiment_search[trial-0]"]
    (trial_copy,) = [r for r in copies if r.data.tags["mlexp.reproduces"] == trial.info.run_id]
    assert trial_copy.data.params == trial.data.params
    assert "mlexp.trial" not in trial_copy.data.tags  # no study was asked
    assert files_of(project.path) == before
    # Every group run of a reproducing session is named and tagged for the one it reproduces.
    groups = [
        r for r in client.search_runs([experiment.experiment_id]) if "mlexp.kind" in r.data.tags
    ]
    assert {r.info.run_id for r in groups if "mlexp.reproduces" not in r.data.tags} == set(
        original_groups
    )
    copied = [r for r in groups if "mlexp.reproduces" in r.data.tags]
    assert len(copied) == 2  # experiment_scaled's, one per reproducing session; a trial has none
    for group in copied:
        reproduced = original_groups[group.data.tags["mlexp.reproduces"]]
        assert group.info.run_name == f"reproduce of {reproduced.info.run_name}"
        assert group.data.tags["mlexp.kind"] == reproduced.data.tags["mlexp.kind"]

    # By name, a run is the latest of that name that is not a reproduction.
    level = originals["experiment_level"]
    (level_copy,) = [r for r in copies if r.info.run_name == "experiment_level"]
    compared = mlexp(project.path, "compare", "experiment_level", level_copy.info.run_id)
    assert compared.returncode == 0, compared.stderr
    assert compared.stdout.splitlines()[2].split() == [
        "run", "id", level.info.run_id, level_copy.info.run_id
    ]  # fmt: skip

    # Back to the tree the runs were made from: a session comparing with the latest runs and
    # reusing unchanged ones takes the originals, not the reproduction that did not reproduce
    # (its accuracy 0.95 would make the original's 0.9 a regression).
    for path, content in as_run.items():
        (project.path / path).write_bytes(content)
    select = ("-k", "experiment_level or experiment_scaled")
    flags = ("--mlexp-baseline", "latest", "--mlexp-reuse", "--mlexp-lineage", "none")
    result = project.runpytest("experiments", "--mlexp-experiment", "demo", *select, *flags)
    result.assert_outcomes(passed=3)
    newest_last = client.search_runs([experiment.experiment_id], order_by=["start_time ASC"])
    latest = {r.info.run_name: r for r in newest_last}
    for name in ("experiment_level", "experiment_scaled[1.0]", "experiment_scaled[2.0]"):
        run, original = latest[name], originals[name]
        assert run.data.tags["mlexp.outcome"] == "reused", name
        assert run.data.tags["mlexp.reused_from"] == original.info.run_id, name
        assert run.data.tags["mlexp.baseline.run_id"] == original.info.run_id, name
        assert run.data.tags["mlexp.regression"] == "passed", name
    assert latest["experiment_level"].data.metrics["accuracy"] == 0.9

    # `mlexp runs` leaves the reproductions out, and lists them marked when asked.
    listed = mlexp(project.path, "runs", "--experiment", "demo")
    assert listed.returncode == 0, listed.stderr
    assert not any(r.info.run_id in listed.stdout for r in copies)
    assert "(reproductions not listed: mlexp runs --reproductions lists them)" in listed.stdout
    listed = mlexp(project.path, "runs", "--experiment", "demo", "--reproductions")
    lines = listed.stdout.splitlines()
    assert lines[1].split()[-1] == "REPRODUCES"
    (row,) = [line for line in lines if line.startswith(level_copy.info.run_id)]
    assert row.split()[-1] == level.info.run_id
    (row,) = [line for line in lines if line.startswith(level.info.run_id)]
    assert row.split()[-1] == "-"
    parents = mlexp(project.path, "runs", "--experiment", "demo", "--parents").stdout
    assert "reproduce of" not in parents
    parents = mlexp(project.path, "runs", "--experiment", "demo", "--parents", "--reproductions")
    assert parents.stdout.count("reproduce of experiment_scaled") == 2
    # The UI's saved view shows the tag's column, kept by the ordinary session after them.
    view = client.get_experiment(experiment.experiment_id).tags[T.SAVED_VIEW_PREFIX + VIEW_KEY]
    assert read_view_state(view)["columnOrder"][2] == "tags.`mlexp.reproduces`"


def test_on_a_tracking_server_and_runs_that_cannot_be_reproduced_say_why(
    ourtester, mlexp, mlflow_server
):
    ourtester.makepyfile(
        experiment_plain="""
        import pytest

        @pytest.mark.parametrize("k", [1, 2])
        def experiment_plain(mlflow_run, k):
            return {"k": k}
        """,
        experiment_kept="def experiment_kept(mlflow_run):\n    return {'one': 1.0}\n",
    )
    store = ("--mlexp-tracking-uri", mlflow_server.url, "--mlexp-experiment", "reproduce-errors")
    args = (*store, "-p", "no:randomly")
    ourtester.runpytest("experiment_plain.py", *args, "--mlexp-lineage=none").assert_outcomes(
        passed=2
    )
    ourtester.runpytest("experiment_kept.py", *args).assert_outcomes(passed=1)
    client = MlflowClient(mlflow_server.url)
    experiment = client.get_experiment_by_name("reproduce-errors")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    cell, kept = runs["experiment_plain[1]"], runs["experiment_kept"]
    parent = next(r for r in runs.values() if r.data.tags.get("mlexp.kind") == "grid")
    server = ("--tracking-uri", mlflow_server.url)

    # By name, the latest of this checkout's runs: a name of runs from two test files is
    # refused; another user's run is named but not taken, unless --anyone (on the server, as
    # on sqlite).
    twin = client.create_run(
        experiment.experiment_id,
        run_name="experiment_kept",
        tags={"mlexp.nodeid": "other.py::experiment_kept", "mlflow.user": current_user()},
    )
    client.set_terminated(twin.info.run_id)
    done = mlexp(ourtester.path, "reproduce", "experiment_kept", *server)
    assert done.returncode == 2
    assert (
        "mlexp reproduce: error: name 'experiment_kept' names runs of 2 test files: "
        "experiment_kept.py::experiment_kept, other.py::experiment_kept; give one of these "
        "node ids, or a run id"
    ) in done.stderr
    client.set_tag(kept.info.run_id, "mlflow.user", "someone-else")
    nodeid = "experiment_kept.py::experiment_kept"
    done = mlexp(ourtester.path, "reproduce", nodeid, *server)
    assert done.returncode == 2
    assert f"no run named {nodeid!r} of yours (user {current_user()})" in done.stderr
    assert "others made some: add --anyone" in done.stderr
    done = mlexp(ourtester.path, "reproduce", nodeid, "--anyone", *server)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == (
        f"mlexp reproduce: run {kept.info.run_id} (experiment_kept), experiment "
        f"reproduce-errors, test {nodeid}; the latest of that name, anyone's"
    )
    assert done.stdout.splitlines()[-1] == "reproduced: 1 metric within 1e-9 relative"
    new = client.get_run(done.stdout.splitlines()[2].split()[3])
    assert new.data.tags["mlexp.reproduces"] == kept.info.run_id
    assert new.info.experiment_id == experiment.experiment_id

    done = mlexp(ourtester.path, "reproduce", cell.info.run_id, *server)
    assert done.returncode == 2
    assert done.stderr == (
        f"mlexp reproduce: error: run {cell.info.run_id} (experiment_plain[1]) has no lineage: "
        "it logged no code (no artifacts under code/), as when made with "
        "--mlexp-lineage=none or without the code part; run the experiment again with "
        "lineage on (the default) to make a reproducible run\n"
    )
    done = mlexp(ourtester.path, "reproduce", parent.info.run_id, *server)
    assert done.returncode == 2
    assert "is a grid run holding other runs' results, not one test's run" in done.stderr
    assert "mlexp reproduce --session " in done.stderr

    # A run made by another tool: nothing says which test made it.
    other = client.create_run(experiment.experiment_id, run_name="by-hand")
    client.set_terminated(other.info.run_id)
    done = mlexp(ourtester.path, "reproduce", other.info.run_id, *server)
    assert (done.returncode, done.stderr) == (
        2,
        f"mlexp reproduce: error: run {other.info.run_id} (by-hand) was not made by "
        "pytest-mlexp (it has no mlexp.nodeid tag), so nothing says which test made it\n",
    )

    done = mlexp(ourtester.path, "reproduce", "0123456789abcdef0123456789abcdef", *server)
    assert done.returncode == 2
    assert done.stderr.startswith(
        "mlexp reproduce: error: no run with id or name '0123456789abcdef0123456789abcdef' in "
    )
    assert done.stderr.endswith("; `mlexp runs` lists the runs\n")

    done = mlexp(ourtester.path, "reproduce", kept.info.run_id, "--tolerance", "lots", *server)
    assert done.returncode == 2
    assert "--tolerance: bad tolerance 'lots'; accepted forms: 0.01 (absolute)" in done.stderr
    done = mlexp(ourtester.path, "reproduce", *server)
    assert (done.returncode, done.stderr) == (
        2,
        "mlexp reproduce: error: give a RUN_ID or --session ID (one of them)\n",
    )
    done = mlexp(ourtester.path, "reproduce", "--session", "nosuch", *server)
    assert done.returncode == 2
    assert "no run of session 'nosuch' in " in done.stderr


def test_what_changed_in_the_environment_is_named():
    from pytest_mlexp.lineage.drift import packages_line, python_line

    then = "# Python 3.9.1 on Linux\nnumpy==1.26.4\nscikit-learn==1.4.2\nsix==1.16\n"
    now = "numpy==2.1.0\nscikit-learn==1.4.2\ntorch==2.5\n"
    assert packages_line(then, now) == (
        "packages changed (3): numpy 1.26.4 -> 2.1.0, six 1.16 -> -, torch - -> 2.5"
    )
    assert packages_line(now, now) == "packages: the same versions"
    assert packages_line(None, now).startswith("packages: not logged then")
    assert python_line("3.9.1").startswith("python: 3.9.1 then, ")


def test_only_the_baselines_picked_for_the_user_leave_reproductions_out():
    from pytest_mlexp.backend.search import NOT_REPRODUCTION
    from pytest_mlexp.settings.baselines import parse_spec

    for spec in ("latest", "branch:main"):
        assert NOT_REPRODUCTION in parse_spec(spec).filter_string("s1").split(" and ")
    # Named runs are taken as named, reproductions included.
    for spec in ("promoted", "tag:k=v", "session:s0"):
        assert NOT_REPRODUCTION not in parse_spec(spec).filter_string("s1")
