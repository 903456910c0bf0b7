"""Events from a Redis stream, applied as `POST /v1/events` applies them (docs/hybrid.md, "Events from a stream").

The consumer reads through a consumer group, so several consumers share a stream and each
entry goes to one of them. After a restart it first takes the entries it was given before
and never acknowledged (XREADGROUP from id 0), then new ones (`>`).

Each read is applied with `HybridService.apply_many`: the same parsing, validation, entity
write and refresh as the HTTP route, and one refresh per key for all the events about it in
the read: the read's events are written in one store call, in order, and its keys refreshed
in one inference and one write-back per model (`hybrid.batched`). An entry is acknowledged only
after its event is written and its key refreshed, so a crash at any point leaves it
pending, and it is applied again on restart. Applied again but only once: an event
without an `event_id` gets one made of the stream and the entry's id, and the entity store
skips an id it has seen (it still refreshes, which is harmless).

An event the route would answer 400 is a poison event: retrying cannot help, so it goes to
the dead-letter stream with its reason, and is acknowledged in the same transaction. Any
other failure (Redis or a store down, the model's queue full) leaves the read's unsettled
entries pending; the consumer waits and reads its pending entries again.

On one host, one process at a time consumes as a given consumer (`hybrid.stream_lock`):
the other `--workers` of a server stand by, so the events about a key keep their order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from prometheus_client import CollectorRegistry, Counter, Gauge

from foretell import tracing
from foretell.errors import InvalidInput, PredictionError, StoreError
from foretell.hybrid.events import Event, parse_event
from foretell.hybrid.service import HybridService
from foretell.hybrid.stream_lock import ConsumerLock
from foretell.serving.service import Call
from foretell.store.redis_stream import Entry, StreamAddress, StreamLag, StreamReader

__all__ = ["TRANSPORT", "StreamConsumer", "StreamProgress"]

TRANSPORT = "redis-stream"
"""The transport the ledger names for predictions an event from a stream refreshed."""

_RETRY_S = 1.0
MAX_ATTEMPTS = 5
"""Deliveries of an entry whose refresh the model fails (`PredictionError`) before it is dead-lettered. Other
failures (a store down, a full queue) are everyone's and are retried for as long as they last."""
_LAG_EVERY_S = 1.0
log = logging.getLogger("foretell.events")


@dataclass(slots=True)
class StreamProgress:
    """What a consumer has done since it started."""

    applied: int = 0
    duplicate: int = 0
    dead: int = 0
    refreshes: int = 0
    reads: int = 0
    failures: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "applied": self.applied,
            "duplicate": self.duplicate,
            "dead": self.dead,
            "refreshes": self.refreshes,
            "reads": self.reads,
            "failures": self.failures,
        }


class StreamConsumer:
    """Applies the events of one stream to a hybrid service until `stop()`; see the module docstring."""

    def __init__(
        self,
        hybrid: HybridService,
        address: StreamAddress,
        *,
        count: int = 500,
        block_ms: int = 200,
        registry: CollectorRegistry | None = None,
        reader_factory: Callable[[StreamAddress], StreamReader] = StreamReader,
        max_event_bytes: int = 64 * 2**20,
    ) -> None:
        self.hybrid = hybrid
        self.address = address
        self.count = count
        self.max_event_bytes = max_event_bytes
        """The largest event applied: POST /v1/events' body limit (the server's `max_body_bytes`)."""
        self.block_ms = block_ms
        self.progress = StreamProgress()
        self.last_lag: StreamLag | None = None
        self._reader_factory = reader_factory
        self._reader: StreamReader | None = None
        self._stopping = asyncio.Event()
        self._lag_at = 0.0
        self._lock = ConsumerLock(address)
        self._attempts: dict[str, int] = {}  # entry id -> refreshes the model failed, while it stays pending
        registry = registry if registry is not None else hybrid.inference.metrics.registry
        stream = address.stream
        self._events = Counter(
            "foretell_events_consumed",
            "Events read from a stream, by outcome (applied, duplicate: seen before by its id, dead: dead-lettered).",
            ["stream", "outcome"],
            registry=registry,
        ).labels
        self._refreshes = Counter(
            "foretell_events_refreshes", "Keys refreshed after a read's events.", ["stream"], registry=registry
        ).labels(stream)
        self._lag = Gauge(
            "foretell_events_lag", "Stream entries not yet delivered to the group.", ["stream"], registry=registry
        ).labels(stream)
        self._pending = Gauge(
            "foretell_events_pending", "Entries delivered to the group and not yet acknowledged.", ["stream"],
            registry=registry,
        ).labels(stream)  # fmt: skip
        self._dead = Gauge(
            "foretell_events_dead_letters", "Entries in the dead-letter stream.", ["stream"], registry=registry
        ).labels(stream)
        self._read_seconds = Gauge(
            "foretell_events_last_read_seconds", "How long the last read took to apply and acknowledge.", ["stream"],
            registry=registry,
        ).labels(stream)  # fmt: skip
        self._consuming = Gauge(
            "foretell_events_consuming",
            "1 while this process consumes the stream, 0 while it stands by for the one that does (stream_lock).",
            ["stream"],
            registry=registry,
        ).labels(stream)

    async def open(self) -> None:
        """Connect and create the group if missing (fails here, with a one-line `StoreError`, when Redis is down)."""
        self._reader = await asyncio.to_thread(self._reader_factory, self.address)
        await asyncio.to_thread(self._reader.ensure_group)

    def stop(self) -> None:
        """Finish the read in hand (apply, acknowledge), then return from `run`."""
        self._stopping.set()

    async def run(self, *, until_idle: bool = False) -> StreamProgress:
        """Consume until `stop()` (or, with `until_idle`, until a read finds nothing new)."""
        if self._reader is None:
            await self.open()
        if not await self._take_lock():
            return self.progress
        try:
            await self._consume_until_stopped(until_idle)
        finally:  # whatever ends it, another process may consume now
            self._lock.release()
            self._consuming.set(0)
        return self.progress

    async def _consume_until_stopped(self, until_idle: bool) -> None:
        pending = True  # first the entries this consumer was given before it (re)started
        while not self._stopping.is_set():
            try:
                entries = await self._read(pending)
                if not entries:
                    await self._observe_lag(force=until_idle)
                    if pending:
                        pending = False
                        continue
                    if until_idle:
                        break
                    continue
                await self.consume(entries)
                if pending:
                    continue  # until this consumer's pending entries are all settled
            except (StoreError, OSError, _Unsettled) as exc:
                self.progress.failures += 1
                log.warning("events: %s; reading pending entries again in %.0f s", exc, _RETRY_S)
                pending = True
                await self._pause()
            except Exception as exc:  # a bug: logged with its traceback, and the consumer goes on rather than die
                self.progress.failures += 1
                log.error("events: unexpected error; reading pending entries again in %.0f s", _RETRY_S, exc_info=exc)
                pending = True
                await self._pause()
            await self._observe_lag()

    async def consume(self, entries: list[Entry]) -> None:
        """Apply one read's entries, dead-letter the bad ones, and acknowledge what is settled."""
        started = time.perf_counter()
        assert self._reader is not None
        dead: list[tuple[Entry, str]] = []
        events: list[Event] = []
        readable: list[Entry] = []
        for entry in entries:
            if entry.event is None:
                dead.append((entry, "the entry has no 'event' field (XADD STREAM * event '{...}')"))
                continue
            if len(entry.event) > self.max_event_bytes:
                size, limit = len(entry.event), self.max_event_bytes
                dead.append((entry, f"the event is {size:,} bytes, over the limit of {limit:,} (max_body_bytes)"))
                continue
            try:
                event = parse_event(entry.event)
            except InvalidInput as exc:
                dead.append((entry, str(exc)))
                continue
            if event.event_id is None:  # a redelivered entry is then recognised by the entity store
                event = replace(event, event_id=f"{self.address.stream}:{entry.id}")
            events.append(event)
            readable.append(entry)

        def call_for() -> Call:
            return Call("events", transport=TRANSPORT)

        with tracing.maybe_span(
            "events read",
            **{"messaging.system": "redis", "messaging.destination.name": self.address.stream,
               "messaging.batch.message_count": len(entries)},
        ):  # fmt: skip
            outcomes = await self.hybrid.apply_many(events, call_for) if events else []
        done: list[str] = []
        unsettled: Exception | None = None
        refreshed: set[tuple[str, str]] = set()
        for entry, outcome in zip(readable, outcomes, strict=True):
            if isinstance(outcome, InvalidInput):
                dead.append((entry, str(outcome)))
            elif isinstance(outcome, PredictionError) and self._failed_again(entry.id) >= MAX_ATTEMPTS:
                # The model fails on this key's features every time: retrying would hold the stream up for ever.
                dead.append((entry, f"its refresh failed {MAX_ATTEMPTS} times in a row: {outcome}"))
            elif isinstance(outcome, Exception):
                unsettled = unsettled or outcome
            else:
                done.append(entry.id)
                kind = "applied" if outcome["applied"] else "duplicate"
                setattr(self.progress, kind, getattr(self.progress, kind) + 1)
                self._events(self.address.stream, kind).inc()
                refreshed.add((outcome["entity"], outcome["key"]))
        if self._attempts:  # an entry that failed before and is settled now is counted no more
            for entry_id in done:
                self._attempts.pop(entry_id, None)
        order = {entry.id: index for index, entry in enumerate(entries)}
        dead.sort(key=lambda letter: order[letter[0].id])  # dead letters in the stream's order
        await asyncio.to_thread(self._reader.settle, done, dead)
        self.progress.reads += 1
        self.progress.dead += len(dead)
        self.progress.refreshes += len(refreshed)
        self._refreshes.inc(len(refreshed))
        if dead:
            self._events(self.address.stream, "dead").inc(len(dead))
            for entry, reason in dead:
                log.warning("events: entry %s dead-lettered to %s: %s", entry.id, self.address.dead, reason)
        self._read_seconds.set(time.perf_counter() - started)
        if unsettled is not None:
            raise _Unsettled(f"{len(readable) - len(done) - len(dead)} event(s) not applied: {unsettled}")

    def _failed_again(self, entry_id: str) -> int:
        attempts = self._attempts[entry_id] = self._attempts.get(entry_id, 0) + 1
        if attempts >= MAX_ATTEMPTS:
            del self._attempts[entry_id]
        return attempts

    async def lag(self) -> StreamLag:
        assert self._reader is not None
        return await asyncio.to_thread(self._reader.lag)

    async def close(self) -> None:
        if self._reader is not None:
            await asyncio.to_thread(self._reader.close)
            self._reader = None
        self._lock.release()
        self._consuming.set(0)

    async def _take_lock(self) -> bool:
        """Wait until this process is the one consuming as this consumer on this host; False if stopped first."""
        announced = False
        while not self._lock.try_take():
            if not announced:
                log.info(
                    "events: another process on this host consumes %s as consumer %r of group %r; standing by",
                    self.address.stream,
                    self.address.consumer,
                    self.address.group,
                )
                announced = True
            await self._pause()
            if self._stopping.is_set():
                return False
        if announced:
            log.info("events: the other consumer stopped; this process consumes %s now", self.address.stream)
        self._consuming.set(1)
        return True

    async def _read(self, pending: bool) -> list[Entry]:
        assert self._reader is not None
        return await asyncio.to_thread(self._reader.read, self.count, self.block_ms, pending=pending)

    async def _observe_lag(self, *, force: bool = False) -> None:
        """Refresh the lag gauges, at most once a second (a pipeline of three small commands)."""
        if not force and time.monotonic() - self._lag_at < _LAG_EVERY_S:
            return
        self._lag_at = time.monotonic()
        try:
            lag = await self.lag()
        except StoreError as exc:
            log.warning("events: cannot read the stream's lag: %s", exc)
            return
        self.last_lag = lag
        if lag.lag is not None:
            self._lag.set(lag.lag)
        self._pending.set(lag.pending)
        self._dead.set(lag.dead)

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), _RETRY_S)


class _Unsettled(Exception):
    """Some events of a read failed for a reason other than their content: they stay pending, to be read again."""
