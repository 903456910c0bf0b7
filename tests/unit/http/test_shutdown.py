"""Readiness flips the moment SIGTERM arrives, before the server's own handler drains."""

from __future__ import annotations

import signal
import threading

import pytest

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


def test_ctrl_c_with_no_handler_before_turns_readiness_off_then_interrupts_as_python_would():
    before = signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        runtime = Runtime()
        with not_ready_on_signal(runtime), pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        assert runtime.ready is False
        assert signal.getsignal(signal.SIGINT) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGINT, before)


def test_an_ignored_signal_still_turns_readiness_off_and_stays_ignored():
    before = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        runtime = Runtime()
        with not_ready_on_signal(runtime):
            signal.raise_signal(signal.SIGTERM)
            assert runtime.ready is False
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, before)


def test_outside_the_main_thread_no_handler_is_installed():
    installed: list[object] = []

    def elsewhere() -> None:
        with not_ready_on_signal(Runtime()):
            installed.append(signal.getsignal(signal.SIGTERM))

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join(timeout=10)
    assert installed == [before]
