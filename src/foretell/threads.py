"""Threads that answer no request yield the CPU to those that do."""

from __future__ import annotations

import contextlib
import os
import sys
import threading

__all__ = ["BACKGROUND_NICENESS", "run_in_background"]

BACKGROUND_NICENESS = 10
"""Linux weighs a nice-10 thread at about a tenth of a nice-0 one (110 against 1,024) when both want a core."""


def run_in_background() -> None:
    """Lower the calling thread's CPU priority, where the system gives threads their own (Linux); else nothing.

    The server answers requests on its event loop's thread, and the ledger's writer encodes,
    compresses and compacts Parquet on another thread of the same process, usually on the
    same core. Much of that work runs without the GIL, so the two threads compete for the
    core and Linux shared it evenly: a compaction (a second of work every half minute)
    halved the loop's share and every request queued behind it. At a lower priority the
    writer still has the core whenever the loop is idle, and gives it up when requests come.
    """
    if sys.platform != "linux":
        return
    # A sandbox may forbid even lowering a priority: the thread then runs as before.
    with contextlib.suppress(OSError):
        # On Linux a thread id is a process id to setpriority: this thread alone is reniced.
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICENESS)
