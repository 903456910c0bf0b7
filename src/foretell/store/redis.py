"""The prediction store on a Redis server, for predictions shared by many serving hosts.

Key layout, every key under `{prefix}:{{{model}}}:` (the braces make a model's keys one
hash slot, so each script below touches a single slot):

    next               INCR counter: the latest generation begun; never decreases, so numbers are not reused
    published          the pointer readers follow: the published generation's number (absent before the first)
    generations        set of the generation numbers that still have keys (open, published, or awaiting clean-up)
    meta:{n}           hash: state (open | published), created_at, and at publish rows, published_at, earliest
    earliest:{n}       earliest computed_at written to open generation n so far (moved into meta at publish)
    gen:{n}            hash: entity key → row
    live               hash: entity key → row, the predictions made on request
    live:by-time       sorted set of "{computed_at} {key}" (all scores 0, so ordered by those bytes), the
                       live entries by age: publish deletes the older ones and stats counts the newer ones
                       without scanning `live`

A row is `b"{computed_at} {model_version} {prediction JSON}"`: the JSON bytes are the
SQLite store's, and the timestamp leads so that Lua can compare it without decoding JSON.

Reads are one Lua script that resolves the pointer and fetches the rows (and the live
entries) from the generation it names, because `publish` deletes the old generation right
after switching the pointer: a reader that read the pointer, then the rows, in two round
trips could hold the old pointer with nothing behind it. A script runs alone on the server,
so a read sees the pointer and rows of one moment; the old generation's keys are deleted
with UNLINK, which frees a million-field hash on a background thread.

A writer watches the generation's `meta` key (WATCH) and sends its rows in one MULTI/EXEC,
HSETs of a thousand rows each: all or none, and none if a publish or abandon changed the
generation meanwhile. Writers of one generation do not touch `meta` (the running earliest
timestamp has its own key), so concurrent writers never invalidate each other's WATCH.
The server runs a transaction at once, and every reader of the same server waits until it
ends, so a job loading beside live traffic writes smaller calls (docs/hybrid.md, "Backends").

Connections and scripts (`redis_connection.py`): one pool per store object, shared by every
thread that calls it (the server reads the store from worker threads, a call at a time per
thread, so a few sockets serve them all; a thread waits for a free connection when
`MAX_CONNECTIONS` are busy). The pool reconnects after `fork`, so a store object can be shared
as the SQLite one. redis-py parses replies and frames commands with `hiredis` when it is
installed (the `redis` extra brings it): a lookup's round trip is then mostly the network and
the server. Each script is registered once per store, by its SHA1, and called with EVALSHA;
a server that does not know it (restarted, flushed with SCRIPT FLUSH, a replica promoted)
answers NOSCRIPT, and the script is loaded and the call sent again. A lookup, or a batchGet of
many keys, is one EVALSHA: one round trip, whatever the number of keys.

Needs Redis 5 or later (UNLINK, scripts whose writes replicate as effects).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from foretell.errors import StoreError
from foretell.store.base import (
    BatchRow,
    EncodedRows,
    StoredPrediction,
    StoredRow,
    check_begun,
    check_generation,
    check_key,
    check_keys,
    check_model,
    check_rows,
    check_version,
    cleanup_failed,
    empty_generation,
    encode_prediction,
    format_utc,
    not_open,
    published_generation,
    resolve,
    utc_now,
    utc_timestamp,
)
from foretell.store.redis_connection import HMGET_SLICES, RedisConnection

if TYPE_CHECKING:
    import redis

__all__ = ["RedisStore"]

URL_SCHEMES = ("redis", "rediss", "unix")
"""The URL schemes `open_store` hands to this backend (those redis-py's `from_url` takes)."""

HSET_ROWS = 1_000
"""Rows per HSET in a write: big enough that per-command costs vanish, small enough for Lua's unpack limits."""

# How every script acting on generation ARGV[2] of the model keyed under ARGV[1] starts:
# unless the generation is open, stop with what the refusal must say (latest begun,
# published, state), read in the same script that would act on it. A missing key reads as
# false in Lua.
_WHEN_OPEN = """
local base, n = ARGV[1], ARGV[2]
local found = {redis.call('GET', base .. 'next') or '0', redis.call('GET', base .. 'published') or '',
               redis.call('HGET', base .. 'meta:' .. n, 'state') or ''}
if found[3] ~= 'open' then return {'refused', unpack(found)} end
"""

_BEGIN = """
local base = ARGV[1]
local n = redis.call('INCR', base .. 'next')
redis.call('HSET', base .. 'meta:' .. n, 'state', 'open', 'created_at', ARGV[2])
redis.call('SADD', base .. 'generations', n)
return n
"""

_CHECK = _WHEN_OPEN + "return {'ok'}"

# Runs inside the writer's MULTI, after its HSETs. Timestamps differ only in digits at the
# same places, so Lua's locale-aware string `<` orders them as their bytes do.
_LOWER = """
local earliest = redis.call('GET', KEYS[1])
if not earliest or ARGV[1] < earliest then redis.call('SET', KEYS[1], ARGV[1]) end
"""

# The switch: pointer, the generation's metadata, and the older generations' metadata (so
# that from this moment they are gone to writers, whose WATCH on it fails), all at once.
# Their rows go in the clean-up, a script of its own, as SQLite drops tables after commit.
_PUBLISH = (
    _WHEN_OPEN
    + """
local rows = redis.call('HLEN', base .. 'gen:' .. n)
if rows == 0 then return {'empty'} end
local earliest = redis.call('GET', base .. 'earliest:' .. n) or ''
redis.call('DEL', base .. 'earliest:' .. n)
redis.call('SET', base .. 'published', n)
redis.call('HSET', base .. 'meta:' .. n, 'state', 'published', 'rows', rows, 'published_at', ARGV[3],
           'earliest', earliest)
for _, older in ipairs(redis.call('SMEMBERS', base .. 'generations')) do
  if tonumber(older) < tonumber(n) then
    redis.call('DEL', base .. 'meta:' .. older, base .. 'earliest:' .. older)
  end
end
return {'ok'}
"""
)

# Everything the published generation supersedes, found from the pointer rather than from
# the caller, so that leftovers of a publish that died before this step go too.
_COLLECT = """
local base = ARGV[1]
local n = tonumber(redis.call('GET', base .. 'published'))
if not n then return 0 end
for _, older in ipairs(redis.call('SMEMBERS', base .. 'generations')) do
  if tonumber(older) < n then
    redis.call('UNLINK', base .. 'gen:' .. older, base .. 'meta:' .. older, base .. 'earliest:' .. older)
    redis.call('SREM', base .. 'generations', older)
  end
end
local earliest = redis.call('HGET', base .. 'meta:' .. n, 'earliest')
if not earliest or earliest == '' then return 0 end
local index, before = base .. 'live:by-time', '(' .. earliest
local stale = redis.call('ZRANGEBYLEX', index, '-', before)
for i = 1, #stale, 1000 do
  local keys = {}
  for j = i, math.min(i + 999, #stale) do
    local entry = stale[j]
    keys[#keys + 1] = string.sub(entry, string.find(entry, ' ', 1, true) + 1)
  end
  redis.call('HDEL', base .. 'live', unpack(keys))
end
redis.call('ZREMRANGEBYLEX', index, '-', before)
return #stale
"""

_ABANDON = (
    _WHEN_OPEN
    + """
redis.call('UNLINK', base .. 'gen:' .. n, base .. 'meta:' .. n, base .. 'earliest:' .. n)
redis.call('SREM', base .. 'generations', n)
return {'ok'}
"""
)

# Write-backs can land out of order: an older one never replaces a newer one (a tie replaces).
_PUT_LIVE = """
local key, row, stamp = ARGV[1], ARGV[2], ARGV[3]
local old = redis.call('HGET', KEYS[1], key)
if old then
  local old_stamp = string.sub(old, 1, string.find(old, ' ', 1, true) - 1)
  if stamp < old_stamp then return 0 end
  redis.call('ZREM', KEYS[2], old_stamp .. ' ' .. key)
end
redis.call('HSET', KEYS[1], key, row)
redis.call('ZADD', KEYS[2], 0, stamp .. ' ' .. key)
return 1
"""

# KEYS: pointer, live. ARGV: the model's key base, then the entity keys. The generation's
# keys cannot be declared in KEYS: which generation is only known once the pointer is read,
# here.
_READ = (
    HMGET_SLICES
    + """
local base = ARGV[1]
local generation = redis.call('GET', KEYS[1])
if not generation then return {false, false, {}, fetch(KEYS[2])} end
local earliest = redis.call('HGET', base .. 'meta:' .. generation, 'earliest')
return {generation, earliest, fetch(base .. 'gen:' .. generation), fetch(KEYS[2])}
"""
)

_STATS = """
local base = ARGV[1]
local index = base .. 'live:by-time'
local generation = redis.call('GET', base .. 'published')
local published_at, rows, live = false, 0, 0
if generation then
  local meta = redis.call('HMGET', base .. 'meta:' .. generation, 'published_at', 'rows', 'earliest')
  published_at, rows = meta[1], tonumber(meta[2] or '0')
  live = redis.call('ZLEXCOUNT', index, '[' .. (meta[3] or ''), '+')
else
  live = redis.call('ZCARD', index)
end
local open = {}
for _, n in ipairs(redis.call('SMEMBERS', base .. 'generations')) do
  if redis.call('HGET', base .. 'meta:' .. n, 'state') == 'open' then open[#open + 1] = tonumber(n) end
end
table.sort(open)
return {generation, published_at, rows, live, open}
"""


class RedisStore:
    """Predictions by model and key on a Redis server: `RedisStore("redis://host:6379/0")`."""

    def __init__(self, url: str, *, prefix: str = "foretell", clock: Callable[[], datetime] = utc_now) -> None:
        self.url = url
        self.prefix = prefix
        self._clock = clock
        connection = RedisConnection(url, "prediction store")
        self._where, self._redis, self._talking = connection.where, connection.module, connection.talking
        self._client: redis.Redis = connection.client
        register = self._client.register_script
        self._begin, self._check, self._lower = register(_BEGIN), register(_CHECK), register(_LOWER)
        self._publish, self._collect, self._abandon = register(_PUBLISH), register(_COLLECT), register(_ABANDON)
        self._put_live, self._read, self._stats = register(_PUT_LIVE), register(_READ), register(_STATS)
        connection.ping()

    def __repr__(self) -> str:
        return f"RedisStore({self._where!r}, prefix={self.prefix!r})"

    def close(self) -> None:
        self._client.close()

    # -- batch generations ---------------------------------------------------------------

    def begin_generation(self, model: str) -> int:
        with self._talking():
            return int(self._begin(args=[self._base(model), self._now()]))

    def write_batch(self, model: str, generation: int, rows: Iterable[BatchRow]) -> int:
        base = self._base(model)
        check_rows(rows)
        check_generation(generation)
        encoded = EncodedRows(rows)
        flat: list[bytes] | None = None
        watched = f"{base}meta:{generation}"
        with self._talking(), self._client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(watched)  # type: ignore[no-untyped-call]  # redis-py leaves Pipeline untyped
                    self._refuse(model, generation, self._check(args=[base, generation], client=pipe), "write")
                    if flat is None:  # once: a retry after a conflict sends the same rows
                        flat = _flatten(encoded)
                    earliest = encoded.earliest
                    if earliest is None:  # no rows
                        return 0
                    pipe.multi()
                    for start in range(0, len(flat), 2 * HSET_ROWS):
                        chunk = flat[start : start + 2 * HSET_ROWS]
                        pipe.execute_command("HSET", f"{base}gen:{generation}", *chunk)  # type: ignore[no-untyped-call]
                    self._lower(keys=[f"{base}earliest:{generation}"], args=[earliest], client=pipe)
                    pipe.execute()
                    return encoded.count
                except self._redis.exceptions.WatchError:
                    # The generation changed state under us (published, abandoned, superseded):
                    # the next check says how. Other writers never touch the watched key.
                    continue

    def publish(self, model: str, generation: int) -> None:
        base = self._base(model)
        check_generation(generation)
        with self._talking():
            reply = self._publish(args=[base, generation, self._now()])
        self._refuse(model, generation, reply, "publish")
        if reply[0] == b"empty":
            raise empty_generation(model, generation)
        try:
            with self._talking():
                self._collect(args=[base])
        except StoreError as exc:
            raise cleanup_failed(model, generation, exc) from exc

    def abandon(self, model: str, generation: int) -> None:
        """Drop an unpublished generation; one already gone (abandoned or superseded) is left alone."""
        base = self._base(model)
        check_generation(generation)
        with self._talking():
            reply = self._abandon(args=[base, generation])
        self._refuse(model, generation, reply, "abandon")

    # -- live predictions ----------------------------------------------------------------

    def put_live(
        self, model: str, key: str, prediction: Mapping[str, Any], model_version: int, computed_at: str
    ) -> None:
        self.put_live_many(model, [(key, prediction, model_version, computed_at)])

    def put_live_many(self, model: str, rows: Iterable[BatchRow]) -> None:
        base = self._base(model)
        encoded = [_live_args(*row) for row in rows]
        if not encoded:
            return
        keys = [f"{base}live", f"{base}live:by-time"]
        # One round trip; each row is `_PUT_LIVE` on its own, so an older row is ignored as by `put_live`.
        with self._talking(), self._client.pipeline(transaction=False) as pipe:
            for args in encoded:
                self._put_live(keys=keys, args=args, client=pipe)
            pipe.execute()

    # -- reading -------------------------------------------------------------------------

    def get(self, model: str, key: str) -> StoredPrediction | None:
        return self.get_many(model, [check_key(key)]).get(key)

    def get_many(self, model: str, keys: Iterable[str]) -> dict[str, StoredPrediction]:
        base = self._base(model)
        wanted = check_keys(keys)
        if not wanted:
            return {}
        with self._talking():
            pointer, earliest, batch, live = self._read(keys=[f"{base}published", f"{base}live"], args=[base, *wanted])
        if pointer is None:
            return resolve(model, wanted, (), _parsed(wanted, live), None, "")
        since = (earliest or b"").decode()
        return resolve(model, wanted, _parsed(wanted, batch), _parsed(wanted, live), int(pointer), since)

    def current_generation(self, model: str) -> int | None:
        base = self._base(model)
        with self._talking():
            pointer = self._client.get(f"{base}published")
        return None if pointer is None else int(pointer)

    def stats(self, model: str) -> dict[str, Any]:
        base = self._base(model)
        with self._talking():
            generation, published_at, rows, live_rows, open_generations = self._stats(args=[base])
        return {
            "model": model,
            "generation": None if generation is None else int(generation),
            "published_at": None if published_at is None else published_at.decode(),
            "rows": int(rows),
            "live_rows": int(live_rows),
            "open_generations": [int(n) for n in open_generations],
        }

    # -- plumbing ------------------------------------------------------------------------

    def _base(self, model: str) -> str:
        return f"{self.prefix}:{{{check_model(model)}}}:"

    def _now(self) -> str:
        return format_utc(self._clock())

    def _refuse(self, model: str, generation: int, reply: list[Any], action: str) -> None:
        """Raise as SQLite does when a script stopped at `_WHEN_OPEN` (an abandon of a gone generation passes)."""
        if reply[0] != b"refused":
            return
        last, published, state = int(reply[1]), reply[2].decode() or None, reply[3].decode() or None
        # No metadata can mean never begun rather than gone: say which.
        check_begun(model, generation, last, self._where)
        if action != "abandon":
            raise not_open(model, generation, state, None if published is None else int(published))
        if state == "published":
            raise published_generation(model, generation)


def _row(prediction: bytes, version: int, stamp: bytes) -> bytes:
    return b"%s %d %s" % (stamp, version, prediction)


def _flatten(encoded: EncodedRows) -> list[bytes]:
    """`[key, row, key, row, …]`, the arguments of HSET, as bytes.

    Bytes because redis-py passes them through untouched: its encoder costs about as much
    per argument as encoding the prediction does, and a bulk write is mostly arguments.
    """
    flat: list[bytes] = []
    append = flat.append
    stamps: dict[str, bytes] = {}  # a batch carries one or a few distinct timestamps
    for key, prediction, version, stamp in encoded:
        stamp_bytes = stamps.get(stamp)
        if stamp_bytes is None:
            stamp_bytes = stamps[stamp] = stamp.encode()
        append(key.encode())
        append(_row(prediction, version, stamp_bytes))
    return flat


def _parsed(keys: list[str], rows: list[bytes | None]) -> Iterator[StoredRow]:
    for key, row in zip(keys, rows, strict=True):
        if row is not None:
            stamp, version, prediction = row.split(b" ", 2)
            yield key, prediction, int(version), stamp.decode()


def _live_args(key: str, prediction: Mapping[str, Any], model_version: int, computed_at: str) -> list[Any]:
    key = check_key(key)
    stamp = utc_timestamp(computed_at)
    return [key, _row(encode_prediction(key, prediction), check_version(key, model_version), stamp.encode()), stamp]
