"""`LedgerWriter`: the serving path hands it entries; a background thread writes them as Parquet segments.

`record` is on the hot path of every request, so it only appends a reference to a queue
bounded by pending rows (past the bound, the entry is dropped and counted: the ledger
never slows or fails a response). The writer's thread wakes every `flush_seconds`,
converts what is queued a group at a time (`rows.entries_table`), and publishes one
segment per (model, date) atomically; a process killed between flushes loses at most
that interval, and a reader never sees part of a file. The same thread compacts its own
small files and applies each model's retention.

Nothing raised in that thread reaches serving: a failed write logs one warning per
distinct error, counts its rows as dropped, and the next flush carries on.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from foretell.ledger.compaction import compact
from foretell.ledger.record import Entry, writer_id
from foretell.ledger.redaction import Redactor, keep_mask, redactor
from foretell.ledger.retention import apply_retention
from foretell.ledger.rows import entries_table, parquet_bytes
from foretell.ledger.segments import LedgerLocation, segment_name
from foretell.ledger.settings import LedgerPolicy, LedgerSettings
from foretell.memory import release_free_memory
from foretell.threads import run_in_background

__all__ = ["CHUNK", "COMPACT_AT", "CONVERT_SECONDS", "RETENTION_SECONDS", "LedgerWriter", "Observer"]

log = logging.getLogger(__name__)

COMPACT_AT = 32
"""A writer's own uncompacted files in one partition that make it merge them."""
CHUNK = 4096
"""Entries converted per call of `entries_table`. Each call costs about a millisecond whatever its size
(a few dozen numpy and pyarrow calls), so 1,000 per call made a flush of the demo churn model cost 2.7 µs
per entry against 2.4 µs at 4,096, while the longest stall of a thread beside it stayed under 3 ms
(benchmarks/ledger_writer.py)."""
#: How often the writer's thread turns what was recorded into Arrow, between publishing segments:
#: entries (and the model calls' arrays they keep alive) are let go within a fraction of a second,
#: whatever `flush_seconds` is. Between 0.1 s and 1 s the server's throughput was the same within
#: noise (docs/benchmarks.md, "Ledger on the server").
CONVERT_SECONDS = 0.25
RETENTION_SECONDS = 60.0
"""How often the writer applies retention (and once at start)."""

#: What watches the rows as they are converted: (model, Arrow table of ledger rows) on the writer's thread.
Observer = Callable[[str, pa.Table], None]

_COUNTS = ("records", "dropped", "segments", "bytes", "retention_deleted_segments", "retention_deleted_bytes")


class LedgerWriter:
    def __init__(
        self,
        location: LedgerLocation | str | Path,
        settings: LedgerSettings,
        *,
        writer: str | None = None,
        observers: Sequence[Observer] = (),
    ) -> None:
        self.location = location if isinstance(location, LedgerLocation) else LedgerLocation(location)
        self.settings = settings
        self.observers = tuple(observers)
        """Called with (model, table) for every table of rows converted, on the writer's thread (live gauges)."""
        self.writer = writer or writer_id()
        self._named = writer is not None
        self._pid = os.getpid()
        self._queue: collections.deque[Entry] = collections.deque()
        self._lock = threading.Lock()  # record's check-then-append, between threads that record
        self._flush_lock = threading.RLock()  # one flush at a time: the thread's, or flush()/close()'s
        self._queued_rows = 0  # written by record (under _lock)
        self._taken_rows = 0  # written by flushes (under _flush_lock)
        self._dropped_full = 0
        self._counts = dict.fromkeys(_COUNTS, 0)
        self._seq = 0
        self._own: dict[tuple[str, str], list[str]] = {}  # (model, date) → this writer's uncompacted file names
        self._closed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._redact: Redactor | None = None
        self._warned: set[str] = set()
        self._stats_written: dict[str, int] | None = None
        self._next_retention = 0.0
        # Rows converted to Arrow but not yet published, by partition: (first time, tables).
        self._converted: dict[tuple[str, str], tuple[float, list[pa.Table]]] = {}
        self._published_at = time.monotonic()
        self._converted_upto = 0  # _queued_rows when the last conversion took the queue

    def __repr__(self) -> str:
        return f"<LedgerWriter {self.writer} at {self.location.url}>"

    # -- the serving side --------------------------------------------------------------------------

    def record(self, entry: Entry) -> bool:
        """Queue `entry` for the next flush; False (its rows counted as dropped) when the queue is full or closed."""
        try:
            rows = entry.rows
        except Exception:  # a malformed entry is the ledger's loss, never the request's
            with self._lock:
                self._dropped_full += 1
            return False
        with self._lock:
            if self._closed or self._queued_rows - self._taken_rows + rows > self.settings.max_pending_rows:
                self._dropped_full += rows
                return False
            self._queued_rows += rows
            self._queue.append(entry)
        return True

    @property
    def counts(self) -> dict[str, int]:
        counts = dict(self._counts)
        counts["dropped"] += self._dropped_full
        counts["pending"] = self._queued_rows - self._taken_rows
        return counts

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background thread (once); it applies retention first, then flushes every `flush_seconds`."""
        with self._flush_lock:
            if self._thread is not None or self._closed:
                return
            if not self._named and os.getpid() != self._pid:
                # Made before a fork (a server's workers): each process must write under its own name.
                self.writer, self._pid = writer_id(), os.getpid()
            # pyarrow imports pandas on its first `pa.array` (a third of a second, holding the GIL):
            # now, while the server starts, rather than in the first flush, under traffic.
            pa.array([0])
            self._thread = threading.Thread(target=self._run, name=f"ledger-writer-{self.writer}", daemon=True)
            self._thread.start()

    def flush(self) -> None:
        """Write everything queued now, in the calling thread."""
        with self._flush_lock:
            self._flush_queued()

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking entries, flush what is queued, compact this writer's files, and stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        deadline = time.monotonic() + timeout
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        # The thread may still be inside a flush (a slow object store): wait for it no longer than asked.
        if not self._flush_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            log.warning("prediction ledger at %s: not flushed within %.1f s of close", self.location, timeout)
            return
        try:
            self._flush_queued()
            for partition in list(self._own):
                self._guarded(lambda p=partition: self._compact(p, at_least=2))
            self._write_stats()
        finally:
            self._flush_lock.release()

    # -- the writer's thread -----------------------------------------------------------------------

    def _run(self) -> None:
        run_in_background()  # a flush or a compaction waits for the CPU; requests never wait for it
        pause = min(CONVERT_SECONDS, self.settings.flush_seconds)
        while True:
            now = time.monotonic()
            if now >= self._next_retention:
                self._next_retention = now + RETENTION_SECONDS
                with self._flush_lock:
                    self._guarded(self._apply_retention)
                    self._write_stats()
            if self._stop.wait(pause):
                return
            if self._queue:
                with self._flush_lock:
                    self._guarded(self._convert_queued)
            if self._converted and time.monotonic() - self._published_at >= self.settings.flush_seconds:
                with self._flush_lock:
                    self._guarded(self._publish_converted)

    def _guarded(self, step: Any) -> bool:
        try:
            step()
        except Exception as exc:  # the writer's thread must outlive any storage failure
            self._warn(exc)
            return False
        return True

    def _warn(self, exc: BaseException) -> None:
        text = f"{type(exc).__name__}: {exc}"
        if text not in self._warned:
            self._warned.add(text)
            log.warning(
                "prediction ledger at %s: %s (further occurrences are counted, not logged)", self.location, text
            )

    def _flush_queued(self) -> None:
        """Convert what is queued and publish everything converted: one segment per partition."""
        self._convert_queued()
        self._publish_converted()

    def _convert_queued(self) -> None:
        with self._lock:  # take the whole queue at once: record() appends to the new one meanwhile
            entries, self._queue = self._queue, collections.deque()
            # Still pending until published: the bound holds what is in memory, converted or not.
            self._converted_upto = self._queued_rows
        if not entries:
            return
        try:
            partitions = _partitions(entries)
        except Exception as exc:  # an entry whose model or time is not one: nothing of this flush can be placed
            self._counts["dropped"] += sum(map(_rows, entries))
            self._warn(exc)
            return
        entries.clear()  # the partitions' lists hold them now, and let them go a chunk at a time
        for partition, members in partitions.items():
            first = min(e.predicted_at for e in members)
            try:
                tables = self._convert_partition(partition, members)
            except Exception as exc:  # rows that could not be converted are counted, not raised
                self._counts["dropped"] += sum(map(_rows, members))
                self._warn(exc)
                continue
            if tables:
                earliest, held = self._converted.get(partition, (first, []))
                self._converted[partition] = (min(earliest, first), [*held, *tables])

    def _convert_partition(self, partition: tuple[str, str], entries: list[Entry]) -> list[pa.Table]:
        """`entries` as Arrow tables; `entries` is emptied as they are converted."""
        model, _ = partition
        policy = self.settings.policy_for(model)
        redact = self._redactor() if policy.redact else None
        # A chunk at a time, each chunk's entries let go once converted: every numpy/pyarrow call,
        # and the freeing of what the entries held, then takes the GIL for a millisecond or so,
        # never long enough to stall the event loop that serves requests in the main thread.
        tables = []
        while entries:
            chunk = entries[:CHUNK]
            del entries[:CHUNK]
            table = self._table(chunk, policy, redact)
            del chunk
            if table is not None:
                self._show(model, table)
                if policy.sample < 1.0:
                    table = table.filter(keep_mask(table, policy.sample))
                if table.num_rows:
                    tables.append(table)
        return tables

    def _show(self, model: str, table: pa.Table) -> None:
        """Hand converted rows to the observers (before sampling: they see every prediction); never raises."""
        for observe in self.observers:
            try:
                observe(model, table)
            except Exception as exc:  # an observer's bug costs its own figures, never the ledger's rows
                self._warn(exc)

    def _publish_converted(self) -> None:
        converted, self._converted = self._converted, {}
        self._published_at = time.monotonic()
        self._taken_rows = self._converted_upto
        for partition, (first, tables) in converted.items():
            try:
                self._publish(partition, first, tables)
            except Exception as exc:  # rows that could not be written are counted, not raised
                self._counts["dropped"] += sum(t.num_rows for t in tables)
                self._warn(exc)
        if converted:
            self._write_stats()

    def _publish(self, partition: tuple[str, str], first: float, tables: list[pa.Table]) -> None:
        model, date = partition
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")
        self._seq += 1
        name = segment_name(int(first * 1000), self.writer, self._seq)
        data = parquet_bytes(table)
        self.location.publish_bytes(f"{self.location.partition(model, date)}/{name}", data)
        self._counts["records"] += table.num_rows
        self._counts["segments"] += 1
        self._counts["bytes"] += len(data)
        own = self._own.setdefault(partition, [])
        own.append(name)
        if len(own) >= COMPACT_AT:
            self._guarded(lambda: self._compact(partition, at_least=COMPACT_AT))

    def _table(self, entries: Sequence[Entry], policy: LedgerPolicy, redact: Redactor | None) -> pa.Table | None:
        """The entries' rows; if they will not convert together, each on its own: a bad entry costs only its rows."""
        try:
            return entries_table(entries, policy, redact)
        except Exception as exc:  # an entry the server built wrong: find it, drop it, keep the rest
            self._warn(exc)
        tables = []
        for entry in entries:
            try:
                tables.append(entries_table([entry], policy, redact))
            except Exception:
                self._counts["dropped"] += _rows(entry)
        return pa.concat_tables(tables, promote_options="permissive") if tables else None

    def _compact(self, partition: tuple[str, str], *, at_least: int) -> None:
        names = self._own.get(partition, [])
        if len(names) < at_least:
            return
        folder = self.location.partition(*partition)
        compact(self.location, folder, self.writer, list(names))
        # A compaction holds its segments, the merge and the file at once (tens of MB for a busy
        # model), and the allocators keep what is freed for reuse: given back now, the server's
        # RSS returns to what it serves with instead of holding every compaction's peak.
        release_free_memory()
        # Merged, or nothing left to merge (retention took them): either way these are done with.
        # The counts stay those of the flushes: what was written, not what is on disk now.
        self._own[partition] = []

    def _apply_retention(self) -> None:
        now = time.time()
        for model in self.location.models():
            deleted = apply_retention(self.location, model, self.settings.policy_for(model), now)
            self._counts["retention_deleted_segments"] += deleted.segments
            self._counts["retention_deleted_bytes"] += deleted.bytes
            if deleted.segments:
                for partition in [p for p in self._own if p[0] == model]:
                    folder = set(self.location.listdir(self.location.partition(*partition)))
                    self._own[partition] = [n for n in self._own[partition] if n in folder]

    def _redactor(self) -> Redactor:
        if self._redact is None:
            key = self.location.publish_new(self.location.join("_redact.key"), secrets.token_bytes(32), private=True)
            self._redact = redactor(key)
        return self._redact

    def _write_stats(self) -> None:
        counts = self.counts
        if counts == self._stats_written:
            return
        document = {**counts, "writer": self.writer, "updated_at": dt.datetime.now(dt.UTC).isoformat()}
        if self._guarded(
            lambda: self.location.publish_bytes(
                self.location.join("_stats", f"{self.writer}.json"), orjson.dumps(document)
            )
        ):
            self._stats_written = counts


def _partitions(entries: Sequence[Entry]) -> dict[tuple[str, str], list[Entry]]:
    """Entries by (model, UTC date of their time); a flush of one model within one day (the usual) in a few calls."""
    days = (np.fromiter((e.predicted_at for e in entries), dtype=np.float64, count=len(entries)) // 86_400).astype(
        np.int64
    )
    models = [e.model for e in entries]
    if days[0] == days[-1] and (days == days[0]).all() and models.count(models[0]) == len(models):
        return {(models[0], _date(int(days[0]))): list(entries)}
    out: dict[tuple[str, str], list[Entry]] = {}
    for entry, model, day in zip(entries, models, days.tolist(), strict=True):
        out.setdefault((model, _date(day)), []).append(entry)
    return out


def _rows(entry: Entry) -> int:
    try:
        return entry.rows
    except Exception:  # a malformed entry: one row, as an error entry is
        return 1


def _date(day: int) -> str:
    return (_EPOCH + dt.timedelta(days=day)).isoformat()


_EPOCH = dt.date(1970, 1, 1)
