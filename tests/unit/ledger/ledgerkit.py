"""Ledger files as the writer and a batch job leave them, built by hand (imported by name: tests are not a package).

Segments are Arrow tables with the spec's columns (`record.SEGMENT_COLUMNS`, then the
`inputs` and `outputs` structs) published through `LedgerLocation.publish_table`, so these
tests stand on the shared contract, not on the writer being built beside them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from foretell.ledger.batch_index import index_job
from foretell.ledger.record import SEGMENT_COLUMNS
from foretell.ledger.rows import SEGMENT_TYPES
from foretell.ledger.segments import LedgerLocation, compacted_name, segment_name


def at(text: str) -> datetime:
    """`2026-12-04T10:00` as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def prediction(
    prediction_id: str,
    when: str,
    *,
    key: str | None = None,
    source: str = "live",
    version: int = 1,
    row: int = 0,
    status: str = "ok",
    inputs: dict[str, Any] | None = None,
    outputs: dict[str, Any] | None = None,
    model: str = "churn",
) -> dict[str, Any]:
    """One ledger row as a dict (`when` is UTC)."""
    return {
        "prediction_id": prediction_id,
        "row": row,
        "predicted_at": at(when),
        "model": model,
        "version": version,
        "sha256": "ab" * 32,
        "predictor": "original",
        "source": source,
        "transport": "http",
        "endpoint": "infer" if source == "live" else "lookup",
        "key": key,
        "request_id": None,
        "latency_ms": 1.5,
        "batch_size": 1,
        "status": status,
        "error": None if status == "ok" else "a = -1 broke the model",
        "inputs": inputs if status == "ok" else None,
        "outputs": (outputs if outputs is not None else {"score": 0.5}) if status == "ok" else None,
    }


def segment_table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    columns: dict[str, pa.Array] = {
        name: pa.array([r[name] for r in rows], SEGMENT_TYPES[name]) for name in SEGMENT_COLUMNS
    }
    for struct in ("inputs", "outputs"):
        values = [r[struct] for r in rows]
        if any(v is not None for v in values):
            columns[struct] = pa.array(values)
    return pa.table(columns)


def publish_segment(
    location: LedgerLocation, rows: Sequence[dict[str, Any]], *, writer: str = "w1", seq: int = 1
) -> str:
    """A segment in the partition of its first row's model and UTC date."""
    first = rows[0]["predicted_at"]
    folder = location.partition(rows[0]["model"], first.astimezone(UTC).date().isoformat())
    path = f"{folder}/{segment_name(int(first.timestamp() * 1000), writer, seq)}"
    location.publish_table(path, segment_table(rows))
    return path


def publish_compacted(
    location: LedgerLocation, rows: Sequence[dict[str, Any]], *, writer: str, first: int, last: int
) -> str:
    start = rows[0]["predicted_at"]
    folder = location.partition(rows[0]["model"], start.astimezone(UTC).date().isoformat())
    path = f"{folder}/{compacted_name(writer, first, last)}"
    location.publish_table(path, segment_table(rows))
    return path


def batch_job(
    location: LedgerLocation,
    folder: Path,
    job_id: str,
    when: str,
    ids: Sequence[Any],
    scores: Sequence[float],
    *,
    version: int = 1,
    model: str = "churn",
    id_column: str = "customer_id",
) -> dict[str, Any]:
    """A published batch output's part file, laid out as `batch/scoring.py` writes it, and its index entry."""
    folder.mkdir(parents=True, exist_ok=True)
    moment = at(when)
    part = folder / "part-000000.parquet"
    pq.write_table(
        pa.table(
            {
                id_column: pa.array(list(ids)),
                "score": pa.array(list(scores), pa.float64()),
                "model_version": pa.array([version] * len(ids), pa.int64()),
                "predicted_at": pa.array([moment] * len(ids), pa.timestamp("us", tz="UTC")),
            }
        ),
        part,
    )
    record = {
        "job_id": job_id,
        "model": model,
        "version": version,
        "sha256": "cd" * 32,
        "predictor": "original",
        "id_column": id_column,
        "outputs": ["score"],
        "parts": [str(part)],
        "rows": len(ids),
        "predicted_at": moment.isoformat(),
        "published_at": moment.isoformat(),
        "output": str(folder),
    }
    index_job(location, record)
    return record


def customers_file(path: Path, n: int) -> Path:
    """A batch input of `n` customers (`C-0`...) with two float columns `a` (0, 1, ...) and `b` (1.0)."""
    ids = [f"C-{i}" for i in range(n)]
    pq.write_table(pa.table({"customer_id": ids, "a": [float(i) for i in range(n)], "b": [1.0] * n}), path)
    return path
