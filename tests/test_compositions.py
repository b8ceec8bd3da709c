"""Where features meet: each reads an item's FINAL outcome. One row per composition.

what happens to the item | what must read it right | test name
reruns (pytest-rerunfailures) | registration, the gate, the grid's best cell (serial, xdist -n 1) | test_a_rerun_cell_is_judged_and_registered_by_its_last_attempt
reruns | the grid's best cell, the grid line (serial, xdist -n 2) | test_reruns.py::test_a_rerun_cell_is_counted_once_by_its_last_attempt
reruns | the gate (bounds), a rerun's regressed first attempt | test_reruns.py::test_the_gate_judges_a_rerun_item_by_its_last_attempt
reruns | reuse candidates: the passing rerun, never the superseded attempt | test_a_superseded_attempt_is_not_a_reuse_candidate_its_rerun_is
reruns | reports: terminal, markdown, JUnit, HTML | test_reports_count_a_rerun_item_by_its_last_attempt
reuse | registration: no new version of the newest version's model (xdist -n 1, then in one process) | test_reuse_registers_no_second_version_of_the_same_model
reuse | the gate: a reused cell is judged by the metrics it copies | test_a_reused_cell_is_judged_by_the_metrics_it_copies
reuse | the gate against a baseline file | test_reuse.py::test_a_reused_cell_regressing_against_a_baseline_file_still_fails
reuse | the gate: a reused cell's returned metrics stay judged, its histories only recorded | test_a_reused_cell_keeps_which_metrics_were_returned_and_which_were_histories
reuse | searches: trials always execute | test_reuse.py::test_a_searchs_trials_always_execute
a search gated as a whole | registration: the version carries the search's verdict | test_a_gated_search_registers_with_the_searchs_verdict
spool and sync | grid parents, cells' values from both APIs and autolog | test_outage.py::test_values_of_both_apis_and_autolog_come_back_after_sync
spool and sync | repeat cells and their grid, created while the server is lost | test_outage.py::test_sync_completes_repeated_cells_and_their_grid_again
spool and sync | a search made while the server is lost: its parent | test_outage.py::test_sync_completes_repeated_cells_and_their_grid_again
spool, the server back before the session's end | the session syncs itself: a search's trials, a grid made in the journal, their lines and links | test_outage.py::test_a_server_back_before_the_end_gets_the_spooled_runs_and_their_groups
spool, the server lost | later runs and the session's end send it nothing (one probe); rows say pending sync, not a dead link | test_outage.py::test_values_of_both_apis_and_autolog_come_back_after_sync
spool, the server lost | the markdown report (--mlexp-report-md, step summary): journal-only runs pending sync, not linked; the group runs left for mlexp sync, said so | test_outage.py::test_values_of_both_apis_and_autolog_come_back_after_sync
spool and sync | files logged through mlflow.log_artifact/log_figure/log_dict | test_outage_artifacts.py::test_fluent_files_logged_during_an_outage_come_back_after_sync
shards ending together | grids | test_shards.py::test_shards_ending_together_keep_every_shards_counts
shards ending together | searches | test_shards.py::test_shards_ending_together_keep_every_shards_trials
xdist | grid parents, repeat cells, the summary | test_grids.py::test_xdist_gives_the_same_runs_parents_and_summary_completed_by_the_controller
xdist | registration, gate, reruns, reuse | the [xdist] rows above; test_models.py::test_registration_under_xdist_and_from_the_best_repeat
xdist | searches: one study, one parent | test_search.py::test_workers_share_one_study_and_one_parent
xdist | the gate's verdicts reach the controller | test_regression.py::test_verdicts_from_xdist_workers_reach_the_controller
xdist | grid parents completed by the controller from the summaries in the workers' reports, no file between processes | test_grids.py::test_xdist_gives_the_same_runs_parents_and_summary_completed_by_the_controller
xdist, a worker dies | the controller sweeps its run and completes the grid itself | test_grids.py::test_killed_worker_runs_are_marked_killed_by_the_controller
system metrics, reruns | each attempt's run samples its own, finished before it ends | test_system_metrics.py::test_every_run_samples_while_it_runs_and_none_without_the_flag
system metrics, xdist | without psutil the controller stops (exit 4) before any worker starts | test_system_metrics.py::test_without_psutil_the_session_stops_before_anything_runs
xdist | the confidence bound of a repeated cell, over every worker's seeds, once at the end | test_confidence.py::test_noise_passes_a_regression_fails_few_seeds_are_inconclusive
shards ending together | the confidence bound of a repeated cell, over every shard's seeds | test_confidence.py::test_ci_shards_judge_the_cell_over_every_shards_seeds
a repeated cell judged by its bound | reports: terminal table, markdown, HTML verdict cell (interval, n each side) | test_confidence.py::test_noise_passes_a_regression_fails_few_seeds_are_inconclusive
keep-models, xdist | the controller prunes the worse cell's models after registering the best repeat | test_models.py::test_registration_under_xdist_and_from_the_best_repeat
Ray cluster (--mlexp-ray) | grid parents, repeated cells, the gate's verdicts: the same as serially | test_ray.py::test_on_a_ray_cluster
Ray cluster | a search (its study shared through the project's journal), registration of its best trial's model, the HTML report | test_ray.py::test_on_a_ray_cluster
Ray cluster | a params-file grid placed by its resources:, git lineage from the controller, Ray Client (ray://) | test_ray.py::test_on_a_ray_cluster
Ray cluster, a node lost mid-item | the lost attempt KILLED as superseded (outcome rerun), the retry counted | test_ray.py::test_on_a_ray_cluster
Ray cluster, Ctrl-C | the runs in flight end KILLED (interrupted) | test_ray.py::test_on_a_ray_cluster
Ray cluster, Ctrl-C | group runs: the grid parent ends KILLED with its counts, its line printed | test_ray.py::test_on_a_ray_cluster
Ctrl-C, serially and under xdist | group runs: the grid parent ends KILLED with its counts, its line printed | test_grids.py::test_ctrl_c_closes_the_grid_parent_killed_with_its_counts
Ray cluster, spool | journal files from the nodes into the controller's .mlexp/journal | test_ray.py::test_spooled_journals_travel_to_the_controller
reuse, a shared server, two checkouts taking turns | reuse candidates: the newest run of the same fingerprint, whoever made it; the reason from the nearest run | test_shared_server.py::test_two_checkouts_taking_turns_share_a_server
a search, a shared server, two checkouts | one study on Optuna's gRPC storage proxy: trial numbers go on, no point twice | test_shared_server.py::test_two_checkouts_taking_turns_share_a_server
branch: baselines, a dirty tree (untracked conftest.py) | the baseline: main's latest clean run, not the newer dirty one | test_shared_server.py::test_two_checkouts_taking_turns_share_a_server
mlexp report / compare, two users on one server | the defaults: this checkout's latest session and runs; --anyone; a name of two files refused | test_shared_server.py::test_two_checkouts_taking_turns_share_a_server
mlexp reproduce NAME, another user's run on one server | the default: this checkout's latest run of the name, said in its first line; --anyone; a name of two files refused | test_reproduce.py::test_on_a_tracking_server_and_runs_that_cannot_be_reproduced_say_why
selection (node id, --deselect under xdist, -k, -x) | a 3-cell registering grid: its line and parent say 1 of 3 cells ran; registration judges the whole grid (cells left out by their latest run of the current code): no new version, the alias stays; a cell without such a run: nothing registered, one line says which | test_models.py::test_a_grid_run_in_part_registers_only_from_the_whole_grid
selection (-k) | a search run in part: its line says 1 of 6 trials ran this session | test_search.py::test_the_same_seed_proposes_the_same_trials
selection (node id) | the gate on a gate="best" grid: judged by the whole grid's best cell (the cell left out by its latest run of the current code), never the baseline of a later session | test_regression.py::test_a_grid_gated_by_its_best_cell
selection (-k) | registration of a repeated grid run in part (some seeds, some cells): nothing registered, one line says why | test_models.py::test_registration_under_xdist_and_from_the_best_repeat
a user's own mlflow.<flavor>.autolog() inside an experiment | later plain tests: no stray run in Default; the experiment's run gets autolog's values | test_autolog.py::test_a_users_own_autolog_call_ends_with_its_item
a metric returned and logged per step | every reader: run table, MLflow's latest value and history, the gate against a baseline file, --mlexp-update-baseline, mlexp runs | test_a_returned_metric_is_the_value_every_reader_sees
a history logged per step, not returned | the gate records it, judges it only when named (direction=, judge=) | test_a_returned_metric_is_the_value_every_reader_sees
metrics logged with mlflow.log_metric, and by autolog | run table, the grid line's best cell, the gate (expect=) | test_fluent_and_autolog_metrics_reach_the_summary_the_best_cell_and_the_gate
the best metric's default, a params file's best: | the grid line, with where the metric came from | test_fluent_and_autolog_metrics_reach_the_summary_the_best_cell_and_the_gate
reuse across serial, xdist and after `import ray` | the environment fingerprint: installed distributions only, the same in every process | test_reuse.py::test_unchanged_session_executes_only_the_failing_experiment_serially_and_under_xdist; test_lineage.py::test_environment_fingerprint_is_the_same_after_importing_ray
a reproduction that did not reproduce | --mlexp-baseline latest: the original, not the reproduction | test_reproduce.py::test_a_run_comes_back_from_its_logged_code_and_a_session_says_what_moved
a reproduction that did not reproduce | --mlexp-reuse: reuses the original | test_reproduce.py::test_a_run_comes_back_from_its_logged_code_and_a_session_says_what_moved
a reproduction | grid parents: its own, named "reproduce of <original>", tagged; the original's untouched | test_reproduce.py::test_a_run_comes_back_from_its_logged_code_and_a_session_says_what_moved
a reproduction | mlexp runs: left out, listed with a REPRODUCES column under --reproductions; the UI view's tag column | test_reproduce.py::test_a_run_comes_back_from_its_logged_code_and_a_session_says_what_moved
Slurm cluster (--mlexp-slurm) | grid parents, repeated cells, the gate's verdicts: the same as serially; a params-file grid placed by GPU (gres, CUDA_VISIBLE_DEVICES) | test_slurm.py::test_on_a_slurm_cluster
Slurm cluster, system metrics | named by metric, the node in mlexp.cluster.node | test_slurm.py::test_on_a_slurm_cluster
Slurm cluster, a job cancelled mid-item | the lost attempt KILLED as superseded (outcome rerun, mlexp.cluster.lost: Slurm's state), the retry counted | test_slurm.py::test_on_a_slurm_cluster
Slurm cluster, SIGTERM | the jobs cancelled, the runs in flight and the grid parent KILLED; no job left | test_slurm.py::test_on_a_slurm_cluster
Slurm cluster, spool (a node with no route to the server from its start) | the job opens the store offline; the controller sends its journal before the session's end; nothing left for mlexp sync | test_slurm.py::test_on_a_slurm_cluster
seeds on demand (repeats=(3, 9)), xdist -n 2 | the extra seeds run on both workers, each waiting for its cell's earlier batch in the store; the seeds not needed count nowhere; the cell's verdict and n over every seed | test_repeats_gate.py::test_an_undecided_cell_runs_more_seeds_until_the_gate_decides
seeds on demand, reuse | a reused cell reuses all its seeds, the extra ones included, and decides as before | test_repeats_gate.py::test_an_undecided_cell_runs_more_seeds_until_the_gate_decides
seeds on demand, reruns | an extra seed that fails then passes on rerun counts once (the cell's n, the baseline's n) | test_repeats_gate.py::test_an_undecided_cell_runs_more_seeds_until_the_gate_decides
seeds on demand, --mlexp-update-baseline | the baseline runs its whole budget, however little its first seeds spread; the power line | test_repeats_gate.py::test_an_undecided_cell_runs_more_seeds_until_the_gate_decides
seeds on demand | the HTML report: the cell's interval with its seeds and the look that decided | test_repeats_gate.py::test_an_undecided_cell_runs_more_seeds_until_the_gate_decides
seeds on demand, a reproduction (the mlexp.reproduces tag mlexp reproduce --session sets) | every extra seed it is given runs: none is skipped as decided | test_repeats_gate.py::test_an_undecided_cell_runs_more_seeds_until_the_gate_decides
seeds on demand, the params file | seed_budget: in a function's section: every seed of the budget collected, the extra ones last; a budget not above the first seeds stops the session naming the line | test_repeats_gate.py::test_the_params_file_sets_a_functions_seed_budget
a failed search, repeated cell and gate="best" grid | pytest's last line, the short summary, JUnit XML (a failed test case each, every item once), the step summary, the group runs FAILED | test_regression.py::test_junit_counts_every_failed_group_as_one_of_its_items
a regressed repeated cell under xdist (-n 2); a strictly inconclusive one | JUnit XML: its last seed a failed test case with the cell's message, every item once | test_confidence.py::test_noise_passes_a_regression_fails_few_seeds_are_inconclusive
one function name in two files | the params file (a bare key refused, file.py::function keys, --mlexp-set), run and grid parent names with the file | test_params.py::test_one_function_name_in_two_files
what each run used, xdist -n 2 | the terminal's and the HTML report's totals per function, from the workers' summaries and the store; the GPUs visible to the workers | test_reports.py::test_session_report_under_xdist_renders_offline
what each run used, reuse | a reused run records none and the totals say it cost nothing this session; over two sessions, the report counts it apart | test_reports.py::test_mlexp_runs_lists_and_filters_and_mlexp_report_rebuilds_the_session_report
what each run used, grids | grid parents hold none; the report's tables and plots show the experiment's metrics only (system/ metrics, as the gate and reuse leave them out) | test_reports.py::test_session_report_under_xdist_renders_offline
seeds on demand, registration (register=) | registered once, after the sequential verdict, from the best seed of the whole cell (an extra seed); a cell inconclusive at its budget registers nothing, one line says why | test_repeats_gate.py::test_registration_waits_for_the_sequential_verdict
seeds on demand (repeats=(2, 4)), Ray cluster | the extra seeds run on the cluster's node as tracked runs of the same cell run; the verdict, the cell run and the passed after 4 seeds line as serially | test_ray.py::test_on_a_ray_cluster
"""  # noqa: E501

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

# Importing mlflow.pyfunc (log_model) warns about MLflow's own type hints.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:mlflow.*")

EXPERIMENT = "compose"
#: Faster sessions: lineage and artifact discovery are not under test here.
QUIET = ("-p", "no:randomly", "--mlexp-lineage", "none", "--mlexp-artifacts", "off")

#: A 2-cell grid registering its best cell (C=0.1, accuracy 0.925). With ``{flaky}``, cell
#: C=0.1 fails its first attempt (its accuracy regresses: the gate fails it) and passes its rerun.
CLASSIFIER = """
import pytest
from pathlib import Path
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

X, y = make_classification(n_samples=120, n_features=4, random_state=0)

@pytest.mark.mlexp(register="m", best="accuracy", expect={{"accuracy": ">= 0.4"}})
@pytest.mark.parametrize("C", [0.001, 0.1])
def experiment_clf(mlflow_run, C):
    marker = Path(__file__).parent / f"attempted-{{C}}"
    if {flaky} and C == 0.1 and not marker.exists():
        marker.write_text("once")
        return {{"accuracy": 0.1}}
    model = LogisticRegression(C=C).fit(X[:80], y[:80])
    mlflow_run.log_model(model, pip_requirements=["scikit-learn"])
    return {{"accuracy": model.score(X[80:], y[80:])}}
"""


@pytest.fixture
def project(ourtester: pytest.Pytester, empty_store: Path) -> pytest.Pytester:
    shutil.copy(empty_store, ourtester.path / "mlflow.db")
    return ourtester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--mlexp-experiment", EXPERIMENT, *QUIET, *args)


def store(pytester: pytest.Pytester) -> MlflowClient:
    return MlflowClient(f"sqlite:///{pytester.path / 'mlflow.db'}")


def all_runs(pytester: pytest.Pytester) -> list[Any]:
    client = store(pytester)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    return list(
        client.search_runs(
            [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1000
        )
    )


def newest(pytester: pytest.Pytester, name: str) -> Any:
    return next(r for r in all_runs(pytester) if r.info.run_name == name)


def outcomes(result: pytest.RunResult) -> dict[str, int]:
    """pytest's counts from the last line (``assert_outcomes`` knows no reruns)."""
    return {k: v for k, v in result.parseoutcomes().items() if k not in ("seconds",)}


def escaped(pattern: str) -> str:
    return pattern.replace("[", "[[]")


# -- reruns --------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [[], ["-n", "1"]], ids=["serial", "xdist"])
def test_a_rerun_cell_is_judged_and_registered_by_its_last_attempt(
    project: pytest.Pytester, workers: list[str]
) -> None:
    project.makepyfile(experiment_clf=CLASSIFIER.format(flaky=True))
    result = run(project, "--reruns", "1", *workers)
    assert outcomes(result) == {"passed": 2, "rerun": 1}
    result.stdout.fnmatch_lines(
        [
            "mlexp grid experiment_clf.py::experiment_clf: 2 cells, 2 passed, 0 failed "
            "(1 rerun); best accuracy=0.925 (max*) at experiment_clf?0.1?*",
            "*2 of 2 items judged by their expect= bounds*2 passed*",
            escaped("mlexp: registered m v1 @candidate from experiment_clf[0.1]"),
        ]
    )
    attempts = {
        r.data.tags["mlexp.attempt"]: r
        for r in all_runs(project)
        if r.info.run_name == "experiment_clf[0.1]"
    }
    assert attempts["1"].data.tags["mlexp.outcome"] == "rerun"
    assert attempts["1"].data.tags["mlexp.regression"] == "regressed"
    last = attempts["2"]
    version = store(project).get_model_version_by_alias("m", "candidate")
    assert str(version.version) == "1"
    assert version.run_id == last.info.run_id
    [output] = last.outputs.model_outputs
    assert version.source == f"models:/{output.model_id}"
    assert version.tags["mlexp.regression"] == "passed"
    assert last.data.tags["mlexp.registered_version"] == "1"


SIMPLE_FLAKY = """
import pytest
from pathlib import Path

@pytest.mark.mlexp(expect={"score": ">= 0.5"})
def experiment_flaky(mlflow_run):
    marker = Path(__file__).parent / "attempted"
    first = not marker.exists()
    marker.write_text("once")
    with open(Path(__file__).parent / "calls.log", "a") as log:
        log.write("flaky\\n")
    if first:
        mlflow_run.log_metric("score", 0.1)
        raise RuntimeError("flaky data loader")
    mlflow_run.log_metric("score", 0.9)
"""


def test_a_superseded_attempt_is_not_a_reuse_candidate_its_rerun_is(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(experiment_flaky=SIMPLE_FLAKY)
    result = run(project, "--reruns", "1", "--mlexp-reuse")
    assert outcomes(result) == {"passed": 1, "rerun": 1}
    attempts = {r.data.tags["mlexp.attempt"]: r for r in all_runs(project)}
    assert attempts["2"].data.tags["mlexp.outcome"] == "passed"
    (project.path / "calls.log").unlink()

    result = run(project, "--reruns", "1", "--mlexp-reuse")
    assert outcomes(result) == {"passed": 1}
    assert not (project.path / "calls.log").exists(), "reused: not executed"
    reused = newest(project, "experiment_flaky")
    assert reused.data.tags["mlexp.outcome"] == "reused"
    assert reused.data.tags["mlexp.reused_from"] == attempts["2"].info.run_id
    assert reused.data.metrics == {"score": 0.9}


def test_reports_count_a_rerun_item_by_its_last_attempt(project: pytest.Pytester) -> None:
    project.makepyfile(experiment_flaky=SIMPLE_FLAKY)
    result = run(
        project,
        "--reruns",
        "1",
        "--junitxml=junit.xml",
        "--mlexp-report-md",
        "metrics.md",
        "--mlexp-html",
        "report.html",
    )
    assert outcomes(result) == {"passed": 1, "rerun": 1}
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "mlexp: 1 attempt superseded by a rerun (tagged mlexp.outcome=rerun), each item "
            "counted by its last attempt: experiment_flaky",
            "*1 of 1 items judged by their expect= bounds*1 passed*",
        ]
    )
    assert "regressed" not in result.stdout.str().lower()
    markdown = (project.path / "metrics.md").read_text()
    assert "1 experiment judged: 0 regressed" in markdown
    assert "experiment_flaky" in markdown
    suite = ET.parse(project.path / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("1", "0", "0")
    page = (project.path / "report.html").read_text()
    # The superseded attempt is listed as such, and counted apart from the item's outcome.
    assert "FAILED (rerun)" in page
    assert "1 run: 1 finished; 1 attempt superseded by a rerun" in page


# -- reuse ---------------------------------------------------------------------------------------


def test_reuse_registers_no_second_version_of_the_same_model(project: pytest.Pytester) -> None:
    project.makepyfile(experiment_clf=CLASSIFIER.format(flaky=False))
    client = store(project)
    run(project, "--mlexp-reuse").assert_outcomes(passed=2)
    source = newest(project, "experiment_clf[0.1]")
    assert str(client.get_model_version_by_alias("m", "candidate").version) == "1"

    # Reused on an xdist worker, judged on the controller (one worker is enough: the point
    # is the hand-off, not a race), then in one process.
    for alias, workers in (("candidate", ["-n", "1"]), ("prod", [])):
        result = run(project, "--mlexp-reuse", *workers, "--mlexp-register-alias", alias)
        result.assert_outcomes(passed=2)
        reused = newest(project, "experiment_clf[0.1]")
        assert reused.data.tags["mlexp.reused_from"] == source.info.run_id
        result.stdout.fnmatch_lines(
            [
                escaped(
                    f"mlexp: m v1 @{alias} is already experiment_clf[0.1]'s model; "
                    "nothing registered"
                )
            ]
        )
        assert [str(v.version) for v in client.search_model_versions("name = 'm'")] == ["1"]
        # The alias is set, on the newest version.
        assert str(client.get_model_version_by_alias("m", alias).version) == "1"
        assert reused.data.tags["mlexp.registered_version"] == "1"

    # A changed best cell (the code changed: the cells execute) registers a new version.
    source_text = (project.path / "experiment_clf.py").read_text()
    (project.path / "experiment_clf.py").write_text(source_text + "\n# changed\n")
    result = run(project, "--mlexp-reuse")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [escaped("mlexp: registered m v2 @candidate from experiment_clf[0.1]")]
    )
    executed = newest(project, "experiment_clf[0.1]")
    assert "mlexp.reused_from" not in executed.data.tags
    assert client.get_model_version_by_alias("m", "candidate").run_id == executed.info.run_id


def test_a_reused_cell_is_judged_by_the_metrics_it_copies(project: pytest.Pytester) -> None:
    project.makepyfile(experiment_flaky=SIMPLE_FLAKY.replace("first = not", "first = False and"))
    run(project, "--mlexp-reuse").assert_outcomes(passed=1)
    result = run(project, "--mlexp-reuse")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*1 of 1 items judged by their expect= bounds*1 passed*"])
    reused = newest(project, "experiment_flaky")
    assert reused.data.tags["mlexp.outcome"] == "reused"
    assert reused.data.metrics == {"score": 0.9}
    assert reused.data.tags["mlexp.regression"] == "passed"


SHAPED = """
def experiment_shaped(mlflow_run):
    for step, loss in enumerate([0.9, 0.6, 0.5]):
        mlflow_run.log_metric("loss", loss, step=step)
    return {"score": 0.9}
"""


def test_a_reused_cell_keeps_which_metrics_were_returned_and_which_were_histories(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(experiment_shaped=SHAPED)
    run(project, "--mlexp-reuse").assert_outcomes(passed=1)
    # Judged, the loss curve's last value would regress against this baseline.
    baseline = project.path / "base.yaml"
    baseline.write_text("experiment_shaped.py::experiment_shaped:\n  score: 0.9\n  loss: 0.01\n")
    result = run(project, "--mlexp-reuse", "--mlexp-baseline-file", str(baseline))
    result.assert_outcomes(passed=1)
    reused = newest(project, "experiment_shaped")
    assert reused.data.tags["mlexp.outcome"] == "reused"
    assert reused.data.tags["mlexp.returned"] == "score"
    assert reused.data.tags["mlexp.histories"] == "loss"
    assert reused.data.tags["mlexp.regression"] == "passed"


# -- a search gated as a whole -------------------------------------------------------------------

SEARCH = """
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

X, y = make_classification(n_samples=120, n_features=4, random_state=0)

@pytest.mark.mlexp(search={"C": "loguniform(1e-4, 10)"}, trials=3, objective="accuracy:max",
                   sampler="random", seed=0, register="search-clf",
                   expect={"accuracy": ">= 0.5"})
def experiment_search(mlflow_run, C):
    model = LogisticRegression(C=C).fit(X[:80], y[:80])
    mlflow_run.log_model(model, pip_requirements=["scikit-learn"])
    return {"accuracy": model.score(X[80:], y[80:])}
"""


def test_a_gated_search_registers_with_the_searchs_verdict(project: pytest.Pytester) -> None:
    project.makepyfile(experiment_search=SEARCH)
    result = run(project)
    result.assert_outcomes(passed=3)
    assert result.ret == 0
    client = store(project)
    [parent] = [r for r in all_runs(project) if r.data.tags.get("mlexp.kind") == "search"]
    assert parent.data.tags["mlexp.regression"] == "passed"
    best = client.get_run(parent.data.tags["mlexp.best_run_id"])
    assert "mlexp.regression" not in best.data.tags, "the gate judged the parent, not the trial"
    version = client.get_model_version_by_alias("search-clf", "candidate")
    assert version.run_id == best.info.run_id
    assert version.tags["mlexp.regression"] == "passed"
    assert "; gate: passed." in str(version.description)
    assert "not gated" not in str(version.description)


# -- one value per metric ------------------------------------------------------------------------

#: The issue's example: a returned accuracy over its own per-step history, and a training
#: curve. ``experiment_named`` names its curve with a direction: then it is judged.
RETURNED = """
import pytest

def experiment_ret(mlflow_run):
    for step, value in enumerate([0.5, 0.6, 0.7]):
        mlflow_run.log_metric("accuracy", value, step=step)
        mlflow_run.log_metric("train_loss", 1.0 - value, step=step)
    return {"accuracy": 0.30}

@pytest.mark.mlexp(direction={"train_loss": "down"})
def experiment_named(mlflow_run):
    for step, value in enumerate([0.5, 0.6, 0.7]):
        mlflow_run.log_metric("train_loss", 1.0 - value, step=step)
    return {"accuracy": 0.75}
"""

BASELINE = """
experiment_ret.py::experiment_ret: {accuracy: 0.7, train_loss: 0.1}
experiment_named.py::experiment_named: {accuracy: 0.7, train_loss: 0.1}
"""


def test_a_returned_metric_is_the_value_every_reader_sees(project: pytest.Pytester, mlexp) -> None:  # type: ignore[no-untyped-def]
    project.makepyfile(experiment_ret=RETURNED.split("@pytest")[0])
    project.makepyfile(experiment_named="import pytest\n\n@pytest" + RETURNED.split("@pytest")[1])
    project.makefile(".yaml", base=BASELINE)
    result = run(project, "--mlexp-baseline-file", "base.yaml")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    # The gate: the returned 0.3 regressed from 0.7 (it passed, judged by the last step's 0.7).
    result.stdout.fnmatch_lines(["*accuracy*0.7*0.3*REGRESSED*"])
    assert "experiment_ret.py::experiment_ret - " in out
    # A history named by no rule is recorded, not judged; named by a direction, it is judged.
    result.stdout.fnmatch_lines(
        [
            "metrics judged: accuracy, train_loss; recorded only (logged at several steps, "
            "named by no rule; judge= names them): train_loss"
        ]
    )
    result.stdout.fnmatch_lines(["*train_loss*0.1*0.3*REGRESSED*"])
    assert "experiment_ret.py::experiment_ret: train_loss" not in out, "a curve is not judged"
    # The terminal's run table shows the returned value.
    result.stdout.fnmatch_lines(["*experiment_ret*accuracy=0.3 train_loss=0.3*"])

    # MLflow's own latest value, and the history: the returned value comes last, at step 2.
    client = store(project)
    ret = newest(project, "experiment_ret")
    assert ret.data.metrics["accuracy"] == 0.3
    assert ret.data.tags["mlexp.regression"] == "regressed"
    history = client.get_metric_history(ret.info.run_id, "accuracy")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: (m.step, m.timestamp))] == [
        (0, 0.5),
        (1, 0.6),
        (2, 0.7),
        (2, 0.3),
    ]
    # mlexp runs lists that value too.
    listed = mlexp(project.path, "runs", "--experiment", EXPERIMENT)
    line = next(line for line in listed.stdout.splitlines() if " experiment_ret " in line)
    assert "accuracy=0.3" in line

    # --mlexp-update-baseline writes the judged metrics: the returned value, not the curve.
    run(project, "--mlexp-baseline-file", "new.yaml", "--mlexp-update-baseline").assert_outcomes(
        passed=2
    )
    import yaml

    written = yaml.safe_load((project.path / "new.yaml").read_text())
    assert written["experiment_ret.py::experiment_ret"] == {"accuracy": 0.3}
    assert written["experiment_named.py::experiment_named"] == {
        "accuracy": 0.75,
        "train_loss": pytest.approx(0.3),
    }


#: A grid whose cells log with the fluent API (a curve, then an accuracy once), a grid of
#: sklearn fits logged by autolog (``--mlexp-autolog=on``; their models are not under test
#: here, so the cells keep autolog from logging them: MLflow would infer each one's
#: requirements in a subprocess), and a grid whose best metric a params file names.
FLUENT = """
import mlflow
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

X, y = make_classification(n_samples=60, n_features=4, random_state=0)

@pytest.mark.parametrize("q", [1, 2])
def experiment_fluent(q):
    for step in range(3):
        mlflow.log_metric("train_loss", 1.0 / (step + q), step=step)
    mlflow.log_metric("accuracy", 0.5 + q / 10)

@pytest.mark.mlexp(expect={"accuracy": ">= 0.65"})
@pytest.mark.parametrize("q", [1, 2])
def experiment_pgrid(q):
    for step in range(3):
        mlflow.log_metric("train_loss", 1.0 / (step + q), step=step)
    mlflow.log_metrics({"accuracy": 0.5 + q / 10})

@pytest.mark.parametrize("C", [0.01, 1.0])
def experiment_auto(C):
    mlflow.autolog(log_models=False, silent=True)
    LogisticRegression(C=C).fit(X, y)
"""


def test_fluent_and_autolog_metrics_reach_the_summary_the_best_cell_and_the_gate(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(experiment_fluent=FLUENT)
    project.makefile(".yaml", params="experiment_pgrid:\n  best: train_loss:min\n")
    result = run(project, "--mlexp-params-file", "params.yaml", "--mlexp-autolog=on")
    result.assert_outcomes(passed=5, failed=1)
    result.stdout.fnmatch_lines(
        [
            # The run table shows what the fluent API logged.
            "*experiment_fluent?2?*FINISHED*train_loss=0.25 accuracy=0.7*",
            # No metric named, none returned: the first one logged once, not the curve.
            "mlexp grid experiment_fluent.py::experiment_fluent: 2 cells, 2 passed, 0 failed; "
            "best accuracy=0.7 (max, guessed, logged once) at experiment_fluent?2? ?q=2?*",
        ]
    )
    # The gate judged the fluent accuracy (expect=), and the params file named the best metric.
    result.stdout.fnmatch_lines(
        [
            "*accuracy*0.6*FAILED*",
            "mlexp grid experiment_fluent.py::experiment_pgrid: 2 cells, 1 passed, 1 failed; "
            "best train_loss=0.25 (min, params file) at experiment_pgrid?2?*",
        ]
    )
    # autolog's metrics, each logged once, rank the cells.
    result.stdout.fnmatch_lines(
        [
            "mlexp grid experiment_fluent.py::experiment_auto: 2 cells, 2 passed, 0 failed; "
            "best training_* (*logged once) at experiment_auto?*",
        ]
    )
    parent = next(
        r
        for r in all_runs(project)
        if r.data.tags.get("mlexp.grid", "").endswith("::experiment_fluent")
        and r.data.tags.get("mlexp.kind") == "grid"
    )
    assert parent.data.tags["mlexp.best_metric"] == "accuracy"
    assert parent.data.metrics["best.accuracy"] == pytest.approx(0.7)
