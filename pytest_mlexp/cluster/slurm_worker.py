"""What a Slurm job of the session runs on its node: one warm worker serving its mailbox.

submitit submits ``serve`` as the job's function; it holds one
``worker.ItemWorker`` (the project itself, on the shared file system) and
answers the controller's calls until told to end its session. A job whose
controller went silent (no call for ``IDLE_TIMEOUT`` seconds) ends on its own.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path
from typing import Any

#: Seconds a worker waits for its next call before it takes the controller as gone.
IDLE_TIMEOUT = 600.0
#: The exit status of a session its controller left.
_ABANDONED = 2


def serve(spec: dict[str, Any], mailbox: str) -> dict[str, Any]:
    """Run the calls posted in ``mailbox`` in order; returns the last result."""
    from .mailbox import Mailbox
    from .worker import ItemWorker

    # submitit lets SIGTERM pass (preemption sends it before its own signal); scancel's
    # SIGTERM ends this worker now, and the controller ends its run KILLED.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(128 + signal.SIGTERM))
    node = os.environ.get("SLURMD_NODENAME") or socket.gethostname()
    worker = ItemWorker(spec, node, ship_journal=False)
    box = Mailbox(Path(mailbox))
    number = 0
    while True:
        call = box.next_call(number, IDLE_TIMEOUT)
        if call is None:
            return worker.finish(_ABANDONED)
        if call["op"] == "finish":
            result = worker.finish(int(call["exitstatus"]))
            box.answer(number, result)
            return result
        box.answer(number, worker.run(str(call["nodeid"])))
        number += 1
