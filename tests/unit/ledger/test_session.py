"""LedgerSession: a model's window of the ledger as DuckDB views, over real segments, a real batch job and labels."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ledgerkit import at, customers_file, prediction, publish_segment

from foretell.batch import run
from foretell.errors import StoreError
from foretell.ledger.batch_index import batch_jobs
from foretell.ledger.labels import Label, write_labels
from foretell.ledger.query import LedgerReader
from foretell.ledger.segments import LedgerLocation


@pytest.fixture
def rows(tmp_path: Path) -> Path:
    return customers_file(tmp_path / "customers.parquet", 6)


def test_views_hold_the_window_s_live_rows_batch_rows_inputs_and_labels(models_home, rows, tmp_path):
    ledger = tmp_path / "ledger"
    result = run("sums/1", rows, tmp_path / "scores", home=models_home, workers=1, ledger=ledger)
    location = LedgerLocation(ledger)
    [job] = batch_jobs(location, "sums")
    assert job["input"]["paths"] == [str(rows.absolute())] and job["input"]["format"] == "parquet"
    when = job["predicted_at"][:16]
    live = [
        prediction("p1", when, key="C-1", model="sums", inputs={"a": 1.0, "b": 1.0}, outputs={"score": 2.0}),
        prediction("p2", when, key="C-2", model="sums", inputs={"a": 9.0, "b": 1.0}, outputs={"score": 10.0}),
    ]
    for row in live:
        row["predicted_at"] = at("2099-01-01T00:00")  # after the batch job: the label by key joins this one
    publish_segment(location, live)
    write_labels(location, "sums", [Label(key="C-2", label="1", label_value=1.0, observed_at=at("2099-01-02T00:00"))])

    with LedgerReader(ledger).session("sums") as session:
        by_source = dict(session.rows("SELECT source, count(*) FROM predictions GROUP BY source"))
        assert by_source == {"batch": 6, "live": 2}
        assert [j["job_id"] for j in session.jobs] == [result.job_id]
        inputs = session.rows('SELECT "key", a, b, job_id, version FROM batch_inputs ORDER BY "key"')
        assert inputs[0] == ("C-0", 0.0, 1.0, result.job_id, 1) and len(inputs) == 6
        live_inputs = session.rows("SELECT inputs.a, outputs.score FROM predictions WHERE source = 'live' ORDER BY 1")
        assert live_inputs == [(1.0, 2.0), (9.0, 10.0)]
        labelled = session.rows("SELECT prediction_id, source, label_value FROM labelled WHERE label_id IS NOT NULL")
        assert sorted(labelled) == [(result.job_id, "batch", 1.0), ("p2", "live", 1.0)]
        assert session.rows("SELECT count(*) FROM labels") == [(1,)]
        table = session.arrow("SELECT * FROM predictions WHERE source = 'batch'")
        assert table.num_rows == 6 and "outputs" in table.column_names

    with LedgerReader(ledger).session("sums", since=at("2098-01-01T00:00")) as later:
        assert later.rows("SELECT source, count(*) FROM predictions GROUP BY source") == [("live", 2)]
        assert later.rows("SELECT count(*) FROM batch_inputs") == [(0,)] and later.jobs == []


def test_a_rewritten_or_removed_input_file_gives_no_batch_inputs(models_home, rows, tmp_path):
    ledger = tmp_path / "ledger"
    run("sums/1", rows, tmp_path / "scores", home=models_home, workers=1, ledger=ledger)
    stat = rows.stat()
    os.utime(rows, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # rewritten since the job read it
    with LedgerReader(ledger).session("sums") as session:
        assert session.rows("SELECT count(*) FROM batch_inputs") == [(0,)]
        assert session.rows("SELECT count(*) FROM predictions") == [(6,)]  # the scores are still the job's
    rows.unlink()
    with LedgerReader(ledger).session("sums") as session:
        assert session.rows("SELECT count(*) FROM batch_inputs") == [(0,)]


def test_an_empty_ledger_has_every_view_and_no_rows(tmp_path):
    with LedgerReader(tmp_path / "nothing").session("churn") as session:
        for view in ("predictions", "labelled", "labels", "batch_inputs"):
            assert session.rows(f"SELECT count(*) FROM {view}") == [(0,)]
        assert session.rows("SELECT count(*) FROM predictions WHERE source = 'live' AND latency_ms > 0") == [(0,)]


def test_a_segment_compacted_away_between_listing_and_query_is_read_from_its_new_file(tmp_path):
    location = LedgerLocation(tmp_path / "ledger")
    first = publish_segment(location, [prediction("p1", "2026-12-04T10:00", key="C-1")])
    session = LedgerReader(location).session("churn")
    try:
        # What a compaction does: the rows move to another file and the listed one disappears.
        publish_segment(location, [prediction("p1", "2026-12-04T10:00", key="C-1")], writer="w2", seq=1)
        Path(first).unlink()
        assert session.rows("SELECT prediction_id FROM predictions") == [("p1",)]
    finally:
        session.close()


def test_a_file_that_is_not_the_ledger_s_is_a_store_error(tmp_path):
    location = LedgerLocation(tmp_path / "ledger")
    path = publish_segment(location, [prediction("p1", "2026-12-04T10:00", key="C-1")])
    Path(path).write_bytes(b"not parquet")
    with pytest.raises(StoreError, match="cannot read the ledger"), LedgerReader(location).session("churn") as s:
        s.rows("SELECT count(*) FROM predictions")
