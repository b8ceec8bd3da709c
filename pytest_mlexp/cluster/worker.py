"""The warm worker: a Ray actor holding one pytest session across the items it runs.

Like an xdist worker, it collects once (the project shipped by Ray's
``runtime_env``), then runs the items it is given by node id; each call
returns what the item's hooks logged, serialized by pytest's own
``pytest_report_to_serializable`` (the run's summary rides along, as under
xdist), for the controller to replay. The actor is given the controller's
``workers.Given`` (its session id and process...), as xdist's workers are;
it is no xdist worker.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import traceback
from pathlib import Path
from typing import Any

import pytest

from ..backend import tags as T

#: The controller's settings a worker takes as given, whatever its own environment says.
_OPTION_OVERRIDES = ("mlexp_tracking_uri", "mlexp_experiment")


class Relay:
    """Registered in the worker's session: keeps what each item logs, and tags its run."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.config: pytest.Config | None = None
        self.events: list[dict[str, Any]] = []

    def pytest_configure(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_mlexp_run_tags(self, item: pytest.Item) -> dict[str, str]:
        return {T.RAY_NODE: self.node_id}

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
    """The actor's class (``ray.remote`` is applied by the controller, so Ray stays optional).

    ``spec``: ``args`` (the controller's command line), ``chdir`` (the invocation
    folder relative to the shipped rootdir), ``env`` (variables to set),
    ``options`` (resolved settings to take as given) and ``given`` (``workers.Given``).
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        import ray

        self.node_id = ray.get_runtime_context().get_node_id()
        self.error: str | None = None
        self.session: pytest.Session | None = None
        self.items: dict[str, pytest.Item] = {}
        self.relay = Relay(self.node_id)
        self.journal: Path | None = None
        #: The worker's own ``--basetemp`` (``tmp_path``), removed when its session ends.
        self.basetemp: str | None = None
        try:
            self._start(spec)
        except BaseException as exc:  # a worker that cannot start says why, on every call
            self.error = "".join(traceback.format_exception(exc)).rstrip()

    def _start(self, spec: dict[str, Any]) -> None:
        from . import pytest_session

        os.environ.update(spec["env"])
        os.chdir(Path.cwd() / spec["chdir"])
        # xdist's hooks are the controller's business (pytest-rerunfailures' crash database too).
        config = pytest_session.prepare(["-p", "no:xdist", *spec["args"]], [self.relay])
        option = config.option
        for name in _OPTION_OVERRIDES:
            if spec["options"].get(name):
                setattr(option, name, spec["options"][name])
        # As xdist's remote.setup_config: this process runs items, it distributes none.
        option.dist, option.numprocesses, option.maxfail = "no", None, 0
        option.usepdb, option.mlexp_ray = False, None
        option.basetemp = self.basetemp = tempfile.mkdtemp(prefix="mlexp-ray-")
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
            result["error"] = f"the Ray worker could not start its pytest session:\n{self.error}"
            return result
        item = self.items.get(nodeid)
        if item is None:
            result["error"] = (
                f"the Ray worker on node {self.node_id} did not collect {nodeid}: "
                "is the project shipped whole (see .gitignore and .rayignore)?"
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

        return take(self.journal) if self.journal is not None else []
