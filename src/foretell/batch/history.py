"""Job history: every batch job, its pinned model version, status, counts and timings, in SQLite."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from foretell.database import Database
from foretell.errors import JobHistoryError, JobNotFound

__all__ = ["JobHistory"]

SCHEMA_VERSION = 1
# IF NOT EXISTS: a jobs.db from before the schema was versioned (user_version 0) already
# holds this table, and is brought to version 1 as it is.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    model_uri TEXT NOT NULL,
    model_version INTEGER NOT NULL,
    input TEXT NOT NULL,
    output TEXT NOT NULL,
    status TEXT NOT NULL,
    options TEXT NOT NULL,
    rows INTEGER NOT NULL DEFAULT 0,
    scored INTEGER NOT NULL DEFAULT 0,
    rejected INTEGER NOT NULL DEFAULT 0,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    seconds REAL,
    message TEXT
)
"""
STATUSES = ("running", "succeeded", "failed", "interrupted")


class JobHistory:
    """Every batch job under `home/jobs.db`; safe to share between threads and processes."""

    def __init__(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.path = home / "jobs.db"
        self._db = Database(
            self.path,
            what="job history",
            error=JobHistoryError,
            schema=(_SCHEMA,),
            version=SCHEMA_VERSION,
            rows_as_mappings=True,
        )
        self._db.create_schema()

    def start(self, job: Mapping[str, Any]) -> None:
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO jobs (id, model_uri, model_version, input, output, status, options, started_at) "
                "VALUES (?, ?, ?, ?, ?, 'running', ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET status = 'running', finished_at = NULL, message = NULL",
                (
                    job["id"],
                    job["model_uri"],
                    job["model_version"],
                    job["input"],
                    job["output"],
                    json.dumps(job["options"]),
                    job["started_at"],
                ),
            )

    def finish(
        self,
        job_id: str,
        status: str,
        counts: Mapping[str, int],
        finished_at: str,
        seconds: float,
        message: str | None = None,
    ) -> None:
        with self._db.write() as conn:
            conn.execute(
                "UPDATE jobs SET status = ?, rows = ?, scored = ?, rejected = ?, finished_at = ?, seconds = ?, "
                "message = ? WHERE id = ?",
                (status, counts["rows"], counts["scored"], counts["rejected"], finished_at, seconds, message, job_id),
            )

    def get(self, job_id: str) -> dict[str, Any]:
        with self._db.read() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(f"no batch job {job_id!r} in {self.path.parent}; `foretell batch list` shows them")
        return _plain(row)

    def list(self, limit: int = 50) -> list[dict[str, Any]]:
        with self._db.read() as conn:
            rows = conn.execute("SELECT * FROM jobs ORDER BY started_at DESC LIMIT ?", (limit,)).fetchall()
        return [_plain(row) for row in rows]


def _plain(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    data["options"] = json.loads(data["options"])
    return data
