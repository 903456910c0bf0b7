"""`CoalescedReads`: store reads off the event loop, concurrent requests' keys read together.

The stores are synchronous (a SQLite query, a Redis round trip), and a lookup must not
hold the event loop while one runs: every other request on the server would wait. So
reads run in a thread. A thread hop costs about as much as a keyed read, though, so
rather than one hop per request, the reads that arrive while a hop is running wait for
it to land and then go together, as one `get_many` per name, in the next hop: under load
a hop carries many requests' keys (one SQLite statement, one Redis pipeline), and a lone
request takes one hop, as it would anyway. This is the micro-batcher's idea, for reads,
without its delay: a hop leaves as soon as the previous one lands.

The reads of one name share a hop's fate: if the store fails, every request that read
through that call gets the error (the cause is the store, not the request).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["MAX_KEYS_PER_HOP", "CoalescedReads"]

Value = TypeVar("Value")

#: Keys one hop takes before later reads wait for the next: a hop that reads far more only
#: makes the requests it carries wait longer for the one that is slowest to decode.
MAX_KEYS_PER_HOP = 10_000


@dataclass(slots=True)
class _Read(Generic[Value]):
    name: str
    keys: list[str]
    answer: asyncio.Future[dict[str, Value]] = field(repr=False)


class CoalescedReads(Generic[Value]):
    """Calls of `read(name, keys)` from concurrent requests, run in `executor` and coalesced per hop.

    `read` is a store's `get_many`: it returns the keys it found, each with its value.
    Only one hop is in flight at a time, so a one-thread executor serves it fully (and a
    SQLite store keeps one read connection in that thread).
    """

    def __init__(
        self,
        read: Callable[[str, list[str]], Mapping[str, Value]],
        executor: Executor,
        *,
        max_keys: int = MAX_KEYS_PER_HOP,
    ) -> None:
        self._read = read
        self._executor = executor
        self._max_keys = max_keys
        self._waiting: list[_Read[Value]] = []
        self._hop_in_flight = False

    async def get_many(self, name: str, keys: Iterable[str]) -> dict[str, Value]:
        """The values found for `keys` (each a valid key for the store) under `name`."""
        loop = asyncio.get_running_loop()
        read = _Read(name, list(keys), loop.create_future())
        self._waiting.append(read)
        if not self._hop_in_flight:
            self._start_hop(loop)
        return await read.answer

    def _start_hop(self, loop: asyncio.AbstractEventLoop) -> None:
        taken, keys = 0, 0
        for read in self._waiting:  # always at least one, however many keys it asks for
            if taken and keys + len(read.keys) > self._max_keys:
                break
            taken, keys = taken + 1, keys + len(read.keys)
        reads, self._waiting = self._waiting[:taken], self._waiting[taken:]
        wanted: dict[str, dict[str, None]] = {}
        for read in reads:
            wanted.setdefault(read.name, {}).update(dict.fromkeys(read.keys))
        try:
            hop = loop.run_in_executor(self._executor, self._read_all, {n: list(k) for n, k in wanted.items()})
        except RuntimeError as error:  # the executor was shut down: the server is stopping
            for read in reads:
                if not read.answer.done():
                    read.answer.set_exception(error)
            return
        self._hop_in_flight = True
        hop.add_done_callback(lambda done: self._landed(loop, reads, done))

    def _read_all(self, wanted: dict[str, list[str]]) -> dict[str, Mapping[str, Value] | BaseException]:
        """In the executor's thread: one `read` per name; a failure is kept for that name's requests."""
        found: dict[str, Mapping[str, Value] | BaseException] = {}
        for name, keys in wanted.items():
            try:
                found[name] = self._read(name, keys)
            except Exception as error:  # handed to the requests that asked, on the loop
                found[name] = error
        return found

    def _landed(
        self,
        loop: asyncio.AbstractEventLoop,
        reads: list[_Read[Value]],
        hop: asyncio.Future[dict[str, Mapping[str, Value] | BaseException]],
    ) -> None:
        self._hop_in_flight = False
        if self._waiting:  # the next hop leaves before this one's requests resume
            self._start_hop(loop)
        if hop.cancelled():  # the executor was shut down before the hop ran
            for read in reads:
                read.answer.cancel()
            return
        outcome = hop.exception() or hop.result()
        for read in reads:
            if read.answer.done():  # the request was cancelled meanwhile
                continue
            found = outcome if isinstance(outcome, BaseException) else outcome[read.name]
            if isinstance(found, BaseException):
                read.answer.set_exception(found)
            else:
                read.answer.set_result({key: found[key] for key in read.keys if key in found})
