"""pytest entry point: options, hooks, fixtures. Declarations only.

The work lives in ``runs.session`` (the session's state and store) and
``pipeline`` (the features and the order they act in): this module composes
them, registering the controller's part only where the session ends. Importing this
module must stay cheap: it is loaded in every pytest run of the environment,
with or without experiments. ``mlflow`` is imported only when a tracked item
is about to run.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import pytest

from . import hookspecs
from .keys import RUN_KEY, SESSION_KEY
from .settings.options import MARKER, add_options

if TYPE_CHECKING:
    from .backend.client import Backend
    from .runs.experiment_run import ExperimentRun
    from .runs.item_run import ItemRun
    from .runs.session import MlexpSession
    from .settings import Settings, TrackingConfig

#: Name of the session object in pytest's plugin manager.
SESSION_NAME = "mlexp-session"


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    # Every pytest run of the environment passes here: register the plugin's parts, resolve
    # nothing. Settings are resolved when a tracked item is about to use them (runs.session).
    # Only collection's hooks are registered here: what looks at each report is registered
    # once tracked items are known (pipeline.on_tracked), so a plain suite pays for none.
    from . import collection
    from .process_state import ProcessState

    # A snapshot now; put back after every unconfigure hook (the last thing the session does).
    config.add_cleanup(ProcessState().pytest_unconfigure)
    config.addinivalue_line("markers", MARKER)
    # experiment_* files and functions, where the user put them; what collection does to them.
    # The session object waits for a tracked item (open_session).
    collected = collection.configure(config, open_session)
    # pytest-xdist's controller (its DSession runs: xdist's own test; its workers have no -n).
    distributed = config.getoption("dist", "no") != "no" and bool(config.getoption("tx", None))
    if distributed or hasattr(config, "workerinput"):
        from .refusal import WorkerRefusal

        # A setting refused in an xdist worker stops the session with its message.
        config.pluginmanager.register(WorkerRefusal(config), "mlexp-refusal")
    if distributed:
        # The controller looks at its workers' reports from the first one on.
        config.pluginmanager.register(XdistHooks(open_session(config)), "mlexp-xdist")
    if _cluster_requested(config):
        from .cluster.controller import ClusterController
        from .pipeline import hand_to_workers
        from .workers import is_controller

        if is_controller(config):
            # --mlexp-ray, --mlexp-slurm: the items run on the cluster's warm workers.
            session = open_session(config)
            cluster = ClusterController(
                session,
                searches=lambda: collected.searches,
                hand_to_workers=functools.partial(hand_to_workers, session),
            )
            config.pluginmanager.register(cluster, "mlexp-cluster")


def open_session(config: pytest.Config) -> MlexpSession:
    """The session object, created and registered on first use: when collection finds a
    tracked item, on an xdist or cluster controller at configure. A plain session never
    creates it: pytest loads each module of the package through its assertion rewriter,
    and registering an object costs a look at each of its attributes."""
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        from .runs.session import MlexpSession

        session = MlexpSession(config, _resolve_settings, _open_backend, _on_tracked)
        config.stash[SESSION_KEY] = session
        config.pluginmanager.register(session, SESSION_NAME)
    return session


def _open_backend(settings: Settings) -> Backend:
    from .pipeline import open_backend

    return open_backend(settings)


def _on_tracked(session: MlexpSession) -> None:
    from .pipeline import on_tracked

    on_tracked(session)


def _resolve_settings(config: pytest.Config) -> Settings:
    from .settings.resolved import resolve

    return resolve(config)


def _cluster_requested(config: pytest.Config) -> bool:
    """Whether ``--mlexp-ray`` or ``--mlexp-slurm`` (or their env, ini or yaml keys) asks
    for a cluster; nothing else read.

    A settings file that does not parse says no here: the session refuses it when a
    tracked item resolves the settings.
    """
    from .settings.options import may_ask_for_cluster

    if not may_ask_for_cluster(config):
        return False  # no switch and no settings file: the settings modules stay unimported
    from .settings.cluster import cluster_requested

    try:
        return cluster_requested(config)
    except pytest.UsageError:
        return False


def pytest_report_header(config: pytest.Config) -> str | None:
    # Before collection: only under -v. Otherwise the line waits for a tracked
    # item (pytest_report_collectionfinish), so sessions without one print nothing.
    if config.get_verbosity() <= 0:
        return None
    line = _tracking_line(config)
    if line is not None:
        config.stash[_LINE_SHOWN] = True
    return line


class XdistHooks:
    """Registered in the controller when pytest-xdist is installed: what it gives its workers."""

    def __init__(self, session: MlexpSession) -> None:
        self.session = session

    def pytest_configure_node(self, node: Any) -> None:
        from .pipeline import hand_to_workers
        from .workers import GIVEN_FIELD

        given = node.workerinput  # xdist's own: workerid (gw<n>), workercount, testrunuid
        handed = hand_to_workers(
            self.session,
            worker=int(str(given["workerid"]).removeprefix("gw") or 0),
            run_uid=str(given["testrunuid"]),
            machine_shared=int(given["workercount"]) > 1,
        )
        given[GIVEN_FIELD] = handed.to_json()


@pytest.fixture(scope="session")
def tracking_config(pytestconfig: pytest.Config) -> TrackingConfig:
    """The resolved, frozen tracking configuration of this session."""
    tracking: TrackingConfig = open_session(pytestconfig).settings.tracking
    return tracking


@pytest.fixture
def mlflow_run(request: pytest.FixtureRequest) -> ExperimentRun:
    """The test's own MLflow run: ``log_param``, ``log_metric(key, value, step=)``, ``set_tag``...

    Requesting it makes any test a tracked one. ``mlflow.log_*`` and autolog
    inside the test land in the same run. ``mlflow_run.output_dir`` is a
    fresh folder whose files are uploaded when the run ends.
    """
    item_run: ItemRun | None = request.node.stash.get(RUN_KEY, None)
    if item_run is None:
        raise pytest.UsageError(
            f"mlflow_run is only available to test functions, not to {request.node.nodeid}"
        )
    run = item_run.run
    if run.output_location is None:
        from .artifacts.discovery import output_location

        run.output_location = output_location(request, run)
    return run


@pytest.fixture
def params(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The cell's params as a dict, e.g. ``params["cv"]``.

    Holds the params file's fixed values and this cell's grid values,
    ``parametrize`` values and a repeat's ``seed``: every param of the run.
    Values of the params file reach the function this way even when it does
    not take them as arguments.
    """
    callspec = getattr(request.node, "callspec", None)
    return dict(callspec.params) if callspec is not None else {}


#: Whether this session printed the ``mlexp: tracking ...`` line already.
_LINE_SHOWN = pytest.StashKey[bool]()


def _tracking_line(config: pytest.Config) -> str | None:
    """``mlexp: tracking <uri> (<source>), experiment '<name>', session <id>``."""
    from .settings.reports import describe_figures

    try:
        resolved = open_session(config).settings
    except pytest.UsageError:
        return None  # refused when a tracked item uses them, not for a line of -v
    tracking = resolved.tracking
    return (
        f"mlexp: tracking {tracking.display_uri} ({tracking.uri_source}), "
        f"experiment {tracking.experiment!r}, {describe_figures(resolved.figures)}, "
        f"session {tracking.session_id}"
    )


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> str | None:
    """The tracking line, after collection, when a tracked item was collected."""
    if config.stash.get(_LINE_SHOWN, False):
        return None
    session = config.stash.get(SESSION_KEY, None)
    if session is None or not session.tracked:  # the pipeline looked at every item once
        return None
    line = _tracking_line(config)
    if line is not None:
        config.stash[_LINE_SHOWN] = True
    return line


@pytest.hookimpl(tryfirst=True)
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The xdist controller collects nothing itself: its line comes with the runs' summary."""
    session = config.stash.get(SESSION_KEY, None)
    if session is None or not session.results:
        return
    from .workers import is_controller

    if not is_controller(config):
        return
    if config.stash.get(_LINE_SHOWN, False):
        return
    line = _tracking_line(config)
    if line is not None:
        config.stash[_LINE_SHOWN] = True
        terminalreporter.write_line(line)
