"""Readiness flips the moment SIGTERM arrives, before the server's own handler drains."""

from __future__ import annotations

import signal

from foretell.http.shutdown import not_ready_on_signal


class Runtime:
    ready = True


def test_sigterm_makes_the_server_not_ready_then_reaches_the_handler_before_it():
    heard: list[int] = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: heard.append(signum))
    try:
        runtime = Runtime()
        with not_ready_on_signal(runtime):
            assert runtime.ready
            signal.raise_signal(signal.SIGTERM)
            assert runtime.ready is False
            assert heard == [signal.SIGTERM]  # the server's own handler still runs: it drains and exits
        # Afterwards the handler that was there before is back, untouched.
        signal.raise_signal(signal.SIGTERM)
        assert heard == [signal.SIGTERM, signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, before)


def test_outside_the_block_signals_leave_readiness_alone():
    before = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        runtime = Runtime()
        with not_ready_on_signal(runtime):
            pass
        signal.raise_signal(signal.SIGTERM)
        assert runtime.ready
    finally:
        signal.signal(signal.SIGTERM, before)
