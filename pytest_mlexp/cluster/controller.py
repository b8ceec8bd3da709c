"""Registered as ``mlexp-ray`` on the controller under ``--mlexp-ray``: the cluster's session.

At session start it connects (or refuses: ``connect``); once collection is
done it plans where each item runs (or refuses bad ``resources=`` and a
journal study the nodes cannot share), and it replaces pytest's run loop
with ``dispatch.Dispatcher``'s. The session's end is the controller's usual
one: the summaries came with the items' teardown reports, as from xdist's
workers, and it completes the group runs against the tracking server itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ..runs.session import MlexpSession
    from ..workers import Given
    from .connect import Cluster
    from .dispatch import Dispatcher


class RayController:
    """The controller's side of a ``--mlexp-ray`` session."""

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
        self.cluster: Cluster | None = None
        self.dispatcher: Dispatcher | None = None
        self.testrunuid = uuid.uuid4().hex

    @property
    def address(self) -> str:
        return str(self.settings.cluster.address)

    def pytest_sessionstart(self) -> None:
        if self.config.getoption("collectonly"):
            return
        if self.config.getoption("dist", "no") != "no":
            raise pytest.UsageError(
                "--mlexp-ray runs the items on the cluster's workers: drop -n/--dist "
                "(each cluster node runs as many items at once as its resources allow)"
            )
        from .connect import check_store, connect

        self.cluster = connect(self.address, self.settings.tracking.rootdir)
        check_store(self.cluster, self.settings.tracking)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self.cluster is None or self.session.collection_failed:
            return
        if self.searches():
            from .connect import check_study_storage

            check_study_storage(self.cluster, self.settings.search)
        from .dispatch import Dispatcher

        self.dispatcher = Dispatcher(self.cluster, self.session, self._given)
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
        self.dispatcher.run(session)
        return True

    def pytest_unconfigure(self) -> None:
        if self.cluster is not None:
            self.cluster.shutdown()
            self.cluster = None

    def _given(self, worker: int) -> Given:
        """What worker number ``worker`` is given: its node runs a copy of the project."""
        return self.hand_to_workers(
            worker=worker,
            run_uid=self.testrunuid,
            # Several workers may share a node (artifacts.concurrency), as under -n 2.
            machine_shared=True,
            remote=True,
            local=self.cluster is not None and self.cluster.local,
        )
