"""The job spec: one JSON form, read back as it was written, and readable from what earlier versions wrote."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from foretell.batch.spec import JobSpec, StoreTarget
from foretell.errors import InvalidInput
from foretell.registry import SqliteRegistry, model_source


@pytest.fixture
def home(tmp_path: Path) -> Path:
    x = np.arange(20, dtype=np.float64).reshape(-1, 1)
    path = tmp_path / "model.joblib"
    joblib.dump(LinearRegression().fit(x, 2 * x[:, 0]), path)
    registry = SqliteRegistry(tmp_path / "home")
    registry.register("line", path, aliases=["production"])
    registry.register("line", path)
    return registry.home


def spec(home: Path, **changes: Any) -> JobSpec:
    job = JobSpec(
        id="job-20261204-120000-abcdef",
        model_uri="line@production",
        model=model_source(SqliteRegistry(home), "line@production", predictor="original"),
        input="in.parquet",
        output="out",
        started_at="2026-12-04T12:00:00+00:00",
        id_column="id",
        passthrough=("segment",),
        chunk_rows=1_000,
        workers=2,
        input_format="csv",
        output_format="jsonl",
        max_reject_ratio=0.05,
    )
    return replace(job, **changes)


def test_a_spec_reads_back_from_its_record(home: Path) -> None:
    store = StoreTarget("line", 4, "redis://127.0.0.1:6379/0", home.absolute())
    for job in (spec(home), spec(home, engine="ray", workers=None, ray_address="auto", single_file=True, store=store)):
        assert JobSpec.from_record(job.to_record(), home) == job


@pytest.mark.parametrize("input_format", ["parquet", "csv", "json", "jsonl"])
def test_every_input_format_a_job_may_read_reads_back(home: Path, input_format: str) -> None:
    job = spec(home, input_format=input_format)  # a job on a .json document must resume like any other
    assert JobSpec.from_record(job.to_record(), home) == job


def test_the_record_keeps_the_keys_earlier_versions_wrote(home: Path) -> None:
    record = spec(home).to_record()
    assert (record["model_uri"], record["pinned_uri"], record["model_version"]) == (
        "line@production",
        "models:/line/1",
        1,
    )
    assert record["options"]["predictor"] == "original"
    assert record["options"]["to_store"] is False
    assert "store" not in record


def test_the_pinned_version_is_read_back_not_the_alias(home: Path) -> None:
    record = spec(home).to_record()
    SqliteRegistry(home).set_alias("line", "production", 2)
    assert JobSpec.from_record(record, home).model.info.version == 1


def test_a_record_from_before_compiling_and_engines_reads_as_such_a_job_ran(home: Path) -> None:
    record = spec(home).to_record()
    for added in ("predictor", "engine", "ray_address", "to_store"):
        del record["options"][added]
    job = JobSpec.from_record(record, home)
    assert (job.model.predictor, job.engine, job.ray_address, job.store) == ("original", "local", None, None)


def test_a_spec_travels_to_a_worker_process(home: Path) -> None:
    job = spec(home, store=StoreTarget("line", 1, None, home.absolute()))
    assert pickle.loads(pickle.dumps(job)) == job


def test_a_damaged_record_is_refused_with_what_to_do(home: Path) -> None:
    record = spec(home).to_record()
    del record["options"]["id_column"]
    with pytest.raises(InvalidInput, match=r"cannot read the record of job 'job-20261204-120000-abcdef'.*run the job"):
        JobSpec.from_record(record, home)
