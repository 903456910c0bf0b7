"""The scheduler loop: find due schedules, claim them, launch each as its own process.

A tick never waits for a run: each run is a `python -m foretell ...` subprocess watched by
a thread of its own, which keeps the tail of its output and records the exit code when it
ends. The command records itself in job history (`foretell batch run` does); the schedule's
run row keeps the output tail and the batch job id found in it.

Stopping (SIGTERM/SIGINT at the CLI) ends the loop at once, starts nothing new, and waits
for the runs in progress to finish, so every run gets its exit code recorded. `terminate()`
(a second signal at the CLI) asks those runs to stop: a batch job stops between chunks,
exits non-zero and can be resumed.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Protocol

from foretell.batch.schedules import Clock, Run, ScheduleBook, utc_now
from foretell.errors import ScheduleNotFound

__all__ = ["Launcher", "OnExit", "Scheduler", "SubprocessLauncher", "expand"]

#: Called once when a launched command ends, from any thread: (exit code, tail of its output).
OnExit = Callable[[int, str], None]
Report = Callable[[str], None]

#: Exit code recorded when the command could not even be started (as a shell reports it).
EXIT_NOT_STARTED = 127


class Launcher(Protocol):
    """Starts commands without waiting for them; the scheduler's one seam to processes."""

    def launch(self, argv: Sequence[str], on_exit: OnExit) -> int:
        """Start `foretell ARGV` and return its pid; call `on_exit` when it ends."""

    def terminate(self) -> None:
        """Ask every command still running to stop."""

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every command has ended and `on_exit` has returned; False on timeout."""


class SubprocessLauncher:
    """Runs `python -m foretell ARGV` with FORETELL_HOME set, one watcher thread per run."""

    def __init__(self, home: Path, *, tail_lines: int = 40) -> None:
        self._env = {**os.environ, "FORETELL_HOME": str(home)}
        self._tail_lines = tail_lines
        self._lock = threading.Lock()
        self._running: dict[int, tuple[subprocess.Popen[str], threading.Thread]] = {}

    def launch(self, argv: Sequence[str], on_exit: OnExit) -> int:
        process = subprocess.Popen(
            [sys.executable, "-m", "foretell", *argv],
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            # Its own session: a Ctrl-C in the scheduler's terminal reaches the scheduler only,
            # which then decides whether the runs finish or are asked to stop.
            start_new_session=True,
        )
        # Not a daemon: should the scheduler's main thread die, the exit codes still get recorded.
        watcher = threading.Thread(target=self._watch, args=(process, on_exit), name=f"foretell-run-{process.pid}")
        with self._lock:
            self._running[process.pid] = (process, watcher)
        watcher.start()
        return process.pid

    def _watch(self, process: subprocess.Popen[str], on_exit: OnExit) -> None:
        # Reading the pipe to its end (keeping only the tail) is what stops a chatty command
        # from filling the pipe and blocking forever.
        assert process.stdout is not None
        tail: deque[str] = deque(maxlen=self._tail_lines)
        for line in process.stdout:
            tail.append(line)
        process.stdout.close()
        code = process.wait()
        try:
            on_exit(code, "".join(tail))
        finally:
            with self._lock:
                self._running.pop(process.pid, None)

    def terminate(self) -> None:
        with self._lock:
            processes = [process for process, _ in self._running.values()]
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            watchers = [watcher for _, watcher in self._running.values()]
        for watcher in watchers:
            watcher.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        with self._lock:
            return not self._running


class Scheduler:
    """Runs due schedules of one FORETELL_HOME; any number may run at once without a double start."""

    def __init__(
        self,
        home: Path,
        *,
        clock: Clock = utc_now,
        launcher: Launcher | None = None,
        poll_seconds: float = 10.0,
        report: Report | None = None,
        book: ScheduleBook | None = None,
    ) -> None:
        if poll_seconds <= 0:
            raise ValueError(f"poll_seconds must be positive, got {poll_seconds}")
        self.book = book or ScheduleBook(home, clock=clock)
        self._clock = clock
        self._launcher = launcher or SubprocessLauncher(home)
        self._poll_seconds = poll_seconds
        self._report = report or (lambda message: None)
        self._lock = threading.Lock()
        self._finished: list[Run] = []

    def tick(self) -> list[Run]:
        """One pass: claim and launch every due schedule. Returns the runs it started."""
        started = []
        for due in self.book.due(self._clock()):
            name = due.schedule.name
            try:
                run = self.book.claim(name, due.fire_time)
            except ScheduleNotFound:
                continue  # removed between listing and claiming
            if run is None:
                continue  # another scheduler took this slot
            if run.status == "skipped":
                self._report(f"{name}: slot {_show(run.fire_time)} skipped, the previous run is still in progress")
                continue
            try:
                pid = self._launcher.launch(expand(due.schedule.argv, run.fire_time), partial(self._on_exit, run))
            except OSError as exc:
                self._on_exit(run, EXIT_NOT_STARTED, f"could not start the command: {exc}")
                continue
            self.book.attach(run.id, pid)
            self._report(f"{name}: run {run.id} for slot {_show(run.fire_time)} started (pid {pid})")
            started.append(run)
        return started

    def _on_exit(self, run: Run, code: int, tail: str) -> None:
        try:
            finished = self.book.finish(run.schedule, run.id, code, tail)
        except ScheduleNotFound:
            self._report(f"{run.schedule}: run {run.id} ended with exit code {code} after its schedule was removed")
            return
        except sqlite3.Error as exc:
            # Said, not raised: this is a watcher thread. The run reads as in progress until
            # this scheduler exits, and as abandoned after that.
            self._report(f"{run.schedule}: run {run.id} ended with exit code {code} but could not be recorded: {exc}")
            return
        job = f" ({finished.job_id})" if finished.job_id else ""
        self._report(f"{run.schedule}: run {run.id} {finished.status} with exit code {code}{job}")
        with self._lock:
            self._finished.append(finished)

    def finished(self) -> list[Run]:
        """The runs this scheduler saw end, oldest first."""
        with self._lock:
            return list(self._finished)

    def serve(self, stop: threading.Event) -> None:
        """Tick until `stop` is set, then wait for the runs in progress to end."""
        try:
            while not stop.is_set():
                try:
                    self.tick()
                    pause = self._sleep_seconds()
                except sqlite3.OperationalError as exc:
                    # A database held locked past its timeout is worth a retry, not the end of
                    # a process meant to run for months; the runs already started are unharmed.
                    self._report(f"could not read the schedules ({exc}); retrying in {self._poll_seconds:g} s")
                    pause = self._poll_seconds
                stop.wait(pause)
        finally:
            # Short waits: a signal handler (which may call terminate) runs only between them.
            while not self.drain(timeout=0.5):
                pass

    def drain(self, timeout: float | None = None) -> bool:
        """Wait for the runs in progress to end and be recorded; False on timeout."""
        return self._launcher.wait(timeout)

    def terminate(self) -> None:
        """Ask the runs in progress to stop (a batch job stops between chunks and can resume)."""
        self._launcher.terminate()

    def _sleep_seconds(self) -> float:
        # Wake at the next slot rather than up to a poll late; the poll bounds how long a
        # schedule added by another process waits to be noticed.
        upcoming = [schedule.next_fire() for schedule in self.book.list()]
        if not upcoming:
            return self._poll_seconds
        until = (min(upcoming) - self._clock()).total_seconds()
        return min(self._poll_seconds, max(0.2, until))


def expand(argv: Sequence[str], fire_time: datetime) -> list[str]:
    """Fill in `{date}` and `{datetime}` with the slot's UTC time, so a nightly run can write a new folder.

    Plain token replacement, not str.format: other braces (JSON, globs) pass through untouched.
    """
    date, stamp = fire_time.strftime("%Y-%m-%d"), fire_time.strftime("%Y%m%dT%H%MZ")
    return [arg.replace("{date}", date).replace("{datetime}", stamp) for arg in argv]


def _show(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")
