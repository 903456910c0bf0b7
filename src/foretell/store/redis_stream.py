"""A Redis stream of events, read through a consumer group: what `hybrid.stream` consumes.

The URL is a store URL with the stream named in its query:
`redis://HOST:6379/0?stream=ratings[&group=G][&consumer=C][&dead=ratings:dead]`. The
stream's own parameters are taken out before redis-py reads the rest (it refuses ones it
does not know), and the connection is opened as the Redis stores open theirs
(`redis_connection`: pool, timeouts, errors as `StoreError` naming the server without its
password, the `redis` extra named when the package is missing).

An entry carries one event as the JSON body `POST /v1/events` takes, in the field `event`:
`XADD ratings * event '{"type": "rating", "user_id": 17, "movie_id": 3301, "rating": 5}'`.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from foretell.errors import InvalidInput
from foretell.store.redis_connection import RedisConnection, redacted

__all__ = ["EVENT_FIELD", "Entry", "StreamAddress", "StreamLag", "StreamReader", "parse_stream_url"]

EVENT_FIELD = b"event"
DEFAULT_GROUP = "foretell"


@dataclass(frozen=True, slots=True)
class StreamAddress:
    """Where the events are: the server (a plain Redis URL), the stream, its group, this consumer, the dead letters."""

    server: str
    stream: str
    group: str
    consumer: str
    dead: str

    def __str__(self) -> str:
        return f"{redacted(self.server)} stream {self.stream!r} (group {self.group!r})"


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry: its id, and its `event` field (None when the entry has none, or was deleted)."""

    id: str
    event: bytes | None


@dataclass(frozen=True, slots=True)
class StreamLag:
    """How far the group is behind: entries not yet delivered (`lag`, None when Redis cannot say) and delivered but
    not acknowledged (`pending`); and the stream's length and the dead letters'."""

    length: int
    lag: int | None
    pending: int
    dead: int
    consumers: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "length": self.length,
            "lag": self.lag,
            "pending": self.pending,
            "dead": self.dead,
            "consumers": self.consumers,
        }


def parse_stream_url(url: str, *, group: str | None = None, consumer: str | None = None) -> StreamAddress:
    """The stream a `redis://...?stream=NAME` URL names; `group`/`consumer` override the URL's."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise InvalidInput(f"--from must be a redis:// URL with ?stream=NAME, got {redacted(url)!r}")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    stream = query.pop("stream", "")
    if not stream:
        raise InvalidInput(
            f"{redacted(url)} names no stream: add ?stream=NAME (e.g. redis://localhost:6379/0?stream=events)"
        )
    chosen_group = group or query.pop("group", "") or DEFAULT_GROUP
    chosen_consumer = consumer or query.pop("consumer", "") or default_consumer()
    query.pop("group", None)
    query.pop("consumer", None)
    dead = query.pop("dead", "") or f"{stream}:dead"
    server = urlunsplit(parts._replace(query=urlencode(query)))
    return StreamAddress(server, stream, chosen_group, chosen_consumer, dead)


class StreamReader:
    """XREADGROUP, XACK and dead letters for one consumer of one group (sync: callers run it in a thread)."""

    def __init__(self, address: StreamAddress) -> None:
        self.address = address
        self.connection = RedisConnection(address.server, f"event stream {address.stream!r}")
        self.connection.ping()
        self.client = self.connection.client

    def ensure_group(self) -> None:
        """Create the group (and the stream, MKSTREAM) reading from the start when missing; keep it when present."""
        errors = self.connection.module.exceptions
        with self.connection.talking():
            try:
                self.client.xgroup_create(self.address.stream, self.address.group, id="0", mkstream=True)
            except errors.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def read(self, count: int, block_ms: int | None, *, pending: bool) -> list[Entry]:
        """Up to `count` entries: this consumer's delivered-but-unacknowledged ones (`pending`), else new ones,
        waiting up to `block_ms` for them."""
        with self.connection.talking():
            answer = self.client.xreadgroup(
                self.address.group,
                self.address.consumer,
                {self.address.stream: "0" if pending else ">"},
                count=count,
                block=None if pending else block_ms,
            )
        entries: list[Entry] = []
        streams: list[Any] = list(answer or [])  # RESP2: [[stream, [(id, {field: value}), ...]]]
        for _stream, items in streams:
            for entry_id, fields in items:
                event = None if not fields else fields.get(EVENT_FIELD)
                entries.append(Entry(_text(entry_id), event))
        return entries

    def settle(self, done: list[str], dead: list[tuple[Entry, str]]) -> None:
        """Acknowledge `done` and `dead`, writing each dead one to the dead-letter stream with its reason first:
        one MULTI/EXEC, so a crash never leaves a dead letter unacknowledged, nor acknowledged without its letter."""
        if not done and not dead:
            return
        with self.connection.talking():
            pipe = self.client.pipeline(transaction=True)
            for entry, reason in dead:
                letter = {
                    "event": entry.event if entry.event is not None else b"",
                    "reason": reason,
                    "stream": self.address.stream,
                    "entry_id": entry.id,
                    "group": self.address.group,
                    "consumer": self.address.consumer,
                }
                pipe.xadd(self.address.dead, letter)  # type: ignore[arg-type]
            pipe.xack(self.address.stream, self.address.group, *done, *(entry.id for entry, _ in dead))
            pipe.execute()

    def lag(self) -> StreamLag:
        """The group's lag and pending count (XINFO GROUPS), and the lengths of the stream and its dead letters."""
        with self.connection.talking():
            pipe = self.client.pipeline(transaction=False)
            pipe.xlen(self.address.stream)
            pipe.xlen(self.address.dead)
            pipe.xinfo_groups(self.address.stream)
            length, dead, groups = pipe.execute()
        group = next((g for g in groups if _text(g.get("name")) == self.address.group), None)
        if group is None:
            return StreamLag(int(length), int(length), 0, int(dead), 0)
        lag = group.get("lag")
        return StreamLag(int(length), None if lag is None else int(lag), int(group.get("pending", 0)), int(dead),
                         int(group.get("consumers", 0)))  # fmt: skip

    def close(self) -> None:
        self.client.close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def default_consumer() -> str:
    """This host's name: a consumer restarted on the same host finds the entries it was given before it stopped."""
    return socket.gethostname() or f"consumer-{os.getpid()}"
