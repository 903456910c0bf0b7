"""The batch tests that matter, on Ray: a real local Ray instance (2 CPUs) started here.

Jobs run as a user runs them, `foretell batch run ... --engine ray --ray-address ADDRESS`
in their own process, against the instance this module starts (as they would against a
cluster someone else runs). Every test compares with the local engine or with the
guarantees the local engine's tests check: the same predictions to the byte, the same
rejects and reasons, exactly-once output after a killed job.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from batchkit import CHUNK, batch_args, cli, journal_lines, kill, make_rows, start, wait_until

import foretell
from foretell.batch.manifest import JobFolder

pytest.importorskip("ray")

pytestmark = pytest.mark.ray


def on_ray(address: str, *extra: str) -> list[str]:
    return ["--engine", "ray", "--ray-address", address, *extra]


def started_on_ray(
    home: Path, tmp_path: Path, address: str, n_rows: int, seed: int, after_chunks: int
) -> tuple[Path, subprocess.Popen[str]]:
    """A slow job on Ray over `n_rows` rows, returned once it has committed `after_chunks` chunks."""
    rows = tmp_path / "rows.parquet"
    pq.write_table(make_rows(n_rows, seed=seed), rows)
    output = tmp_path / "out"
    job = start(home, rows, output, *on_ray(address))
    wait_until(lambda: journal_lines(output) >= after_chunks, job, timeout=120)
    return output, job


def sorted_output(output: Path) -> pa.Table:
    return pq.read_table(output).sort_by("id")


def test_both_engines_write_the_same_predictions_and_rejects(home: Path, tmp_path: Path, ray_address: str) -> None:
    rows = tmp_path / "rows.parquet"
    pq.write_table(make_rows(5_000, seed=3, bad_every=97), rows, row_group_size=1_700)  # chunks straddle groups
    args = ["--chunk-rows", "1000", "--passthrough", "segment", "--max-reject-ratio", "0.05", "--json"]
    local = cli(home, *batch_args(rows, tmp_path / "local", *args, model="linear@production"))
    on = cli(home, *batch_args(rows, tmp_path / "ray", *on_ray(ray_address), *args, model="linear@production"))
    assert local.returncode == 0, local.stderr
    assert on.returncode == 0, on.stderr
    summary = json.loads(on.stdout)
    assert summary["engine"] == "ray" and summary["rows"] == 5_000 and summary["parts"] == 5

    want, got = sorted_output(tmp_path / "local"), sorted_output(tmp_path / "ray")
    for column in ("id", "segment", "score", "model_version"):  # not predicted_at: each job stamps its start
        assert got.column(column).equals(want.column(column)), column  # byte-identical, not just close
    assert sorted(p.name for p in (tmp_path / "ray").glob("part-*")) == [f"part-{n:06d}.parquet" for n in range(5)]

    want_rejects = pq.read_table(tmp_path / "local" / "_rejects").sort_by("id")
    got_rejects = pq.read_table(tmp_path / "ray" / "_rejects").sort_by("id")
    assert got_rejects.num_rows == len(range(0, 5_000, 97))
    assert got_rejects.select(["id", "reason", "values"]).equals(want_rejects.select(["id", "reason", "values"]))


def test_too_many_rejects_publish_nothing_on_ray(home: Path, tmp_path: Path, ray_address: str) -> None:
    rows = tmp_path / "rows.parquet"
    pq.write_table(make_rows(1_000, seed=4, bad_every=10), rows)
    failed = cli(home, *batch_args(rows, tmp_path / "out", *on_ray(ray_address), model="linear@production"))
    assert failed.returncode != 0
    assert "were rejected, more than --max-reject-ratio" in failed.stderr
    assert not (tmp_path / "out" / "_SUCCESS").exists()


def test_a_killed_ray_job_resumes_and_publishes_every_row_exactly_once(
    home: Path, tmp_path: Path, ray_address: str
) -> None:
    n_rows = 3_000
    output, job = started_on_ray(home, tmp_path, ray_address, n_rows, seed=5, after_chunks=5)
    kill(job)
    recorded = journal_lines(output)
    assert 5 <= recorded < n_rows // CHUNK
    job_id = json.loads(JobFolder(output).job_file.read_text())["id"]
    resumed = cli(home, "batch", "resume", job_id, "--json")  # the job's own record says ray, and where
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["engine"] == "ray"
    assert summary["resumed_chunks"] >= recorded
    ids = pq.read_table(output).column("id").to_pylist()
    assert sorted(ids) == [f"r{i:06d}" for i in range(n_rows)]  # every row once: none lost, none twice
    assert not list(output.rglob(".tmp-*"))
    assert foretell.batch_job(job_id, home=home)["status"] == "succeeded"


def test_a_csv_input_is_staged_as_parquet_chunks_and_scored_the_same(
    home: Path, tmp_path: Path, ray_address: str
) -> None:
    rows = tmp_path / "rows.csv"
    make_rows(2_500, seed=8, bad_every=40).to_pandas().to_csv(rows, index=False)
    args = ["--chunk-rows", "1000", "--max-reject-ratio", "0.05", "--json"]
    local = cli(home, *batch_args(rows, tmp_path / "local", *args, model="linear@production"))
    on = cli(home, *batch_args(rows, tmp_path / "ray", *on_ray(ray_address), *args, model="linear@production"))
    assert local.returncode == 0, local.stderr
    assert on.returncode == 0, on.stderr
    want, got = sorted_output(tmp_path / "local"), sorted_output(tmp_path / "ray")
    assert got.column("score").equals(want.column("score")) and got.column("id").equals(want.column("id"))
    assert json.loads(on.stdout)["rejected"] == len(range(0, 2_500, 40))
    assert not (tmp_path / "ray" / "_foretell" / "input").exists()  # the staged copies go once scored


def test_without_the_ray_extra_the_error_names_it(home: Path, tmp_path: Path) -> None:
    rows = tmp_path / "rows.parquet"
    pq.write_table(make_rows(100), rows)
    run_without_ray = (
        "import runpy, sys; sys.modules['ray'] = None; sys.argv = ['foretell', *sys.argv[1:]]; "
        "runpy.run_module('foretell', run_name='__main__')"
    )
    missing = subprocess.run(
        [sys.executable, "-c", run_without_ray, *batch_args(rows, tmp_path / "out", "--engine", "ray", model="linear")],
        capture_output=True,
        text=True,
        env={**os.environ, "FORETELL_HOME": str(home)},
        timeout=120,
    )
    assert missing.returncode != 0
    assert "--engine ray needs the 'ray' package" in missing.stderr
    assert "pip install 'foretell[ray]'" in missing.stderr


def test_the_demo_churn_job_gives_identical_columns_on_both_engines_and_fills_the_store(
    tmp_path: Path, ray_address: str
) -> None:
    """The issue's own check, on the demo data: the compiled churn model, 20,000 customers, --to-store."""
    import joblib

    from foretell.demo.churn import CHURN_SIGNATURE, generate_customers, train_churn
    from foretell.store import open_store

    home = tmp_path / "home"
    joblib.dump(train_churn(generate_customers(5_000, seed=1), seed=7), tmp_path / "churn.joblib")
    info = foretell.register("churn", tmp_path / "churn.joblib", signature=CHURN_SIGNATURE, home=home)
    assert info.compiled is not None and info.compiled["status"] == "passed", info.compiled
    customers = tmp_path / "customers.parquet"
    pq.write_table(generate_customers(20_000, seed=2), customers, row_group_size=7_000)
    common = ["--id-column", "customer_id", "--chunk-rows", "4096", "--json"]
    runs = {}
    for engine, extra in (("local", []), ("ray", [*on_ray(ray_address), "--to-store"])):
        done = cli(home, "batch", "run", "churn/1", "-i", str(customers), "-o", str(tmp_path / engine), *common, *extra)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["predictor"] == "compiled"
        runs[engine] = pq.read_table(tmp_path / engine).sort_by("customer_id")
    for column in ("customer_id", "score", "label", "proba"):
        assert runs["ray"].column(column).equals(runs["local"].column(column)), column
    table = pq.read_table(customers).sort_by("customer_id")
    direct = foretell.load("churn/1", home=home).predict_batch(table, extra="ignore")  # the one prediction path
    assert direct.column("score").tolist() == runs["ray"].column("score").to_pylist()

    store = open_store(home)
    try:
        sample = runs["ray"].slice(0, 100)
        found = store.get_many("churn", sample.column("customer_id").to_pylist())
        assert len(found) == 100
        for key, score in zip(
            sample.column("customer_id").to_pylist(), sample.column("score").to_pylist(), strict=True
        ):
            assert found[key].prediction["score"] == score
        assert store.stats("churn")["rows"] == 20_000
    finally:
        store.close()


def test_sigterm_stops_a_ray_job_between_chunks_and_resume_finishes(
    home: Path, tmp_path: Path, ray_address: str
) -> None:
    n_rows = 3_000
    output, job = started_on_ray(home, tmp_path, ray_address, n_rows, seed=6, after_chunks=3)
    stderr = kill(job, signal.SIGTERM)
    assert job.returncode != 0
    assert "resume" in stderr
    job_id = json.loads(JobFolder(output).job_file.read_text())["id"]
    assert foretell.batch_job(job_id, home=home)["status"] == "interrupted"  # the job's handler, not Ray's
    assert not (output / "_SUCCESS").exists()
    resumed = cli(home, "batch", "resume", job_id, "--ray-address", ray_address, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(pq.read_table(output).column("id").to_pylist()) == [f"r{i:06d}" for i in range(n_rows)]


def test_a_compare_job_on_ray_gives_the_local_engine_s_columns_and_figures(
    home: Path, tmp_path: Path, ray_address: str
) -> None:
    rows = tmp_path / "rows.parquet"
    pq.write_table(make_rows(3_000, seed=8), rows)
    args = ["--chunk-rows", "1000", "--compare", "1", "--json"]
    local = cli(home, *batch_args(rows, tmp_path / "local", *args, model="linear@production"))
    on = cli(home, *batch_args(rows, tmp_path / "ray", *on_ray(ray_address), *args, model="linear@production"))
    assert local.returncode == 0, local.stderr
    assert on.returncode == 0, on.stderr
    assert (
        sorted_output(tmp_path / "ray")
        .drop(["predicted_at"])
        .equals(sorted_output(tmp_path / "local").drop(["predicted_at"]))
    )
    reports = [json.loads((tmp_path / name / "_compare.json").read_text()) for name in ("local", "ray")]
    for report in reports:
        assert (report["rows"], report["summary"]["compared"]) == (3_000, 3_000)
        assert report["stats"]["champion"]["latency"]["count"] == 3  # every chunk's figures came back from its actor
    assert reports[0]["verdict"] == reports[1]["verdict"]
