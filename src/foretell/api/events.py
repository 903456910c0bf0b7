"""Events from a Redis stream, outside a server: `foretell events consume` and `foretell events stats`."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foretell.api.environment import home_folder
from foretell.api.serving import _served

if TYPE_CHECKING:
    from foretell.hybrid.stream import StreamConsumer, StreamProgress


def consume_events(
    url: str,
    uris: Sequence[str] = (),
    *,
    group: str | None = None,
    consumer: str | None = None,
    home: Path | str | None = None,
    until_idle: bool = False,
    count: int = 500,
    on_progress: Callable[[StreamConsumer], None] | None = None,
    progress_seconds: float = 5.0,
    tracing: bool = False,
) -> StreamProgress:
    """Apply the events of the stream at `url` (`redis://HOST:6379/0?stream=NAME`) until SIGTERM or Ctrl-C.

    Events are applied as `POST /v1/events` applies them, by the models `uris` (default:
    every model with a `production` alias), and their refreshes recorded in the ledger.
    With `until_idle`, returns once a read finds nothing new. `on_progress` is called every
    `progress_seconds` (and at the end). With `tracing`, each read is a span (`events read`) with the
    entity reads and writes and the refreshes under it, exported as the `OTEL_*` variables say.
    """
    from foretell.hybrid.stream import StreamConsumer
    from foretell.server.assembly import build_services
    from foretell.store.redis_stream import parse_stream_url
    from foretell.tracing import flush as flush_spans

    address = parse_stream_url(url, group=group, consumer=consumer)
    home_path = home_folder(home)
    config = _served(None, uris, {"tracing": tracing or None}, home)
    inference, hybrid = build_services(home_path, config)
    events = StreamConsumer(hybrid, address, count=count, max_event_bytes=config.max_body_bytes)

    async def main() -> StreamProgress:
        await events.open()  # Redis down or a bad URL fails here, before the models load
        await inference.start()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, events.stop)
        reporter = None
        if on_progress is not None:
            reporter = asyncio.create_task(_report(events, on_progress, progress_seconds))
        try:
            return await events.run(until_idle=until_idle)
        finally:
            if reporter is not None:
                reporter.cancel()
            await events.close()
            await inference.stop(drain=True)
            hybrid.close()
            flush_spans()
            if on_progress is not None:
                on_progress(events)

    return asyncio.run(main())


def events_stats(url: str, *, group: str | None = None) -> dict[str, Any]:
    """The group's lag and pending entries, and the lengths of the stream and its dead letters."""
    from foretell.store.redis_stream import StreamReader, parse_stream_url

    address = parse_stream_url(url, group=group)
    reader = StreamReader(address)
    try:
        lag = reader.lag()
    finally:
        reader.close()
    return {"stream": address.stream, "group": address.group, "dead_letters": address.dead, **lag.to_dict()}


async def _report(events: StreamConsumer, on_progress: Callable[[StreamConsumer], None], every: float) -> None:
    while True:
        await asyncio.sleep(every)
        on_progress(events)
