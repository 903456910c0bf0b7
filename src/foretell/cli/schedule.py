"""`foretell schedule ...` and `foretell scheduler`: run foretell commands on a cron schedule."""

from __future__ import annotations

import shlex
import signal
import threading
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from foretell import api
from foretell.cli.output import err, out, print_json
from foretell.errors import InvalidSchedule

if TYPE_CHECKING:
    from foretell.batch.schedules import Run, ScheduleBook

app = typer.Typer(
    help="Run foretell commands on a cron schedule (UTC); `foretell scheduler` runs them.", no_args_is_help=True
)

ADD_EPILOG = (
    "Everything after -- is the foretell command to run; {date} and {datetime} in it become the slot's "
    "UTC date (2026-11-29) and time (20261129T0200Z).\n\n"
    "Examples:\n\n"
    '  foretell schedule add nightly --cron "0 2 * * *" -- batch run churn@production '
    "--input customers.parquet --output scores/{date}\n\n"
    '  foretell schedule add hourly-check --cron "@hourly" --replace -- models list --json'
)
SCHEDULER_EPILOG = (
    "Runs each due schedule as its own `foretell ...` process and records it in `foretell schedule runs`. "
    "A schedule never runs twice at once, even with several schedulers; slots missed while no scheduler "
    "was running fire once, not once each. Ctrl-C or SIGTERM: start nothing new and wait for the runs in "
    "progress; a second signal asks them to stop.\n\n"
    "Examples:\n\n"
    "  FORETELL_HOME=/srv/foretell foretell scheduler\n\n"
    "  foretell scheduler --once"
)

#: `scheduler --once` exits with this when a run it started failed, so cron or CI notices.
EXIT_RUN_FAILED = 1


def _book() -> ScheduleBook:
    return api.schedule_book()


# Only extra *arguments* are allowed, not unknown options: without `--`, an option meant for
# the scheduled command (`--json`) would otherwise be taken by `schedule add` itself, silently.
@app.command("add", epilog=ADD_EPILOG, context_settings={"allow_extra_args": True})
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Schedule name: letters, digits, '_', '.', '-'.")],
    cron: Annotated[str, typer.Option("--cron", help="Five-field cron expression in UTC, or @daily, @hourly, ...")],
    replace: Annotated[bool, typer.Option("--replace", help="Overwrite a schedule of the same name.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the schedule as JSON.")] = False,
) -> None:
    """Schedule a foretell command (everything after --) to run at CRON."""
    argv = list(ctx.args)
    _check_command(ctx, argv)
    schedule = _book().add(name, cron, argv, replace=replace)
    if as_json:
        from foretell.batch.schedules import described

        print_json(described(schedule, None))
        return
    out.print(
        f"scheduled {schedule.name} ({schedule.cron}): foretell {shlex.join(schedule.argv)}; "
        f"next run {_when(schedule.next_fire())}",
        highlight=False,
        markup=False,
    )


def _check_command(ctx: typer.Context, argv: list[str]) -> None:
    """Refuse a misspelt command now rather than at 02:00; the book checks the rest."""
    root = ctx.find_root().command
    if not argv or not isinstance(root, TyperGroup):
        return
    first = argv[0]
    commands = [c for c in root.list_commands(ctx) if c not in ("schedule", "scheduler")]
    if first in commands or first in ("foretell", "schedule", "scheduler") or first.startswith("-"):
        return
    raise InvalidSchedule(f"unknown foretell command {first!r}; a schedule can run one of: {', '.join(commands)}")


@app.command("list", epilog="Examples:\n\n  foretell schedule list\n\n  foretell schedule list --json")
def list_(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Schedules with their command, next run and how the last run ended."""
    book = _book()
    if as_json:
        print_json(book.described())
        return
    schedules = [(s, next(iter(book.runs(s.name, limit=1)), None)) for s in book.list()]
    table = Table("name", "cron (UTC)", "command", "next run", "last run", title="schedules")
    for s, last in schedules:
        due = " (due)" if s.next_fire() <= datetime.now(UTC) else ""
        command = escape(shlex.join(["foretell", *s.argv]))
        table.add_row(s.name, s.cron, command, _when(s.next_fire()) + due, escape(_last(last)))
    out.print(table)


@app.command("remove", epilog="Example: foretell schedule remove nightly")
def remove(
    name: Annotated[str, typer.Argument(help="Schedule name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Delete a schedule and its run history; a run in progress finishes on its own."""
    _book().remove(name)
    if as_json:
        print_json({"removed": name})
        return
    out.print(f"removed schedule {name}", highlight=False)


@app.command("runs", epilog="Examples:\n\n  foretell schedule runs nightly\n\n  foretell schedule runs nightly --json")
def runs(
    name: Annotated[str, typer.Argument(help="Schedule name.")],
    limit: Annotated[int, typer.Option(min=1, help="How many runs, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, with each run's output tail.")] = False,
) -> None:
    """A schedule's recent runs: slot, status, exit code, batch job id and the last line of output."""
    history = _book().runs(name, limit=limit)
    if as_json:
        print_json([r.to_dict() for r in history])
        return
    table = Table("run", "slot", "status", "exit", "started", "finished", "job", "last output", title=f"runs of {name}")
    for r in history:
        lines = r.output_tail.strip().splitlines()
        table.add_row(
            str(r.id),
            _when(r.fire_time),
            r.status,
            "-" if r.exit_code is None else str(r.exit_code),
            _when(r.started_at),
            _when(r.finished_at) if r.finished_at else "-",
            r.job_id or "-",
            escape(lines[-1]) if lines else "",
        )
    out.print(table)


def scheduler(
    poll: Annotated[
        float, typer.Option("--poll", min=0.1, help="Seconds between looks for new or changed schedules.")
    ] = 10.0,
    once: Annotated[
        bool, typer.Option("--once", help="Start the due schedules, wait for them, exit (1 if one failed).")
    ] = False,
) -> None:
    """Run due schedules until stopped: each as its own process, never two copies of one schedule."""
    engine = api.scheduler(poll_seconds=poll, report=_report)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            _report("asking the runs in progress to stop")
            engine.terminate()
            return
        stop.set()
        _report("stopping: no new runs; waiting for the runs in progress (signal again to stop them)")

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        if once:
            engine.tick()
            # Short waits, so a signal handler gets to run while the runs are in progress.
            while not engine.drain(timeout=0.5):
                pass
        else:
            _report(f"scheduler started for {engine.book.path.parent} (poll {poll:g} s); Ctrl-C to stop")
            engine.serve(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if once and any(r.status != "succeeded" for r in engine.finished()):
        raise typer.Exit(EXIT_RUN_FAILED)


def _report(message: str) -> None:
    err.print(f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} {message}", highlight=False, markup=False)


def _last(run: Run | None) -> str:
    if run is None:
        return "-"
    code = f", exit {run.exit_code}" if run.exit_code is not None else ""
    return f"{run.status}{code} ({_when(run.fire_time)})"


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
