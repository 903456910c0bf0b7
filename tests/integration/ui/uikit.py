"""A demo home for the dashboard tests, and `foretell serve` over it (imported by name)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).parents[1] / "serving"))  # servekit: the server and CLI helpers
sys.path.insert(0, str(Path(__file__).parents[2] / "unit"))  # browserkit: finding Chromium

from servekit import FEATURES, cli, free_port, rows, server  # noqa: F401  (server, free_port: for the tests)

import foretell
from foretell.adapters.outputs import classifier_outputs
from foretell.core.feature import Feature
from foretell.core.schema import Output, Signature

SLOW_MODEL = """
import time
import numpy as np


class Slow:
    @classmethod
    def load(cls, path):
        return cls()

    def predict(self, columns):
        time.sleep(0.1)
        return np.asarray(columns["a"], dtype=float) * 2.0
"""
SLOW_ROWS = 4000
SLOW_CHUNK = 100


def two_versions(home: Path, scratch: Path, *, production: int) -> Path:
    """A home holding a small classifier `m` registered twice (uncompiled), `production` on version `production`."""
    x = rows(200, seed=3)
    path = scratch / "m.joblib"
    joblib.dump(LogisticRegression().fit(x, (x[:, 0] > 0).astype(int)), path)
    signature = Signature(tuple(Feature(n) for n in FEATURES), classifier_outputs([0, 1]))
    for version in (1, 2):
        aliases = ["production"] if version == production else []
        foretell.register("m", path, signature=signature, aliases=aliases, compile=False, home=home)
    return home


def ok(home: Path, *args: str) -> str:
    done = cli(home, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def cli_json(home: Path, *args: str) -> Any:
    """`foretell ARGS --json` on `home`, parsed."""
    return json.loads(ok(home, *args, "--json"))


def make_home(home: Path, scratch: Path) -> Path:
    """The demo (churn, movies) with one batch job, a schedule; `other` v1/v2 (alias moves), `clf` v1/v2 in a
    shadow rollout, and `slow` (a job that takes seconds); the inputs of the slow job at scratch/slow.parquet."""
    ok(home, "demo", "init", "--customers", "2000", "--users", "100", "--movies", "100")
    demo = home / "demo"
    ok(home, "batch", "run", "churn@production", "--input", str(demo / "customers.parquet"),
       "--output", str(scratch / "nightly"), "--id-column", "customer_id", "--to-store")  # fmt: skip
    ok(home, "schedule", "add", "nightly", "--cron", "@daily", "--", "models", "list", "--json")
    signature = Signature(tuple(Feature(n) for n in FEATURES), classifier_outputs([0, 1]))
    for name in ("other", "clf"):
        for version, seed in ((1, 1), (2, 2)):
            x = rows(400, seed=seed)
            y = (x[:, 0] - seed * x[:, 1] > 0).astype(int)
            path = scratch / f"{name}-{version}.joblib"
            joblib.dump(LogisticRegression().fit(x, y), path)
            aliases = ["production"] if version == 1 else ["staging"]
            foretell.register(name, path, signature=signature, aliases=aliases, compile=False, home=home)
    ok(home, "rollout", "start", "clf", "--challenger", "2", "--shadow", "50")
    a: list[float | None] = [float(i) for i in range(300)]
    a[7] = None  # one reject in 300 rows (a feature missing): under the 1 % the job tolerates
    scored = {"id": [f"R-{i}" for i in range(300)], "a": a, "b": [1.0] * 300, "c": [2.0] * 300, "d": [3.0] * 300}
    pq.write_table(pa.table(scored), scratch / "scored.parquet")
    ok(home, "batch", "run", "other/1", "--input", str(scratch / "scored.parquet"), "--output", str(scratch / "scored"),
       "--id-column", "id")  # fmt: skip
    folder = scratch / "slow"
    folder.mkdir()
    (folder / "slow.py").write_text(SLOW_MODEL)
    slow_signature = Signature((Feature("a"),), (Output("score", "score"),))
    foretell.register(
        "slow", folder, flavor="python", signature=slow_signature, flavor_options={"class": "slow.py:Slow"}, home=home
    )
    ids = [f"S-{i:05d}" for i in range(SLOW_ROWS)]
    table = pa.table({"id": ids, "a": np.arange(SLOW_ROWS, dtype=float)})
    pq.write_table(table, scratch / "slow.parquet")
    return home


def slow_job(home: Path, scratch: Path, output: str) -> list[str]:
    """The argv of a batch job on `slow` that commits a chunk every 0.1 s for about 4 s."""
    return ["batch", "run", "slow/1", "--input", str(scratch / "slow.parquet"), "--output", str(scratch / output),
            "--id-column", "id", "--chunk-rows", str(SLOW_CHUNK), "--workers", "1"]  # fmt: skip
