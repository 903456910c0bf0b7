"""The job's record of committed chunks, the output lock, and publishing: parts, then the manifest, then `_SUCCESS`."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from foretell.batch.engines import Chunks
from foretell.batch.manifest import ChunkRecord, JobFolder, OutputLocked
from foretell.batch.sinks import commit_table, part_name, sweep_temp
from foretell.batch.sources import open_source
from foretell.errors import ForetellError


def chunk(number: int, rows: int = 10, rejected: int = 0) -> ChunkRecord:
    return ChunkRecord(
        chunk=number,
        rows=rows,
        scored=rows - rejected,
        rejected=rejected,
        part=part_name(number, "parquet"),
        reject_part=part_name(number, "parquet") if rejected else None,
    )


def staged(folder: JobFolder, record: ChunkRecord) -> ChunkRecord:
    """Commit the record's staged part (and rejects part), as a worker does, and return the record."""
    assert record.part is not None
    commit_table(pa.table({"id": [record.chunk]}), folder.staged, record.part)
    if record.reject_part:
        commit_table(pa.table({"id": [-record.chunk]}), folder.staged_rejects, record.reject_part)
    return record


# -- the journal -------------------------------------------------------------------------------------------------


def test_a_new_output_has_no_committed_chunks_and_is_not_published(tmp_path):
    folder = JobFolder(tmp_path / "out")
    assert folder.committed() == {}
    assert not folder.published
    assert folder.read_job() is None


def test_recorded_chunks_are_committed_by_number(tmp_path):
    folder = JobFolder(tmp_path / "out")
    folder.meta.mkdir(parents=True)
    for number in (2, 0, 5):
        folder.record(chunk(number))
    assert folder.committed() == {2: chunk(2), 0: chunk(0), 5: chunk(5)}
    assert json.loads(folder.journal.read_text().splitlines()[0]) == chunk(2).to_dict()


def test_a_torn_last_line_from_a_killed_append_is_ignored(tmp_path):
    folder = JobFolder(tmp_path / "out")
    folder.meta.mkdir(parents=True)
    folder.record(chunk(0))
    folder.record(chunk(1))
    with folder.journal.open("a") as journal:
        journal.write(json.dumps(chunk(2).to_dict())[:25])  # killed mid-write: no newline, half an object
    assert sorted(folder.committed()) == [0, 1]


def test_a_chunk_recorded_again_keeps_its_last_record(tmp_path):
    folder = JobFolder(tmp_path / "out")
    folder.meta.mkdir(parents=True)
    folder.record(chunk(3, rows=10))
    folder.record(chunk(3, rows=12, rejected=2))
    assert folder.committed() == {3: chunk(3, rows=12, rejected=2)}


def test_resume_scores_only_the_chunks_not_committed(tmp_path):
    pq.write_table(pa.table({"id": list(range(50)), "x": [0.5] * 50}), tmp_path / "input.parquet")
    folder = JobFolder(tmp_path / "out")
    folder.meta.mkdir(parents=True)
    for number in (0, 2):
        folder.record(chunk(number))
    todo = Chunks(open_source(tmp_path / "input.parquet"), 10, frozenset(folder.committed()))
    assert [(number, batch.column(0)[0].as_py()) for number, batch in todo.batches()] == [(1, 10), (3, 30), (4, 40)]
    assert [ref.number for ref in todo.refs()] == [1, 3, 4]


def test_the_job_is_kept_as_written(tmp_path):
    folder = JobFolder(tmp_path / "out")
    folder.meta.mkdir(parents=True)
    job = {"id": "j-1", "pinned_uri": "models:/churn/3", "options": {"chunk_rows": 10}}
    folder.write_job(job)
    assert folder.read_job() == job
    assert [p.name for p in folder.meta.iterdir()] == ["job.json"]  # no temp file left beside it


# -- a killed run's leftovers ------------------------------------------------------------------------------------


def test_orphaned_temp_files_are_swept_and_committed_parts_kept(tmp_path):
    folder = JobFolder(tmp_path / "out")
    staged(folder, chunk(0))
    orphan = folder.staged / ".tmp-0a1b-part-000001.parquet"  # killed between the write and the rename
    orphan.write_bytes(b"PAR1 half")
    assert sweep_temp(folder.output) == 1
    assert sorted(p.name for p in folder.staged.iterdir()) == ["part-000000.parquet"]


def test_a_fresh_run_forgets_staged_parts_rejects_inputs_and_the_journal_but_not_the_job(tmp_path):
    folder = JobFolder(tmp_path / "out")
    folder.meta.mkdir(parents=True)
    folder.write_job({"id": "j-1"})
    folder.record(staged(folder, chunk(0, rejected=1)))
    (folder.meta / "input").mkdir()
    (folder.meta / "input" / "chunk-0.parquet").write_bytes(b"staged input")
    folder.reset()
    assert folder.committed() == {}
    assert list(folder.staged.iterdir()) == [] and list(folder.staged_rejects.iterdir()) == []
    assert not (folder.meta / "input").exists()
    assert folder.read_job() == {"id": "j-1"}


# -- one run per output --------------------------------------------------------------------------------------------


def test_a_second_run_on_the_same_output_is_refused_while_the_first_holds_it(tmp_path):
    output = tmp_path / "out"
    with JobFolder(output).locked():
        with pytest.raises(OutputLocked) as caught, JobFolder(output).locked():
            pass
        assert str(caught.value) == f"another run is writing {output}; wait for it or stop it first"
        assert isinstance(caught.value, ForetellError)
    with JobFolder(output).locked():  # released when the first run's block ends
        pass


def test_the_lock_is_released_when_the_run_fails(tmp_path):
    output = tmp_path / "out"
    with pytest.raises(RuntimeError, match="chunk 3 broke"), JobFolder(output).locked():
        raise RuntimeError("chunk 3 broke")
    with JobFolder(output).locked():
        pass


def test_runs_on_different_outputs_do_not_block_each_other(tmp_path):
    with JobFolder(tmp_path / "a").locked(), JobFolder(tmp_path / "b").locked():
        pass


# -- publishing ----------------------------------------------------------------------------------------------------


def test_publish_moves_the_parts_and_rejects_into_place_then_writes_the_manifest_and_success(tmp_path):
    folder = JobFolder(tmp_path / "out")
    records = {r.chunk: staged(folder, r) for r in (chunk(0), chunk(1, rejected=3))}
    folder.publish(records, {"id": "j-1", "parts": ["part-000000.parquet", "part-000001.parquet"]})
    out = folder.output
    assert sorted(p.name for p in out.iterdir()) == [
        "_SUCCESS",
        "_foretell",
        "_manifest.json",
        "_rejects",
        "part-000000.parquet",
        "part-000001.parquet",
    ]
    assert [p.name for p in (out / "_rejects").iterdir()] == ["part-000001.parquet"]
    assert list(folder.staged.iterdir()) == []
    assert json.loads((out / "_manifest.json").read_text()) == {
        "id": "j-1",
        "parts": ["part-000000.parquet", "part-000001.parquet"],
    }
    assert (out / "_SUCCESS").read_text() == ""
    assert folder.published
    assert pq.read_table(out / "part-000001.parquet").to_pydict() == {"id": [1]}


class Look:
    """A manifest value JSON cannot hold: the manifest writer calls `str()` on it mid-write, and so runs `look`."""

    def __init__(self, look: Any) -> None:
        self.look = look

    def __str__(self) -> str:
        self.look()
        return "looked"


def test_success_is_written_last_after_the_parts_and_the_manifest(tmp_path):
    folder = JobFolder(tmp_path / "out")
    records = {0: staged(folder, chunk(0))}
    seen: list[list[str]] = []
    visible = lambda: seen.append(sorted(p.name for p in folder.output.iterdir() if p.name != "_foretell"))  # noqa: E731
    folder.publish(records, {"id": "j-1", "probe": Look(visible)})
    # While the manifest was being written (under a temp name): the parts in place, no manifest, no _SUCCESS.
    assert seen == [[".tmp-_manifest.json", "part-000000.parquet"]]
    assert json.loads((folder.output / "_manifest.json").read_text())["probe"] == "looked"
    assert folder.published


def test_publishing_again_after_a_kill_mid_publish_finishes_it(tmp_path):
    folder = JobFolder(tmp_path / "out")
    records = {r.chunk: staged(folder, r) for r in (chunk(0), chunk(1))}
    (folder.staged / "part-000000.parquet").replace(folder.output / "part-000000.parquet")  # moved, then killed
    folder.publish(records, {"id": "j-1"})
    folder.publish(records, {"id": "j-1"})  # and once more: every step can be repeated
    assert sorted(p.name for p in folder.output.glob("part-*")) == ["part-000000.parquet", "part-000001.parquet"]
    assert folder.published


def test_a_part_neither_staged_nor_published_stops_the_publish_before_the_manifest(tmp_path):
    folder = JobFolder(tmp_path / "out")
    records = {r.chunk: staged(folder, r) for r in (chunk(0), chunk(1))}
    (folder.staged / "part-000001.parquet").unlink()  # someone altered the output folder
    with pytest.raises(ForetellError) as caught:
        folder.publish(records, {"id": "j-1"})
    assert str(caught.value) == (
        "part part-000001.parquet is neither staged nor published; the output folder was altered"
    )
    assert not (folder.output / "_manifest.json").exists()
    assert not folder.published


def test_a_chunk_with_no_valid_rows_publishes_only_its_rejects(tmp_path):
    folder = JobFolder(tmp_path / "out")
    empty = ChunkRecord(chunk=0, rows=2, scored=0, rejected=2, part=None, reject_part="part-000000.parquet")
    commit_table(pa.table({"id": [1, 2]}), folder.staged_rejects, "part-000000.parquet")
    folder.publish({0: empty}, {"id": "j-1"})
    assert sorted(p.name for p in folder.output.iterdir()) == ["_SUCCESS", "_foretell", "_manifest.json", "_rejects"]


def test_a_record_is_its_fields():
    assert chunk(4, rows=9, rejected=1).to_dict() == {
        "chunk": 4,
        "rows": 9,
        "scored": 8,
        "rejected": 1,
        "part": "part-000004.parquet",
        "reject_part": "part-000004.parquet",
    }
