"""The batch index: written when a real batch job publishes, again on a resume, and read back by queries."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest
from ledgerkit import batch_job, customers_file

from foretell.batch import run
from foretell.errors import InvalidInput
from foretell.ledger.batch_index import batch_jobs, index_job, index_path
from foretell.ledger.query import LedgerReader
from foretell.ledger.segments import LedgerLocation


@pytest.fixture
def rows(tmp_path: Path) -> Path:
    return customers_file(tmp_path / "customers.parquet", 10)


def test_index_round_trip_and_rewrite(tmp_path):
    location = LedgerLocation(tmp_path / "ledger")
    record = batch_job(location, tmp_path / "out", "job-1", "2026-12-04T02:00", ["C-1"], [0.5])
    assert batch_jobs(location, "churn") == [record]
    index_job(location, {**record, "rows": 1})  # a resume indexes again: one file, never two
    assert len(batch_jobs(location, "churn")) == 1
    assert Path(index_path(location, "churn", "job-1")).is_file()
    (Path(index_path(location, "churn", "job-1")).parent / "notes.txt").write_text("not an index")
    assert batch_jobs(location, "churn") == [record] and batch_jobs(location, "other") == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"job_id": "../escape"}, "job_id must be a plain name"),
        ({"parts": []}, "lists its part files"),
    ],
)
def test_a_bad_record_is_refused(tmp_path, change, reason):
    location = LedgerLocation(tmp_path / "ledger")
    record = batch_job(location, tmp_path / "out", "job-1", "2026-12-04T02:00", ["C-1"], [0.5])
    with pytest.raises(InvalidInput, match=reason):
        index_job(location, {**record, **change})
    incomplete = {k: v for k, v in record.items() if k != "sha256"}
    with pytest.raises(InvalidInput, match="needs sha256"):
        index_job(location, incomplete)


def test_a_published_job_is_indexed_and_its_rows_found_by_key(models_home, rows, tmp_path):
    ledger = tmp_path / "ledger"
    result = run("sums/1", rows, tmp_path / "scores", home=models_home, workers=1, chunk_rows=4, ledger=ledger)

    [job] = batch_jobs(LedgerLocation(ledger), "sums")
    assert job["job_id"] == result.job_id and job["rows"] == 10 and job["version"] == 1
    assert job["id_column"] == "customer_id" and job["outputs"] == ["score"] and len(job["parts"]) == 3
    assert all(Path(p).is_file() for p in job["parts"])
    [found] = LedgerReader(ledger).history("sums", key="C-7")
    assert found["source"] == "batch" and found["prediction_id"] == result.job_id
    assert found["outputs"] == {"score": 8.0}


def test_a_single_file_output_indexes_the_file(models_home, rows, tmp_path):
    ledger = tmp_path / "ledger"
    output = tmp_path / "scores.parquet"
    run("sums/1", rows, output, home=models_home, workers=1, single_file=True, ledger=ledger)
    [job] = batch_jobs(LedgerLocation(ledger), "sums")
    assert job["parts"] == [str(output)]
    assert LedgerReader(ledger).history("sums", key="C-2")[0]["outputs"] == {"score": 3.0}


def test_no_ledger_and_text_outputs_are_not_indexed(models_home, rows, tmp_path):
    run("sums/1", rows, tmp_path / "a", home=models_home, workers=1, ledger=False)
    run("sums/1", rows, tmp_path / "b", home=models_home, workers=1, output_format="csv", ledger=tmp_path / "ledger")
    assert not (tmp_path / "ledger").exists()
    in_default_ledger = batch_jobs(LedgerLocation(models_home / "ledger"), "sums")  # where ledger=True would go
    assert all(job["output"] != str(tmp_path / "a") for job in in_default_ledger)


def test_a_job_resumed_after_publishing_indexes_itself(models_home, rows, tmp_path):
    ledger = tmp_path / "ledger"
    output = tmp_path / "scores"
    result = run("sums/1", rows, output, home=models_home, workers=1, ledger=ledger)
    index = Path(index_path(LedgerLocation(ledger), "sums", result.job_id))
    index.unlink()  # as if killed between publishing and indexing

    run("sums/1", rows, output, home=models_home, workers=1, resume=True)
    assert orjson.loads(index.read_bytes())["job_id"] == result.job_id
    assert len(batch_jobs(LedgerLocation(ledger), "sums")) == 1


def test_a_ledger_that_cannot_be_written_never_fails_a_published_job(models_home, rows, tmp_path, caplog):
    blocker = tmp_path / "ledger"
    blocker.write_text("a file where the ledger folder should be")
    with caplog.at_level(logging.WARNING, logger="foretell.batch.ledger_index"):
        result = run("sums/1", rows, tmp_path / "scores", home=models_home, workers=1, ledger=blocker)
    assert result.status == "succeeded" and (tmp_path / "scores" / "_SUCCESS").is_file()
    assert "could not be indexed in the ledger" in caplog.text
