"""Readiness goes false the moment SIGTERM (or SIGINT) arrives, before the server drains.

uvicorn owns the signals: its handler starts the graceful shutdown, noticed on the next
tick of its main loop. A load balancer polling `/v2/health/ready` meanwhile must already
see "not ready", so this chains a handler in front of uvicorn's that flips the flag first
and then hands the signal on unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, Protocol

__all__ = ["not_ready_on_signal"]

log = logging.getLogger("foretell.http")
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Readiness(Protocol):
    ready: bool


@contextlib.contextmanager
def not_ready_on_signal(runtime: Readiness, on_signal: Callable[[], None] = lambda: None) -> Iterator[None]:
    """While the block runs, SIGTERM/SIGINT first set `runtime.ready = False` and call `on_signal` (once: what
    else must start draining now, such as the gRPC server), then do what they did before."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach only the main thread; an app run elsewhere (tests) has no signals of its own
        return
    previous: dict[int, Any] = {}
    signalled: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if runtime.ready:
            log.warning("received %s: not ready any more; finishing in-flight requests", signal.Signals(signum).name)
        runtime.ready = False
        if not signalled:
            signalled.append(signum)
            on_signal()
        before = previous.get(signum)
        if callable(before):
            before(signum, frame)
        elif before == signal.SIG_DFL:
            signal.default_int_handler(signum, frame) if signum == signal.SIGINT else _die(signum)

    for sig in SIGNALS:
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for number, before in previous.items():
            if signal.getsignal(number) is handler:
                signal.signal(number, before)


def _die(signum: int) -> None:
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)
