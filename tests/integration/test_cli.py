"""The CLI as a user runs it: a real subprocess, a real FORETELL_HOME, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression


def run(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FORETELL_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "foretell", *args], input=stdin, capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    path = tmp_path_factory.mktemp("models") / "clf.joblib"
    joblib.dump(LogisticRegression().fit(x, y), path)
    return path


def test_version_and_help(home):
    result = run(home, "--version")
    assert result.returncode == 0 and result.stdout.startswith("foretell ")
    top = run(home, "--help")
    assert top.returncode == 0 and "Example" in top.stdout
    for command in (
        ["models", "register"],
        ["models", "list"],
        ["models", "show"],
        ["models", "alias"],
        ["models", "delete"],
        ["predict"],
        ["demo", "init"],
    ):
        shown = run(home, *command, "--help")
        assert shown.returncode == 0, shown.stderr
        assert "Example" in shown.stdout, command


def test_register_list_show_alias_delete(home, model_file):
    first = run(home, "models", "register", "clf", str(model_file), "--alias", "staging", "--json")
    assert first.returncode == 0, first.stderr
    info = json.loads(first.stdout)
    assert info["version"] == 1 and info["aliases"] == ["staging"] and info["flavor"] == "sklearn"
    assert [f["name"] for f in info["signature"]["inputs"]] == ["f0", "f1", "f2"]
    assert run(home, "models", "register", "clf", str(model_file)).returncode == 0

    listed = json.loads(run(home, "models", "list", "--json").stdout)
    assert listed[0]["name"] == "clf" and listed[0]["latest_version"] == 2
    moved = run(home, "models", "alias", "clf", "production", "2", "--json")
    assert json.loads(moved.stdout) == {"name": "clf", "alias": "production", "version": 2}
    shown = json.loads(run(home, "models", "show", "models:/clf@production", "--json").stdout)
    assert shown["version"] == 2 and len(shown["sha256"]) == 64 and shown["size_bytes"] > 0
    assert "scikit-learn" in shown["framework_versions"]
    table = run(home, "models", "show", "clf@production")
    assert "signature" in table.stdout and "f0" in table.stdout

    assert run(home, "models", "alias", "clf", "staging", "--delete").returncode == 0
    versions = json.loads(run(home, "models", "list", "clf", "--json").stdout)
    assert [(v["version"], v["aliases"]) for v in versions] == [(1, []), (2, ["production"])]
    assert run(home, "models", "delete", "clf", "1").returncode == 0
    gone = run(home, "models", "show", "clf/1")
    assert gone.returncode == 1
    assert "version" in gone.stderr and "Traceback" not in gone.stderr


def test_user_errors_are_one_line_without_traceback(home):
    missing = run(home, "predict", "nosuch@production", "--input", "-", stdin="{}")
    assert missing.returncode == 1
    assert "error:" in missing.stderr and "nosuch" in missing.stderr
    assert "Traceback" not in missing.stderr
    debug = run(home, "--debug", "models", "show", "nosuch/1")
    assert debug.returncode != 0 and "Traceback" in debug.stderr
    bad_uri = run(home, "models", "show", "models:/a/b/c")
    assert bad_uri.returncode == 1 and "Traceback" not in bad_uri.stderr


@pytest.fixture(scope="module")
def clf_home(tmp_path_factory, model_file) -> Path:
    home = tmp_path_factory.mktemp("clf")
    assert run(home, "models", "register", "clf", str(model_file), "--alias", "production").returncode == 0
    return home


def test_predict_json_stdin_csv_parquet_agree(clf_home, tmp_path):
    rows = [{"f0": 1.0, "f1": 2.0, "f2": 0.5}, {"f0": -1.0, "f1": -2.0, "f2": 0.0}]
    from_stdin = run(clf_home, "predict", "clf@production", "--input", "-", "--json", stdin=json.dumps(rows))
    assert from_stdin.returncode == 0, from_stdin.stderr
    expected = json.loads(from_stdin.stdout)
    assert [r["label"] for r in expected] == [1, 0]
    assert set(expected[0]) == {"row", "score", "label", "proba"}

    (tmp_path / "rows.csv").write_text("f0,f1,f2\n1.0,2.0,0.5\n-1.0,-2.0,0.0\n")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "rows.parquet")
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    for name in ("rows.csv", "rows.parquet", "rows.jsonl"):
        result = run(clf_home, "predict", "clf@production", "--input", str(tmp_path / name), "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == expected, name


def test_predict_reports_refused_rows_and_keeps_the_rest(clf_home):
    rows = [{"id": "a", "f0": 1.0, "f1": 2.0, "f2": 0.5}, {"id": "b", "f0": "x", "f1": 2.0, "f2": 0.5}]
    as_json = run(clf_home, "predict", "clf/1", "--input", "-", "--id-column", "id", "--json", stdin=json.dumps(rows))
    assert as_json.returncode == 3
    assert [r["id"] for r in json.loads(as_json.stdout)] == ["a"]
    (refused,) = [json.loads(line) for line in as_json.stderr.splitlines()]
    assert refused["id"] == "b" and refused["field"] == "f0"
    assert refused["reason"] == "row 1, field 'f0': expected a number (float64); got str 'x'"
    as_text = run(clf_home, "predict", "clf/1", "--input", "-", "--id-column", "id", stdin=json.dumps(rows))
    assert as_text.returncode == 3
    assert "refused row 1, field 'f0': expected a number (float64); got str 'x'" in as_text.stderr


def test_predict_reads_pretty_printed_json_and_refuses_bytes_that_are_not_text(clf_home):
    pretty = json.dumps({"f0": 1.0, "f1": 2.0, "f2": 0.5}, indent=2)
    result = run(clf_home, "predict", "clf@production", "--input", "-", "--json", stdin=pretty)
    assert result.returncode == 0, result.stderr
    env = {**os.environ, "FORETELL_HOME": str(clf_home)}
    binary = subprocess.run(
        [sys.executable, "-m", "foretell", "predict", "clf@production", "--input", "-", "--format", "json"],
        input=b"\xff\xfe{",
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert binary.returncode == 1
    assert b"not valid JSON" in binary.stderr and b"Traceback" not in binary.stderr


def test_predict_table_output(clf_home):
    result = run(clf_home, "predict", "clf@production", "--input", "-", stdin='{"f0": 1, "f1": 2, "f2": 3}')
    assert result.returncode == 0, result.stderr
    assert "1 predictions" in result.stdout and "score" in result.stdout


def test_predict_rejects_bad_json_and_unknown_format(clf_home):
    bad = run(clf_home, "predict", "clf@production", "--input", "-", stdin="{not json")
    assert bad.returncode == 1 and "not valid JSON" in bad.stderr
    fmt = run(clf_home, "predict", "clf@production", "--input", "-", "--format", "xml", stdin="{}")
    assert fmt.returncode == 2 and "unknown format" in fmt.stderr


def test_demo_init_then_predict_both_models(tmp_path):
    home = tmp_path / "demo-home"
    init = run(home, "demo", "init", "--customers", "2000", "--users", "200", "--movies", "150", "--json")
    assert init.returncode == 0, init.stderr
    customers = home / "demo" / "customers.parquet"
    churn = run(
        home,
        "predict",
        "churn@production",
        "--input",
        str(customers),
        "--id-column",
        "customer_id",
        "--extra",
        "ignore",
        "--json",
    )
    assert churn.returncode == 0, churn.stderr
    scored = json.loads(churn.stdout)
    assert len(scored) == 2000 and all(0.0 <= r["score"] <= 1.0 for r in scored)
    recs = run(home, "predict", "movies@production", "--input", "-", "--k", "3", "--json", stdin='[{"user_id": 5}]')
    assert recs.returncode == 0, recs.stderr
    (row,) = json.loads(recs.stdout)
    assert len(row["items"]) == 3 and row["scores"] == sorted(row["scores"], reverse=True)
