"""Scoring one chunk: the one prediction path, then a part file and a rejects file.

This is all a worker does, whichever engine runs it: validate the chunk with the
model's signature, predict the valid rows in one call, commit them as a staged part,
and commit the refused rows, with their original values and reasons, beside it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from foretell.batch.manifest import ChunkRecord
from foretell.batch.sinks import OutputFormat, commit_table, part_name
from foretell.batch.spec import StoreTarget
from foretell.core.model import Model
from foretell.errors import RowError
from foretell.registry import ModelSource

__all__ = ["ScoringSpec", "score_chunk"]


@dataclass(frozen=True)
class ScoringSpec:
    """Everything a worker needs, small enough to send to another process."""

    model: ModelSource
    """The version pinned at job start (so moving an alias mid-job changes nothing), and its predictor."""
    id_column: str
    passthrough: tuple[str, ...]
    staged: str
    staged_rejects: str
    output_format: OutputFormat
    predicted_at: str
    threads: int
    store: StoreTarget | None = None
    """With `--to-store`: the store and its unpublished generation this job fills (published with the output)."""


def score_chunk(model: Model, spec: ScoringSpec, number: int, batch: pa.RecordBatch) -> ChunkRecord:
    table = pa.Table.from_batches([batch])
    names = [name for name in model.signature.input_names if name in table.column_names]  # optional ones may be absent
    columns = model.coerce(table.select(names))
    predictions = model.predict_columns(columns)
    kept = pa.array(columns.rows)
    part = None
    if len(columns.rows):
        out: dict[str, pa.Array | pa.ChunkedArray] = {spec.id_column: table.column(spec.id_column).take(kept)}
        for name in spec.passthrough:
            out[name] = table.column(name).take(kept)
        scored = predictions.to_arrow()
        for name, column in zip(scored.column_names, scored.columns, strict=True):
            out[name] = column
        n = len(columns.rows)
        out["model_version"] = pa.array(np.full(n, model.info.version, dtype=np.int64))
        out["predicted_at"] = pa.array(np.full(n, _instant(spec.predicted_at)), pa.timestamp("us", tz="UTC"))
        part = part_name(number, spec.output_format)
        commit_table(pa.table(out), Path(spec.staged), part, spec.output_format, unique=(spec.id_column,))
        if spec.store is not None:
            _to_store(model, spec.store, spec.predicted_at, out[spec.id_column], predictions.to_records())
    reject_part = None
    if columns.errors:
        reject_part = part_name(number, "parquet")
        commit_table(_rejects(table, spec.id_column, number, columns.errors), Path(spec.staged_rejects), reject_part)
    return ChunkRecord(
        chunk=number,
        rows=table.num_rows,
        scored=len(columns.rows),
        rejected=table.num_rows - len(columns.rows),
        part=part,
        reject_part=reject_part,
    )


def _to_store(
    model: Model, target: StoreTarget, predicted_at: str, ids: pa.Array | pa.ChunkedArray, records: list[dict[str, Any]]
) -> None:
    """Each id's prediction into the job's store generation; a re-scored chunk overwrites its own keys."""
    store = target.open()
    try:
        version = model.info.version
        rows = ((str(key), record, version, predicted_at) for key, record in zip(ids.to_pylist(), records, strict=True))
        store.write_batch(model.info.name, target.generation, rows)
    finally:
        store.close()


def _instant(iso: str) -> np.datetime64:
    """The job's start time as a naive UTC datetime64 (Arrow's tz-aware timestamps store UTC)."""
    moment = datetime.fromisoformat(iso).astimezone(UTC).replace(tzinfo=None)
    return np.datetime64(moment, "us")


def _rejects(table: pa.Table, id_column: str, number: int, errors: list[RowError]) -> pa.Table:
    reasons: dict[int, list[str]] = defaultdict(list)
    for error in errors:
        if error.row is not None:
            reasons[error.row].append(error.describe())
    rows = sorted(reasons)
    originals = table.take(pa.array(rows)).to_pylist()
    return pa.table(
        {
            id_column: table.column(id_column).take(pa.array(rows)),
            "chunk": pa.array([number] * len(rows), pa.int64()),
            "row_in_chunk": pa.array(rows, pa.int64()),
            "values": pa.array([orjson.dumps(v, default=str).decode() for v in originals], pa.string()),
            "reason": pa.array(["; ".join(reasons[r]) for r in rows], pa.string()),
        }
    )
