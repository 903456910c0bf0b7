"""Batch jobs in the ledger without a second copy of their rows: one small index file per published job.

A published Parquet batch job already holds every prediction it made (its part files:
the id column, the outputs, `model_version`, `predicted_at`). The ledger keeps only
where they are and what made them, in `batch/model=<name>/<job id>.json`; queries read
the parts themselves and present each row as a `source: batch` prediction
(`ledger.query`). Indexing the same job twice writes the same file again, so a job
resumed after it published can index itself without fear of counting twice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson

from foretell.errors import InvalidInput
from foretell.ledger.segments import LedgerLocation

__all__ = ["INDEX_FIELDS", "OPTIONAL_FIELDS", "batch_jobs", "index_job", "index_path"]

#: The fields an index file holds (docs: ledger-spec, "Batch index").
INDEX_FIELDS: Final[tuple[str, ...]] = (
    "job_id",
    "model",
    "version",
    "sha256",
    "predictor",
    "id_column",
    "outputs",
    "parts",
    "rows",
    "predicted_at",
    "published_at",
    "output",
)

#: Fields kept when given: `input` (`session.input_record`: the files the job read, so that monitoring can
#: compare its inputs with the live ones; absent in jobs indexed before it was recorded).
OPTIONAL_FIELDS: Final[tuple[str, ...]] = ("input",)

_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def index_path(location: LedgerLocation, model: str, job_id: str) -> str:
    return location.join("batch", f"model={model}", f"{job_id}.json")


def index_job(location: LedgerLocation, record: Mapping[str, Any]) -> str:
    """Publish one job's index file (atomically; again on a resume, to the same name); returns its path."""
    missing = [name for name in INDEX_FIELDS if name not in record]
    if missing:
        raise InvalidInput(f"a batch index record needs {', '.join(missing)}")
    job_id = str(record["job_id"])
    if not _JOB_ID.match(job_id):
        raise InvalidInput(f"job_id must be a plain name ([A-Za-z0-9_.-]), got {job_id!r}")
    parts = record["parts"]
    if not isinstance(parts, Sequence) or isinstance(parts, str) or not parts:
        raise InvalidInput(f"a batch index record lists its part files; got parts={parts!r}")
    data = {name: record[name] for name in INDEX_FIELDS} | {n: record[n] for n in OPTIONAL_FIELDS if n in record}
    path = index_path(location, str(record["model"]), job_id)
    location.publish_bytes(path, orjson.dumps(data, option=orjson.OPT_INDENT_2))
    return path


def batch_jobs(location: LedgerLocation, model: str) -> list[dict[str, Any]]:
    """The indexed jobs of `model`, oldest first; an unreadable index file is skipped (it cannot be half-written)."""
    folder = location.join("batch", f"model={model}")
    jobs = []
    for name in location.listdir(folder):
        if not name.endswith(".json"):
            continue
        data = location.read_bytes(f"{folder}/{name}")
        if data is None:  # removed since it was listed
            continue
        try:
            record = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if isinstance(record, dict) and all(field in record for field in INDEX_FIELDS):
            jobs.append(record)
    return sorted(jobs, key=lambda job: (str(job["predicted_at"]), str(job["job_id"])))
