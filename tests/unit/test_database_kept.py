"""`Database.quick_write` and `quick_read`: one kept connection per thread, writes that commit or leave nothing."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from foretell.database import Database
from foretell.errors import InvalidInput, StoreError


def database(path: Path) -> Database:
    db = Database(
        path, what="test file", error=StoreError, schema=("CREATE TABLE t (k TEXT PRIMARY KEY, v INT)",), version=1
    )
    db.create_schema()
    return db


def test_writes_on_the_kept_connection_commit_and_another_process_s_connection_sees_them(tmp_path: Path) -> None:
    db = database(tmp_path / "k.db")
    used = []
    for n in range(3):
        with db.quick_write("PRAGMA synchronous = NORMAL") as conn:
            conn.execute("INSERT INTO t VALUES (?, ?)", (f"k{n}", n))
            used.append(conn)
    assert used[0] is used[1] is used[2]  # opened once for the thread, not once a write
    with db.read() as fresh:  # a connection of its own, as another process would have
        assert fresh.execute("SELECT count(*) FROM t").fetchone()[0] == 3
    with db.quick_read() as conn:
        assert conn is used[0]


def test_a_write_that_raises_leaves_nothing_and_the_connection_stays_usable(tmp_path: Path) -> None:
    db = database(tmp_path / "k.db")

    def half_then_refused() -> None:
        with db.quick_write() as conn:
            conn.execute("INSERT INTO t VALUES ('half', 1)")
            raise InvalidInput("refused after the first row")

    with pytest.raises(InvalidInput):
        half_then_refused()
    with db.quick_write() as conn:
        conn.execute("INSERT INTO t VALUES ('whole', 2)")
    with db.read() as fresh:
        assert fresh.execute("SELECT k FROM t").fetchall() == [("whole",)]


def test_each_thread_has_its_own_kept_connection(tmp_path: Path) -> None:
    db = database(tmp_path / "k.db")
    seen: list[object] = []

    def write(n: int) -> None:
        for i in range(50):
            with db.quick_write() as conn:
                conn.execute("INSERT INTO t VALUES (?, ?)", (f"{n}-{i}", i))
                seen.append(conn)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(c) for c in seen}) == 4
    with db.read() as fresh:
        assert fresh.execute("SELECT count(*) FROM t").fetchone()[0] == 200
