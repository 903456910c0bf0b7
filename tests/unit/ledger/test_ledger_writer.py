"""LedgerWriter: entries recorded on the serving path come back from the segments, once each, whatever happens."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import orjson
import pytest
from ledger_entries import error_entry, live_entry, lookup_entry, query, read_all, rows

from foretell.ledger.record import Entry
from foretell.ledger.segments import LedgerLocation, parse_name
from foretell.ledger.settings import LedgerPolicy, LedgerSettings
from foretell.ledger.writer import LedgerWriter

QUIET = LedgerSettings(flush_seconds=3600)  # the thread never flushes on its own: the test says when


def wait_for(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_rows_read_back_with_duckdb_equal_what_went_in(tmp_path: Path) -> None:
    writer = LedgerWriter(tmp_path, QUIET, writer="w1")
    live = live_entry(rows(3), keys=["C-1", "C-2", None])
    failed = error_entry()
    looked_up = lookup_entry("C-9", 0.75)
    refreshed = live_entry(rows(1, start=7), keys=["C-7"], source="event-refresh")
    for entry in (live, failed, looked_up, refreshed):
        assert writer.record(entry)
    writer.close()
    location = LedgerLocation(tmp_path)
    got = query(
        location,
        "select prediction_id, row, source, key, status, error, inputs.plan, inputs.tenure, outputs.score, version"
        " from ledger order by prediction_id, row",
    )
    by_id = {(r[0], r[1]): r[2:] for r in got}
    assert len(by_id) == len(got) == 6  # (prediction_id, row) unique
    assert by_id[(live.prediction_id, 0)] == ("live", "C-1", "ok", None, "basic", 0.0, 0.0, 1)
    assert by_id[(live.prediction_id, 1)] == ("live", "C-2", "ok", None, "standard", 1.0, 3.0, 1)
    assert by_id[(live.prediction_id, 2)] == ("live", None, "ok", None, "premium", 2.0, 6.0, 1)
    assert by_id[(failed.prediction_id, 0)] == ("live", None, "error", failed.error, None, None, None, None)
    assert by_id[(looked_up.prediction_id, 0)] == ("precomputed", "C-9", "ok", None, None, None, 0.75, 1)
    # row 7: tenure missing (7 % 4 == 3), plan premium (7 % 3 == 1 → standard)
    assert by_id[(refreshed.prediction_id, 0)] == ("event-refresh", "C-7", "ok", None, "standard", None, 8.0, 1)
    counts = writer.counts
    assert counts["records"] == 6 and counts["dropped"] == 0 and counts["pending"] == 0
    assert counts["segments"] == 1 and counts["bytes"] > 0


def test_the_thread_flushes_every_interval_and_only_when_something_is_queued(tmp_path: Path) -> None:
    writer = LedgerWriter(tmp_path, LedgerSettings(flush_seconds=0.1), writer="w1")
    writer.start()
    writer.start()  # idempotent
    location = LedgerLocation(tmp_path)
    try:
        time.sleep(0.35)
        assert location.segment_files("churn") == []  # nothing queued: nothing written
        writer.record(live_entry(rows(2)))
        recorded = time.monotonic()
        wait_for(lambda: location.segment_files("churn"))
        assert time.monotonic() - recorded < 1.0
        writer.record(live_entry(rows(1)))
        wait_for(lambda: len(location.segment_files("churn")) == 2)
        time.sleep(0.3)
        assert len(location.segment_files("churn")) == 2
    finally:
        writer.close()
    assert read_all(location).num_rows == 3


def test_close_flushes_everything_and_record_after_close_drops(tmp_path: Path) -> None:
    writer = LedgerWriter(tmp_path, QUIET, writer="w1")
    writer.start()
    for i in range(50):
        writer.record(live_entry(rows(2, start=i)))
    writer.close()
    assert read_all(LedgerLocation(tmp_path)).num_rows == 100
    assert not writer.record(live_entry(rows(1)))
    assert writer.counts["dropped"] == 1


def test_a_full_queue_drops_and_counts_without_blocking(tmp_path: Path) -> None:
    writer = LedgerWriter(tmp_path, LedgerSettings(flush_seconds=3600, max_pending_rows=100), writer="w1")
    writer.start()
    entry = live_entry(rows(3))
    results = [writer.record(entry) for _ in range(40)]
    assert results == [True] * 33 + [False] * 7  # 33 × 3 = 99 rows fit in 100
    assert writer.counts["dropped"] == 21 and writer.counts["pending"] == 99
    # While a flush holds the writer (a big queue being converted and written), record() never waits on it.
    big = LedgerWriter(tmp_path / "big", LedgerSettings(flush_seconds=3600, max_pending_rows=60_000), writer="w2")
    many = [live_entry(rows(2)) for _ in range(30_000)]
    for one in many:
        big.record(one)
    flushing = threading.Thread(target=big.flush)
    began = time.perf_counter()
    flushing.start()
    slowest = 0.0
    calls = 0
    while flushing.is_alive() and calls < 200_000:
        started = time.perf_counter()
        big.record(entry)
        slowest = max(slowest, time.perf_counter() - started)
        calls += 1
    flushing.join()
    took = time.perf_counter() - began
    assert calls > 100, "the flush was over before record() could be timed against it"
    # record() may wait for the GIL (a switch interval, a garbage collection) or a busy shared core, but
    # never for the flush: that would take it the whole flush.
    assert slowest < took / 2, f"record() took {slowest * 1000:.1f} ms during a flush of {took * 1000:.0f} ms"
    big.close()
    writer.close()
    assert writer.counts["records"] == 99


def test_redaction_is_the_same_from_two_writers_and_the_key_is_private(tmp_path: Path) -> None:
    settings = LedgerSettings(flush_seconds=3600, default=LedgerPolicy(inputs=("email", "plan"), redact=("email",)))
    first = LedgerWriter(tmp_path, settings, writer="w1")
    second = LedgerWriter(tmp_path, settings, writer="w2")
    first.record(live_entry(rows(2)))
    second.record(live_entry(rows(2)))
    first.close()
    second.close()
    key = tmp_path / "_redact.key"
    assert len(key.read_bytes()) == 32
    assert key.stat().st_mode & 0o777 == 0o600
    got = query(LedgerLocation(tmp_path), "select inputs.email, inputs.plan, inputs from ledger order by inputs.plan")
    emails = [r[0] for r in got]
    assert emails[0] == emails[1] and emails[2] == emails[3] and emails[0] != emails[2]
    assert all(len(e) == 32 and "@" not in e for e in emails)
    assert all(set(r[2]) == {"email", "plan"} for r in got)


def test_sampling_is_deterministic_by_key_and_near_the_fraction(tmp_path: Path) -> None:
    settings = LedgerSettings(flush_seconds=3600, default=LedgerPolicy(sample=0.5))
    kept: list[set[str]] = []
    for name in ("w1", "w2"):
        writer = LedgerWriter(tmp_path / name, settings, writer=name)
        for i in range(2000):
            writer.record(lookup_entry(f"C-{i}", 0.5))
        writer.close()
        kept.append({r[0] for r in query(LedgerLocation(tmp_path / name), "select key from ledger")})
    assert kept[0] == kept[1]
    assert 900 < len(kept[0]) < 1100


def test_error_entries_of_unresolved_models_land_in_their_own_partition(tmp_path: Path) -> None:
    writer = LedgerWriter(tmp_path, QUIET, writer="w1")
    writer.record(error_entry(model="_unresolved", reason="no model named 'nope'"))
    writer.close()
    assert query(LedgerLocation(tmp_path), "select status, error from ledger", model="_unresolved") == [
        ("error", "no model named 'nope'")
    ]


def test_a_memory_filesystem_location(tmp_path: Path) -> None:
    import fsspec

    url = f"memory://ledger-{os.getpid()}-{time.time_ns()}"
    writer = LedgerWriter(url, LedgerSettings(flush_seconds=3600, default=LedgerPolicy(redact=("email",))), writer="w1")
    writer.record(live_entry(rows(4), keys=["a", "b", "c", "d"]))
    writer.flush()
    writer.record(lookup_entry("e", 0.5))
    writer.close()
    location = LedgerLocation(url)
    table = read_all(location)
    assert sorted(table.column("key").to_pylist()) == ["a", "b", "c", "d", "e"]
    filesystem = fsspec.filesystem("memory")
    names = [p.rsplit("/", 1)[-1] for p in filesystem.find(location.join("segments"))]
    assert names and all(parse_name(n) is not None for n in names)  # no temporary file left
    stats = orjson.loads(filesystem.cat_file(location.join("_stats", "w1.json")))
    assert stats["records"] == 5 and stats["writer"] == "w1"
    assert len(filesystem.cat_file(location.join("_redact.key"))) == 32


def test_stats_file_holds_the_counts(tmp_path: Path) -> None:
    writer = LedgerWriter(tmp_path, LedgerSettings(flush_seconds=3600, max_pending_rows=2), writer="w1")
    writer.record(live_entry(rows(2)))
    writer.record(live_entry(rows(1)))  # dropped: the queue holds 2 rows
    writer.flush()
    stats = orjson.loads((tmp_path / "_stats" / "w1.json").read_bytes())
    assert stats["records"] == 2 and stats["dropped"] == 1 and stats["segments"] == 1
    assert stats["writer"] == "w1" and "updated_at" in stats and stats["pending"] == 0
    writer.close()


def test_a_failing_store_is_counted_and_warned_once_never_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the ledger's folder should be")
    writer = LedgerWriter(blocker, LedgerSettings(flush_seconds=0.05), writer="w1")
    with caplog.at_level(logging.WARNING, logger="foretell.ledger.writer"):
        writer.start()
        for _ in range(3):
            assert writer.record(live_entry(rows(2)))
            wait_for(lambda: writer.counts["pending"] == 0)
            time.sleep(0.1)
        writer.close()
    assert writer.counts["dropped"] == 6 and writer.counts["records"] == 0
    warnings = [r for r in caplog.records if "prediction ledger" in r.getMessage()]
    assert 1 <= len(warnings) <= 2  # one per distinct error (the segment write; the stats write may differ)
    assert len({w.getMessage() for w in warnings}) == len(warnings)


def test_entries_of_many_models_and_days_go_to_their_partitions(tmp_path: Path) -> None:
    from ledger_entries import MODEL

    from foretell.testing.models import SumModel, model_of

    other = model_of(SumModel(["tenure"]), MODEL.info.signature, "upsell")
    day = 86_400.0
    now = time.time()
    writer = LedgerWriter(tmp_path, QUIET, writer="w1")
    entries: list[Entry] = [
        live_entry(rows(1), predicted_at=now),
        live_entry(rows(1), predicted_at=now - day),
        live_entry(rows(2), model=other, predicted_at=now),
    ]
    for entry in entries:
        writer.record(entry)
    writer.close()
    location = LedgerLocation(tmp_path)
    assert len(location.dates("churn")) == 2 and len(location.dates("upsell")) == 1
    assert read_all(location, "upsell").num_rows == 2
    assert writer.counts["segments"] == 3


def test_a_malformed_entry_costs_only_its_own_rows(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = [live_entry(rows(2)) for _ in range(3)]
    bad = live_entry(rows(2))
    bad = bad._replace(predictions=live_entry(rows(3)).predictions, count=3)  # three answers, two inputs: a bug
    writer = LedgerWriter(tmp_path, QUIET, writer="w1")
    for entry in (good[0], bad, *good[1:]):
        writer.record(entry)
    with caplog.at_level(logging.WARNING, logger="foretell.ledger.writer"):
        writer.close()
    assert writer.counts["records"] == 6 and writer.counts["dropped"] == 3
    assert {r[0] for r in query(LedgerLocation(tmp_path), "select prediction_id from ledger")} == {
        e.prediction_id for e in good
    }
    assert any("prediction ledger" in r.getMessage() for r in caplog.records)


def test_stored_outputs_of_mixed_types_are_kept_as_json_text(tmp_path: Path) -> None:
    writer = LedgerWriter(tmp_path, QUIET, writer="w1")
    first = Entry("a" * 32, "churn", source="precomputed", endpoint="batchGet", outputs=[{"label": 1}, {"label": "x"}])
    second = Entry("b" * 32, "churn", source="precomputed", endpoint="lookup", outputs=[{"label": [1, 2]}])
    writer.record(first)
    writer.record(second)
    writer.close()
    got = query(LedgerLocation(tmp_path), "select prediction_id, row, outputs.label from ledger order by 1, 2")
    assert got == [("a" * 32, 0, "1"), ("a" * 32, 1, '"x"'), ("b" * 32, 0, "[1,2]")]


def test_a_writer_made_before_a_fork_writes_under_each_process_s_own_name(tmp_path: Path) -> None:
    writer = LedgerWriter(tmp_path, QUIET)  # no name given: this process's writer_id()
    entry = live_entry(rows(1))
    child = os.fork()
    if child == 0:  # a server's worker
        code = 1
        try:
            writer.start()
            writer.record(entry)
            writer.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    writer.start()
    writer.record(live_entry(rows(1)))
    writer.close()
    location = LedgerLocation(tmp_path)
    writers = {parse_name(Path(p).name).writer for p in location.segment_files("churn")}  # type: ignore[union-attr]
    assert len(writers) == 2 and writer.writer in writers
    assert sorted(p.name for p in (tmp_path / "_stats").iterdir()) == sorted(f"{w}.json" for w in writers)


def test_an_entry_with_no_usable_time_is_dropped_and_the_thread_carries_on(tmp_path: Path) -> None:
    writer = LedgerWriter(tmp_path, LedgerSettings(flush_seconds=0.05), writer="w1")
    writer.start()
    broken = live_entry(rows(1))._replace(predicted_at="yesterday")
    writer.record(broken)
    wait_for(lambda: writer.counts["dropped"] == 1)
    writer.record(live_entry(rows(2)))
    wait_for(lambda: writer.counts["records"] == 2)
    writer.close()


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="thread priorities are Linux's")
def test_the_writer_s_thread_runs_at_a_lower_priority_than_the_thread_that_serves(tmp_path: Path) -> None:
    from foretell.threads import BACKGROUND_NICENESS

    serving = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    if serving >= BACKGROUND_NICENESS:
        pytest.skip(f"this test already runs at nice {serving}: there is no lower priority to see")
    writer = LedgerWriter(tmp_path, LedgerSettings(flush_seconds=0.05), writer="w1")
    writer.start()
    writer.record(live_entry(rows(1)))
    thread = writer._thread
    assert thread is not None and thread.native_id is not None
    wait_for(lambda: os.getpriority(os.PRIO_PROCESS, thread.native_id) != serving)
    assert os.getpriority(os.PRIO_PROCESS, thread.native_id) == BACKGROUND_NICENESS
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == serving  # the caller's own is untouched
    writer.close()
    assert writer.counts["records"] == 1
