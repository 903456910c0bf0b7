"""LedgerReader over real segment files and real batch parts: history, filters, export with labels, stats."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from ledgerkit import at, batch_job, prediction, publish_compacted, publish_segment

from foretell.errors import InvalidInput, StoreError
from foretell.ledger.labels import Label, write_labels
from foretell.ledger.query import LedgerReader
from foretell.ledger.segments import LedgerLocation


@pytest.fixture
def location(tmp_path: Path) -> LedgerLocation:
    return LedgerLocation(tmp_path / "ledger")


def test_history_of_a_key_holds_batch_and_live_rows_newest_first(location, tmp_path):
    publish_segment(location, [prediction("p1", "2026-12-04T10:00", key="C-1", outputs={"score": 0.7})])
    publish_segment(
        location,
        [
            prediction("p2", "2026-12-04T11:00", key="C-2"),
            prediction("p3", "2026-12-04T12:00", key="C-1", source="precomputed", outputs={"score": 0.4}),
        ],
        seq=2,
    )
    batch_job(location, tmp_path / "out", "job-1", "2026-12-04T02:00", ["C-1", "C-2"], [0.4, 0.9], version=2)

    rows = LedgerReader(location).history("churn", key="C-1")

    assert [(r["prediction_id"], r["source"]) for r in rows] == [
        ("p3", "precomputed"),
        ("p1", "live"),
        ("job-1", "batch"),
    ]
    batch = rows[2]
    assert batch["key"] == "C-1" and batch["row"] is None and batch["version"] == 2
    assert batch["outputs"] == {"score": 0.4} and batch["inputs"] is None
    assert batch["status"] == "ok" and batch["transport"] == "batch" and batch["sha256"] == "cd" * 32
    assert batch["predicted_at"] == "2026-12-04T02:00:00+00:00"
    assert rows[1]["outputs"] == {"score": 0.7} and rows[1]["latency_ms"] == 1.5
    orjson.dumps(rows)  # plain values only: the CLI prints them as JSON


def test_filters_by_source_version_time_and_limit(location, tmp_path):
    publish_segment(
        location,
        [
            prediction("p1", "2026-12-03T10:00", key="C-1", version=1),
            prediction("p2", "2026-12-03T11:00", key="C-1", version=2, source="event-refresh"),
        ],
    )
    publish_segment(location, [prediction("p3", "2026-12-04T09:00", key="C-1", version=2)], seq=2)
    batch_job(location, tmp_path / "out", "job-1", "2026-12-04T02:00", ["C-1"], [0.3], version=2)
    reader = LedgerReader(location)

    assert [r["prediction_id"] for r in reader.history("churn", source="batch")] == ["job-1"]
    assert [r["prediction_id"] for r in reader.history("churn", source="event-refresh")] == ["p2"]
    assert [r["prediction_id"] for r in reader.history("churn", version=2)] == ["p3", "job-1", "p2"]
    assert [r["prediction_id"] for r in reader.history("churn", since=at("2026-12-04T00:00"))] == ["p3", "job-1"]
    until = reader.history("churn", until=at("2026-12-03T10:30"))
    assert [r["prediction_id"] for r in until] == ["p1"]
    assert [r["prediction_id"] for r in reader.history("churn", limit=2)] == ["p3", "job-1"]
    assert reader.history("churn", key="nobody") == [] and reader.history("other") == []
    with pytest.raises(InvalidInput, match="source must be one of"):
        reader.history("churn", source="nightly")


def test_since_reads_only_the_date_partitions_it_needs(location):
    old = publish_segment(location, [prediction("p1", "2026-11-01T10:00", key="C-1")])
    publish_segment(location, [prediction("p2", "2026-12-04T10:00", key="C-1")], seq=2)
    Path(old).write_bytes(b"not parquet at all")  # a partition outside the range is never opened

    rows = LedgerReader(location).history("churn", since=at("2026-12-01T00:00"))
    assert [r["prediction_id"] for r in rows] == ["p2"]
    with pytest.raises(StoreError, match=r"cannot read the ledger at .*: "):
        LedgerReader(location).history("churn")


def test_a_compacted_file_hides_the_segments_it_covers(location):
    first = [prediction("p1", "2026-12-04T10:00", key="C-1")]
    second = [prediction("p2", "2026-12-04T10:01", key="C-1")]
    publish_segment(location, first, writer="w1", seq=1)
    publish_segment(location, second, writer="w1", seq=2)
    publish_segment(location, [prediction("p9", "2026-12-04T10:02", key="C-1")], writer="w2", seq=1)
    # Compacted, and the originals not yet deleted: a reader must count each row once.
    publish_compacted(location, first + second, writer="w1", first=1, last=2)

    rows = LedgerReader(location).history("churn", key="C-1")
    assert sorted(r["prediction_id"] for r in rows) == ["p1", "p2", "p9"]
    assert LedgerReader(location).stats()["models"]["churn"]["rows"] == 3


def test_segments_with_different_struct_fields_read_as_one(location):
    publish_segment(
        location,
        [prediction("p1", "2026-12-04T10:00", key="C-1", inputs={"tenure": 3.0}, outputs={"score": 0.2})],
    )
    publish_segment(
        location,
        [
            prediction(
                "p2",
                "2026-12-04T11:00",
                key="C-1",
                version=2,
                inputs={"tenure": 4.0, "plan": "pro"},
                outputs={"score": 0.6, "proba": [0.4, 0.6]},
            ),
            prediction("p3", "2026-12-04T11:30", key="C-1", status="error"),
        ],
        seq=2,
    )

    rows = LedgerReader(location).history("churn", key="C-1")
    assert [r["prediction_id"] for r in rows] == ["p3", "p2", "p1"]
    assert rows[0]["status"] == "error" and rows[0]["outputs"] is None and rows[0]["error"]
    assert rows[1]["inputs"] == {"tenure": 4.0, "plan": "pro"}
    assert rows[1]["outputs"] == {"score": 0.6, "proba": [0.4, 0.6]}
    assert rows[2]["inputs"] == {"tenure": 3.0, "plan": None}
    assert rows[2]["outputs"] == {"score": 0.2, "proba": None}


def test_a_deleted_batch_output_leaves_the_ledger(location, tmp_path):
    record = batch_job(location, tmp_path / "out", "job-1", "2026-12-04T02:00", ["C-1"], [0.5])
    Path(record["parts"][0]).unlink()
    assert LedgerReader(location).history("churn") == []
    assert LedgerReader(location).history("churn", key="C-1") == []


def test_an_integer_id_column_is_found_by_its_text(location, tmp_path):
    batch_job(location, tmp_path / "out", "job-1", "2026-12-04T02:00", [41, 42, 43], [0.1, 0.2, 0.3])
    rows = LedgerReader(location).history("churn", key="42")
    assert [(r["key"], r["outputs"]) for r in rows] == [("42", {"score": 0.2})]
    assert LedgerReader(location).history("churn", key="C-42") == []


def test_export_joins_labels_point_in_time_per_source_and_by_id(location, tmp_path):
    publish_segment(
        location,
        [
            prediction("live-1", "2026-12-04T09:00", key="C-1"),
            prediction("live-2", "2026-12-04T11:00", key="C-1"),  # after the outcome: never joined by key
            prediction("look-1", "2026-12-04T08:00", key="C-1", source="precomputed"),
            prediction("fail-1", "2026-12-04T09:30", key="C-1", status="error"),  # errors are not joined by key
            prediction("multi", "2026-12-04T09:00", key="C-2", row=0),
            prediction("multi", "2026-12-04T09:00", key="C-3", row=1),
            prediction("live-9", "2026-12-04T09:00", key="C-9"),
        ],
    )
    batch_job(location, tmp_path / "out", "job-1", "2026-12-04T02:00", ["C-1", "C-4"], [0.4, 0.9])
    write_labels(
        location,
        "churn",
        [
            Label("1", 1.0, at("2026-12-04T10:00"), key="C-1"),
            Label("churned", None, at("2026-12-04T10:00"), prediction_id="multi", row=1),
            Label("0", 0.0, at("2026-12-01T00:00"), key="C-4"),  # before the batch job ran: joins nothing
            Label("1", 1.0, at("2026-12-05T00:00"), key="C-9"),
        ],
        now=at("2026-12-05T00:00"),
    )
    # A later load corrects C-9's label: the one loaded last wins.
    write_labels(location, "churn", [Label("0", 0.0, at("2026-12-05T00:00"), key="C-9")], now=at("2026-12-06T00:00"))

    counts = LedgerReader(location).export("churn", output=tmp_path / "export.parquet")

    table = pq.read_table(tmp_path / "export.parquet")
    labelled = {
        (r["prediction_id"], r["key"]): (r["label"], r["label_value"])
        for r in table.to_pylist()
        if r["label_id"] is not None
    }
    assert labelled == {
        ("live-1", "C-1"): ("1", 1.0),  # the latest live prediction before the label
        ("look-1", "C-1"): ("1", 1.0),  # and, per source, the latest lookup
        ("job-1", "C-1"): ("1", 1.0),  # and the batch score
        ("multi", "C-3"): ("churned", None),  # by prediction id and row
        ("live-9", "C-9"): ("0", 0.0),
    }
    assert counts.rows == table.num_rows == 9 and counts.labelled == 5
    assert table.schema.field("label_observed_at").type.tz == "UTC"
    assert {"inputs", "outputs", "source", "version"} <= set(table.column_names)


def test_export_without_labels_or_rows(location, tmp_path):
    empty = LedgerReader(location).export("churn", output=tmp_path / "none.parquet")
    assert (empty.rows, empty.labelled) == (0, 0)
    assert "label" in pq.read_schema(tmp_path / "none.parquet").names

    publish_segment(location, [prediction("p1", "2026-12-04T10:00", key="C-1")])
    counts = LedgerReader(location).export("churn", output=tmp_path / "one.parquet", since=at("2026-12-04T00:00"))
    assert (counts.rows, counts.labelled) == (1, 0)


def test_stats_counts_rows_files_labels_and_writers(location, tmp_path):
    publish_segment(location, [prediction("p1", "2026-12-03T10:00", key="C-1")])
    publish_segment(
        location,
        [prediction("p2", "2026-12-04T10:00", key="C-1", status="error"), prediction("p3", "2026-12-04T11:00")],
        seq=2,
    )
    batch_job(location, tmp_path / "out", "job-1", "2026-12-04T02:00", ["C-1", "C-2", "C-3"], [0.1, 0.2, 0.3])
    write_labels(location, "churn", [Label("1", 1.0, at("2026-12-04T12:00"), key="C-1")])
    for name, records, dropped in (("w1", 10, 2), ("w2", 5, 0)):
        counts = {"writer": name, "records": records, "dropped": dropped, "retention_deleted_segments": 1}
        location.publish_bytes(location.join("_stats", f"{name}.json"), orjson.dumps(counts))

    stats = LedgerReader(location).stats()

    churn = stats["models"]["churn"]
    assert churn["rows_by_source"] == {"batch": 3, "live": 3} and churn["rows"] == 6 and churn["errors"] == 1
    assert churn["refused"] == 0
    assert churn["segment_files"] == 2 and churn["segment_bytes"] > 0 and churn["batch_jobs"] == 1
    assert churn["oldest"] == "2026-12-03T10:00:00+00:00" and churn["newest"] == "2026-12-04T11:00:00+00:00"
    assert churn["labels"] == 1
    assert stats["writers"] == {
        "writers": 2,
        "records": 15,
        "dropped": 2,
        "retention_deleted_segments": 2,
        "retention_deleted_bytes": 0,
    }


def test_a_ledger_under_an_fsspec_url(tmp_path):
    location = LedgerLocation("memory://ledger-test-query")
    publish_segment(location, [prediction("p1", "2026-12-04T10:00", key="C-1")])
    for seq in range(2, 12):  # enough segments for a query by key to narrow them first
        publish_segment(location, [prediction(f"x{seq}", f"2026-12-04T11:{seq:02d}", key="C-2")], seq=seq)
    write_labels(location, "churn", [Label("1", 1.0, at("2026-12-04T12:00"), key="C-1")])
    reader = LedgerReader("memory://ledger-test-query")

    assert [r["prediction_id"] for r in reader.history("churn", key="C-1")] == ["p1"]
    assert reader.export("churn", output=tmp_path / "x.parquet").labelled == 1
    assert reader.stats()["models"]["churn"]["labels"] == 1


def test_a_key_among_many_segments_of_different_fields(location):
    """Past a few segments, a query by key first finds the files that hold it: the answer is the same."""
    for seq in range(1, 13):
        rows = [prediction(f"p{seq}-{i}", f"2026-12-04T{seq:02d}:{i:02d}", key=f"C-{seq}-{i}") for i in range(3)]
        if seq in (4, 9):
            fields = {"score": 0.1 * seq} if seq == 4 else {"score": 0.9, "proba": [0.1, 0.9]}
            rows.append(prediction(f"hit-{seq}", f"2026-12-04T{seq:02d}:30", key="C-42", outputs=fields))
        publish_segment(location, rows, seq=seq)

    rows = LedgerReader(location).history("churn", key="C-42")
    assert [(r["prediction_id"], r["outputs"]) for r in rows] == [
        ("hit-9", {"score": 0.9, "proba": [0.1, 0.9]}),
        ("hit-4", {"score": pytest.approx(0.4), "proba": None}),
    ]
    assert LedgerReader(location).history("churn", key="C-42", source="precomputed") == []
    # The newest rows, without a key: only the segments holding them are read whole.
    newest = LedgerReader(location).history("churn", limit=4)
    assert [r["prediction_id"] for r in newest] == ["p12-2", "p12-1", "p12-0", "p11-2"]
    every = LedgerReader(location).history("churn", limit=40)
    assert len(every) == 38 and [r["prediction_id"] for r in every][-2:] == ["p1-1", "p1-0"]
    assert [r["outputs"] for r in every if r["prediction_id"] == "hit-9"] == [{"score": 0.9, "proba": [0.1, 0.9]}]


class CompactedWhileListed(LedgerLocation):
    """A ledger whose writer compacts a partition right after a reader listed it (the race, made certain)."""

    def __init__(self, where: Path, compact: list[dict]) -> None:
        super().__init__(where)
        self.compact = compact
        self.listings = 0

    def segment_files(self, model, dates=None):
        listed = super().segment_files(model, dates)
        self.listings += 1
        if self.listings == 1:
            publish_compacted(self, self.compact, writer="w1", first=1, last=2)
            for path in listed:
                self.remove(path)
        return listed


def test_segments_compacted_between_listing_and_reading_are_read_from_the_compacted_file(tmp_path):
    first = [prediction("p1", "2026-12-04T10:00", key="C-1")]
    second = [prediction("p2", "2026-12-04T10:01", key="C-1")]
    location = CompactedWhileListed(tmp_path / "ledger", first + second)
    publish_segment(location, first, writer="w1", seq=1)
    publish_segment(location, second, writer="w1", seq=2)

    rows = LedgerReader(location).history("churn", key="C-1")
    assert [r["prediction_id"] for r in rows] == ["p2", "p1"] and location.listings == 2
