"""The job history in `jobs.db`: opened the way every foretell SQLite file is (`foretell.database`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from foretell.batch.history import _SCHEMA, SCHEMA_VERSION, JobHistory
from foretell.errors import JobHistoryError, JobNotFound

JOB: dict[str, Any] = {
    "id": "job-20261129-013000-abcdef",
    "model_uri": "models:/churn/3",
    "model_version": 3,
    "input": "in.parquet",
    "output": "out/",
    "options": {"chunk_rows": 1000},
    "started_at": "2026-11-29T01:30:00+00:00",
}


def test_a_job_is_recorded_when_it_starts_and_updated_when_it_ends(tmp_path: Path):
    history = JobHistory(tmp_path)
    history.start(JOB)
    assert history.get(JOB["id"])["status"] == "running"
    counts = {"rows": 10, "scored": 9, "rejected": 1}
    history.finish(JOB["id"], "succeeded", counts, "2026-11-29T01:31:00+00:00", 60.0)
    job = history.get(JOB["id"])
    assert (job["status"], job["rows"], job["scored"], job["rejected"]) == ("succeeded", 10, 9, 1)
    assert job["options"] == {"chunk_rows": 1000}
    assert [j["id"] for j in JobHistory(tmp_path).list()] == [JOB["id"]]
    with pytest.raises(JobNotFound, match="foretell batch list"):
        history.get("job-nope")


def test_the_history_uses_write_ahead_logging_and_a_versioned_schema(tmp_path: Path):
    JobHistory(tmp_path)
    with sqlite3.connect(tmp_path / "jobs.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_jobs_db_from_before_the_schema_was_versioned_keeps_its_jobs(tmp_path: Path):
    conn = sqlite3.connect(tmp_path / "jobs.db")  # as foretell wrote it: the same table, user_version 0
    conn.execute(_SCHEMA)
    conn.execute(
        "INSERT INTO jobs (id, model_uri, model_version, input, output, status, options, started_at) "
        "VALUES ('job-old', 'models:/churn/1', 1, 'in', 'out', 'succeeded', '{}', '2025-01-01T00:00:00+00:00')"
    )
    conn.commit()
    conn.close()
    assert JobHistory(tmp_path).get("job-old")["status"] == "succeeded"


def test_a_damaged_jobs_db_is_a_foretell_error_naming_the_file(tmp_path: Path):
    (tmp_path / "jobs.db").write_bytes(b"not a database, " * 64)
    with pytest.raises(JobHistoryError, match=r"jobs\.db"):
        JobHistory(tmp_path)
