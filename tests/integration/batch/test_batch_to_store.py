"""`--to-store`: a batch job's predictions become one new store generation, published with its output."""

from __future__ import annotations

import json
import threading

import pyarrow.parquet as pq
import pytest
from batchkit import cli, journal_lines, kill, make_rows, start, wait_until

import foretell
from foretell.batch.manifest import JobFolder
from foretell.errors import BatchJobFailed
from foretell.store import open_store


def test_predictions_land_in_the_store_as_a_published_generation(home, rows_file, tmp_path):
    result = foretell.run_batch(
        "linear/1", rows_file, tmp_path / "out", home=home, workers=2, chunk_rows=2_500, to_store=True
    )
    output = pq.read_table(tmp_path / "out").sort_by("id").slice(0, 50)
    store = open_store(home)
    try:
        generation = store.current_generation("linear")
        assert generation is not None
        found = store.get_many("linear", output.column("id").to_pylist())
        assert len(found) == 50
        for key, score in zip(output.column("id").to_pylist(), output.column("score").to_pylist(), strict=True):
            stored = found[key]
            assert stored.prediction["score"] == score
            assert (stored.source, stored.generation, stored.model_version) == ("batch", generation, 1)
        assert store.stats("linear")["rows"] == result.scored
    finally:
        store.close()


def test_readers_see_the_old_generation_or_the_new_never_a_gap(home, tmp_path):
    keys = [f"r{i:06d}" for i in range(0, 4_000, 7)]
    first, second = tmp_path / "first.parquet", tmp_path / "second.parquet"
    pq.write_table(make_rows(4_000, seed=10), first)
    pq.write_table(make_rows(4_000, seed=11), second)  # same ids, other values: every score changes
    foretell.run_batch("linear/1", first, tmp_path / "one", home=home, workers=1, chunk_rows=500, to_store=True)
    store = open_store(home)
    seen: list[set[int | None]] = []
    problems: list[str] = []
    stop = threading.Event()

    def read() -> None:
        reader = open_store(home)
        try:
            while not stop.is_set():
                found = reader.get_many("linear", keys)
                if len(found) != len(keys):
                    problems.append(f"{len(keys) - len(found)} keys missing")
                seen.append({p.generation for p in found.values()})
        finally:
            reader.close()

    before = store.current_generation("linear")
    thread = threading.Thread(target=read)
    thread.start()
    try:
        foretell.run_batch("linear/1", second, tmp_path / "two", home=home, workers=1, chunk_rows=500, to_store=True)
    finally:
        stop.set()
        thread.join()
    after = store.current_generation("linear")
    store.close()
    assert after is not None and before is not None and after > before
    assert not problems
    assert all(len(generations) == 1 for generations in seen), "a read mixed two generations"
    assert {next(iter(g)) for g in seen} <= {before, after}


def test_a_failed_job_leaves_the_published_generation_alone(home, tmp_path):
    good = tmp_path / "good.parquet"
    pq.write_table(make_rows(1_000, seed=12), good)
    foretell.run_batch("linear/1", good, tmp_path / "ok", home=home, workers=1, to_store=True)
    store = open_store(home)
    published = store.current_generation("linear")
    bad = tmp_path / "bad.parquet"
    pq.write_table(make_rows(1_000, seed=13, bad_every=5), bad)
    with pytest.raises(BatchJobFailed):
        foretell.run_batch("linear/1", bad, tmp_path / "failed", home=home, workers=1, to_store=True)
    assert store.current_generation("linear") == published
    assert store.get("linear", "r000001") is not None
    store.close()


def test_killed_job_resumes_into_the_same_generation(home, tmp_path):
    path = tmp_path / "rows.parquet"
    pq.write_table(make_rows(3_000, seed=14), path)
    output = tmp_path / "out"
    job = start(home, path, output, "--workers", "1", "--to-store")
    wait_until(lambda: journal_lines(output) >= 5, job)
    kill(job)
    job_id = json.loads(JobFolder(output).job_file.read_text())["id"]
    generation = json.loads(JobFolder(output).job_file.read_text())["store"]["generation"]
    store = open_store(home)
    assert store.current_generation("slow") != generation  # nothing published yet
    assert cli(home, "batch", "resume", job_id).returncode == 0
    assert store.current_generation("slow") == generation
    found = store.get_many("slow", [f"r{i:06d}" for i in range(3_000)])
    assert len(found) == 3_000 and {p.generation for p in found.values()} == {generation}
    store.close()
