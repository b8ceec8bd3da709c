"""The warm worker: one pytest session held across the items a cluster's worker runs.

Like an xdist worker, it collects once (the project Ray shipped, or the
shared file system's under Slurm), then runs the items it is given by node
id; each call returns what the item's hooks logged, serialized by pytest's
own ``pytest_report_to_serializable`` (the run's summary rides along, as
under xdist), for the controller to replay. It is given the controller's
``workers.Given`` (its session id and process...), as xdist's workers are;
it is no xdist worker. The backend wraps it: a Ray actor
(``ray_backend``), a Slurm job reading its mailbox (``slurm_worker``).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

import pytest

from ..backend import tags as T

#: The controller's settings a worker takes as given, whatever its own environment says.
_OPTION_OVERRIDES = ("mlexp_tracking_uri", "mlexp_experiment")
#: The options that send items to a cluster: a worker runs its items itself.
_CLUSTER_OPTIONS = ("mlexp_ray", "mlexp_slurm")


def quiet_mlflow() -> None:
    """MLflow's INFO lines (a model logged, a store opened) stay out of the controller's terminal.

    Ray Client streams every worker's stdout and stderr to the controller, which prints
    them into pytest's progress line (``log_to_driver`` does not stop it); a Slurm job's
    land in its log file. MLflow's warnings and errors still show, and an
    ``MLFLOW_LOGGING_LEVEL`` the user set wins.
    """
    if os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING") != "WARNING":
        return
    if "mlflow" in sys.modules:  # configured at INFO already, when it was imported
        logging.getLogger("mlflow").setLevel(logging.WARNING)


class Relay:
    """Registered in the worker's session: keeps what each item logs, and tags its run."""

    def __init__(self, node: str, backend: str) -> None:
        self.node = node
        self.backend = backend
        self.config: pytest.Config | None = None
        self.events: list[dict[str, Any]] = []

    def pytest_configure(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        from ..keys import SESSION_KEY
        from .offline import offline_when_unreachable

        # The session object exists once collection found tracked items; before it opens
        # the store (its own pytest_collection_finish): offline if the node has no route.
        mlexp = session.config.stash.get(SESSION_KEY, None)
        if mlexp is not None:
            mlexp._open_backend = offline_when_unreachable(mlexp._open_backend)

    def pytest_mlexp_run_tags(self, item: pytest.Item) -> dict[str, str]:
        return {T.CLUSTER_NODE: self.node, T.CLUSTER_BACKEND: self.backend}

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.events.append({"event": "logstart", "nodeid": nodeid, "location": location})

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        assert self.config is not None
        data = self.config.hook.pytest_report_to_serializable(config=self.config, report=report)
        self.events.append({"event": "report", "data": data})

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        self.events.append({"event": "logfinish", "nodeid": nodeid, "location": location})


class ItemWorker:
    """One pytest session run item by item, on node ``node`` of a ``backend`` cluster.

    ``spec``: ``args`` (the controller's command line), ``chdir`` (the invocation
    folder, relative to the rootdir the worker starts in, or absolute), ``env``
    (variables to set), ``options`` (resolved settings to take as given),
    ``given`` (``workers.Given``) and ``backend``. ``ship_journal``: the
    worker's rootdir is a copy the controller cannot see (Ray's), so the
    spool's journal files travel back with each result.
    """

    def __init__(self, spec: dict[str, Any], node: str, *, ship_journal: bool = True) -> None:
        self.node_id = node
        self.backend = str(spec.get("backend", "ray"))
        self.error: str | None = None
        self.session: pytest.Session | None = None
        self.items: dict[str, pytest.Item] = {}
        self.relay = Relay(node, self.backend)
        self.journal: Path | None = None
        self.ship_journal = ship_journal
        #: The worker's own ``--basetemp`` (``tmp_path``), removed when its session ends.
        self.basetemp: str | None = None
        try:
            self._start(spec)
        except BaseException as exc:  # a worker that cannot start says why, on every call
            self.error = "".join(traceback.format_exception(exc)).rstrip()

    def _start(self, spec: dict[str, Any]) -> None:
        from . import pytest_session

        os.environ.update(spec["env"])
        quiet_mlflow()
        os.chdir(Path.cwd() / spec["chdir"])
        # xdist's hooks are the controller's business (pytest-rerunfailures' crash database too).
        config = pytest_session.prepare(["-p", "no:xdist", *spec["args"]], [self.relay])
        option = config.option
        for name in _OPTION_OVERRIDES:
            if spec["options"].get(name):
                setattr(option, name, spec["options"][name])
        # As xdist's remote.setup_config: this process runs items, it distributes none.
        option.dist, option.numprocesses, option.maxfail = "no", None, 0
        option.usepdb = False
        for name in _CLUSTER_OPTIONS:
            setattr(option, name, None)
        option.basetemp = self.basetemp = tempfile.mkdtemp(prefix=f"mlexp-{self.backend}-")
        from ..workers import GIVEN_KEY, Given

        config.stash[GIVEN_KEY] = Given.from_json(spec["given"])
        self.session = pytest_session.start(config)
        self.items = {item.nodeid: item for item in self.session.items}
        from ..spool.journal import JOURNAL_DIR

        self.journal = Path(config.rootpath) / JOURNAL_DIR

    def info(self) -> dict[str, Any]:
        """Where the worker runs, and why it cannot run items (``error``), if so."""
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "node": self.node_id,
            "error": self.error,
            "items": len(self.items),
        }

    def run(self, nodeid: str) -> dict[str, Any]:
        """Run one item; what its hooks logged, in order, and the journal it left (spool)."""
        result: dict[str, Any] = {"pid": os.getpid(), "node": self.node_id, "events": []}
        if self.error is not None:
            result["error"] = (
                f"the {self.backend} worker could not start its pytest session:\n{self.error}"
            )
            return result
        item = self.items.get(nodeid)
        if item is None:
            result["error"] = (
                f"the {self.backend} worker on node {self.node_id} did not collect {nodeid}: "
                "does the node see the project whole (Ray: see .gitignore and .rayignore)?"
            )
            return result
        from . import pytest_session

        self.relay.events = []
        try:
            pytest_session.run_item(item)
        finally:
            result["events"] = self.relay.events
            result["journal"] = self._take_journal()
        return result

    def finish(self, exitstatus: int) -> dict[str, Any]:
        """End the session: session fixtures torn down; the journal left (spool)."""
        if self.session is not None and self.error is None:
            from . import pytest_session

            try:
                pytest_session.stop(self.session, exitstatus)
            except BaseException as exc:
                return {"error": "".join(traceback.format_exception(exc)), "journal": []}
            finally:
                if self.basetemp is not None:
                    shutil.rmtree(self.basetemp, ignore_errors=True)
        return {"journal": self._take_journal()}

    def _take_journal(self) -> list[tuple[str, bytes]]:
        from .journal import take

        if not self.ship_journal or self.journal is None:
            return []
        return take(self.journal)
