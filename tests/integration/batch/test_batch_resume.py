"""Kill a real job at several moments, resume it, and find every valid row scored exactly once."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from batchkit import CHUNK, alive, batch_args, cli, descendants, journal_lines, kill, make_rows, start, wait_until

import foretell
from foretell.batch.history import JobHistory
from foretell.batch.manifest import JobFolder
from foretell.errors import InvalidInput

N_ROWS = 3_000


@pytest.fixture
def rows(tmp_path: Path) -> Path:
    path = tmp_path / "rows.parquet"
    pq.write_table(make_rows(N_ROWS, seed=5), path)
    return path


def assert_exactly_once(output: Path) -> None:
    assert (output / "_SUCCESS").is_file()
    ids = pq.read_table(output).column("id").to_pylist()
    assert len(ids) == N_ROWS, f"{len(ids)} rows published for {N_ROWS} input rows"
    assert sorted(ids) == [f"r{i:06d}" for i in range(N_ROWS)]
    assert not list(output.rglob(".tmp-*"))


def test_killed_before_its_first_chunk(home, rows, tmp_path):
    output = tmp_path / "out"
    job = start(home, rows, output, "--workers", "1")
    wait_until(lambda: JobFolder(output).job_file.is_file(), job)
    kill(job)
    resumed = cli(home, *batch_args(rows, output, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    assert_exactly_once(output)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_killed_between_and_inside_chunks_resumes_without_recomputing(home, rows, tmp_path, workers):
    output = tmp_path / "out"
    job = start(home, rows, output, "--workers", workers)
    wait_until(lambda: journal_lines(output) >= 5, job)
    helpers = descendants(job.pid)  # with 2 workers: the fork server and the workers
    kill(job)
    deadline = time.monotonic() + 10
    while any(alive(p) for p in helpers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in helpers if alive(p)], "worker processes outlived the killed job"
    recorded = journal_lines(output)
    assert 5 <= recorded < N_ROWS // CHUNK
    job_id = json.loads(JobFolder(output).job_file.read_text())["id"]
    assert foretell.batch_job(job_id, home=home)["status"] == "running"  # killed -9: nobody could say otherwise
    resumed = cli(home, "batch", "resume", job_id, "--json")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["resumed_chunks"] >= recorded  # recorded chunks were kept, not scored again
    assert summary["rows"] == N_ROWS
    assert_exactly_once(output)
    assert foretell.batch_job(job_id, home=home)["status"] == "succeeded"


def test_killed_while_publishing(home, rows, tmp_path):
    output = tmp_path / "out"
    job = start(home, rows, output, "--workers", "1")
    wait_until(lambda: journal_lines(output) >= 8, job)
    kill(job)
    # Leave the folder as a publish cut short would: some staged parts already moved into place.
    folder = JobFolder(output)
    for part in sorted(folder.staged.glob("part-*"))[:4]:
        part.replace(output / part.name)
    resumed = cli(home, *batch_args(rows, output, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    assert_exactly_once(output)


def test_sigterm_stops_cleanly_and_resume_finishes(home, rows, tmp_path):
    output = tmp_path / "out"
    job = start(home, rows, output, "--workers", "1")
    wait_until(lambda: journal_lines(output) >= 3, job)
    stderr = kill(job, signal.SIGTERM)
    assert job.returncode != 0
    assert "resume" in stderr
    job_id = json.loads(JobFolder(output).job_file.read_text())["id"]
    assert foretell.batch_job(job_id, home=home)["status"] == "interrupted"
    assert not (output / "_SUCCESS").exists()
    assert cli(home, "batch", "resume", job_id).returncode == 0
    assert_exactly_once(output)


def test_a_second_run_on_the_same_output_is_refused(home, rows, tmp_path):
    output = tmp_path / "out"
    # Chunks of 30 rows: the job runs for seconds, so it still holds the output when the second CLI
    # is up (with 30 chunks it could finish first on a quiet machine, and the second found it done).
    job = start(home, rows, output, "--workers", "1", "--chunk-rows", "30")
    wait_until(lambda: journal_lines(output) >= 1, job)
    second = cli(home, *batch_args(rows, output, "--resume"))
    assert second.returncode == 1 and "another run is writing" in second.stderr
    job.communicate(timeout=120)
    assert job.returncode == 0
    assert_exactly_once(output)


def test_a_job_recorded_by_the_first_batch_version_resumes(home, rows, tmp_path):
    """job.json as foretell's first batch jobs wrote it (no predictor, engine or store): resume finishes it."""
    output = tmp_path / "out"
    record: dict[str, Any] = {
        "id": "job-20261101-000000-abcdef",
        "model_uri": "linear@production",
        "model_version": 1,
        "pinned_uri": "models:/linear/1",
        "input": str(rows),
        "output": str(output),
        "started_at": "2026-11-01T00:00:00+00:00",
        "options": {
            "id_column": "id",
            "passthrough": [],
            "chunk_rows": 1_000,
            "workers": 1,
            "input_format": "parquet",
            "output_format": "parquet",
            "max_reject_ratio": 0.01,
            "single_file": False,
        },
    }
    folder = JobFolder(output)
    folder.meta.mkdir(parents=True)
    folder.write_job(record)
    JobHistory(home).start(record)
    result = foretell.resume_batch(record["id"], home=home)
    assert (result.status, result.rows, result.model_uri) == ("succeeded", N_ROWS, "models:/linear/1")
    assert (result.predictor, result.engine) == ("original", "local")  # what such a job scored with
    assert_exactly_once(output)
    assert foretell.batch_job(record["id"], home=home)["status"] == "succeeded"


def test_a_job_record_that_cannot_be_read_is_refused_with_what_to_do(home, rows, tmp_path):
    output = tmp_path / "out"
    folder = JobFolder(output)
    folder.meta.mkdir(parents=True)
    folder.write_job({"id": "job-20261101-000000-abcdef", "pinned_uri": "models:/linear/1", "options": {}})
    with pytest.raises(InvalidInput, match=r"cannot read the record of job .*delete its output folder"):
        foretell.run_batch("linear/1", rows, output, home=home, resume=True)
