"""A published batch output indexed in the prediction ledger, so ledger queries find its rows."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from foretell.batch.compare import CHALLENGER_PREFIX, COMPARE_COLUMNS
from foretell.batch.manifest import ChunkRecord, JobFolder
from foretell.batch.sources import open_source
from foretell.batch.spec import JobSpec

__all__ = ["index_in_ledger", "ledger_location"]

_log = logging.getLogger(__name__)


def ledger_location(ledger: bool | str | Path, home: Path) -> str | None:
    if ledger is True:
        return str((Path(home) / "ledger").absolute())
    if ledger is False or ledger == "":
        return None
    text = str(ledger)
    return text if "://" in text else str(Path(text).absolute())


def index_in_ledger(job: JobSpec, folder: JobFolder, records: dict[int, ChunkRecord]) -> None:
    """Index the published output in the ledger; a failure is logged, never raised: the job did publish.

    Repeated on a resume after publishing (the same file again), so a kill in between loses nothing.
    """
    if job.ledger is None or job.output_format != "parquet":
        return  # only Parquet parts can be read back as ledger rows
    try:
        import pyarrow.parquet as pq

        from foretell.ledger.batch_index import index_job
        from foretell.ledger.segments import LedgerLocation

        if job.single_file:
            parts = [str(Path(job.output).absolute())] if Path(job.output).is_file() else []
        else:
            parts = sorted(str(p.absolute()) for p in folder.output.glob("part-*.parquet"))
        if not parts:
            return  # nothing was scored: no rows to find
        bookkeeping = {job.id_column, *job.passthrough, "model_version", "predicted_at"}
        # A compared job's challenger columns are not the champion's outputs: the ledger indexes the champion only.
        names = pq.read_schema(parts[0]).names
        if job.compare is not None:
            bookkeeping |= {n for n in names if n in COMPARE_COLUMNS or n.startswith(CHALLENGER_PREFIX)}
        outputs = [n for n in names if n not in bookkeeping]
        info = job.model.info
        index_job(
            LedgerLocation(job.ledger),
            {
                "job_id": job.id,
                "model": info.name,
                "version": info.version,
                "sha256": info.sha256,
                "predictor": job.model.predictor,
                "id_column": job.id_column,
                "outputs": outputs,
                "parts": parts,
                "rows": sum(r.scored for r in records.values()),
                "predicted_at": job.started_at,
                "published_at": datetime.now(UTC).isoformat(),
                "output": str(Path(job.output).absolute()),
                "input": _input_files(job),
            },
        )
    except Exception as exc:  # the output is published; the ledger is an extra, never a reason to fail
        _log.warning("job %s published but could not be indexed in the ledger %s: %s", job.id, job.ledger, exc)


def _input_files(job: JobSpec) -> dict[str, Any] | None:
    """The job's input files as the ledger index records them (None: not readable back, e.g. behind a URL)."""
    from foretell.ledger.session import input_record

    source = open_source(job.input, job.input_format)
    return input_record(source.files, source.format)
