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

from foretell import tracing
from foretell.batch.arrays import arrow_array
from foretell.batch.compare import line_up, scored_by
from foretell.batch.manifest import ChunkRecord
from foretell.batch.sinks import OutputFormat, commit_table, part_name
from foretell.batch.spec import StoreTarget
from foretell.core.model import Model
from foretell.errors import RowError
from foretell.registry import ModelSource

__all__ = ["ScoringSpec", "arrow_array", "score_chunk"]


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
    challenger: ModelSource | None = None
    """With `--compare`: the challenger version, pinned at job start, that scores every chunk too."""
    traceparent: str | None = None
    """While tracing: the job's span, which each chunk's span continues (in whichever process scores it)."""


def score_chunk(
    model: Model, spec: ScoringSpec, number: int, batch: pa.RecordBatch, challenger: Model | None = None
) -> ChunkRecord:
    """Score one chunk with `model` (and `challenger`, loaded from `spec.challenger`), commit its part and rejects."""
    if spec.traceparent is None:
        return _score_chunk(model, spec, number, batch, challenger)
    attributes = {"foretell.chunk": number, "foretell.rows": batch.num_rows}
    with tracing.resumed(spec.traceparent, "chunk", **attributes) as span:
        record = _score_chunk(model, spec, number, batch, challenger)
        if span is not None:
            span.set_attributes({"foretell.scored": record.scored, "foretell.rejected": record.rejected})
        return record


def _score_chunk(
    model: Model, spec: ScoringSpec, number: int, batch: pa.RecordBatch, challenger: Model | None
) -> ChunkRecord:
    theirs = scored_by(challenger, batch) if challenger is not None and number % 2 else None  # see batch.compare
    with tracing.maybe_span("predict"):
        mine = scored_by(model, batch)
    if challenger is not None and theirs is None:
        theirs = scored_by(challenger, batch)
    side = None if theirs is None else line_up(batch, mine, theirs)
    columns, predictions = mine.columns, mine.predictions
    n = len(columns.rows)
    # Every row valid (the usual case): the input's own columns go out as they came, with no take.
    kept = None if n == batch.num_rows else arrow_array(columns.rows.astype(np.int64))
    part = None
    if n:
        out: dict[str, pa.Array] = {spec.id_column: _rows(batch.column(spec.id_column), kept)}
        for name in spec.passthrough:
            out[name] = _rows(batch.column(name), kept)
        for name, column in predictions.columns.items():
            out[name] = arrow_array(column)
        out["model_version"] = arrow_array(np.full(n, model.info.version, dtype=np.int64))
        instant = np.full(n, _instant(spec.predicted_at).astype(np.int64))
        out["predicted_at"] = arrow_array(instant, pa.timestamp("us", tz="UTC"))
        if side is not None:
            out.update(side.columns)
        part = part_name(number, spec.output_format)
        with tracing.maybe_span("part write"):
            commit_table(pa.table(out), Path(spec.staged), part, spec.output_format, unique=(spec.id_column,))
        if spec.store is not None:
            with tracing.maybe_span("store write"):
                _to_store(model, spec.store, spec.predicted_at, out[spec.id_column], predictions.to_records())
    reasons = _reasons(columns.errors)
    if side is not None:
        reasons.update(side.reasons)
    reject_part = None
    if reasons:
        reject_part = part_name(number, "parquet")
        table = pa.Table.from_batches([batch])
        commit_table(_rejects(table, spec.id_column, number, reasons), Path(spec.staged_rejects), reject_part)
    return ChunkRecord(
        chunk=number,
        rows=batch.num_rows,
        scored=n,
        rejected=batch.num_rows - n,
        part=part,
        reject_part=reject_part,
        compare=None if side is None else side.stats.to_dict(),
    )


def _rows(column: pa.Array, kept: pa.Array | None) -> pa.Array:
    return column if kept is None else column.take(kept)


def _to_store(
    model: Model, target: StoreTarget, predicted_at: str, ids: pa.Array, records: list[dict[str, Any]]
) -> None:
    """Each id's prediction into the job's store generation; a re-scored chunk overwrites its own keys."""
    store = target.open()
    try:
        version = model.info.version
        rows = ((str(key), record, version, predicted_at) for key, record in zip(ids.to_pylist(), records, strict=True))
        store.write_batch(target.model, target.generation, rows)  # the model's name, or its staged one
    finally:
        store.close()


def _instant(iso: str) -> np.datetime64:
    """The job's start time as a naive UTC datetime64 (Arrow's tz-aware timestamps store UTC)."""
    moment = datetime.fromisoformat(iso).astimezone(UTC).replace(tzinfo=None)
    return np.datetime64(moment, "us")


def _reasons(errors: list[RowError]) -> dict[int, list[str]]:
    reasons: dict[int, list[str]] = defaultdict(list)
    for error in errors:
        if error.row is not None:
            reasons[error.row].append(error.describe())
    return dict(reasons)


def _rejects(table: pa.Table, id_column: str, number: int, reasons: dict[int, list[str]]) -> pa.Table:
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
