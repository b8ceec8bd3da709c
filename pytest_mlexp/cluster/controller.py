"""Registered as ``mlexp-cluster`` on the controller under ``--mlexp-ray`` or ``--mlexp-slurm``.

At session start it opens the cluster's executor (or refuses: each
backend's ``open``); once collection is done it plans where each item runs
(or refuses bad ``resources=`` and a journal study the nodes cannot share),
and it replaces pytest's run loop with ``dispatch.Dispatcher``'s. The
session's end is the controller's usual one: the summaries came with the
items' teardown reports, as from xdist's workers, and it completes the group
runs against the tracking server itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ..runs.session import MlexpSession
    from ..workers import Given
    from .dispatch import Dispatcher
    from .executor import Executor


class ClusterController:
    """The controller's side of a cluster's session, whichever its backend."""

    def __init__(
        self,
        session: MlexpSession,
        searches: Callable[[], bool],
        hand_to_workers: Callable[..., Given],
    ) -> None:
        """``hand_to_workers``: ``pipeline.hand_to_workers`` for this session."""
        self.session = session
        self.config = session.config
        self.settings = session.settings
        self.searches = searches
        self.hand_to_workers = hand_to_workers
        self.executor: Executor | None = None
        self.dispatcher: Dispatcher | None = None
        self.testrunuid = uuid.uuid4().hex

    @property
    def flag(self) -> str:
        return f"--mlexp-{self.settings.cluster.backend}"

    def pytest_sessionstart(self) -> None:
        if self.config.getoption("collectonly"):
            return
        if self.config.getoption("dist", "no") != "no":
            raise pytest.UsageError(
                f"{self.flag} runs the items on the cluster's workers: drop -n/--dist "
                "(each cluster node runs as many items at once as its resources allow)"
            )
        from .backends import open_executor

        self.executor = open_executor(self.settings, self.settings.tracking.rootdir)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self.executor is None or self.session.collection_failed:
            return
        if self.searches():
            from .checks import check_study_storage

            executor = self.executor
            reachable = executor.local or not executor.shipped
            check_study_storage(reachable, executor.where, self.settings.search)
        from .dispatch import Dispatcher

        self.dispatcher = Dispatcher(self.executor, self.session, self._given)
        self.dispatcher.plan(list(session.items))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        if self.dispatcher is None:
            return None  # --collect-only, or nothing collected: pytest's own loop
        if session.testsfailed and not session.config.option.continue_on_collection_errors:
            raise session.Interrupted(
                f"{session.testsfailed} error{'s' if session.testsfailed != 1 else ''} "
                "during collection"
            )
        # SIGTERM (a CI timeout, the allocation's end) cancels the cluster's work as Ctrl-C
        # does from the first item on, not from the first result: jobs outlive this process.
        self.session._handle_sigterm()
        self.dispatcher.run(session)
        return True

    def pytest_unconfigure(self) -> None:
        if self.executor is not None:
            self.executor.shutdown()
            self.executor = None

    def _given(self, worker: int) -> Given:
        """What worker number ``worker`` is given."""
        executor = self.executor
        assert executor is not None
        return self.hand_to_workers(
            worker=worker,
            run_uid=self.testrunuid,
            # Several workers may share a node (artifacts.concurrency), as under -n 2.
            machine_shared=True,
            # A shipped copy of the project (Ray's) has no .git: it is given the git state.
            remote=executor.shipped,
            local=executor.local,
        )
