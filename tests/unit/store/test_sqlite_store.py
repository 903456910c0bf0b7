"""What only the SQLite backend promises: the file, its tables, and how reads meet writes."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from foretell.errors import StoreError
from foretell.store import SqliteStore, open_store
from foretell.store.sqlite import SCHEMA_VERSION

T0 = "2024-05-01T02:00:00Z"


def publish(store: SqliteStore, values: dict[str, float], stamp: str = T0) -> int:
    generation = store.begin_generation("churn")
    store.write_batch("churn", generation, [(k, {"score": v}, 1, stamp) for k, v in values.items()])
    store.publish("churn", generation)
    return generation


def tables(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    finally:
        conn.close()


def test_open_store_keeps_store_db_in_the_home_in_wal_mode(tmp_path: Path) -> None:
    store = open_store(tmp_path / "home")
    assert store.path == tmp_path / "home" / "store.db"
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_a_home_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "home").write_text("")
    with pytest.raises(StoreError, match="it is a file, not a folder"):
        open_store(tmp_path / "home")


def test_a_store_written_by_a_newer_foretell_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    SqliteStore(path)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="written by a newer foretell"):
        SqliteStore(path)


def test_published_at_comes_from_the_clock(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.db", clock=lambda: datetime(2024, 5, 1, 4, 30, tzinfo=UTC))
    publish(store, {"a": 1.0})
    assert store.stats("churn")["published_at"] == "2024-05-01T04:30:00.000000Z"


def test_only_the_published_and_open_generations_keep_a_table(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.db")
    publish(store, {"a": 1.0})
    abandoned = store.begin_generation("churn")
    store.write_batch("churn", abandoned, [("a", {"score": 2.0}, 1, T0)])
    store.abandon("churn", abandoned)
    publish(store, {"a": 3.0})
    running = store.begin_generation("churn")
    assert [t for t in tables(store.path) if t.startswith("gen_")] == ["gen_1_3", f"gen_1_{running}"]


def test_live_rows_older_than_the_snapshot_are_deleted_at_publish(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.db")
    store.put_live("churn", "old", {"score": 1.0}, 1, "2024-05-01T01:00:00Z")
    store.put_live("churn", "new", {"score": 1.0}, 1, "2024-05-01T03:00:00Z")
    publish(store, {"a": 1.0}, stamp="2024-05-01T02:00:00Z")
    conn = sqlite3.connect(store.path)
    assert [r[0] for r in conn.execute("SELECT key FROM live")] == ["new"]
    conn.close()


def test_a_publish_whose_clean_up_failed_is_still_published_and_the_next_one_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SqliteStore(tmp_path / "store.db")
    publish(store, {"a": 1.0})

    def broken(model_id: int, published: int) -> None:
        raise StoreError("disk went away")

    monkeypatch.setattr(store, "_collect", broken)
    with pytest.raises(StoreError, match=r"generation 2 of 'churn' is published, but deleting older generations"):
        publish(store, {"a": 2.0})
    assert store.current_generation("churn") == 2
    assert store.get("churn", "a").prediction == {"score": 2.0}  # type: ignore[union-attr]
    assert "gen_1_1" in tables(store.path)

    monkeypatch.undo()
    publish(store, {"a": 3.0})
    assert [t for t in tables(store.path) if t.startswith("gen_")] == ["gen_1_3"]


def test_readers_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.db")
    publish(store, {"a": 1.0})
    writer = sqlite3.connect(store.path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # holds the write lock, as a long write_batch does
    writer.execute("UPDATE models SET published = NULL")
    try:
        started = time.monotonic()
        assert store.get("churn", "a").prediction == {"score": 1.0}  # type: ignore[union-attr]
        assert store.current_generation("churn") == 1
        assert time.monotonic() - started < 1.0
    finally:
        writer.execute("ROLLBACK")
        writer.close()


class _Interrupted:
    """A connection whose first statement is followed by `between()`: a reader preempted mid-read."""

    def __init__(self, conn: sqlite3.Connection, between: Any) -> None:
        self._conn = conn
        self._between = between

    def execute(self, *args: Any) -> sqlite3.Cursor:
        cursor = self._conn.execute(*args)
        if self._between is not None:
            between, self._between = self._between, None
            between()
        return cursor


def test_a_publish_between_reading_the_pointer_and_the_rows_is_not_seen(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.db")
    publish(store, {"a": 1.0, "b": 1.0})
    publisher = SqliteStore(tmp_path / "store.db")  # its own connections, as another process has
    real_read = store._read

    @contextmanager
    def preempted_read() -> Iterator[Any]:
        with real_read() as conn:
            # The whole publish, old table dropped included, lands after the pointer was read.
            yield _Interrupted(conn, lambda: publish(publisher, {"a": 2.0, "b": 2.0}))

    store._read = preempted_read  # type: ignore[method-assign]
    found = store.get_many("churn", ["a", "b"])
    assert {k: (p.generation, p.prediction["score"]) for k, p in found.items()} == {"a": (1, 1.0), "b": (1, 1.0)}
    assert "gen_1_1" not in tables(store.path)  # the reader's snapshot outlived the table

    store._read = real_read  # type: ignore[method-assign]
    assert {p.generation for p in store.get_many("churn", ["a", "b"]).values()} == {2}
