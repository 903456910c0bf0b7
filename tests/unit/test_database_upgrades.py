"""`Database` schema versions: a file at an older version is upgraded by its steps, or refused when there are none."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from foretell.database import Database
from foretell.errors import StoreError

SCHEMA = ("CREATE TABLE t (a INTEGER, b TEXT)",)


def old_file(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (a INTEGER)")
        conn.execute("INSERT INTO t VALUES (7)")
        conn.execute("PRAGMA user_version = 1")


def test_an_older_file_is_upgraded_by_its_steps_and_keeps_its_rows(tmp_path: Path) -> None:
    old_file(tmp_path / "x.db")
    db = Database(
        tmp_path / "x.db",
        what="x",
        error=StoreError,
        schema=SCHEMA,
        version=2,
        upgrades={2: ["ALTER TABLE t ADD b TEXT"]},
    )
    db.create_schema()
    with db.read() as conn:
        assert conn.execute("SELECT a, b FROM t").fetchall() == [(7, None)]
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2


def test_an_older_file_with_no_upgrade_step_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    old_file(tmp_path / "x.db")
    db = Database(tmp_path / "x.db", what="x", error=StoreError, schema=SCHEMA, version=3, upgrades={3: []})
    with pytest.raises(StoreError, match="schema version 1, and this foretell cannot upgrade it to version 3"):
        db.create_schema()
    with sqlite3.connect(tmp_path / "x.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1


def test_a_new_file_is_created_at_the_latest_version_without_the_upgrade_steps(tmp_path: Path) -> None:
    db = Database(
        tmp_path / "x.db", what="x", error=StoreError, schema=SCHEMA, version=2, upgrades={2: ["SELECT 1/0x"]}
    )
    db.create_schema()
    with db.read() as conn:
        assert [row[1] for row in conn.execute("PRAGMA table_info(t)")] == ["a", "b"]


def test_without_upgrade_steps_an_older_file_gets_the_schema_again(tmp_path: Path) -> None:
    """The owners that add only tables (`CREATE TABLE IF NOT EXISTS`) upgrade by running their schema again."""
    old_file(tmp_path / "x.db")
    schema = ("CREATE TABLE IF NOT EXISTS t (a INTEGER)", "CREATE TABLE IF NOT EXISTS u (c TEXT)")
    db = Database(tmp_path / "x.db", what="x", error=StoreError, schema=schema, version=2)
    db.create_schema()
    with db.read() as conn:
        assert conn.execute("SELECT a FROM t").fetchall() == [(7,)]
        assert conn.execute("SELECT COUNT(*) FROM u").fetchone()[0] == 0
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
