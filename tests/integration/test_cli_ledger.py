"""The ledger from the command line, as a user runs it: a real model, a real batch job, real label files."""

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

ROWS = 40


def run(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    inherited = {name: value for name, value in os.environ.items() if name != "FORETELL_LEDGER"}
    environ = {**inherited, "FORETELL_HOME": str(home), "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "foretell", *args], capture_output=True, text=True, env=environ, timeout=180
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> tuple[Path, Path, str]:
    """A home with a registered model and one published batch job over customers C-0 … C-39; and its job id."""
    home = tmp_path_factory.mktemp("home")
    files = tmp_path_factory.mktemp("files")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    joblib.dump(LogisticRegression().fit(x, (x[:, 0] > 0).astype(int)), files / "clf.joblib")
    ok(run(home, "models", "register", "clf", str(files / "clf.joblib"), "--alias", "production"))
    features = rng.normal(size=(ROWS, 2))
    customers = files / "customers.parquet"
    pq.write_table(
        pa.table({"customer_id": [f"C-{i}" for i in range(ROWS)], "f0": features[:, 0], "f1": features[:, 1]}),
        customers,
    )
    job = json.loads(
        ok(
            run(
                home, "batch", "run", "clf@production", "--input", str(customers), "--output", str(files / "scores"),
                "--id-column", "customer_id", "--json",
            )
        ).stdout
    )  # fmt: skip
    return home, files, job["job_id"]


def test_help_has_an_example_on_every_command(scored):
    home, _, _ = scored
    for command in (["ledger", "show"], ["ledger", "export"], ["ledger", "stats"], ["labels", "load"]):
        shown = ok(run(home, *command, "--help"))
        assert "Example" in shown.stdout, command


def test_a_batch_row_is_found_by_its_key(scored):
    home, files, job_id = scored
    found = json.loads(ok(run(home, "ledger", "show", "clf", "--key", "C-7", "--json")).stdout)
    [row] = found["predictions"]
    assert (row["source"], row["prediction_id"], row["key"], row["version"]) == ("batch", job_id, "C-7", 1)
    expected = pq.read_table(files / "scores").to_pylist()
    [scores] = [r for r in expected if r["customer_id"] == "C-7"]
    assert row["outputs"]["label"] == scores["label"]

    table = ok(run(home, "ledger", "show", "clf", "--key", "C-7")).stdout
    assert "batch" in table and "C-7" in table and "v1" in table
    assert json.loads(ok(run(home, "ledger", "show", "clf", "--source", "live", "--json")).stdout)["count"] == 0


def test_a_bad_option_is_one_line_without_a_traceback(scored):
    home, _, _ = scored
    refused = run(home, "ledger", "show", "clf", "--since", "last week")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "since is a duration back from now (90m, 24h, 7d) or an ISO date/time" in refused.stderr
    unknown = run(home, "labels", "load", "nope", __file__, "--key", "k", "--label", "y")
    assert unknown.returncode == 1 and "no model 'nope' is registered" in unknown.stderr


def test_labels_with_a_bad_row_then_an_export_joined_with_them(scored):
    home, files, _ = scored
    outcomes = files / "outcomes.csv"
    outcomes.write_text("customer_id,churned\nC-1,1\nC-2,0\n,1\nC-3,yes\n")
    loaded = json.loads(
        ok(
            run(home, "labels", "load", "clf", str(outcomes), "--key", "customer_id", "--label", "churned", "--json")
        ).stdout
    )
    assert (loaded["accepted"], loaded["rejected"]) == (3, 1)
    [reject] = pq.read_table(loaded["rejects_path"]).to_pylist()
    assert reject["row"] == 2 and reject["reason"].startswith("customer_id: an entity key is non-empty text")

    early = files / "early.jsonl"  # known before the batch job ran: no prediction to join
    early.write_text('{"customer_id": "C-5", "churned": 1, "at": "2000-01-01T00:00:00Z"}\n')
    ok(run(home, "labels", "load", "clf", str(early), "--key", "customer_id", "--label", "churned", "--at", "at"))

    export = files / "export.parquet"
    exported = ok(run(home, "ledger", "export", "clf", "--since", "7d", "--output", str(export), "--json"))
    counts = json.loads(exported.stdout)
    assert (counts["rows"], counts["labelled"]) == (ROWS, 3)
    joined = {r["key"]: r["label"] for r in pq.read_table(export).to_pylist() if r["label"] is not None}
    assert joined == {"C-1": "1", "C-2": "0", "C-3": "yes"}

    stats = json.loads(ok(run(home, "ledger", "stats", "--json")).stdout)
    clf = stats["models"]["clf"]
    assert clf["rows_by_source"] == {"batch": ROWS} and clf["batch_jobs"] == 1 and clf["labels"] == 4
    assert stats["writers"]["dropped"] == 0
    assert "clf" in ok(run(home, "ledger", "stats")).stdout


def test_no_ledger_and_another_ledger(scored, tmp_path):
    home, files, _ = scored
    elsewhere = tmp_path / "elsewhere"
    args = ["batch", "run", "clf@production", "--input", str(files / "customers.parquet"), "--id-column", "customer_id"]
    ok(run(home, *args, "--output", str(tmp_path / "a"), "--no-ledger"))
    ok(run(home, *args, "--output", str(tmp_path / "b"), env={"FORETELL_LEDGER": str(elsewhere)}))

    assert json.loads(ok(run(home, "ledger", "stats", "--json")).stdout)["models"]["clf"]["batch_jobs"] == 1
    moved = json.loads(ok(run(home, "ledger", "stats", "--ledger", str(elsewhere), "--json")).stdout)
    assert moved["models"]["clf"]["batch_jobs"] == 1
