"""pytest's outcome of an item, and the MLflow status its run ends with."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from ..redaction import redact_text


def outcome_and_status(reports: Mapping[str, pytest.TestReport]) -> tuple[str, str]:
    """pytest's outcome for the item and the MLflow status it maps to."""
    setup, call, teardown = (reports.get(when) for when in ("setup", "call", "teardown"))
    for report in (setup, call):
        if report is not None and hasattr(report, "wasxfail"):
            return ("xfailed", "FAILED") if report.skipped else ("xpassed", "FINISHED")
    if setup is not None and setup.failed:
        return "error", "FAILED"
    if setup is not None and setup.skipped:
        return "skipped", "FINISHED"
    if call is None:
        return "interrupted", "KILLED"
    if call.failed:
        return "failed", "FAILED"
    if call.skipped:
        return "skipped", "FINISHED"
    if teardown is not None and teardown.failed:
        return "error", "FAILED"
    return "passed", "FINISHED"


def error_line(report: pytest.TestReport, traceback: str) -> str:
    """The one-line reason of a failure, as pytest's short summary shows it."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return redact_text(crash.message)[:500]
    lines = [line for line in traceback.strip().splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""
