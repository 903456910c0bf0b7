"""`foretell events ...`: events about entities from a Redis stream (hybrid serving)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from foretell import api
from foretell.cli.output import err, out, print_json
from foretell.config import lines_on_stderr

if TYPE_CHECKING:
    from foretell.hybrid.stream import StreamConsumer

app = typer.Typer(help="Events from a Redis stream, applied as POST /v1/events applies them.", no_args_is_help=True)

FromOption = Annotated[
    str,
    typer.Option(
        "--from", help="The stream: redis://HOST:6379/0?stream=NAME (also &group=, &consumer=, &dead=NAME:dead)."
    ),
]
GroupOption = Annotated[str | None, typer.Option(help="Consumer group (default: the URL's, else foretell).")]


@app.command(
    "consume",
    epilog=(
        "Examples:\n\n"
        "  foretell events consume --from 'redis://localhost:6379/0?stream=ratings'\n\n"
        "  foretell events consume --from 'redis://localhost:6379/0?stream=ratings' --group recs --consumer host-a\n\n"
        "  foretell events consume --from 'redis://localhost:6379/0?stream=ratings' --until-idle --json  # drain\n\n"
        "  redis-cli XADD ratings '*' event "
        '\'{"type": "rating", "user_id": 17, "movie_id": 3301, "rating": 5}\''
    ),
)
def consume(
    source: FromOption,
    uris: Annotated[
        list[str] | None, typer.Argument(help="Models to refresh (default: every model with @production).")
    ] = None,
    group: GroupOption = None,
    consumer: Annotated[
        str | None,
        typer.Option(help="This consumer's name, the same after a restart (default: the URL's, else the host name)."),
    ] = None,
    until_idle: Annotated[bool, typer.Option("--until-idle", help="Exit once a read finds nothing new.")] = False,
    count: Annotated[int, typer.Option(min=1, help="Entries read at once (one refresh per key per read).")] = 500,
    progress_seconds: Annotated[float, typer.Option(min=0.1, help="Seconds between progress lines.")] = 5.0,
    tracing: Annotated[
        bool, typer.Option("--tracing", help="OpenTelemetry spans per read, as OTEL_* says (needs foretell[otel]).")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="At the end, print what was done as JSON (with --until-idle, for scripts).")
    ] = False,
) -> None:
    """Apply a stream's events (validation, entity write, prediction refresh) until Ctrl-C or SIGTERM."""
    err.print(f"consuming {source} (Ctrl-C to stop)", highlight=False, markup=False)
    lines_on_stderr("foretell.events")  # standing by for another consumer, dead letters, Redis gone

    def progress(events: StreamConsumer) -> None:
        done = events.progress
        lag = events.last_lag
        behind = "" if lag is None else f", lag {lag.lag if lag.lag is not None else '?'}, pending {lag.pending}"
        err.print(
            f"events: {done.applied:,} applied, {done.duplicate:,} duplicate, {done.dead:,} dead-lettered, "
            f"{done.refreshes:,} refreshes{behind}",
            highlight=False,
            markup=False,
        )

    done = api.consume_events(
        source,
        uris or (),
        group=group,
        consumer=consumer,
        until_idle=until_idle,
        count=count,
        on_progress=progress,
        progress_seconds=progress_seconds,
        tracing=tracing,
    )
    if as_json:
        print_json(done.to_dict())


@app.command(
    "stats",
    epilog=(
        "Examples:\n\n"
        "  foretell events stats --from 'redis://localhost:6379/0?stream=ratings'\n\n"
        "  foretell events stats --from 'redis://localhost:6379/0?stream=ratings' --group recs --json"
    ),
)
def stats(
    source: FromOption,
    group: GroupOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """How far a consumer group is behind: lag, pending, and the stream's and dead letters' lengths."""
    figures = api.events_stats(source, group=group)
    if as_json:
        print_json(figures)
        return
    lag = "unknown" if figures["lag"] is None else f"{figures['lag']:,}"
    out.print(
        f"stream {figures['stream']}: {figures['length']:,} entries; group {figures['group']}: lag {lag}, "
        f"pending {figures['pending']:,}, {figures['consumers']} consumer(s); "
        f"{figures['dead']:,} dead letters in {figures['dead_letters']}",
        highlight=False,
        markup=False,
    )
