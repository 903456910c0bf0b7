"""`foretell advise --quick` as a user runs it: real measurements of a registered model, JSON and the table."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import joblib
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression

import foretell
from foretell.serving.config import load_serve_config


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


# -- --from-ledger ---------------------------------------------------------------------------------


def _serve(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "foretell", "serve", "clf@production", "--port", str(port), "--reload-seconds", "0"],
        env={**os.environ, "FORETELL_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError("the server did not become ready")


def test_from_ledger_measures_the_recorded_traffic_prices_the_current_set_up_and_writes_the_knobs(tmp_path):
    home = tmp_path / "home"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    joblib.dump(LogisticRegression().fit(x, (x[:, 0] > 0).astype(int)), tmp_path / "clf.joblib")
    foretell.register("clf", tmp_path / "clf.joblib", sample=None, aliases=["production"], home=home)
    customers = tmp_path / "customers.parquet"
    values = rng.normal(size=(500, 4))
    ids = [f"C-{i}" for i in range(500)]
    pq.write_table(pa.table({"customer_id": ids, **{f"f{i}": values[:, i] for i in range(4)}}), customers)
    foretell.api.run_batch("clf@production", customers, tmp_path / "scores", home=home, id_column="customer_id",
                           to_store=True)  # fmt: skip
    process, url = _serve(home)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            for i in range(200):  # 50 keys, each asked four times: lookups answered from the store
                assert client.get(f"/v1/models/clf/predictions/C-{i % 50}").json()["source"] == "precomputed"
            for i in range(20):
                body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": values[i].tolist()}],
                        "parameters": {"key": ids[i]}}  # fmt: skip
                assert client.post("/v2/models/clf/infer", json=body).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)  # the ledger's last records are flushed on the way out
        process.wait(timeout=30)

    config, page = tmp_path / "serve.toml", tmp_path / "advice.html"
    result = run(home, "clf@production", "--from-ledger", "--since", "1h", "--quick", "--json", "--p99-ms", "150",
                 "--write-config", str(config), "--report", str(page))  # fmt: skip
    assert result.returncode == 0, result.stderr
    advice = json.loads(result.stdout)
    traffic = advice["ledger"]["traffic"]
    assert traffic["rows_by_source"] == {"batch": 500, "live": 20, "precomputed": 200}
    assert traffic["requests"] == 220 and traffic["population"] == 500 and traffic["distinct_keys"] == 50
    assert traffic["repeat_share"] == pytest.approx((220 - 50) / 220)  # the infers ask keys looked up too
    assert traffic["current"] == "hybrid" and advice["current"]["current"] == "hybrid"
    assert advice["workload"]["p99_ms"] == 150 and advice["ledger"]["provenance"]["p99_ms"] == "option"
    assert advice["current"]["core_hours_per_day"]["current"] == advice["modes"]["hybrid"]["core_hours_per_day"]
    assert advice["measurements"]["single_cpu_ms"] > 0 and advice["measurements"]["event_cpu_ms"] > 0
    loaded = load_serve_config(config)
    assert loaded.policy_for("clf").max_queue >= loaded.policy_for("clf").max_batch_size
    assert "foretell schedule add" in config.read_text() or advice["recommendation"] == "real-time"
    assert "Measured from the ledger" in page.read_text() and page.read_text().count("<svg") == 3


def test_from_ledger_errors_are_one_line(tmp_path):
    home = tmp_path / "home"
    nothing = run(home, "clf@production", "--from-ledger", "--since", "2h", "--ledger", str(tmp_path / "empty"))
    assert nothing.returncode == 1 and "Traceback" not in nothing.stderr
    assert "the ledger has no predictions of model 'clf' between" in nothing.stderr
    bad = run(home, "clf@production", "--from-ledger", "--since", "yesterday")
    assert bad.returncode == 1 and "since is a duration back from now (90m, 24h, 7d)" in bad.stderr
    assert "Traceback" not in bad.stderr
    alone = run(home, "clf@production", "--preset", "nightly-churn", "--since", "2h")
    assert alone.returncode == 1 and "--since read(s) the ledger: add --from-ledger" in alone.stderr
