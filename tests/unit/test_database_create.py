"""`Database.create_schema` when several processes make one new file at the same moment.

The workers of `foretell serve --workers N` each open the prediction store as they start;
on a new home, that raced inside SQLite ("database is locked" at once, or "table ...
already exists") and one worker died.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
from pathlib import Path

from foretell.store.sqlite import SqliteStore

PROCESSES = 4
ROUNDS = 8


def open_store(path: str, start: multiprocessing.synchronize.Barrier) -> str | None:
    start.wait()
    try:
        SqliteStore(Path(path))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def test_processes_that_create_one_store_at_once_all_open_it(tmp_path: Path) -> None:
    spawn = multiprocessing.get_context("spawn")
    failures = []
    with spawn.Manager() as manager, spawn.Pool(PROCESSES) as pool:
        for n in range(ROUNDS):
            start = manager.Barrier(PROCESSES)
            path = tmp_path / f"home{n}" / "store.db"
            path.parent.mkdir()
            failures += [f for f in pool.starmap(open_store, [(str(path), start)] * PROCESSES) if f]
            assert SqliteStore(path).current_generation("churn") is None
    assert failures == []
