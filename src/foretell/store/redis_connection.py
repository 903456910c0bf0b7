"""What the Redis backends share: the client, its failures as `StoreError`s, and Lua they both run.

The prediction store (`store/redis.py`) and the entity store (`store/entities_redis.py`)
open a server the same way, fail the same way, and name the server the same way in
their messages (without its password); each says which store it is.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from foretell.errors import MissingExtra, StoreError, StoreUnavailable

if TYPE_CHECKING:
    from types import ModuleType

    import redis

__all__ = ["HMGET_SLICES", "RedisConnection", "hset_commands", "redacted"]

MAX_CONNECTIONS = 128
"""Connections one store opens at most: a thread holds one for the length of a call."""

POOL_WAIT_SECONDS = 10
"""How long a thread waits for a connection when all `MAX_CONNECTIONS` are busy, before the call fails."""

# A Lua function for a script whose ARGV[2..] are the keys to read: `fetch(hash)`, each
# key's value in the hash or false, in order. HMGET goes in slices because Lua's unpack
# stops at about 8,000 values.
HMGET_SLICES = """
local function fetch(hash)
  local out, last = {}, #ARGV
  for i = 2, last, 4000 do
    local got = redis.call('HMGET', hash, unpack(ARGV, i, math.min(i + 3999, last)))
    for j = 1, #got do out[#out + 1] = got[j] end
  end
  return out
end
"""


class RedisConnection:
    """A redis-py client for the `what` (e.g. "prediction store") at `url`, checked by a PING."""

    def __init__(self, url: str, what: str) -> None:
        self.what = what
        self.where = redacted(url)
        self.module = _import_redis(what)
        try:
            # One pool per store: a thread takes a connection for a call (or a pipeline) and
            # gives it back, so the server's worker threads share a few sockets and never one
            # at a time. A host that drops packets should fail in seconds, not hang a batch
            # job; the URL can still say otherwise (`?socket_connect_timeout=`,
            # `?max_connections=`).
            pool = self.module.BlockingConnectionPool.from_url(
                url, socket_connect_timeout=10, max_connections=MAX_CONNECTIONS, timeout=POOL_WAIT_SECONDS
            )
            self.client: redis.Redis = self.module.Redis(connection_pool=pool)
        except ValueError as exc:
            raise StoreError(f"{self.where} is not a Redis URL: {exc}") from None

    def ping(self) -> None:
        """Fail at opening, as the SQLite stores do, rather than at the first request."""
        with self.talking():
            self.client.ping()

    @contextmanager
    def talking(self) -> Iterator[None]:
        """Redis's errors as the store's, naming the server; not its traceback, which says nothing more."""
        errors = self.module.exceptions
        try:
            yield
        except (errors.ConnectionError, errors.TimeoutError) as exc:
            raise StoreUnavailable(f"cannot reach the Redis {self.what} at {self.where}: {exc}") from None
        except errors.RedisError as exc:
            raise StoreError(f"the Redis {self.what} at {self.where} refused: {exc}") from None

    def send_packed(self, commands: Iterator[list[pa.Buffer | bytes]], window_bytes: int) -> None:
        """Send commands already in Redis's wire format, reading the replies every `window_bytes`.

        For bulk loads: `hset_commands` frames a million rows in Arrow, where redis-py would
        encode each argument in Python (most of a load's time). One connection from the pool,
        so other threads go on using the client meanwhile.
        """
        pool = self.client.connection_pool
        connection = pool.get_connection()
        try:
            # The replies of a window are read after the next window is sent (and, when
            # `commands` encodes lazily, encoded): the server works on one while this
            # process prepares the other. Two windows at most are unanswered.
            pending, unread, sent = 0, 0, 0
            for command in commands:
                connection.send_packed_command(command, check_health=False)  # type: ignore[no-untyped-call]
                pending, sent = pending + 1, sent + sum(len(part) for part in command)
                if sent >= window_bytes:
                    _replies(connection, unread)
                    pending, unread, sent = 0, pending, 0
            _replies(connection, unread + pending)
        except BaseException:
            connection.disconnect()  # type: ignore[no-untyped-call]  # replies may still be on their way: not a connection to reuse
            raise
        finally:
            pool.release(connection)


def hset_commands(
    target: str, fields: pa.ChunkedArray, values: pa.ChunkedArray, per_command: int
) -> Iterator[list[pa.Buffer | bytes]]:
    """`HSET target field value …` commands of `per_command` pairs, framed in Arrow (RESP bulk strings)."""
    dollar, newline = pa.scalar(b"$", pa.large_binary()), pa.scalar(b"\r\n", pa.large_binary())

    def bulk(column: pa.ChunkedArray) -> list[pa.ChunkedArray | pa.Scalar]:
        column = column.cast(pa.large_binary())
        length = pc.cast(pc.binary_length(column), pa.large_string()).cast(pa.large_binary())
        return [dollar, length, newline, column, newline]

    empty = pa.scalar(b"", pa.large_binary())
    pairs = pc.binary_join_element_wise(*bulk(fields), *bulk(values), empty).combine_chunks()
    offsets = np.frombuffer(pairs.buffers()[1], dtype=np.int64)[pairs.offset : pairs.offset + len(pairs) + 1]
    data, name = pairs.buffers()[2], target.encode()
    for start in range(0, len(pairs), per_command):
        count = min(per_command, len(pairs) - start)
        head = b"*%d\r\n$4\r\nHSET\r\n$%d\r\n%s\r\n" % (2 + 2 * count, len(name), name)
        first, last = int(offsets[start]), int(offsets[start + count])
        yield [head, data.slice(first, last - first)]


def _replies(connection: object, count: int) -> None:
    for _ in range(count):
        connection.read_response()  # type: ignore[attr-defined]  # an error reply is raised here


def redacted(url: str) -> str:
    """`url` without its password, fit for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{parts.netloc.rpartition('@')[2]}"))


def _import_redis(what: str) -> ModuleType:
    try:
        return importlib.import_module("redis")
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] != "redis":
            raise  # redis is there but one of its own imports broke: show that, not a wrong hint
        missing = MissingExtra("redis", "redis", "redis")
        # MissingExtra words its message for flavors; this is a store backend. (ImportError
        # prints `msg`, other code reads `args`.)
        missing.msg = (
            f"the Redis {what} needs the 'redis' package, which is not installed; "
            "install it with: pip install 'foretell[redis]'"
        )
        missing.args = (missing.msg,)
        raise missing from None
