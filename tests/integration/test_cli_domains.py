"""`--domain` and `--propose-domains` as a user runs them: a real subprocess, a real FORETELL_HOME, real files."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LinearRegression
from test_cli import run

import foretell


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A model of `tenure_months` and `calls`, and a sample whose tenure spans 1..72 and calls 0..9."""
    folder = tmp_path_factory.mktemp("domain-models")
    rng = np.random.default_rng(0)
    tenure = np.concatenate([[1.0, 72.0], rng.integers(2, 72, 198)]).astype(float)
    calls = np.concatenate([[0.0, 9.0], rng.integers(0, 10, 198)]).astype(float)
    sample = folder / "sample.parquet"
    pq.write_table(pa.table({"tenure_months": tenure, "calls": calls}), sample)
    model = folder / "reg.joblib"
    joblib.dump(LinearRegression().fit(np.column_stack([tenure, calls]), tenure - calls), model)
    return model, sample


def test_register_with_domains_records_them_and_predict_refuses_outside_them(tmp_path, files):
    model, sample = files
    made = run(
        tmp_path, "models", "register", "reg", str(model), "--sample", str(sample), "--no-compile", "--json",
        "--domain", "tenure_months=0:120", "--domain", "calls=:50",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    inputs = json.loads(made.stdout)["signature"]["inputs"]
    assert [f.get("domain") for f in inputs] == [{"min": 0, "max": 120}, {"max": 50}]
    shown = run(tmp_path, "models", "show", "reg/1")
    assert "0:120" in shown.stdout and ":50" in shown.stdout
    rows = '[{"tenure_months": 12, "calls": 1}, {"tenure_months": 250, "calls": 1}]'
    refused = run(tmp_path, "predict", "reg/1", "--input", "-", "--format", "json", "--json", stdin=rows)
    assert json.loads(refused.stderr.splitlines()[-1]) == {
        "row": 1,
        "field": "tenure_months",
        "reason": "row 1, field 'tenure_months': above its domain's maximum 120 (domain 0:120); got float 250.0",
    }
    assert len(json.loads(refused.stdout)) == 1  # the row inside its domains is predicted all the same


@pytest.mark.parametrize(
    ("option", "words"),
    [
        ("tenure_months", "cannot read --domain 'tenure_months': expected NAME=MIN:MAX"),
        ("tenure_months=zero:120", "--domain 'tenure_months=zero:120': cannot read the domain 'zero:120'"),
        ("tenure=0:1", "no input feature(s) ['tenure'] to give a domain"),
    ],
)
def test_a_bad_domain_option_is_refused_naming_it_and_registers_nothing(tmp_path, files, option, words):
    model, sample = files
    made = run(tmp_path, "models", "register", "reg", str(model), "--sample", str(sample), "--domain", option)
    assert made.returncode == 1
    assert words in " ".join(made.stderr.split())
    assert run(tmp_path, "models", "list", "--json").stdout.strip() == "[]"


def test_propose_domains_yes_json_registers_the_observed_ranges(tmp_path, files):
    model, sample = files
    made = run(
        tmp_path, "models", "register", "reg", str(model), "--sample", str(sample), "--no-compile", "--json",
        "--propose-domains", "--yes", "--domain", "calls=0:20",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    answer = json.loads(made.stdout)
    assert answer["proposed_domains"] == {"tenure_months": {"min": 1, "max": 72}}  # calls was declared: it wins
    assert [f["domain"] for f in answer["signature"]["inputs"]] == [{"min": 1, "max": 72}, {"min": 0, "max": 20}]
    registered = foretell.load("reg/1", home=tmp_path)
    columns = registered.coerce([{"tenure_months": 72, "calls": 20}, {"tenure_months": 73, "calls": 20}])
    assert [e.describe() for e in columns.errors] == [
        "row 1, field 'tenure_months': above its domain's maximum 72 (domain 1:72); got float 73.0"
    ]


def test_propose_domains_without_yes_and_without_a_terminal_prints_them_and_registers_nothing(tmp_path, files):
    model, sample = files
    made = run(
        tmp_path, "models", "register", "reg", str(model), "--sample", str(sample), "--json", "--propose-domains"
    )
    assert made.returncode == 1
    assert json.loads(made.stdout) == {
        "registered": False,
        "proposed_domains": {"tenure_months": {"min": 1, "max": 72}, "calls": {"min": 0, "max": 9}},
    }
    assert "confirm the proposed domains with --yes" in made.stderr
    assert run(tmp_path, "models", "list", "--json").stdout.strip() == "[]"
    plain = run(tmp_path, "models", "register", "reg", str(model), "--sample", str(sample), "--propose-domains")
    assert plain.returncode == 1 and "1:72" in plain.stderr and "0:9" in plain.stderr
    unsampled = run(tmp_path, "models", "register", "reg", str(model), "--propose-domains", "--yes")
    assert unsampled.returncode == 2 and "--sample" in unsampled.stderr


def test_entities_load_with_domains_keeps_them_and_refuses_a_file_outside_them(tmp_path):
    ratings = tmp_path / "ratings.parquet"
    pq.write_table(pa.table({"user_id": [1, 1, 2], "movie_id": [10, 11, 10], "rating": [5.0, 1.0, 3.0]}), ratings)
    spec = ["--key", "user_id", "--interactions", "ratings", "--item", "movie_id", "--value", "rating", "--json"]
    loaded = run(tmp_path, "entities", "load", "users", str(ratings), *spec, "--domain", "rating=1:5")
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout)["domains"] == {"rating": {"min": 1, "max": 5}}
    narrow = run(tmp_path, "entities", "load", "users", str(ratings), *spec, "--domain", "rating=2:5")
    assert narrow.returncode == 1
    assert "row 1: column 'rating' of entity table 'users' holds 1.0, below its domain's minimum 2" in narrow.stderr
    listed = json.loads(run(tmp_path, "entities", "list", "--json").stdout)
    assert listed[0]["domains"] == {"rating": {"min": 1, "max": 5}}  # the refused load changed nothing
