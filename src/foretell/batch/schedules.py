"""Schedules: a foretell command, a cron expression, and the history of its runs, in SQLite.

Two rules keep a schedule from running twice. A run is claimed inside `BEGIN IMMEDIATE`,
so of two schedulers (or two ticks) racing for the same fire time exactly one wins. And a
claim is refused while an earlier run of the schedule is still in progress, judged by
whether its processes are alive rather than by its status alone, so a scheduler killed
mid-run never blocks its schedule forever.

Fire times are computed in UTC. A schedule fires once for the latest slot that passed, not
once per slot missed while no scheduler was running (as cron and Kubernetes do when they
catch up), because a batch scoring run for an old slot would score today's data anyway.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import shlex
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from croniter import croniter  # type: ignore[import-untyped]  # croniter ships no type information

from foretell.database import Database
from foretell.errors import InvalidSchedule, ScheduleBookError, ScheduleExists, ScheduleNotFound

__all__ = [
    "Clock",
    "Due",
    "Run",
    "Schedule",
    "ScheduleBook",
    "described",
    "pid_alive",
    "utc_now",
]

Clock = Callable[[], datetime]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
#: The nicknames cron, Kubernetes and Airflow all understand (`@reboot` has no fire time).
_NICKNAMES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
#: Commands a schedule may not run: a scheduler that schedules schedulers has no useful meaning.
_REFUSED_COMMANDS = ("schedule", "scheduler")
_JOB_ID = re.compile(r"job-\d{8}-\d{6}-[0-9a-f]{6}")

SCHEMA_VERSION = 1
# IF NOT EXISTS: a schedules.db from before the schema was versioned (user_version 0)
# already holds these, and is brought to version 1 as it is.
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS schedules (
    name TEXT PRIMARY KEY,
    cron TEXT NOT NULL,
    argv TEXT NOT NULL,
    created_at TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule TEXT NOT NULL,
    fire_time TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    owner_pid INTEGER NOT NULL,
    pid INTEGER,
    exit_code INTEGER,
    job_id TEXT,
    output_tail TEXT NOT NULL DEFAULT ''
)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS runs_one_per_slot ON runs (schedule, fire_time)",
)
#: running → succeeded | failed (exit code known) or abandoned (its processes died unrecorded);
#: skipped: the slot came while an earlier run was still in progress, so it was not started.
STATUSES = ("running", "succeeded", "failed", "abandoned", "skipped")


def utc_now() -> datetime:
    return datetime.now(UTC)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (POSIX: signal 0 checks without delivering anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it just belongs to another user
    return True


@dataclass(frozen=True)
class Schedule:
    name: str
    cron: str
    argv: tuple[str, ...]
    created_at: datetime
    #: The slot of the latest run in any status; fire times are counted from here.
    last_fire: datetime | None

    def next_fire(self) -> datetime:
        """The first slot after the last run (or after creation): the time this schedule is next due."""
        anchor = max(self.created_at, self.last_fire) if self.last_fire else self.created_at
        fire: datetime = croniter(self.cron, anchor).get_next(datetime)
        return fire

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "cron": self.cron,
            "argv": list(self.argv),
            "created_at": _iso(self.created_at),
            "last_fire": _iso(self.last_fire) if self.last_fire else None,
            "next_fire": _iso(self.next_fire()),
        }


@dataclass(frozen=True)
class Due:
    schedule: Schedule
    #: The latest slot at or before now; older missed slots are folded into this one.
    fire_time: datetime


@dataclass(frozen=True)
class Run:
    id: int
    schedule: str
    fire_time: datetime
    status: str
    started_at: datetime
    finished_at: datetime | None
    pid: int | None
    exit_code: int | None
    job_id: str | None
    output_tail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "schedule": self.schedule,
            "fire_time": _iso(self.fire_time),
            "status": self.status,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at) if self.finished_at else None,
            "pid": self.pid,
            "exit_code": self.exit_code,
            "job_id": self.job_id,
            "output_tail": self.output_tail,
        }


class ScheduleBook:
    """The schedules under `home/schedules.db` and their runs; safe to share between processes."""

    def __init__(self, home: Path, *, clock: Clock = utc_now, is_alive: Callable[[int], bool] = pid_alive) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.path = home / "schedules.db"
        self._clock = clock
        self._is_alive = is_alive
        self._db = Database(
            self.path,
            what="schedule book",
            error=ScheduleBookError,
            schema=_SCHEMA,
            version=SCHEMA_VERSION,
            rows_as_mappings=True,
        )
        self._db.create_schema()

    def _now(self) -> datetime:
        return _utc(self._clock())

    def add(self, name: str, cron: str, argv: Sequence[str], *, replace: bool = False) -> Schedule:
        """Schedule `foretell ARGV` at `cron` (UTC); its first run is at the first slot after now."""
        _check_name(name)
        cron = _check_cron(cron)
        argv = _check_argv(argv)
        with self._db.write() as conn:
            try:
                conn.execute(_REPLACE if replace else _INSERT, (name, cron, json.dumps(argv), _iso(self._now())))
            except sqlite3.IntegrityError:
                raise ScheduleExists(
                    f"schedule {name!r} already exists; remove it first or add it again with --replace"
                ) from None
            # A (re-)added schedule starts afresh, but a run still in progress stays on record
            # until it ends, so the new schedule cannot start a second copy beside it.
            conn.execute("DELETE FROM runs WHERE schedule = ? AND status != 'running'", (name,))
        return self.get(name)

    def get(self, name: str) -> Schedule:
        with self._db.read() as conn:
            schedule = self._get(conn, name)
        if schedule is None:
            raise ScheduleNotFound(f"no schedule {name!r} in {self.path.parent}; `foretell schedule list` shows them")
        return schedule

    def list(self) -> list[Schedule]:
        with self._db.read() as conn:
            rows = conn.execute(f"{_SELECT_SCHEDULES} ORDER BY s.name").fetchall()
        return [_schedule(row) for row in rows]

    def remove(self, name: str) -> None:
        """Forget a schedule and its run history. A run in progress is left to finish on its own."""
        with self._db.write() as conn:
            if conn.execute("DELETE FROM schedules WHERE name = ?", (name,)).rowcount == 0:
                raise ScheduleNotFound(f"no schedule {name!r} in {self.path.parent}")
            conn.execute("DELETE FROM runs WHERE schedule = ? AND status != 'running'", (name,))

    def due(self, now: datetime | None = None) -> builtins.list[Due]:
        """The schedules whose next slot has come, each with the latest slot at or before `now`."""
        now = _utc(now) if now is not None else self._now()
        found = []
        for schedule in self.list():
            if schedule.next_fire() <= now:
                # get_prev is strict, so step just past `now` to count a slot that is exactly now.
                latest = croniter(schedule.cron, now + timedelta(microseconds=1)).get_prev(datetime)
                found.append(Due(schedule, latest))
        return found

    def claim(self, name: str, fire_time: datetime, *, owner_pid: int | None = None) -> Run | None:
        """Record the start of the run for `fire_time`, atomically.

        Returns None when that slot (or a later one) was already claimed. When an earlier run
        is still in progress, the slot is recorded as a `skipped` run and that is returned:
        the caller launches only a run whose status is `running`. An earlier run whose
        processes are all dead is marked `abandoned` first, so a crash blocks nothing.
        """
        fire = _iso(fire_time)
        now = _iso(self._now())
        with self._db.write() as conn:  # BEGIN IMMEDIATE: of two claims for one slot, one waits and sees the other
            if self._get(conn, name) is None:
                raise ScheduleNotFound(f"no schedule {name!r} in {self.path.parent}")
            last = conn.execute("SELECT max(fire_time) FROM runs WHERE schedule = ?", (name,)).fetchone()[0]
            if last is not None and last >= fire:
                return None
            status = "skipped" if self._settle_running(conn, name, now) else "running"
            cursor = conn.execute(
                "INSERT INTO runs (schedule, fire_time, status, started_at, owner_pid, output_tail) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (name, fire, status, now, owner_pid or os.getpid(), _SKIPPED if status == "skipped" else ""),
            )
        return self._run(int(cursor.lastrowid or 0))

    def _settle_running(self, conn: sqlite3.Connection, name: str, now: str) -> bool:
        """Whether a run of `name` is still in progress; marks the dead ones abandoned."""
        in_progress = False
        for row in conn.execute(
            "SELECT id, owner_pid, pid FROM runs WHERE schedule = ? AND status = 'running'", (name,)
        ).fetchall():
            # The owner (a scheduler) records the exit code; the pid is the command itself,
            # which outlives a scheduler killed with SIGKILL. Either alive means "not yet".
            if self._is_alive(row["owner_pid"]) or (row["pid"] is not None and self._is_alive(row["pid"])):
                in_progress = True
            else:
                conn.execute(
                    "UPDATE runs SET status = 'abandoned', finished_at = ?, output_tail = ? WHERE id = ?",
                    (now, _ABANDONED, row["id"]),
                )
        return in_progress

    def attach(self, run_id: int, pid: int) -> None:
        """Record the pid of the process a claimed run launched."""
        with self._db.write() as conn:
            conn.execute("UPDATE runs SET pid = ? WHERE id = ? AND status = 'running'", (pid, run_id))

    def finish(self, name: str, run_id: int, exit_code: int, output_tail: str) -> Run:
        """Record how a run ended; the batch job id in its output links it to `foretell batch show`."""
        job_ids = _JOB_ID.findall(output_tail)
        with self._db.write() as conn:
            updated = conn.execute(
                "UPDATE runs SET status = ?, exit_code = ?, finished_at = ?, output_tail = ?, job_id = ? "
                "WHERE id = ? AND schedule = ? AND status IN ('running', 'abandoned')",
                (
                    "succeeded" if exit_code == 0 else "failed",
                    exit_code,
                    _iso(self._now()),
                    output_tail,
                    job_ids[-1] if job_ids else None,
                    run_id,
                    name,
                ),
            ).rowcount
        if updated == 0:
            raise ScheduleNotFound(f"no run {run_id} of schedule {name!r} is waiting to finish")
        return self._run(run_id)

    def runs(self, name: str, limit: int = 20) -> builtins.list[Run]:
        """The latest runs of a schedule, newest first."""
        self.get(name)
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT * FROM runs WHERE schedule = ? ORDER BY fire_time DESC LIMIT ?", (name, limit)
            ).fetchall()
        return [_as_run(row) for row in rows]

    def described(self) -> builtins.list[dict[str, object]]:
        """Every schedule as `schedule list --json` prints it: with its command line and its last run."""
        return [described(s, next(iter(self.runs(s.name, limit=1)), None)) for s in self.list()]

    def _get(self, conn: sqlite3.Connection, name: str) -> Schedule | None:
        row = conn.execute(f"{_SELECT_SCHEDULES} WHERE s.name = ?", (name,)).fetchone()
        return _schedule(row) if row is not None else None

    def _run(self, run_id: int) -> Run:
        with self._db.read() as conn:
            return _as_run(conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone())


def described(schedule: Schedule, last: Run | None) -> dict[str, object]:
    """A schedule as its JSON shows it: its fields, its command line and its last run (None before the first)."""
    return {
        **schedule.to_dict(),
        "command": shlex.join(["foretell", *schedule.argv]),
        "last_run": last.to_dict() if last else None,
    }


_INSERT = "INSERT INTO schedules (name, cron, argv, created_at) VALUES (?, ?, ?, ?)"
_REPLACE = "INSERT OR REPLACE INTO schedules (name, cron, argv, created_at) VALUES (?, ?, ?, ?)"
_SELECT_SCHEDULES = (
    "SELECT s.*, (SELECT max(r.fire_time) FROM runs r WHERE r.schedule = s.name) AS last_fire FROM schedules s"
)
_SKIPPED = "not started: the previous run of this schedule was still in progress"
_ABANDONED = "its scheduler and command both exited without recording an exit code"


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise InvalidSchedule(
            f"schedule name {name!r} must start with a letter or digit and hold only letters, digits, '_', '.', '-'"
        )


def _check_cron(cron: str) -> str:
    cron = " ".join(cron.split())
    if cron.startswith("@"):
        if cron.lower() not in _NICKNAMES:
            raise InvalidSchedule(f"unknown cron nickname {cron!r}; use one of {', '.join(_NICKNAMES)}")
        return cron.lower()
    # Five fields only: seconds and years (which croniter accepts) would not mean the same
    # thing in crontab, Airflow or a Kubernetes CronJob running the same command.
    fields = len(cron.split())
    if fields != 5 or not croniter.is_valid(cron):
        why = f"it has {fields} fields, not 5" if fields != 5 else "a field is out of range or malformed"
        raise InvalidSchedule(
            f"invalid cron expression {cron!r}: {why}; write 'minute hour day-of-month month day-of-week', "
            "e.g. '0 2 * * *' for 02:00 UTC every day"
        )
    return cron


def _check_argv(argv: Sequence[str]) -> list[str]:
    argv = list(argv)
    if not argv:
        raise InvalidSchedule("a schedule needs a foretell command after --, e.g. -- batch run churn@production ...")
    first = argv[0]
    if first == "foretell" or first.endswith("/foretell") or first.startswith("-"):
        raise InvalidSchedule(
            f"the scheduled command must start with a foretell command such as 'batch', got {first!r}; "
            "leave out the program name and global options (write: -- batch run ...)"
        )
    if first in _REFUSED_COMMANDS:
        raise InvalidSchedule(f"a schedule cannot run `foretell {first}`")
    return argv


def _utc(moment: datetime) -> datetime:
    # A naive time would silently be read as local time, shifting every slot by the UTC offset.
    if moment.tzinfo is None:
        raise ValueError(f"schedule times must be timezone-aware, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    # One fixed format, so fire times compare correctly as text inside SQLite.
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _schedule(row: sqlite3.Row) -> Schedule:
    return Schedule(
        name=row["name"],
        cron=row["cron"],
        argv=tuple(json.loads(row["argv"])),
        created_at=datetime.fromisoformat(row["created_at"]),
        last_fire=datetime.fromisoformat(row["last_fire"]) if row["last_fire"] else None,
    )


def _as_run(row: sqlite3.Row) -> Run:
    return Run(
        id=row["id"],
        schedule=row["schedule"],
        fire_time=datetime.fromisoformat(row["fire_time"]),
        status=row["status"],
        started_at=datetime.fromisoformat(row["started_at"]),
        finished_at=datetime.fromisoformat(row["finished_at"]) if row["finished_at"] else None,
        pid=row["pid"],
        exit_code=row["exit_code"],
        job_id=row["job_id"],
        output_tail=row["output_tail"],
    )
