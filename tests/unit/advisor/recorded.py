"""Recorded traffic as the ledger keeps it: segments and indexed batch jobs, written as real Parquet files.

Imported by name (tests are not a package). Rows have the ledger's columns and Arrow types
(`ledger.record.SEGMENT_COLUMNS`, `ledger.rows.SEGMENT_TYPES`) and are published through
`LedgerLocation`, as the server's writer and a batch job leave them, so the advisor is
tested on the files themselves, with times chosen to make each case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from foretell.ledger.batch_index import index_job
from foretell.ledger.record import SEGMENT_COLUMNS
from foretell.ledger.rows import SEGMENT_TYPES
from foretell.ledger.segments import LedgerLocation, segment_name

MODEL = "churn"
DAY0 = datetime(2026, 12, 1, tzinfo=UTC)
# Roughly the demo churn model on this machine (as tests/unit/advisor/test_cost.py).

ENDPOINTS = {"live": "infer", "precomputed": "lookup", "live-fallback": "lookup", "event-refresh": "events"}


@dataclass(frozen=True)
class Row:
    at: datetime
    source: str
    key: str | None
    latency_ms: float = 1.0
    status: str = "ok"


class Recording:
    """A ledger folder being filled: `job(...)` indexes a batch output, `segment(rows)` publishes traffic."""

    def __init__(self, root: Path, model: str = MODEL) -> None:
        self.root = root
        self.ledger = root / "ledger"
        self.location = LedgerLocation(self.ledger)
        self.model = model
        self._seq = 0
        self._ids = 0

    def job(self, job_id: str, at: datetime, keys: Sequence[str]) -> dict[str, Any]:
        folder = self.root / "outputs" / job_id
        folder.mkdir(parents=True, exist_ok=True)
        part = folder / "part-000000.parquet"
        n = len(keys)
        pq.write_table(
            pa.table(
                {
                    "customer_id": pa.array(list(keys)),
                    "score": pa.array([0.5] * n, pa.float64()),
                    "model_version": pa.array([1] * n, pa.int64()),
                    "predicted_at": pa.array([at] * n, pa.timestamp("us", tz="UTC")),
                }
            ),
            part,
        )
        record = {
            "job_id": job_id,
            "model": self.model,
            "version": 1,
            "sha256": "cd" * 32,
            "predictor": "original",
            "id_column": "customer_id",
            "outputs": ["score"],
            "parts": [str(part)],
            "rows": n,
            "predicted_at": at.isoformat(),
            "published_at": at.isoformat(),
            "output": str(folder),
        }
        index_job(self.location, record)
        return record

    def segment(self, rows: Sequence[Row]) -> None:
        """Publish `rows` as segments, one per UTC date (as the writer partitions them)."""
        by_date: dict[str, list[Row]] = {}
        for row in sorted(rows, key=lambda r: r.at):
            by_date.setdefault(row.at.date().isoformat(), []).append(row)
        for date, chunk in by_date.items():
            self._seq += 1
            path = f"{self.location.partition(self.model, date)}/"
            path += segment_name(int(chunk[0].at.timestamp() * 1000), "w1", self._seq)
            self.location.publish_table(path, self._table(chunk))

    def _table(self, rows: Sequence[Row]) -> pa.Table:
        records = []
        for row in rows:
            self._ids += 1
            ok = row.status == "ok"
            records.append(
                {
                    "prediction_id": f"{self._ids:032x}",
                    "row": 0,
                    "predicted_at": row.at,
                    "model": self.model,
                    "version": 1,
                    "sha256": "ab" * 32,
                    "predictor": "original",
                    "source": row.source,
                    "transport": "http",
                    "endpoint": ENDPOINTS[row.source],
                    "key": row.key,
                    "request_id": None,
                    "latency_ms": row.latency_ms,
                    "batch_size": 1 if row.source != "precomputed" else 0,
                    "status": row.status,
                    "error": None if ok else "the model is overloaded",
                    "score": 0.5 if ok else None,
                }
            )
        columns: dict[str, pa.Array] = {
            name: pa.array([r[name] for r in records], SEGMENT_TYPES[name]) for name in SEGMENT_COLUMNS
        }
        columns["outputs"] = pa.array([{"score": r["score"]} if r["score"] is not None else None for r in records])
        return pa.table(columns)


def seconds(day: int, second: float) -> datetime:
    return DAY0 + timedelta(days=day, seconds=second)
