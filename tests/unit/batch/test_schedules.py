"""Schedules and the scheduler's tick, on a fake clock and a fake launcher: no process is started."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from foretell.batch.scheduler import EXIT_NOT_STARTED, OnExit, Scheduler, expand
from foretell.batch.schedules import ScheduleBook, pid_alive
from foretell.errors import ForetellError, InvalidSchedule, ScheduleExists, ScheduleNotFound

START = datetime(2026, 11, 29, 1, 30, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class Liveness:
    """Which pids count as alive; everything else is dead."""

    def __init__(self) -> None:
        self.alive: set[int] = set()

    def __call__(self, pid: int) -> bool:
        return pid in self.alive


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def liveness() -> Liveness:
    return Liveness()


@pytest.fixture
def book(tmp_path: Path, clock: Clock, liveness: Liveness) -> ScheduleBook:
    return ScheduleBook(tmp_path, clock=clock, is_alive=liveness)


NIGHTLY = ["batch", "run", "churn@production", "--input", "in.parquet", "--output", "out/{date}"]


# --- validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [("0 2 * * *", "0 2 * * *"), ("  */15   9-17 * * MON-FRI ", "*/15 9-17 * * MON-FRI"), ("@Daily", "@daily")],
)
def test_valid_cron_expressions_are_stored_normalised(book, given, stored):
    assert book.add("s", given, ["models", "list"]).cron == stored


@pytest.mark.parametrize(
    ("cron", "says"),
    [
        ("0 2 * *", "4 fields, not 5"),
        ("0 0 2 * * *", "6 fields, not 5"),  # croniter reads this as seconds; cron would not
        ("61 2 * * *", "out of range"),
        ("0 25 * * *", "out of range"),
        ("every day", "2 fields"),
        ("H 2 * * *", "out of range or malformed"),
        ("@reboot", "unknown cron nickname"),
        ("", "0 fields"),
    ],
)
def test_invalid_cron_expressions_are_refused_with_the_rule(book, cron, says):
    with pytest.raises(InvalidSchedule, match=says) as caught:
        book.add("s", cron, ["models", "list"])
    assert isinstance(caught.value, ForetellError) and isinstance(caught.value, ValueError)
    assert book.list() == []


@pytest.mark.parametrize("name", ["", "-x", ".hidden", "has space", "a/b", "ünï"])
def test_invalid_names_are_refused(book, name):
    with pytest.raises(InvalidSchedule, match="schedule name"):
        book.add(name, "@daily", ["models", "list"])


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ([], "needs a foretell command"),
        (["foretell", "batch", "run"], "leave out the program name"),
        (["--debug", "batch", "run"], "leave out the program name"),
        (["scheduler"], "cannot run `foretell scheduler`"),
        (["schedule", "list"], "cannot run `foretell schedule`"),
    ],
)
def test_commands_must_start_with_a_foretell_command(book, argv, says):
    with pytest.raises(InvalidSchedule, match=says):
        book.add("s", "@daily", argv)


def test_names_are_unique_unless_replaced(book, clock):
    book.add("nightly", "0 2 * * *", NIGHTLY)
    with pytest.raises(ScheduleExists, match="--replace"):
        book.add("nightly", "0 3 * * *", ["models", "list"])
    replaced = book.add("nightly", "0 3 * * *", ["models", "list"], replace=True)
    assert (replaced.cron, replaced.argv) == ("0 3 * * *", ("models", "list"))
    assert [s.name for s in book.list()] == ["nightly"]


def test_get_list_remove(book):
    book.add("b", "@hourly", ["models", "list"])
    book.add("a", "0 2 * * *", NIGHTLY)
    assert [s.name for s in book.list()] == ["a", "b"]
    assert book.get("a").argv == tuple(NIGHTLY)
    book.remove("a")
    with pytest.raises(ScheduleNotFound, match="'a'"):
        book.get("a")
    with pytest.raises(ScheduleNotFound):
        book.remove("a")
    with pytest.raises(ScheduleNotFound):
        book.runs("a")


def test_the_clock_must_be_aware(tmp_path):
    book = ScheduleBook(tmp_path, clock=lambda: datetime(2026, 1, 1))  # naive, on purpose
    with pytest.raises(ValueError, match="aware"):
        book.add("s", "@daily", ["models", "list"])
    with pytest.raises(ValueError, match="timezone-aware"):
        ScheduleBook(tmp_path).due(datetime(2026, 1, 1))  # naive, on purpose


# --- due --------------------------------------------------------------------------------


def test_first_slot_is_the_first_after_creation(book, clock):
    book.add("nightly", "0 2 * * *", NIGHTLY)  # created 01:30
    assert book.get("nightly").next_fire() == datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
    assert book.due(clock.advance(minutes=29, seconds=59)) == []
    (due,) = book.due(clock.advance(seconds=1))  # exactly 02:00:00 counts
    assert due.schedule.name == "nightly"
    assert due.fire_time == datetime(2026, 11, 29, 2, 0, tzinfo=UTC)


def test_a_slot_before_creation_does_not_fire(book, clock):
    clock.now = datetime(2026, 11, 29, 2, 0, 30, tzinfo=UTC)
    book.add("nightly", "0 2 * * *", NIGHTLY)
    assert book.due(clock.advance(hours=12)) == []
    assert len(book.due(datetime(2026, 11, 30, 2, 0, tzinfo=UTC))) == 1


def test_a_claimed_slot_is_no_longer_due(book, clock):
    book.add("nightly", "0 2 * * *", NIGHTLY)
    (due,) = book.due(clock.advance(minutes=31))
    run = book.claim("nightly", due.fire_time)
    assert run is not None and run.status == "running"
    assert book.due(clock.advance(hours=20)) == []
    assert [d.fire_time for d in book.due(clock.advance(hours=4))] == [datetime(2026, 11, 30, 2, 0, tzinfo=UTC)]


def test_missed_slots_fire_once_for_the_latest_slot(book, clock):
    book.add("hourly", "0 * * * *", ["models", "list"])
    clock.now = datetime(2026, 12, 4, 9, 59, tzinfo=UTC)  # the scheduler was down for five days
    (due,) = book.due()
    assert due.fire_time == datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    run = book.claim("hourly", due.fire_time)
    assert run is not None
    book.finish("hourly", run.id, 0, "")
    assert book.due() == []
    assert len(book.runs("hourly")) == 1
    assert book.get("hourly").next_fire() == datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


# --- claim ------------------------------------------------------------------------------


def test_claim_refuses_a_slot_already_claimed(book, clock):
    book.add("m", "* * * * *", ["models", "list"])
    slot = datetime(2026, 11, 29, 1, 31, tzinfo=UTC)
    first = book.claim("m", slot)
    assert first is not None
    assert book.claim("m", slot) is None
    assert book.claim("m", slot - timedelta(minutes=1)) is None  # an older slot is never run late


def test_claim_skips_a_slot_while_a_run_is_in_progress(book, clock, liveness):
    book.add("m", "* * * * *", ["models", "list"])
    liveness.alive.add(4242)
    first = book.claim("m", datetime(2026, 11, 29, 1, 31, tzinfo=UTC), owner_pid=4242)
    assert first is not None and first.status == "running"
    second = book.claim("m", datetime(2026, 11, 29, 1, 32, tzinfo=UTC), owner_pid=4242)
    assert second is not None and second.status == "skipped" and "still in progress" in second.output_tail
    assert [r.status for r in book.runs("m")] == ["skipped", "running"]
    # The skipped slot is spent: it is neither due again nor claimable again.
    assert book.due(datetime(2026, 11, 29, 1, 32, 30, tzinfo=UTC)) == []
    assert book.claim("m", datetime(2026, 11, 29, 1, 32, tzinfo=UTC)) is None


def test_the_launched_command_alive_blocks_even_when_its_scheduler_died(book, liveness):
    book.add("m", "* * * * *", ["models", "list"])
    first = book.claim("m", datetime(2026, 11, 29, 1, 31, tzinfo=UTC), owner_pid=100)
    assert first is not None
    book.attach(first.id, 200)
    liveness.alive.add(200)  # scheduler 100 was killed; its command 200 still runs
    second = book.claim("m", datetime(2026, 11, 29, 1, 32, tzinfo=UTC), owner_pid=300)
    assert second is not None and second.status == "skipped"


def test_a_run_whose_processes_died_does_not_block(book, liveness):
    book.add("m", "* * * * *", ["models", "list"])
    first = book.claim("m", datetime(2026, 11, 29, 1, 31, tzinfo=UTC), owner_pid=100)
    assert first is not None
    book.attach(first.id, 200)  # both 100 and 200 are dead: a crash, no exit code recorded
    second = book.claim("m", datetime(2026, 11, 29, 1, 32, tzinfo=UTC), owner_pid=300)
    assert second is not None and second.status == "running"
    old = book.runs("m")[1]
    assert (old.id, old.status, old.exit_code) == (first.id, "abandoned", None)
    assert old.finished_at is not None


def test_a_real_dead_pid_does_not_block(tmp_path, clock):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert not pid_alive(gone.pid)
    assert pid_alive(os.getpid())
    book = ScheduleBook(tmp_path, clock=clock)  # the real liveness check
    book.add("m", "* * * * *", ["models", "list"])
    assert book.claim("m", datetime(2026, 11, 29, 1, 31, tzinfo=UTC), owner_pid=gone.pid) is not None
    second = book.claim("m", datetime(2026, 11, 29, 1, 32, tzinfo=UTC))
    assert second is not None and second.status == "running"


def test_racing_claims_start_a_slot_once(tmp_path, clock):
    ScheduleBook(tmp_path, clock=clock).add("m", "* * * * *", ["models", "list"])
    slot = datetime(2026, 11, 29, 1, 31, tzinfo=UTC)
    barrier = threading.Barrier(8)
    won: list[object] = []

    def race() -> None:
        book = ScheduleBook(tmp_path, clock=clock)
        barrier.wait()
        won.append(book.claim("m", slot))

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is not None for r in won) == 1


def test_a_run_in_progress_outlives_remove_and_re_add(book, clock, liveness):
    book.add("m", "* * * * *", ["models", "list"])
    liveness.alive.add(4242)
    first = book.claim("m", datetime(2026, 11, 29, 1, 31, tzinfo=UTC), owner_pid=4242)
    assert first is not None
    book.remove("m")
    clock.advance(minutes=5)
    book.add("m", "* * * * *", ["models", "list"])  # the same name, while the old run still goes
    (due,) = book.due(clock.advance(minutes=1))
    again = book.claim("m", due.fire_time)
    assert again is not None and again.status == "skipped"
    assert book.finish("m", first.id, 0, "").status == "succeeded"  # the old run still gets recorded


def test_claiming_an_unknown_schedule(book):
    with pytest.raises(ScheduleNotFound):
        book.claim("nope", START)


# --- finish -----------------------------------------------------------------------------


def test_finish_records_status_exit_code_output_and_job_id(book, clock):
    book.add("m", "* * * * *", NIGHTLY)
    run = book.claim("m", datetime(2026, 11, 29, 1, 31, tzinfo=UTC))
    assert run is not None
    clock.advance(minutes=3)
    tail = "scored\njob-20261129-013100-1a2b3c succeeded: 10 rows read\n"
    done = book.finish("m", run.id, 0, tail)
    assert (done.status, done.exit_code, done.job_id, done.output_tail) == (
        "succeeded",
        0,
        "job-20261129-013100-1a2b3c",
        tail,
    )
    assert done.finished_at == clock.now.replace(microsecond=0)
    failed = book.claim("m", datetime(2026, 11, 29, 1, 34, tzinfo=UTC))
    assert failed is not None
    assert book.finish("m", failed.id, 2, "error: boom").status == "failed"
    with pytest.raises(ScheduleNotFound):
        book.finish("m", failed.id, 0, "")  # a run is finished once


def test_runs_are_newest_first_and_limited(book):
    book.add("m", "* * * * *", ["models", "list"])
    for minute in range(31, 36):
        run = book.claim("m", datetime(2026, 11, 29, 1, minute, tzinfo=UTC))
        assert run is not None
        book.finish("m", run.id, 0, "")
    assert [r.fire_time.minute for r in book.runs("m", limit=3)] == [35, 34, 33]


# --- the scheduler's tick -----------------------------------------------------------------


class FakeLauncher:
    """Records launches; the test ends them by calling `end`."""

    def __init__(self, fail: bool = False) -> None:
        self.launched: list[tuple[list[str], OnExit]] = []
        self.fail = fail
        self.terminated = False

    def launch(self, argv: Sequence[str], on_exit: OnExit) -> int:
        if self.fail:
            raise FileNotFoundError(2, "No such file or directory", "python")
        self.launched.append((list(argv), on_exit))
        return 90_000 + len(self.launched)

    def end(self, index: int, code: int, tail: str = "") -> None:
        self.launched[index][1](code, tail)

    def terminate(self) -> None:
        self.terminated = True

    def wait(self, timeout: float | None = None) -> bool:
        return True


def test_tick_launches_due_schedules_with_the_slot_filled_in(tmp_path, clock, liveness):
    launcher = FakeLauncher()
    scheduler = Scheduler(
        tmp_path, clock=clock, launcher=launcher, book=ScheduleBook(tmp_path, clock=clock, is_alive=liveness)
    )
    scheduler.book.add("nightly", "0 2 * * *", NIGHTLY)
    assert scheduler.tick() == []
    clock.advance(hours=1)
    (run,) = scheduler.tick()
    assert launcher.launched[0][0][-1] == "out/2026-11-29"
    assert scheduler.book.runs("nightly")[0].pid == 90_001
    assert scheduler.tick() == []  # the same slot is never started twice
    launcher.end(0, 0, "job-20261129-020000-abcdef succeeded\n")
    (done,) = scheduler.finished()
    assert (done.id, done.status, done.job_id) == (run.id, "succeeded", "job-20261129-020000-abcdef")


def test_tick_skips_while_the_previous_run_is_in_progress(tmp_path, clock):
    launcher = FakeLauncher()
    messages: list[str] = []
    scheduler = Scheduler(tmp_path, clock=clock, launcher=launcher, report=messages.append)
    scheduler.book.add("m", "* * * * *", ["models", "list"])
    clock.advance(minutes=1)
    assert len(scheduler.tick()) == 1  # owned by this (live) process until it ends
    clock.advance(minutes=1)
    assert scheduler.tick() == []
    assert len(launcher.launched) == 1
    assert any("skipped" in m for m in messages)
    launcher.end(0, 0)
    clock.advance(minutes=1)
    assert len(scheduler.tick()) == 1


def test_a_command_that_cannot_start_is_recorded_as_failed(tmp_path, clock):
    scheduler = Scheduler(tmp_path, clock=clock, launcher=FakeLauncher(fail=True))
    scheduler.book.add("m", "* * * * *", ["models", "list"])
    clock.advance(minutes=1)
    assert scheduler.tick() == []
    (run,) = scheduler.book.runs("m")
    assert (run.status, run.exit_code) == ("failed", EXIT_NOT_STARTED)
    assert "could not start" in run.output_tail


def test_serve_ticks_until_stopped_then_drains(tmp_path, clock):
    launcher = FakeLauncher()
    scheduler = Scheduler(tmp_path, clock=clock, launcher=launcher, poll_seconds=0.01)
    scheduler.book.add("m", "* * * * *", ["models", "list"])
    clock.advance(minutes=1)
    stop = threading.Event()
    thread = threading.Thread(target=scheduler.serve, args=(stop,))
    thread.start()
    stop.wait(0.2)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert len(launcher.launched) == 1


def test_expand_replaces_only_the_two_tokens():
    slot = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
    assert expand(["out/{date}", "{datetime}.parquet", '{"a": 1}', "{x}"], slot) == [
        "out/2026-11-29",
        "20261129T0200Z.parquet",
        '{"a": 1}',
        "{x}",
    ]


# --- the file ---------------------------------------------------------------------------


def test_the_book_uses_write_ahead_logging_and_a_versioned_schema(book):
    import sqlite3

    from foretell.batch.schedules import SCHEMA_VERSION

    with sqlite3.connect(book.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_schedules_db_from_before_the_schema_was_versioned_keeps_its_schedules(tmp_path, clock):
    import sqlite3

    from foretell.batch.schedules import _SCHEMA

    conn = sqlite3.connect(tmp_path / "schedules.db")  # as foretell wrote it: the same tables, user_version 0
    for statement in _SCHEMA:
        conn.execute(statement)
    conn.execute(
        "INSERT INTO schedules (name, cron, argv, created_at) VALUES ('old', '0 2 * * *', '[\"models\", \"list\"]', ?)",
        (START.isoformat(),),
    )
    conn.commit()
    conn.close()
    assert ScheduleBook(tmp_path, clock=clock).get("old").argv == ("models", "list")


def test_a_damaged_schedules_db_is_a_foretell_error_naming_the_file(tmp_path):
    from foretell.errors import ScheduleBookError

    (tmp_path / "schedules.db").write_bytes(b"not a database, " * 64)
    with pytest.raises(ScheduleBookError, match=r"schedules\.db"):
        ScheduleBook(tmp_path)
