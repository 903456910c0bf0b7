"""Batch jobs as a user runs them: real files, real worker processes, real published outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from batchkit import FEATURES, cli, make_rows

import foretell
from foretell.errors import BatchJobFailed, InvalidInput


def published(output: Path) -> pa.Table:
    assert (output / "_SUCCESS").is_file()
    return pq.read_table(output).sort_by("id")


def test_output_equals_predict_batch_on_the_same_rows(home, rows_file, tmp_path):
    result = foretell.run_batch(
        "linear@production",
        rows_file,
        tmp_path / "out",
        home=home,
        chunk_rows=2_500,
        workers=2,
        passthrough=["segment"],
    )
    assert (result.rows, result.scored, result.rejected, result.status) == (10_000, 10_000, 0, "succeeded")
    out = published(tmp_path / "out")
    assert out.column_names == ["id", "segment", "score", "model_version", "predicted_at"]
    rows = pq.read_table(rows_file).sort_by("id")
    model = foretell.load("linear@production", home=home)
    expected = model.predict_batch(rows.select(FEATURES)).column("score")
    assert out.column("id").to_pylist() == rows.column("id").to_pylist()
    np.testing.assert_array_equal(out.column("score").to_numpy(), expected)
    assert set(out.column("model_version").to_pylist()) == {1}
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert manifest["counts"] == {"rows": 10_000, "scored": 10_000, "rejected": 0}
    assert len(manifest["parts"]) == result.parts == 4


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_csv_and_jsonl_inputs_give_the_parquet_answer(home, rows_file, tmp_path, fmt):
    rows = pq.read_table(rows_file).slice(0, 3_000)
    path = tmp_path / f"rows.{fmt}"
    if fmt == "csv":
        pacsv.write_csv(rows, path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows.to_pylist()))
    foretell.run_batch("linear/1", path, tmp_path / "out", home=home, workers=1, chunk_rows=1_000)
    foretell.run_batch("linear/1", rows_file, tmp_path / "ref", home=home, workers=1, chunk_rows=1_000)
    got = published(tmp_path / "out")
    ref = published(tmp_path / "ref").slice(0, 3_000)
    assert got.column("id").to_pylist() == ref.column("id").to_pylist()
    np.testing.assert_allclose(got.column("score").to_numpy(), ref.column("score").to_numpy(), rtol=1e-12)


def test_bad_rows_go_to_rejects_with_reasons(home, tmp_path):
    path = tmp_path / "rows.parquet"
    pq.write_table(make_rows(2_000, seed=3, bad_every=400), path)
    result = foretell.run_batch(
        "linear/1", path, tmp_path / "out", home=home, workers=1, chunk_rows=500, max_reject_ratio=0.05
    )
    assert (result.scored, result.rejected) == (1_995, 5)
    rejects = pq.read_table(tmp_path / "out" / "_rejects").sort_by("id")
    assert rejects.column("id").to_pylist() == [f"r{i:06d}" for i in range(0, 2_000, 400)]
    assert "field 'b': expected a float64 value, not a missing one" in rejects.column("reason")[0].as_py()
    assert json.loads(rejects.column("values")[0].as_py())["id"] == "r000000"
    assert published(tmp_path / "out").num_rows == 1_995  # rejects are beside the output, not in it


def test_too_many_rejects_publish_nothing(home, tmp_path):
    path = tmp_path / "rows.parquet"
    pq.write_table(make_rows(1_000, seed=4, bad_every=10), path)
    with pytest.raises(BatchJobFailed, match=r"100 of 1000 rows \(10.00%\) were rejected"):
        foretell.run_batch("linear/1", path, tmp_path / "out", home=home, workers=1, chunk_rows=300)
    assert not (tmp_path / "out" / "_SUCCESS").exists()
    assert not list((tmp_path / "out").glob("part-*"))
    (job,) = [j for j in foretell.batch_jobs(home=home) if j["output"] == str(tmp_path / "out")]
    assert job["status"] == "failed" and "nothing was published" in job["message"]


def test_problems_found_before_any_work(home, rows_file, tmp_path):
    with pytest.raises(InvalidInput, match="does not exist"):
        foretell.run_batch("linear/1", tmp_path / "nope.parquet", tmp_path / "out", home=home)
    lacking = tmp_path / "lacking.parquet"
    pq.write_table(make_rows(10).drop_columns(["c"]), lacking)
    with pytest.raises(InvalidInput, match=r"lacks column\(s\) \['c'\]"):
        foretell.run_batch("linear/1", lacking, tmp_path / "out", home=home)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(InvalidInput, match="cannot read"):
        foretell.run_batch("linear/1", broken, tmp_path / "out", home=home)
    assert not (tmp_path / "out").exists()


def test_single_file_output(home, rows_file, tmp_path):
    target = tmp_path / "scores.parquet"
    foretell.run_batch("linear/1", rows_file, target, home=home, workers=1, chunk_rows=4_000, single_file=True)
    table = pq.read_table(target)
    assert table.num_rows == 10_000 and len(set(table.column("id").to_pylist())) == 10_000


def test_alias_moved_mid_job_does_not_mix_versions(home, rows_file, tmp_path):
    reg = foretell.get_registry(home)
    v1 = reg.get("linear@production")
    artifact = reg.artifact_path(v1)
    v2 = foretell.register("linear", artifact, signature=v1.signature, home=home)
    moved: list[int] = []

    def move_alias(rows, total):
        if not moved:
            foretell.set_alias("linear", "production", v2.version, home=home)
            moved.append(rows)

    try:
        foretell.run_batch(
            "linear@production",
            rows_file,
            tmp_path / "out",
            home=home,
            workers=1,
            chunk_rows=2_000,
            progress=move_alias,
        )
        assert set(published(tmp_path / "out").column("model_version").to_pylist()) == {v1.version}
        assert moved
    finally:
        foretell.set_alias("linear", "production", v1.version, home=home)


def test_cli_run_list_show(home, rows_file, tmp_path):
    result = cli(
        home,
        "batch",
        "run",
        "linear@production",
        "--input",
        str(rows_file),
        "--output",
        str(tmp_path / "out"),
        "--workers",
        "1",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["rows"] == 10_000 and summary["status"] == "succeeded"
    shown = json.loads(cli(home, "batch", "show", summary["job_id"], "--json").stdout)
    assert shown["status"] == "succeeded" and shown["model_version"] == 1
    listed = json.loads(cli(home, "batch", "list", "--json").stdout)
    assert summary["job_id"] in [j["id"] for j in listed]
    again = cli(home, "batch", "run", "linear@production", "--input", str(rows_file), "--output", str(tmp_path / "out"))
    assert again.returncode == 1 and "already holds a published output" in again.stderr
    assert cli(home, "batch", "show", "job-nope").returncode == 1


def test_folder_glob_and_fsspec_url_inputs(home, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        pq.write_table(make_rows(1_000, seed=20 + i).slice(i * 300, 300), folder / f"part-{i}.parquet")
    (folder / "_SUCCESS").write_text("")  # bookkeeping files beside data are not data
    expected = sorted(pq.read_table(folder).column("id").to_pylist())
    for name, source in (("folder", str(folder)), ("glob", f"{folder}/part-*.parquet"), ("url", f"file://{folder}")):
        result = foretell.run_batch("linear/1", source, tmp_path / name, home=home, workers=1)
        assert result.rows == 900, name
        assert sorted(published(tmp_path / name).column("id").to_pylist()) == expected, name
    with pytest.raises(InvalidInput, match="no input files match"):
        foretell.run_batch("linear/1", f"{folder}/nothing-*.parquet", tmp_path / "none", home=home)
