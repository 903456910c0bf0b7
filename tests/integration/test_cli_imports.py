"""A command imports what it needs: `foretell ledger show` and `--help` start without numpy, pandas or the compilers.

Every `foretell` command is a new process, so what it imports is time the user waits
(issue 16: a key's history in < 300 ms end to end). The modules are read from the real
command's own `python -X importtime` report, not timed: a heavy import that creeps back
in (a module-level `from foretell.compile import ...` somewhere on the path) fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import joblib
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression

from foretell.ledger.record import SEGMENT_COLUMNS
from foretell.ledger.segments import LedgerLocation, segment_name

#: What no command below needs: the model stack (frameworks, numpy, Arrow, the compilers, the
#: registry that loads models) and the scheduler's cron machinery.
HEAVY = (
    "numpy",
    "pandas",
    "sklearn",
    "pyarrow",
    "onnxruntime",
    "foretell.compile",
    "foretell.core",
    "foretell.registry",
    "foretell.batch",
    "foretell.serving",
    "foretell.http",
)


def imported(result: subprocess.CompletedProcess[str]) -> set[str]:
    """The modules a `python -X importtime` run imported, from its report on stderr."""
    names = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    names.discard("package")  # the report's header line
    return names


def heavy(names: set[str]) -> list[str]:
    return sorted(n for n in names if any(n == h or n.startswith(h + ".") for h in HEAVY))


def foretell(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    inherited = {name: value for name, value in os.environ.items() if name != "FORETELL_LEDGER"}
    env = {**inherited, "FORETELL_HOME": str(home), "COLUMNS": "200"}
    command = [sys.executable, "-X", "importtime", "-m", "foretell", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_importing_the_cli_app_pulls_in_no_model_stack() -> None:
    code = "import json, sys\nimport foretell.cli.app\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    names = set(json.loads(result.stdout))
    assert "foretell.cli.ledger" in names  # every command is still registered with typer
    assert heavy(names) == []


@pytest.mark.parametrize(
    "args",
    [
        ("--version",),
        ("--help",),
        ("ledger", "show", "--help"),
        ("predict", "--help"),
        ("schedule", "add", "--help"),
        ("models", "register", "--help"),
        ("batch", "run", "--help"),
        ("rollout", "start", "--help"),
        ("rollout", "status", "--help"),
    ],
)
def test_help_and_version_import_no_model_stack(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = foretell(tmp_path, *args)
    assert result.stdout.strip()
    assert heavy(imported(result)) == []


@pytest.fixture(scope="module")
def ledger_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose ledger holds a real batch job over C-0 … C-19 and a live segment for C-3 and C-4."""
    home = tmp_path_factory.mktemp("home")
    files = tmp_path_factory.mktemp("files")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    joblib.dump(LogisticRegression().fit(x, (x[:, 0] > 0).astype(int)), files / "clf.joblib")
    foretell(home, "models", "register", "clf", str(files / "clf.joblib"), "--alias", "production")
    rows = rng.normal(size=(20, 2))
    customers = files / "customers.parquet"
    pq.write_table(
        pa.table({"customer_id": [f"C-{i}" for i in range(20)], "f0": rows[:, 0], "f1": rows[:, 1]}), customers
    )
    foretell(home, "batch", "run", "clf@production", "--input", str(customers), "--output", str(files / "scores"),
             "--id-column", "customer_id")  # fmt: skip

    now = datetime.now(UTC)
    plain: dict[str, pa.Array] = {
        "prediction_id": pa.array(["p1", "p2"]),
        "row": pa.array([0, 0], pa.int32()),
        "predicted_at": pa.array([now, now], pa.timestamp("us", tz="UTC")),
        "model": pa.array(["clf", "clf"]),
        "version": pa.array([1, 1], pa.int64()),
        "sha256": pa.array(["ab" * 32] * 2),
        "predictor": pa.array(["original"] * 2),
        "source": pa.array(["live", "precomputed"]),
        "transport": pa.array(["http"] * 2),
        "endpoint": pa.array(["infer", "lookup"]),
        "key": pa.array(["C-3", "C-4"]),
        "request_id": pa.array([None, None], pa.string()),
        "latency_ms": pa.array([1.5, 0.5]),
        "batch_size": pa.array([1, 1], pa.int32()),
        "status": pa.array(["ok", "ok"]),
        "error": pa.array([None, None], pa.string()),
    }
    table = pa.table({name: plain[name] for name in SEGMENT_COLUMNS} | {"outputs": pa.array([{"label": 1}] * 2)})
    location = LedgerLocation(home / "ledger")
    folder = location.partition("clf", now.date().isoformat())
    location.publish_table(f"{folder}/{segment_name(int(now.timestamp() * 1000), 'w1', 1)}", table)
    return home


def test_a_keys_history_imports_duckdb_and_no_model_stack(ledger_home: Path) -> None:
    result = foretell(ledger_home, "ledger", "show", "clf", "--key", "C-3", "--json")
    shown = json.loads(result.stdout)
    assert sorted(row["source"] for row in shown["predictions"]) == ["batch", "live"]
    names = imported(result)
    assert "duckdb" in names
    assert heavy(names) == []

    table = foretell(ledger_home, "ledger", "show", "clf", "--since", "24h")
    assert "precomputed" in table.stdout and "batch" in table.stdout
    assert heavy(imported(table)) == []
