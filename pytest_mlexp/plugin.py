"""pytest entry point: options, hooks, fixtures. The work lives in ``session.py``.

Importing this module must stay cheap: it is loaded in every pytest run of
the environment, with or without experiments. ``mlflow`` is imported only
when a tracked item is about to run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from . import artifacts, autolog, gate, grid, hookspecs, html_report, journal, lineage
from .config import TrackingConfig, from_pytest_config
from .session import PLUGIN_NAME, RUN_KEY, ItemRun, MlexpSession

if TYPE_CHECKING:
    from .tracking import ExperimentRun

SETTINGS_KEY = pytest.StashKey[TrackingConfig]()

#: Feature modules. Each has ``add_options(group, parser)`` and
#: ``configure(config, settings)``, which registers its own plugin object.
FEATURES = (grid, journal, lineage, artifacts, autolog, gate, html_report)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mlexp", "experiment tracking with MLflow (pytest-mlexp)")
    group.addoption(
        "--mlexp-tracking-uri",
        dest="mlexp_tracking_uri",
        metavar="URI",
        default=None,
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, ini mlexp_tracking_uri, "
        "else sqlite:///<rootdir>/mlflow.db).",
    )
    group.addoption(
        "--mlexp-experiment",
        dest="mlexp_experiment",
        metavar="NAME",
        default=None,
        help="MLflow experiment for the runs (default: MLFLOW_EXPERIMENT_NAME, "
        "ini mlexp_experiment, else the rootdir's name).",
    )
    group.addoption(
        "--mlexp-tag",
        dest="mlexp_tags",
        metavar="KEY=VALUE",
        action="append",
        default=None,
        help="Tag every run with KEY=VALUE (repeatable).",
    )
    group.addoption(
        "--mlexp-config",
        dest="mlexp_config",
        metavar="PATH",
        default=None,
        help="YAML settings file (default: mlexp.yaml in the rootdir, when present).",
    )
    parser.addini("mlexp_tracking_uri", "MLflow tracking URI for experiment runs.", default="")
    parser.addini("mlexp_experiment", "MLflow experiment name for experiment runs.", default="")
    parser.addini("mlexp_tags", "KEY=VALUE tags for every run, one per line.", type="linelist")
    parser.addini("mlexp_config", "Path of the mlexp YAML settings file.", default="")
    for feature in FEATURES:
        feature.add_options(group, parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("python_files", "experiment_*.py")
    config.addinivalue_line("python_functions", "experiment_*")
    config.addinivalue_line(
        "markers",
        "mlexp(experiment=None, tags=None, expect=None, tolerance=None, direction=None, "
        "best=None, repeats=None, seeds=None): track this test as an MLflow run, optionally "
        "in another experiment or with extra tags; gate its metrics with bounds "
        "(expect={'accuracy': '>= 0.9'}) and baseline tolerances and directions; best: "
        "metric picking a grid's best cell; repeats/seeds: run each cell once per seed.",
    )
    settings = from_pytest_config(config)
    config.stash[SETTINGS_KEY] = settings
    config.pluginmanager.register(MlexpSession(config, settings), PLUGIN_NAME)
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(settings), "mlexp-xdist")
    for feature in FEATURES:
        feature.configure(config, settings)


def pytest_report_header(config: pytest.Config) -> str | None:
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None:
        return None
    return (
        f"mlexp: tracking {settings.display_uri} ({settings.sources['tracking_uri']}), "
        f"experiment {settings.experiment!r}, session {settings.session_id}"
    )


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    session = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if session is None or hasattr(config, "workerinput"):
        return
    from .report import write_terminal_summary

    write_terminal_summary(terminalreporter, session.settings, session.results)


class XdistHooks:
    """Registered only when pytest-xdist is installed."""

    def __init__(self, settings: TrackingConfig) -> None:
        self.settings = settings

    def pytest_configure_node(self, node: Any) -> None:
        # Every worker logs under the controller's session id.
        node.workerinput["mlexp_session_id"] = self.settings.session_id


@pytest.fixture(scope="session")
def tracking_config(pytestconfig: pytest.Config) -> TrackingConfig:
    """The resolved, frozen tracking configuration of this session."""
    return pytestconfig.stash[SETTINGS_KEY]


@pytest.fixture
def mlflow_run(request: pytest.FixtureRequest) -> ExperimentRun:
    """The test's own MLflow run: ``log_param``, ``log_metric(key, value, step=)``, ``set_tag``...

    Requesting it makes any test a tracked one. ``mlflow.log_*`` and autolog
    inside the test land in the same run.
    """
    item_run: ItemRun | None = request.node.stash.get(RUN_KEY, None)
    if item_run is None:
        raise pytest.UsageError(
            f"mlflow_run is only available to test functions, not to {request.node.nodeid}"
        )
    return item_run.run
