"""`foretell entities ...` as a user runs it: a real subprocess, a real FORETELL_HOME, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FORETELL_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "foretell", "entities", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_load_list_and_get_features_and_interactions(tmp_path):
    home = tmp_path / "home"
    customers = tmp_path / "customers.parquet"
    pq.write_table(pa.table({"customer_id": ["C-1", "C-2"], "calls": [3, 0], "plan": ["basic", None]}), customers)
    ratings = tmp_path / "ratings.csv"
    pacsv.write_csv(pa.table({"user_id": [7, 7, 8], "movie_id": [1, 2, 1], "rating": [5, 3, 4]}), ratings)

    loaded = run(home, "load", "customers", str(customers), "--key", "customer_id", "--model", "churn", "--json")
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout)["rows"] == 2
    users = run(
        home,
        "load",
        "users",
        str(ratings),
        "--key",
        "user_id",
        "--model",
        "movies",
        "--interactions",
        "ratings",
        "--item",
        "movie_id",
        "--value",
        "rating",
    )
    assert users.returncode == 0 and "loaded 2 keys into entity table 'users'" in users.stderr

    listed = json.loads(run(home, "list", "--json").stdout)
    assert [(t["name"], t["models"], t["rows"]) for t in listed] == [
        ("customers", ["churn"], 2),
        ("users", ["movies"], 2),
    ]
    assert "interactions (ratings)" in run(home, "list").stdout

    one = json.loads(run(home, "get", "customers", "C-2", "--json").stdout)
    assert one["features"] == {"customer_id": "C-2", "calls": 3 - 3, "plan": None}
    assert json.loads(run(home, "get", "users", "7", "--json").stdout)["features"] == {
        "user_id": 7,
        "ratings": {"1": 5.0, "2": 3.0},
    }


def test_get_prints_a_table_for_a_person_and_json_when_asked(tmp_path):
    home = tmp_path / "home"
    customers = tmp_path / "customers.parquet"
    pq.write_table(
        pa.table({"customer_id": ["C-1"], "calls": [3], "plan": [None], "note": ["[vip] call first"]}), customers
    )
    ratings = tmp_path / "ratings.parquet"
    pq.write_table(pa.table({"user_id": [7] * 12, "movie_id": list(range(1, 13)), "rating": [4.5] * 12}), ratings)
    assert run(home, "load", "customers", str(customers), "--key", "customer_id").returncode == 0
    interactions = ("--interactions", "ratings", "--item", "movie_id", "--value", "rating")
    assert run(home, "load", "users", str(ratings), "--key", "user_id", *interactions).returncode == 0

    shown = run(home, "get", "customers", "C-1")
    assert shown.returncode == 0, shown.stderr
    lines = [line.strip("│ ").split() for line in shown.stdout.splitlines()]
    assert lines[0][:2] == ["customers", "C-1"] and "updated" in shown.stdout.splitlines()[0]
    assert ["calls", "│", "3"] in lines and ["plan", "│", "missing"] in lines
    assert ["note", "│", "[vip]", "call", "first"] in lines  # text, not rich markup
    as_json = json.loads(run(home, "get", "customers", "C-1", "--json").stdout)
    assert as_json["features"] == {"customer_id": "C-1", "calls": 3, "plan": None, "note": "[vip] call first"}

    user = run(home, "get", "users", "7").stdout
    assert "12 items: 1 → 4.5, 10 → 4.5, 11 → 4.5" in user and "(and 2 more)" in user  # as the map is stored


def test_mistakes_are_one_line_errors(tmp_path):
    home = tmp_path / "home"
    rows = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"id": ["a"], "x": [1.0]}), rows)
    cases = [
        (("load", "t", str(rows), "--key", "nope"), "key column 'nope' is not in the file"),
        (("load", "t", str(rows), "--key", "id", "--interactions", "m"), "go together"),
        (("get", "t", "a"), "no entity table 't'"),
    ]
    for args, message in cases:
        result = run(home, *args)
        assert result.returncode == 1, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr
    assert run(home, "load", "t", str(rows), "--key", "id").returncode == 0
    missing = run(home, "get", "t", "zzz")
    assert missing.returncode == 1 and "has no row for key 'zzz'" in missing.stderr
