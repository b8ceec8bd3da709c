"""A failed group run, reported through pytest's own reporting, as the failure of one of its items.

A repeated cell (by its mean), a search (by its best trial) and a grid marked
``gate="best"`` (by its best cell) are judged at session end, once all their
members reported (``gate.group_runs``). A group is no item: its failure is
reported as its last passed member's. That member's passed call report is
withdrawn from the terminal's counts and from the JUnit XML, and a failed
one, whose message is the group's, goes through ``pytest_runtest_logreport``:
the terminal's last line, the short summary, ``--junitxml``, ``--lf``'s cache
and the exit status count one failed item, each item once, with or without
xdist or Ray.

Registered as ``mlexp-group-reports`` where the session ends (the controller),
once tracked items are known there (``pipeline.on_tracked``): a session without
experiments keeps no report.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import pytest

from . import junit


class GroupReports:
    """Keeps each item's passed call report, to report a failed group as one of its items'."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        #: Node id -> its passed call report and its JUnit XML test case.
        self._passed: dict[str, tuple[pytest.TestReport, Any]] = {}
        #: The reports made here, by identity: a failed group's.
        self._made: list[pytest.TestReport] = []

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        if report.passed and not hasattr(report, "wasxfail"):
            self._passed[report.nodeid] = (report, junit.case_of(self.config, report))
        else:
            self._passed.pop(report.nodeid, None)  # failed, skipped, or a rerun attempt

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: Any) -> Any:
        # Counted and named as failed; no progress letter after the session's last line.
        if any(report is made for made in self._made):
            return "failed", "", ("FAILED", {"red": True})
        return None

    def passed(self, nodeid: str) -> bool:
        """Whether the item's call passed (and is not yet reported failed here)."""
        return nodeid in self._passed

    def fail(self, failures: Mapping[str, str]) -> None:
        """Report each item in ``failures`` (node id -> message) failed, in place of its pass."""
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        for nodeid, message in failures.items():
            found = self._passed.pop(nodeid, None)
            if found is None:
                continue
            passed, case = found
            if terminal is not None and passed in terminal.stats.get("passed", []):
                terminal.stats["passed"].remove(passed)
            place = None if case is None else junit.withdraw_passed(self.config, case)
            failed = copy.copy(passed)  # its location, worker, duration, properties, output
            failed.outcome = "failed"
            failed.longrepr = GroupFailure(message)
            self._made.append(failed)
            self.config.hook.pytest_runtest_logreport(report=failed)
            if place is not None:
                junit.move_last_to(self.config, place)


class GroupFailure(str):
    """A failed group's message as a report's ``longrepr``.

    Text, as pytest 9's short summary and ``--junitxml`` read it; with the
    ``reprcrash.message`` pytest 8 reads for the short summary's `` - message``.
    """

    @property
    def reprcrash(self) -> SimpleNamespace:
        return SimpleNamespace(message=str(self))


GROUP_REPORTS_KEY = pytest.StashKey[GroupReports]()


def register(config: pytest.Config) -> None:
    """Register the plugin where the session ends (``pipeline.on_tracked``)."""
    reports = GroupReports(config)
    config.stash[GROUP_REPORTS_KEY] = reports
    config.pluginmanager.register(reports, "mlexp-group-reports")
