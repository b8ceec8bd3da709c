"""Hooks that other plugins and ``conftest.py`` files implement to extend pytest-mlexp.

Every hook is called in the process that runs the item (an xdist worker
under ``-n``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy
import pytest

if TYPE_CHECKING:
    from .artifacts import Artifact
    from .runs.experiment_run import ExperimentRun

hookspec = pluggy.HookspecMarker("pytest")


@hookspec
def pytest_mlexp_run_tags(item: pytest.Item) -> dict[str, str] | None:
    """Return tags the item's run gets when it is created; every plugin contributes.

    Called just before the run exists, so tags such as ``mlflow.parentRunId``
    are set with its creation, at no extra request::

        def pytest_mlexp_run_tags(item):
            return {"dataset": item.callspec.params.get("dataset", "all")}
    """


@hookspec
def pytest_mlexp_run_start(item: pytest.Item, run: ExperimentRun) -> None:
    """Called once the item's run exists, before its fixtures are set up.

    Add tags or params every run should carry::

        def pytest_mlexp_run_start(item, run):
            run.set_tag("team", "vision")
            run.log_param("dataset_version", DATASET_VERSION)
    """


@hookspec
def pytest_mlexp_run_ending(
    item: pytest.Item, run: ExperimentRun, status: str, outcome: str
) -> None:
    """Called after the item's teardown, just before its run is closed: the last chance to log.

    ``status`` is what the run will be closed with (FINISHED, FAILED or KILLED)::

        def pytest_mlexp_run_ending(item, run, status, outcome):
            run.log_artifact("logs/train.log")
    """


@hookspec
def pytest_mlexp_run_finished(
    item: pytest.Item, run: ExperimentRun, status: str, outcome: str
) -> None:
    """Called after the item's run has ended with ``status`` (FINISHED, FAILED or KILLED).

    ``outcome`` is pytest's view: passed, failed, error, skipped, xfailed,
    xpassed or interrupted. The run is closed: read it back with
    ``run.client.get_run(run.run_id)``, notify a chat channel, and so on::

        def pytest_mlexp_run_finished(item, run, status, outcome):
            if status == "FAILED":
                notify(f"{item.nodeid} failed: see run {run.run_id}")
    """


@hookspec(firstresult=True)
def pytest_mlexp_returned(item: pytest.Item, run: ExperimentRun, value: Any) -> bool | None:
    """Log the value an experiment function returned; return True if handled.

    The default implementation logs a mapping's numbers as metrics and its
    other values as params. ``firstresult``: the first True stops the chain::

        def pytest_mlexp_returned(item, run, value):
            if isinstance(value, pandas.DataFrame):
                run.log_text(value.to_csv(), "returned.csv")
                return True
    """


@hookspec
def pytest_mlexp_artifacts(
    item: pytest.Item, run: ExperimentRun, artifacts: list[Artifact]
) -> None:
    """Add to or filter, in place, the files artifact discovery found, before they are uploaded.

    Called after the item's teardown, when its run is ending. ``artifacts`` is a
    list of ``pytest_mlexp.artifacts.Artifact(path, artifact_path, root)``:
    the local file, the folder it goes to in the run (``models``, ``plots``,
    ``files``...) and where it was found (``"output_dir"``, ``"tmp_path"`` or
    a watched root). Files you add still pass the safety rules (no key or
    credential files, the size cap)::

        from pytest_mlexp.artifacts import Artifact

        def pytest_mlexp_artifacts(item, run, artifacts):
            # keep the checkpoints out, add what the run wrote to a bucket
            artifacts[:] = [a for a in artifacts if not a.path.name.startswith("ckpt")]
            for local in download_bucket_listing(run.run_id):
                artifacts.append(Artifact(local, "bucket"))
    """


@hookspec(firstresult=True)
def pytest_mlexp_latest_runs_of_current_code(
    items: list[pytest.Item],
) -> dict[str, str] | None:
    """The latest earlier run of each of ``items`` that ran the current code, and passed.

    Called when the first run of a group the session runs only part of is
    created (a grid selected by node id, ``-k``, ``--lf``...), for its members
    that are not run; registration then judges the whole group. Returns node
    id -> run id, ``""`` for an item without such a run. pytest-mlexp's reuse
    answers by fingerprint (test, params, code, inputs, environment)::

        def pytest_mlexp_latest_runs_of_current_code(items):
            return {item.nodeid: my_cache.get(item.nodeid, "") for item in items}
    """
