"""The job's record of what it has committed, and the last step that publishes the output.

Layout of an output folder:

    _foretell/job.json          the job as started: model version pinned, input, options
    _foretell/journal.jsonl     one line per committed chunk, appended and fsynced after its part is renamed
    _foretell/parts/            staged part files, invisible to readers of the output
    _foretell/lock              held (flock) by the one run working on this output
    part-000000.parquet ...     published parts (moved out of staging at publish)
    _rejects/part-000000.parquet   refused rows with their reasons
    _manifest.json, _SUCCESS    written last: an output without them is not finished

Publishing moves staged files into place and then writes the manifest and `_SUCCESS`;
every step can be repeated, so a run killed while publishing publishes on resume.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from foretell.batch.sinks import fsync_path
from foretell.errors import ForetellError, OutputLocked

__all__ = ["ChunkRecord", "JobFolder", "atomic_json"]

SUCCESS = "_SUCCESS"
MANIFEST = "_manifest.json"
REJECTS = "_rejects"


@dataclass(frozen=True)
class ChunkRecord:
    """One committed chunk: how many rows came in, were scored, were refused, and where they went."""

    chunk: int
    rows: int
    scored: int
    rejected: int
    part: str | None
    reject_part: str | None
    compare: dict[str, Any] | None = None
    """With `--compare`: the chunk's `RolloutStats.to_dict()`, kept with its record so a resume keeps its figures."""

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        if self.compare is None:
            del record["compare"]  # a job without a challenger journals what it always did
        return record


class JobFolder:
    """The bookkeeping side of one output folder."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.meta = output / "_foretell"
        self.staged = self.meta / "parts"
        self.staged_rejects = self.meta / "rejects"
        self.journal = self.meta / "journal.jsonl"
        self.job_file = self.meta / "job.json"

    @property
    def published(self) -> bool:
        return (self.output / SUCCESS).is_file()

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the output for this run; a second run on the same output is refused at once."""
        self.meta.mkdir(parents=True, exist_ok=True)
        with (self.meta / "lock").open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OutputLocked(f"another run is writing {self.output}; wait for it or stop it first") from None
            yield

    def write_job(self, job: Mapping[str, Any]) -> None:
        atomic_json(self.job_file, job)

    def read_job(self) -> dict[str, Any] | None:
        if not self.job_file.is_file():
            return None
        data: dict[str, Any] = json.loads(self.job_file.read_text())
        return data

    def committed(self) -> dict[int, ChunkRecord]:
        """Chunks recorded as committed; a torn last line (killed mid-append) is ignored."""
        records: dict[int, ChunkRecord] = {}
        if not self.journal.is_file():
            return records
        for line in self.journal.read_text().splitlines():
            try:
                record = ChunkRecord(**json.loads(line))
            except (ValueError, TypeError):
                continue
            records[record.chunk] = record
        return records

    def record(self, record: ChunkRecord) -> None:
        with self.journal.open("a") as handle:
            handle.write(json.dumps(record.to_dict()) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def reset(self) -> None:
        """Forget a previous run's staged work (a fresh run over an unfinished output)."""
        for folder in (self.staged, self.staged_rejects):
            if folder.is_dir():
                for path in folder.iterdir():
                    path.unlink()
        shutil.rmtree(self.meta / "input", ignore_errors=True)  # chunks a Ray job staged from CSV or JSON
        self.journal.unlink(missing_ok=True)

    def publish(self, records: Mapping[int, ChunkRecord], manifest: Mapping[str, Any]) -> None:
        """Move staged parts into place, then write the manifest, then `_SUCCESS`."""
        rejects = self.output / REJECTS
        for record in records.values():
            if record.part:
                _move(self.staged / record.part, self.output / record.part)
            if record.reject_part:
                rejects.mkdir(exist_ok=True)
                _move(self.staged_rejects / record.reject_part, rejects / record.reject_part)
        fsync_path(self.output)
        atomic_json(self.output / MANIFEST, manifest)
        (self.output / SUCCESS).write_text("")
        fsync_path(self.output)


def _move(source: Path, target: Path) -> None:
    if source.is_file():
        source.replace(target)
    elif not target.is_file():
        raise ForetellError(f"part {source.name} is neither staged nor published; the output folder was altered")


def atomic_json(path: Path, data: Mapping[str, Any]) -> None:
    temp = path.with_name(f".tmp-{path.name}")
    with temp.open("w") as handle:
        json.dump(data, handle, indent=2, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    temp.replace(path)
    fsync_path(path.parent)
