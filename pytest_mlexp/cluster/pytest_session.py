"""The private pytest APIs a warm Ray worker needs, behind one small adapter.

A worker holds one pytest session across the items it is given, the way an
xdist worker does (``xdist/remote.py`` calls ``_prepareconfig`` too), but
steps it itself instead of handing it to ``pytest_cmdline_main``: it cannot
know which item comes next, so it tears down what the next item does not
share just before running it. Checked against pytest 8.3 to 9.2;
``tests/test_ray.py`` fails loudly when these change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from _pytest.config import _prepareconfig
from _pytest.main import Session


def prepare(args: Sequence[str], plugins: Sequence[object]) -> pytest.Config:
    """A configured-to-be ``Config`` for ``args``, as ``pytest.main`` would build it."""
    return _prepareconfig(list(args), list(plugins))


def start(config: pytest.Config) -> pytest.Session:
    """Configure, start the session and collect, as ``wrap_session`` does up to the loop."""
    session = Session.from_config(config)
    session.exitstatus = pytest.ExitCode.OK
    config._do_configure()
    config.hook.pytest_sessionstart(session=session)
    config.hook.pytest_collection(session=session)
    return session


def run_item(item: pytest.Item) -> None:
    """Run one item; its module and session fixtures stay up for the items that share them."""
    # What the previous item left and this one does not share ends now.
    item.session._setupstate.teardown_exact(item)
    parent: Any = item.parent  # teardown_exact keeps what this collector's chain holds
    item.config.hook.pytest_runtest_protocol(item=item, nextitem=parent)


def stop(session: pytest.Session, exitstatus: int) -> None:
    """Tear everything down, finish the session and unconfigure, as ``wrap_session`` does."""
    config = session.config
    try:
        session._setupstate.teardown_exact(None)
    finally:
        session.exitstatus = exitstatus
        try:
            config.hook.pytest_sessionfinish(session=session, exitstatus=exitstatus)
        finally:
            config._ensure_unconfigure()
