"""The SQLite conventions every embedded foretell file shares: registry, stores, job history, schedule book.

One short-lived connection per operation, so an object is safe to share between threads
and across `fork`; write-ahead logging, so readers never wait for a writer; writes that
take the write lock first (`BEGIN IMMEDIATE`), so what they read is the last commit;
reads in one transaction, so several SELECTs see one snapshot; a schema versioned with
`PRAGMA user_version`, created by one process at a time (a lock on the folder). Errors come out as
the owner's own `ForetellError` subclass, naming the file.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from foretell.errors import ForetellError

__all__ = ["BUSY_TIMEOUT_SECONDS", "Database"]

BUSY_TIMEOUT_SECONDS = 30.0
KEPT_CACHE_KIB = 512
"""The page cache of each connection a thread keeps (SQLite's default is 2 MB). Kept connections live as long as
their threads, one per thread and file, so a server's dozen would otherwise fill to a couple of dozen MB; the upper
levels of a million-key b-tree fit in this, and the leaves a lookup reads come from the OS's file cache."""


class Database:
    def __init__(
        self,
        path: Path,
        *,
        what: str,
        error: type[ForetellError],
        schema: Sequence[str],
        version: int,
        on_connect: Sequence[str] = (),
        rows_as_mappings: bool = False,
        upgrades: Mapping[int, Sequence[str]] | None = None,
    ) -> None:
        """`schema` creates a new file at `version`; `upgrades[v]` takes a file at version v - 1 to v.

        Without `upgrades`, an older file gets the schema's statements again: each owner's schema
        is written so that this adds what later versions added (`CREATE ... IF NOT EXISTS`). With
        them, only the steps run, and a version with no step is refused rather than guessed at.
        """
        self.path = path
        self._upgrades = None if upgrades is None else dict(upgrades)
        self._what = what
        self._error = error
        self._schema = tuple(schema)
        self._version = version
        self._on_connect = tuple(on_connect)
        self._rows_as_mappings = rows_as_mappings
        self._local = threading.local()

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._error(f"cannot open the {self._what} {self.path}: {exc}") from exc
        if self._rows_as_mappings:
            conn.row_factory = sqlite3.Row
        return conn

    @contextmanager
    def connect(self, *pragmas: str) -> Iterator[sqlite3.Connection]:
        conn = self._open()
        try:
            with self._translated():
                for pragma in (*self._on_connect, *pragmas):
                    conn.execute(pragma)
                yield conn
        finally:
            conn.close()

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """SQLite's errors as the owner's error class, naming the file and what to do."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise self._error(
                    f"the {self._what} {self.path} stayed locked by another process for "
                    f"{BUSY_TIMEOUT_SECONDS:.0f} s; try again"
                ) from exc
            raise self._error(f"{self._what} {self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise self._error(f"{self._what} {self.path} is unusable: {exc}") from exc

    @contextmanager
    def write(self, *pragmas: str) -> Iterator[sqlite3.Connection]:
        with self.connect(*pragmas) as conn:
            conn.execute("BEGIN IMMEDIATE")  # the write lock first, so reads below see the last commit
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:  # some errors end the transaction themselves
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self.connect() as conn:
            conn.execute("BEGIN")  # one snapshot across several SELECTs
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

    @contextmanager
    def quick_read(self) -> Iterator[sqlite3.Connection]:
        """`read` on a connection this thread keeps open: for lookups on a request's path.

        Opening a connection costs many keyed reads' worth of time (docs/hybrid.md,
        "Backends"), so a lookup must not pay for one. The kept connection is the calling
        thread's own (sqlite3 connections are not for sharing between threads) and is
        reopened in a forked child, which must not use its parent's. Between reads it
        holds no transaction, so it never keeps a writer's checkpoint from finishing.
        """
        with self._kept("BEGIN", ()) as conn:
            yield conn

    @contextmanager
    def quick_write(self, *pragmas: str) -> Iterator[sqlite3.Connection]:
        """`write` on the connection this thread keeps (`quick_read`'s): for small writes on a request's path.

        A server's write-backs and events are a few rows each, many a second: opening a connection
        and setting it up for each was about a twentieth of a busy server's CPU (benchmarks/soak.py
        under py-spy). `pragmas` are set on each use, as `write` sets them on each connection.
        """
        with self._kept("BEGIN IMMEDIATE", pragmas) as conn:
            yield conn

    @contextmanager
    def _kept(self, begin: str, pragmas: Sequence[str]) -> Iterator[sqlite3.Connection]:
        kept: tuple[int, sqlite3.Connection] | None = getattr(self._local, "conn", None)
        if kept is None or kept[0] != os.getpid():
            conn = self._open()
            with self._translated():
                for pragma in (*self._on_connect, f"PRAGMA cache_size = -{KEPT_CACHE_KIB}"):
                    conn.execute(pragma)
            kept = self._local.conn = (os.getpid(), conn)
        conn = kept[1]
        try:
            with self._translated():
                for pragma in pragmas:
                    conn.execute(pragma)
                conn.execute(begin)
                try:
                    yield conn
                except BaseException:
                    if conn.in_transaction and begin != "BEGIN":  # a write that failed leaves nothing behind
                        conn.execute("ROLLBACK")
                    raise
                finally:
                    if conn.in_transaction:
                        conn.execute("COMMIT")
        except self._error:
            self._local.conn = None  # a connection that failed is not kept: the next use opens a fresh one
            conn.close()
            raise

    def create_schema(self) -> None:
        # Opening an existing file only reads two pragmas: taking the write lock on every
        # open would make each reader contend with a running writer.
        with self.connect() as conn:
            if self._is_current(conn):
                return
        # Two processes making one new file at once (the workers of `serve --workers N`) race
        # inside SQLite itself: both switch an empty file to write-ahead logging, and one sees
        # "database is locked" at once or creates tables the other has just made. Making a
        # file is rare, so it is done one process at a time, under a lock on its folder.
        creating = _folder_lock(self.path.parent, what=f"the {self._what} {self.path}", error=self._error)
        with creating, self.connect() as conn:
            self._create(conn)

    def _is_current(self, conn: sqlite3.Connection) -> bool:
        wal = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal"
        return wal and self.schema_version(conn) == self._version

    def _create(self, conn: sqlite3.Connection) -> None:
        if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise self._error(
                    f"{self.path} cannot use write-ahead logging (journal mode stayed {mode!r}); "
                    f"put FORETELL_HOME on a local disk"
                )
        if self.schema_version(conn) == self._version:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            found = self.schema_version(conn)  # checked again: a process of an older foretell may have won
            upgrades = self._upgrades
            if found == 0 or upgrades is None:
                for statement in self._schema:
                    conn.execute(statement)
            else:
                for version in range(found + 1, self._version + 1):
                    if version not in upgrades:  # never guess at a file's layout: say what to do
                        raise self._error(
                            f"{self.path} has schema version {found}, and this foretell cannot upgrade it to "
                            f"version {self._version}; move it aside and load it again"
                        )
                    for statement in upgrades[version]:
                        conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {self._version}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def schema_version(self, conn: sqlite3.Connection) -> int:
        found = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if found > self._version:
            raise self._error(
                f"{self.path} has schema version {found}, written by a newer foretell; "
                f"this one reads version {self._version}: upgrade foretell"
            )
        return found


@contextmanager
def _folder_lock(folder: Path, *, what: str, error: type[ForetellError]) -> Iterator[None]:
    """An exclusive `flock` on `folder`, waited for up to BUSY_TIMEOUT_SECONDS.

    The folder rather than a lock file beside the database: nothing is left behind, and
    a lock on the database file itself would be dropped with SQLite's own POSIX locks
    when either descriptor closed.
    """
    try:
        import fcntl
    except ImportError:  # no flock (Windows): SQLite's own locking is all there is
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise error(
                        f"{what} was being created by another process for {BUSY_TIMEOUT_SECONDS:.0f} s; try again"
                    ) from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock
