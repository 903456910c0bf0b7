"""A key's history from the prediction ledger: 1M batch rows and 1M live records, queried by key.

    .venv/bin/python benchmarks/ledger.py [--batch-rows 1000000] [--live-rows 1000000] [--segments 500]

In one run, on this machine:

- builds a FORETELL_HOME with a small scikit-learn model and scores `--batch-rows` customers
  with a real `foretell batch run` (its Parquet parts, indexed in the ledger as the job
  publishes them);
- writes `--live-rows` live records as a server's writer leaves them: `--segments` segment
  files of a few thousand rows each over two UTC dates, with the spec's columns and
  `inputs`/`outputs` structs, keys drawn from the same customers, sources live,
  precomputed, live-fallback and event-refresh;
- times `foretell ledger show MODEL --key K --json` end to end (a new process each time:
  interpreter, imports, DuckDB, the query, the JSON), median over several keys, beside
  `foretell --version` (the same process start with no query) to show what the query adds;
- times `LedgerReader.history(MODEL, key=K)` in this process (a new DuckDB connection per
  call, as the CLI makes), median over more keys; and with `since=24h` (one date partition);
  and, interleaved with it key by key, the same query without first narrowing the segments
  to those holding the key (every segment's schema unified by name, as a plain
  `read_parquet(..., union_by_name = true)` does): the ratio is what the narrowing buys;
- times the newest 100 predictions without a key (`foretell ledger show MODEL`), and an
  export of every prediction joined with `--labels` labels (keys observed now).

Target (issue 16): a key's history over 1M batch rows + 1M live records in < 300 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.linear_model import LogisticRegression

MODEL = "churn"
SOURCES = ["live", "precomputed", "live-fallback", "event-refresh"]


def customer(i: int) -> str:
    return f"C-{i:07d}"


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FORETELL_HOME": str(home)}
    env.pop("FORETELL_LEDGER", None)
    result = subprocess.run([sys.executable, "-m", "foretell", *args], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"foretell {' '.join(args)} failed: {result.stderr}")
    return result


def batch_rows(home: Path, scratch: Path, rows: int) -> float:
    """Register the model and score `rows` customers with a real batch job; returns its seconds."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 3))
    joblib.dump(LogisticRegression().fit(x, (x[:, 0] + x[:, 1] > 0).astype(int)), scratch / "churn.joblib")
    cli(home, "models", "register", MODEL, str(scratch / "churn.joblib"), "--alias", "production")
    features = rng.normal(size=(rows, 3))
    table = pa.table({"customer_id": [customer(i) for i in range(rows)], **{f"f{j}": features[:, j] for j in range(3)}})
    pq.write_table(table, scratch / "customers.parquet")
    started = time.perf_counter()
    cli(home, "batch", "run", f"{MODEL}@production", "--input", str(scratch / "customers.parquet"),
        "--output", str(scratch / "scores"), "--id-column", "customer_id")  # fmt: skip
    return time.perf_counter() - started


def live_segments(ledger: Path, rows: int, segments: int, customers: int) -> int:
    """`rows` live records in `segments` files over the last two days, as the writer names and lays them out."""
    from foretell.ledger.record import SEGMENT_COLUMNS, new_prediction_id
    from foretell.ledger.segments import LedgerLocation, segment_name

    location = LedgerLocation(ledger)
    rng = np.random.default_rng(1)
    per = rows // segments
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(hours=40)
    step = (now - start) / rows
    written = 0
    for seq in range(segments):
        n = per if seq < segments - 1 else rows - per * (segments - 1)
        first = start + step * written
        moments = [first + step * i for i in range(n)]
        keys = rng.integers(0, customers, n)
        score = rng.random(n)
        columns: dict[str, Any] = {
            "prediction_id": pa.array([new_prediction_id() for _ in range(n)]),
            "row": pa.array(np.zeros(n, dtype=np.int32)),
            "predicted_at": pa.array(moments, pa.timestamp("us", tz="UTC")),
            "model": pa.array([MODEL] * n),
            "version": pa.array(np.ones(n, dtype=np.int64)),
            "sha256": pa.array(["ab" * 32] * n),
            "predictor": pa.array(["original"] * n),
            "source": pa.array(rng.choice(SOURCES, n, p=[0.4, 0.4, 0.1, 0.1])),
            "transport": pa.array(["http"] * n),
            "endpoint": pa.array(["infer"] * n),
            "key": pa.array([customer(int(k)) for k in keys]),
            "request_id": pa.array([None] * n, pa.string()),
            "latency_ms": pa.array(rng.random(n) * 3),
            "batch_size": pa.array(np.full(n, 8, dtype=np.int32)),
            "status": pa.array(["ok"] * n),
            "error": pa.array([None] * n, pa.string()),
        }
        assert list(columns) == list(SEGMENT_COLUMNS)
        columns["inputs"] = pa.StructArray.from_arrays(
            [pa.array(rng.normal(size=n)) for _ in range(3)], names=["f0", "f1", "f2"]
        )
        columns["outputs"] = pa.StructArray.from_arrays(
            [pa.array(score), pa.array((score > 0.5).astype(np.int64))], names=["score", "label"]
        )
        folder = location.partition(MODEL, first.date().isoformat())
        name = segment_name(int(first.timestamp() * 1000), "bench-host-1-abcdef", seq)
        location.publish_table(f"{folder}/{name}", pa.table(columns))
        written += n
    return written


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-rows", type=int, default=1_000_000)
    parser.add_argument("--live-rows", type=int, default=1_000_000)
    parser.add_argument("--segments", type=int, default=500)
    parser.add_argument("--cli-keys", type=int, default=7)
    parser.add_argument("--keys", type=int, default=25)
    parser.add_argument("--labels", type=int, default=100_000)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="foretell-ledger-bench-"))
    home = scratch / "home"
    try:
        seconds = batch_rows(home, scratch, args.batch_rows)
        print(f"batch job: {args.batch_rows:,} rows scored and indexed in {seconds:.1f} s", flush=True)
        started = time.perf_counter()
        live = live_segments(home / "ledger", args.live_rows, args.segments, args.batch_rows)
        segment_bytes = sum(p.stat().st_size for p in (home / "ledger" / "segments").rglob("*.parquet"))
        print(
            f"live: {live:,} records in {args.segments} segments ({segment_bytes / 1e6:.0f} MB) "
            f"written in {time.perf_counter() - started:.1f} s",
            flush=True,
        )

        from foretell.ledger import query
        from foretell.ledger.query import LedgerReader

        reader = LedgerReader(home / "ledger")
        narrowing = query._NARROW_FROM
        rng = random.Random(7)
        keys = [customer(rng.randrange(args.batch_rows)) for _ in range(args.keys)]
        reader.history(MODEL, key=keys[0])  # the page cache warm, as for any query after the first
        found = []
        in_process = []
        unified = []
        for key in keys:
            started = time.perf_counter()
            rows = reader.history(MODEL, key=key)
            in_process.append(time.perf_counter() - started)
            found.append(len(rows))
            query._NARROW_FROM = 1 << 30  # every segment read with its schema unified
            started = time.perf_counter()
            same = reader.history(MODEL, key=key)
            unified.append(time.perf_counter() - started)
            query._NARROW_FROM = narrowing
            assert same == rows
        assert all(any(r["source"] == "batch" for r in reader.history(MODEL, key=k)) for k in keys[:3])
        since = datetime.now(UTC) - timedelta(hours=24)
        recent = []
        for key in keys:
            started = time.perf_counter()
            reader.history(MODEL, key=key, since=since)
            recent.append(time.perf_counter() - started)

        newest = []
        for _ in range(5):
            started = time.perf_counter()
            reader.history(MODEL, limit=100)
            newest.append(time.perf_counter() - started)

        from foretell.ledger.labels import Label, write_labels

        labelled = [customer(rng.randrange(args.batch_rows)) for _ in range(args.labels)]
        moment = datetime.now(UTC)
        write_labels(reader.location, MODEL, [Label("1", 1.0, moment, key=k) for k in labelled])
        started = time.perf_counter()
        exported = reader.export(MODEL, output=scratch / "export.parquet")
        export_seconds = time.perf_counter() - started

        startup = []
        end_to_end = []
        for key in keys[: args.cli_keys]:
            started = time.perf_counter()
            cli(home, "--version")
            startup.append(time.perf_counter() - started)
            started = time.perf_counter()
            shown = json.loads(cli(home, "ledger", "show", MODEL, "--key", key, "--json").stdout)
            end_to_end.append(time.perf_counter() - started)
            assert shown["count"] >= 1

        per_key = args.live_rows / args.batch_rows
        print(f"\nrows per key: median {statistics.median(found):.0f} (batch 1, live ~{per_key:.0f})")
        print(
            f"LedgerReader.history(key) in process:        median {median_ms(in_process):6.1f} ms "
            f"(min {min(in_process) * 1000:.1f}, max {max(in_process) * 1000:.1f}; {len(keys)} keys)"
        )
        print(
            f"  the same, every segment unified by name:    median {median_ms(unified):6.1f} ms "
            f"(narrowed first: {median_ms(unified) / median_ms(in_process):.2f}x faster)"
        )
        print(f"LedgerReader.history(key, since=24h):         median {median_ms(recent):6.1f} ms")
        print(f"LedgerReader.history(newest 100, no key):     median {median_ms(newest):6.1f} ms")
        print(
            f"LedgerReader.export (every row, {args.labels:,} labels): {export_seconds:.2f} s "
            f"({exported.rows:,} rows, {exported.labelled:,} labelled)"
        )
        print(
            f"foretell ledger show --key --json (process):  median {median_ms(end_to_end):6.1f} ms "
            f"({len(end_to_end)} keys)"
        )
        print(f"foretell --version (process start only):      median {median_ms(startup):6.1f} ms")
        print(f"the query's share of ledger show:             {median_ms(end_to_end) - median_ms(startup):6.1f} ms")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
