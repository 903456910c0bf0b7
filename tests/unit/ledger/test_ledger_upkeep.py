"""The writer's upkeep: compaction (every row still seen once) and retention (by days, by bytes, counted)."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from ledger_entries import live_entry, read_all, rows

from foretell.ledger.segments import LedgerLocation, parse_name
from foretell.ledger.settings import LedgerPolicy, LedgerSettings
from foretell.ledger.writer import COMPACT_AT, LedgerWriter

QUIET = LedgerSettings(flush_seconds=3600)
DAY = 86_400.0


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_compaction_keeps_every_row_exactly_once(tmp_path: Path) -> None:
    writer = LedgerWriter(tmp_path, QUIET, writer="w1")
    location = LedgerLocation(tmp_path)
    now = time.time()
    saved = tmp_path.parent / f"{tmp_path.name}-saved"
    saved.mkdir()
    for i in range(COMPACT_AT + 8):
        writer.record(live_entry(rows(2, start=i), predicted_at=now))
        writer.flush()
        if i == 0:
            (folder,) = [Path(p).parent for p in location.segment_files("churn")]
            shutil.copy(folder / files(folder)[0], saved)
        if i == COMPACT_AT - 2:
            assert len(files(folder)) == COMPACT_AT - 1
    names = files(folder)
    assert [n for n in names if n.startswith("cmp-")] == [f"cmp-w1-000001-{COMPACT_AT:06d}.parquet"]
    assert len(names) == 1 + 8
    # A crash between publishing the compacted file and deleting what it covers leaves both: readers still count once.
    shutil.copy(saved / files(saved)[0], folder)
    table = read_all(location)
    assert table.num_rows == 2 * (COMPACT_AT + 8)
    pairs = set(zip(table.column("prediction_id").to_pylist(), table.column("row").to_pylist(), strict=True))
    assert len(pairs) == table.num_rows
    writer.close()  # compacts the rest
    assert [parse_name(n).compacted for n in files(folder)].count(False) == 1  # type: ignore[union-attr]
    table = read_all(location)
    assert table.num_rows == 2 * (COMPACT_AT + 8)
    assert sorted(table.column("inputs").to_pylist(), key=lambda r: (r["seats"], r["tenure"] or 0)) == sorted(
        [row for i in range(COMPACT_AT + 8) for row in rows(2, start=i)], key=lambda r: (r["seats"], r["tenure"] or 0)
    )


def test_compaction_only_touches_its_own_files(tmp_path: Path) -> None:
    now = time.time()
    other = LedgerWriter(tmp_path, QUIET, writer="other")
    for _ in range(3):
        other.record(live_entry(rows(1), predicted_at=now))
        other.flush()
    mine = LedgerWriter(tmp_path, QUIET, writer="mine")
    for _ in range(3):
        mine.record(live_entry(rows(1), predicted_at=now))
        mine.flush()
    mine.close()
    (folder,) = {Path(p).parent for p in LedgerLocation(tmp_path).segment_files("churn")}
    names = files(folder)
    assert sum(n.startswith("seg-") and "-other-" in n for n in names) == 3
    assert [n for n in names if "mine" in n] == ["cmp-mine-000001-000003.parquet"]
    other.close()
    assert read_all(LedgerLocation(tmp_path)).num_rows == 6


def write_days(folder: Path, days_ago: Sequence[float], writer: str = "old") -> list[int]:
    """One segment per day given; returns their sizes."""
    old = LedgerWriter(folder, QUIET, writer=writer)
    now = time.time()
    for ago in days_ago:
        old.record(live_entry(rows(20), predicted_at=now - ago * DAY))
        old.flush()
    sizes = []
    location = LedgerLocation(folder)
    for date in location.dates("churn"):
        sizes += [location.size(p) for p in location.segment_files("churn", [date])]
    return sizes


def test_retention_by_days_deletes_old_partitions_and_counts(tmp_path: Path) -> None:
    sizes = write_days(tmp_path, [45, 31.5, 10, 0])
    location = LedgerLocation(tmp_path)
    before = location.dates("churn")
    writer = LedgerWriter(tmp_path, LedgerSettings(flush_seconds=3600), writer="new")
    writer.start()  # retention runs first thing
    writer.close()
    assert location.dates("churn") == before[2:]
    assert writer.counts["retention_deleted_segments"] == 2
    assert writer.counts["retention_deleted_bytes"] == sizes[0] + sizes[1]
    assert read_all(location).num_rows == 40


def test_retention_by_bytes_deletes_the_oldest_first(tmp_path: Path) -> None:
    sizes = write_days(tmp_path, [3, 2, 1, 0])
    location = LedgerLocation(tmp_path)
    budget = sizes[2] + sizes[3] + 10
    policy = LedgerPolicy(retention_bytes=budget)
    writer = LedgerWriter(tmp_path, LedgerSettings(flush_seconds=3600, models={"churn": policy}), writer="new")
    writer.start()
    writer.close()
    remaining = location.segment_files("churn")
    assert len(remaining) == 2 and sum(location.size(p) for p in remaining) <= budget
    assert writer.counts["retention_deleted_segments"] == 2
    assert writer.counts["retention_deleted_bytes"] == sizes[0] + sizes[1]
    assert len(location.dates("churn")) == 2  # the emptied date folders are gone too


def test_deleting_a_compacted_file_takes_the_files_it_covers(tmp_path: Path) -> None:
    old = LedgerWriter(tmp_path, QUIET, writer="old")
    old.record(live_entry(rows(5), predicted_at=time.time() - 2 * DAY))
    old.flush()
    (first,) = LedgerLocation(tmp_path).segment_files("churn")
    kept = Path(first).read_bytes()
    old.record(live_entry(rows(5), predicted_at=time.time() - 2 * DAY))
    old.close()  # compacts the two
    Path(first).write_bytes(kept)  # as if the compaction's deletes had not happened
    write_days(tmp_path, [0], writer="today")
    policy = LedgerPolicy(retention_bytes=1)  # nothing fits: everything goes, covered files first
    writer = LedgerWriter(tmp_path, LedgerSettings(flush_seconds=3600, default=policy), writer="new")
    writer.start()
    writer.close()
    assert LedgerLocation(tmp_path).segment_files("churn") == []
    assert writer.counts["retention_deleted_segments"] == 2  # the two visible files


def test_two_writers_applying_retention_at_once_count_each_deletion_once(tmp_path: Path) -> None:
    write_days(tmp_path, [40] * 30 + [0])
    settings = LedgerSettings(flush_seconds=3600)
    writers = [LedgerWriter(tmp_path, settings, writer=f"w{i}") for i in range(2)]
    threads = [threading.Thread(target=w.start) for w in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for writer in writers:
        writer.close()
    assert sum(w.counts["retention_deleted_segments"] for w in writers) == 30
    assert read_all(LedgerLocation(tmp_path)).num_rows == 20


def test_compaction_and_retention_on_a_memory_filesystem() -> None:
    url = f"memory://upkeep-{time.time_ns()}"
    now = time.time()
    old = LedgerWriter(url, QUIET, writer="old")
    for ago in (40, 40, 0, 0, 0):
        old.record(live_entry(rows(3), predicted_at=now - ago * DAY))
        old.flush()
    old.close()  # compacts each partition's files into one
    location = LedgerLocation(url)
    names = [Path(p).name for p in location.segment_files("churn")]
    assert [parse_name(n).compacted for n in names] == [True, True]  # type: ignore[union-attr]
    assert read_all(location).num_rows == 15
    writer = LedgerWriter(url, LedgerSettings(flush_seconds=3600), writer="new")
    writer.start()
    writer.close()
    assert len(location.dates("churn")) == 1
    assert read_all(location).num_rows == 9
    assert writer.counts["retention_deleted_segments"] == 1
