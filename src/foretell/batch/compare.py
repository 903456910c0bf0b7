"""`batch run --compare`: a challenger scores every chunk beside the champion, and the job says how far apart they are.

Each chunk is read once and goes through the one prediction path twice, once per version
(`score_chunk` calls `score_challenger` after the champion). The champion's part keeps
its columns; the challenger's outputs go beside them as `challenger_<output>`, with
`score_diff` and `label_flipped` from `foretell.rollout.compare`. A row only the
challenger refuses keeps the champion's prediction, has null challenger columns, and goes
to the rejects file with a reason naming the challenger.

The figures are `RolloutStats`, as the server counts them, with rows for requests:
each arm's `requests` are the rows it was given (every input row), its `errors` the rows
it refused that the other version accepted, its latency the seconds one chunk took it.
A chunk's stats travel in its journal record, so a killed job resumes with the figures of
the chunks it kept and `_compare.json` covers every row exactly once. `_compare.json` is
written before the manifest that publishes the output.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from foretell.batch.arrays import arrow_array
from foretell.batch.manifest import ChunkRecord
from foretell.batch.spec import CompareTarget, JobSpec
from foretell.core.columns import Columns
from foretell.core.model import Model
from foretell.core.predictor import Predictions
from foretell.rollout import RolloutStats, compare, judge

__all__ = [
    "CHALLENGER_PREFIX",
    "COMPARE_COLUMNS",
    "ChallengerSide",
    "Scored",
    "challenger_uri",
    "chunk_stats",
    "compare_report",
    "line_up",
    "report_path",
    "scored_by",
]

CHALLENGER_PREFIX = "challenger_"
COMPARE_COLUMNS = ("score_diff", "label_flipped")


def challenger_uri(model_name: str, challenger: str) -> str:
    """A bare version number names a version of the champion's own model; anything else is a URI."""
    text = challenger.strip()
    return f"{model_name}/{text}" if text.isdigit() else text


@dataclass(frozen=True)
class ChallengerSide:
    """What the challenger adds to one chunk's part, its rejects, and the chunk's figures."""

    columns: dict[str, pa.Array]
    """`challenger_<output>`, `score_diff`, `label_flipped`: one value per row the champion scored."""
    reasons: dict[int, list[str]]
    """Rows (in the chunk) the challenger alone refused, and why, naming it."""
    stats: RolloutStats


@dataclass(frozen=True)
class Scored:
    """One version's pass over a chunk: the rows it accepted, its predictions, and the seconds it took."""

    model: Model
    columns: Columns
    predictions: Predictions
    seconds: float


def scored_by(model: Model, batch: pa.RecordBatch) -> Scored:
    """The one prediction path over `batch`: validate with the model's signature, predict the valid rows."""
    started = time.perf_counter()
    names = [name for name in model.signature.input_names if name in batch.schema.names]  # optional ones may be absent
    columns = model.coerce(batch.select(names))
    predictions = model.predict_columns(columns)
    return Scored(model, columns, predictions, time.perf_counter() - started)


def line_up(batch: pa.RecordBatch, champion: Scored, challenger: Scored) -> ChallengerSide:
    """The challenger's predictions lined up with the champion's rows, compared, and the chunk's figures."""
    stats = RolloutStats()
    for arm, took in ((stats.champion, champion.seconds), (stats.challenger, challenger.seconds)):
        arm.requests = batch.num_rows
        arm.latency.add(took)
    theirs, predicted, predictions = challenger.columns, champion.predictions, challenger.predictions
    reasons: dict[int, list[str]] = {}
    if np.array_equal(champion.columns.rows, theirs.rows):  # the usual case: both accepted the same rows
        positions, both = None, None
        mine, other = predicted, predictions
    else:
        where = np.full(batch.num_rows, -1, dtype=np.int64)
        where[theirs.rows] = np.arange(len(theirs.rows))
        positions = where[champion.columns.rows]  # each champion row's place among the challenger's, -1: refused
        both = positions >= 0
        stats.challenger.errors = int(np.count_nonzero(~both))
        stats.champion.errors = len(theirs.rows) - int(np.count_nonzero(both))
        reasons = _refused(challenger.model, theirs, set(champion.columns.rows[~both].tolist()))
        mine, other = _take(predicted, np.flatnonzero(both)), _take(predictions, positions[both])
    comparison = compare(mine, other)
    stats.add_comparison(comparison)
    columns = {f"{CHALLENGER_PREFIX}{name}": arrow_array(values) for name, values in predictions.columns.items()}
    if positions is not None and both is not None:
        indexes = _masked(np.where(both, positions, 0), both, pa.int64())
        columns = {name: column.take(indexes) for name, column in columns.items()}
    n = len(champion.columns.rows)
    diffs = _spread(comparison.diffs, both, n, np.nan)
    columns["score_diff"] = _masked(diffs, ~np.isnan(diffs), pa.float64())
    if comparison.flips is None:
        columns["label_flipped"] = pa.nulls(n, pa.bool_())
    else:
        flips = _spread(comparison.flips.astype(bool), both, n, False)
        columns["label_flipped"] = _masked(flips, np.ones(n, bool) if both is None else both, pa.bool_())
    return ChallengerSide(columns, reasons, stats)


def _refused(challenger: Model, theirs: Columns, rows: set[int]) -> dict[int, list[str]]:
    reasons: dict[int, list[str]] = defaultdict(list)
    for error in theirs.errors:
        if error.row in rows:
            reasons[error.row].append(f"challenger {challenger.info.uri}: {error.describe()}")
    return dict(reasons)


def _take(predictions: Predictions, rows: np.ndarray) -> Predictions:
    return Predictions({k: v[rows] for k, v in predictions.columns.items()}, predictions.outputs, len(rows))


def _spread(values: np.ndarray, both: np.ndarray | None, n: int, fill: Any) -> np.ndarray:
    """Values for the rows both versions scored, placed among all the champion's rows."""
    if both is None:
        return values
    spread = np.full(n, fill, dtype=values.dtype)
    spread[both] = values
    return spread


def _masked(values: np.ndarray, valid: np.ndarray, kind: pa.DataType) -> pa.Array:
    """`values` as Arrow with nulls where `valid` is false, without `pa.array` (see `arrow_array`)."""
    validity = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    if pa.types.is_boolean(kind):
        data = pa.py_buffer(np.packbits(values.astype(bool), bitorder="little"))
    else:
        data = pa.py_buffer(np.ascontiguousarray(values, dtype=kind.to_pandas_dtype()))
    return pa.Array.from_buffers(kind, len(values), [validity, data])


def chunk_stats(records: Mapping[int, ChunkRecord]) -> RolloutStats:
    return RolloutStats.total(RolloutStats.from_dict(r.compare) for r in records.values() if r.compare)


def compare_report(job: JobSpec, records: Mapping[int, ChunkRecord]) -> dict[str, Any]:
    """`_compare.json`'s content: both versions, the rows read, the figures, the guards and their verdict."""
    target = _target(job)
    stats = chunk_stats(records)
    verdict = judge(stats, target.guards, auto=True)
    return {
        "champion": _version(job.model.info.name, job.model.info.version, job.model.uri),
        "challenger": _version(target.model.info.name, target.model.info.version, target.model.uri),
        "rows": sum(r.rows for r in records.values()),
        "summary": stats.summary(),
        "stats": stats.to_dict(),
        "guards": target.guards.to_dict(),
        "verdict": {"passed": verdict.action == "promote", "reasons": list(verdict.reasons)},
    }


def _target(job: JobSpec) -> CompareTarget:
    if job.compare is None:
        raise ValueError(f"job {job.id} compares no challenger")
    return job.compare


def _version(name: str, version: int, uri: str) -> dict[str, Any]:
    return {"model": name, "version": version, "uri": uri}


def report_path(job: JobSpec) -> Path:
    """`_compare.json` in the output folder; beside the file as `<file>.compare.json` for `--single-file`."""
    output = Path(job.output)
    return output.with_name(output.name + ".compare.json") if job.single_file else output / "_compare.json"
