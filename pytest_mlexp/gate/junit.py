"""The one adapter to pytest's ``junitxml`` plugin, whose hooks are public but whose state is not.

Checked with pytest 8.x and 9.x: ``_pytest.junitxml.xml_key`` holds the
``LogXML`` in ``config.stash``; ``LogXML.node_reporter(report)`` returns a test
case's reporter (the same object until its teardown report finalizes it);
``node_reporters_ordered`` lists the test cases written, and ``stats`` counts
them. ``tests/test_regression.py`` parses the XML and fails if any of this moves.
"""

from __future__ import annotations

from typing import Any

import pytest


def log_xml(config: pytest.Config) -> Any | None:
    """The session's ``LogXML`` (``--junitxml``), or None."""
    try:
        from _pytest.junitxml import xml_key
    except ImportError:  # pragma: no cover - pytest moved it
        return None
    return config.stash.get(xml_key, None)


def case_of(config: pytest.Config, report: pytest.TestReport) -> Any | None:
    """The test case ``report`` went to, to withdraw it later; None without ``--junitxml``."""
    xml = log_xml(config)
    return None if xml is None else xml.node_reporter(report)


def withdraw_passed(config: pytest.Config, case: Any) -> int | None:
    """Take a passed test case out of the file before it is written; its place, or None."""
    xml = log_xml(config)
    ordered = getattr(xml, "node_reporters_ordered", None)
    if xml is None or ordered is None or case not in ordered:
        return None
    place: int = ordered.index(case)
    ordered.pop(place)
    xml.stats["passed"] -= 1
    return place


def move_last_to(config: pytest.Config, place: int) -> None:
    """Put the test case written last at ``place`` (where the one it replaces was)."""
    xml = log_xml(config)
    if xml is not None and xml.node_reporters_ordered:
        xml.node_reporters_ordered.insert(place, xml.node_reporters_ordered.pop())


def add_suite_property(config: pytest.Config, name: str, value: str) -> None:
    """A ``<property>`` of the test suite (pytest's ``record_testsuite_property``)."""
    xml = log_xml(config)
    if xml is not None:
        xml.add_global_property(name, value)
