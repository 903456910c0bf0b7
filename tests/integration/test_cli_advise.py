"""`foretell advise --quick` as a user runs it: real measurements of a registered model, JSON and the table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

import foretell


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FORETELL_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "foretell", "advise", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_advise_measures_the_model_and_recommends_with_reasons(tmp_path):
    home = tmp_path / "home"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    joblib.dump(LogisticRegression().fit(x, (x[:, 0] > 0).astype(int)), tmp_path / "clf.joblib")
    foretell.register("clf", tmp_path / "clf.joblib", sample=None, aliases=["production"], home=home)
    before = sorted(p.name for p in home.iterdir())

    result = run(home, "clf@production", "--preset", "fraud-check", "--quick", "--json")
    assert result.returncode == 0, result.stderr
    advice = json.loads(result.stdout)
    assert advice["recommendation"] == "real-time"
    measured = advice["measurements"]
    for figure in ("batch_rows_per_s", "single_p50_ms", "live_rps", "lookup_rps", "store_write_rows_per_s"):
        assert measured[figure] > 0, figure
    assert measured["single_p50_ms"] <= measured["single_p99_ms"]
    assert "measuring clf@production on this machine: about" in result.stderr
    assert sorted(p.name for p in home.iterdir()) == before  # the user's home is left as it was

    page = tmp_path / "advice.html"
    table = run(
        home,
        "clf@production",
        "--preset",
        "nightly-churn",
        "--requests-per-day",
        "50000",
        "--quick",
        "--report",
        str(page),
    )
    assert table.returncode == 0, table.stderr
    assert page.read_text().count("<svg") == 3
    assert "Use hybrid." in table.stdout and "Both needs" in table.stdout
    assert "50,000 online requests a day" in table.stdout


def test_a_bad_workload_is_a_one_line_error(tmp_path):
    result = run(tmp_path / "home", "clf@production", "--preset", "nope")
    assert result.returncode == 1
    assert "no preset 'nope'" in result.stderr and "Traceback" not in result.stderr
