"""`foretell monitor` over 1M batch rows, 1M live records and 100k labels: how long each section takes.

    .venv/bin/python benchmarks/monitor.py [--batch-rows 1000000] [--live-rows 1000000] [--labels 100000]

In one run, on this machine:

- generates the churn demo's customers (31 features), trains the demo's model on 50,000 of
  them and registers it (with a sample, so its reference profile is stored; not compiled, so
  batch and live run the same predictor);
- scores `--batch-rows` customers with a real batch job (`foretell.api.run_batch`, ledger on:
  its parts and its input file are indexed);
- records `--live-rows` live predictions with a real `LedgerWriter`, as the serving path hands
  them over (rows of real model calls of 50,000 rows, 50 rows an entry): keys drawn from the
  customers, spread over the 20 hours after the batch, sources live / live-fallback /
  event-refresh / precomputed; half of them with the batch's very inputs, the rest with
  `support_calls_30d` raised by 2 (drift that alerts, so the section also finds since when; and changed
  features for the agreement);
- loads `--labels` labels by key with `foretell.api.load_labels`;
- times `foretell.monitor.run_monitor` over the window (median of `--runs`), and prints the split
  per section as the report records it (traffic, drift, agreement, quality) and the session's opening;
- times, interleaved run by run in one session, the agreement section as it is (each pair carries a hash
  of its compared features) and its query as first written (each pair carried its 31 features, compared
  one by one): the ratio is what the hash buys;
- times `foretell monitor churn --json` once as a new process (interpreter, imports, the report, JSON).

Target (issue 17): < 10 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

MODEL = "churn"
CALL_ROWS = 50_000  # rows of one model call (fewer when --live-rows is small: both halves then exist)
ENTRY_ROWS = 50


def build(scratch: Path, batch_rows: int, live_rows: int, labels: int) -> tuple[Path, datetime]:
    import joblib

    from foretell import api
    from foretell.demo.churn import CHURN_SIGNATURE, generate_customers, train_churn
    from foretell.ledger.batch_index import batch_jobs
    from foretell.ledger.record import Entry, ModelCall, new_prediction_id
    from foretell.ledger.segments import LedgerLocation
    from foretell.ledger.settings import LedgerSettings
    from foretell.ledger.writer import LedgerWriter

    home = scratch / "home"
    started = time.perf_counter()
    customers = generate_customers(batch_rows, seed=7)
    train = customers.slice(0, 50_000)
    joblib.dump(train_churn(train), scratch / "churn.joblib")
    sample = train.slice(0, 5_000).drop(["customer_id", "churned"])
    api.register(MODEL, scratch / "churn.joblib", flavor="sklearn", signature=CHURN_SIGNATURE, sample=sample,
                 aliases=("production",), compile=False, home=home)  # fmt: skip
    inputs = customers.drop(["churned"])
    pq.write_table(inputs, scratch / "customers.parquet")
    print(f"customers generated, model trained and registered: {time.perf_counter() - started:.1f} s", flush=True)

    ledger = home / "ledger"
    started = time.perf_counter()
    api.run_batch(f"{MODEL}@production", scratch / "customers.parquet", scratch / "scores", home=home,
                  id_column="customer_id", ledger=str(ledger))  # fmt: skip
    [job] = batch_jobs(LedgerLocation(ledger), MODEL)
    batch_at = datetime.fromisoformat(str(job["predicted_at"]))
    batch_at = batch_at if batch_at.tzinfo else batch_at.replace(tzinfo=UTC)
    print(f"batch job: {batch_rows:,} rows scored and indexed in {time.perf_counter() - started:.1f} s", flush=True)

    started = time.perf_counter()
    model = api.load(f"{MODEL}/1", home=home)
    rng = np.random.default_rng(11)
    writer = LedgerWriter(ledger, LedgerSettings(max_pending_rows=2 * CALL_ROWS), writer="bench-monitor")
    step = timedelta(hours=20) / live_rows
    sources = np.array(["live", "live-fallback", "event-refresh"])
    written = 0
    while written < live_rows:
        n = min(CALL_ROWS, max(live_rows // 4, 1), live_rows - written)
        picked = rng.integers(0, batch_rows, n)
        rows = inputs.take(pa.array(picked))
        if written >= live_rows // 2:  # the second half: support calls went up
            raised = pc.add(rows.column("support_calls_30d"), 2.0)
            rows = rows.set_column(rows.schema.get_field_index("support_calls_30d"), "support_calls_30d", raised)
        keys = rows.column("customer_id").to_pylist()
        columns = model.coerce(rows.drop(["customer_id"]))
        call = ModelCall(columns.frame, model.predict_columns(columns))
        for offset in range(0, n, ENTRY_ROWS):
            count = min(ENTRY_ROWS, n - offset)
            at = batch_at + timedelta(minutes=5) + step * (written + offset)
            writer.record(
                Entry(new_prediction_id(), MODEL, source=str(sources[(offset // ENTRY_ROWS) % 3]),  # type: ignore[arg-type]
                      endpoint="infer", version=1, sha256=model.info.sha256, predictor="original",
                      signature=model.info.signature, keys=keys[offset : offset + count],
                      latency_ms=float(rng.gamma(2.0, 1.5)), batch_size=count, predicted_at=at.timestamp(),
                      call=call, offset=offset, count=count)
            )  # fmt: skip
        writer.flush()
        written += n
    writer.close()
    segments = list((ledger / "segments").rglob("*.parquet"))
    size = sum(p.stat().st_size for p in segments)
    print(f"live: {written:,} records in {len(segments)} files ({size / 1e6:.0f} MB) written in "
          f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip

    labelled = rng.choice(batch_rows, labels, replace=False)
    table = pa.table({
        "customer_id": customers.column("customer_id").take(pa.array(labelled)),
        "churned": customers.column("churned").take(pa.array(labelled)),
        "observed_at": pa.array([batch_at + timedelta(days=2)] * labels, pa.timestamp("us", tz="UTC")),
    })  # fmt: skip
    pq.write_table(table, scratch / "labels.parquet")
    api.load_labels(MODEL, scratch / "labels.parquet", key="customer_id", label="churned", at="observed_at",
                    ledger=ledger, home=home)  # fmt: skip
    return home, batch_at


def carried_agreement(session: Any) -> list[tuple[Any, ...]]:
    """The agreement's query as first written: every compared feature carried with each pair, compared one by one."""
    from foretell.ledger.sql import ident
    from foretell.monitor.agreement import _compared
    from foretell.monitor.sql import is_numeric

    compared = _compared(session)
    picked = "".join(f", inputs.{ident(n)} AS {ident('i_' + n)}" for n in compared)
    same = []
    for name, (live_type, batch_type) in compared.items():
        live, batch = f"p.{ident('i_' + name)}", f"bi.{ident(name)}"
        if is_numeric(live_type) and is_numeric(batch_type):
            live, batch = (f"nullif(CAST({c} AS DOUBLE), 'NaN'::DOUBLE)" for c in (live, batch))
        else:
            live, batch = f"CAST({live} AS VARCHAR)", f"CAST({batch} AS VARCHAR)"
        same.append(f"({live} IS NOT DISTINCT FROM {batch})")
    defect = "kind = 'unchanged' AND abs(difference) > 0.0"
    sql = f"""
WITH live AS (
    SELECT key, version, predicted_at, prediction_id, source, outputs.score AS score, inputs IS NOT NULL AS recorded
           {picked}
    FROM predictions
    WHERE source IN ('live', 'live-fallback', 'event-refresh') AND status = 'ok' AND key IS NOT NULL
),
batch AS (
    SELECT key, version, predicted_at, prediction_id AS job_id, outputs.score AS score
    FROM predictions WHERE source = 'batch' AND status = 'ok' AND key IS NOT NULL
),
pairs AS (
    SELECT l.*, b.job_id, b.predicted_at AS batch_at, b.score AS batch_score, l.score - b.score AS difference
    FROM live l ASOF JOIN batch b ON l.key = b.key AND l.version = b.version AND l.predicted_at >= b.predicted_at
),
judged AS (
    SELECT p.*, CASE WHEN NOT p.recorded OR bi.key IS NULL THEN 'unknown' WHEN {" AND ".join(same)} THEN 'unchanged'
                     ELSE 'changed' END AS kind
    FROM pairs p LEFT JOIN batch_inputs bi ON bi.job_id = p.job_id AND bi.key = p.key
)
SELECT kind, count(*), count(DISTINCT key), avg(abs(difference)), quantile_cont(abs(difference), 0.95),
       max(abs(difference)), count(*) FILTER ({defect}), count(DISTINCT key) FILTER ({defect}),
       list(struct_pack(key := key, difference := difference) ORDER BY abs(difference) DESC, key) FILTER ({defect})
FROM judged GROUP BY GROUPING SETS ((kind), ())
"""
    return session.rows(sql)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-rows", type=int, default=1_000_000)
    parser.add_argument("--live-rows", type=int, default=1_000_000)
    parser.add_argument("--labels", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="foretell-monitor-bench-"))
    try:
        home, batch_at = build(scratch, args.batch_rows, args.live_rows, args.labels)
        from foretell.ledger.query import LedgerReader
        from foretell.monitor import run_monitor
        from foretell.profiles.drift import Thresholds

        since = batch_at - timedelta(hours=1)
        totals, reports, opening = [], [], []
        for _ in range(args.runs):
            started = time.perf_counter()
            with LedgerReader(home / "ledger").session(MODEL, since=since):
                pass
            opening.append(time.perf_counter() - started)
            started = time.perf_counter()
            report = run_monitor(home / "ledger", home, MODEL, version=None, since=since, until=None,
                                 thresholds=Thresholds())  # fmt: skip
            totals.append(time.perf_counter() - started)
            reports.append(report)
        report = reports[-1]
        print(f"\nrun_monitor over {report.traffic.rows:,} predictions ({args.runs} runs):")
        spread = f"min {min(totals):.2f}, max {max(totals):.2f}"
        print(f"  total:          median {statistics.median(totals):6.2f} s ({spread})")
        print(f"  session opened: median {statistics.median(opening):6.2f} s (views listed and defined)")
        for name in report.seconds:
            shares = [r.seconds[name] for r in reports]
            print(f"  {name + ':':15} median {statistics.median(shares):6.2f} s")
        print(f"\nverdict: {report.verdict.status}")
        for reason in report.verdict.reasons:
            print(f"  - {reason}")
        a = report.agreement
        print(f"agreement: {a.pairs:,} pairs, {a.unchanged.pairs:,} unchanged ({a.defects} defects), "
              f"{a.changed.pairs:,} changed, {a.unknown:,} unknown")  # fmt: skip
        print(f"quality: {report.quality.labels:,} labelled predictions")

        from foretell.monitor.agreement import agreement_section

        hashed, carried = [], []
        with LedgerReader(home / "ledger").session(MODEL, since=since) as session:
            for _ in range(args.runs):
                started = time.perf_counter()
                found = agreement_section(session, "score")
                hashed.append(time.perf_counter() - started)
                started = time.perf_counter()
                kinds = {row[0]: row[1] for row in carried_agreement(session)}
                carried.append(time.perf_counter() - started)
        assert kinds.get("unchanged", 0) == found.unchanged.pairs
        assert kinds.get("changed", 0) == found.changed.pairs
        print(f"\nagreement, each pair carrying a hash of its features: median {statistics.median(hashed):.2f} s")
        print(f"agreement, each pair carrying its 31 features:         median {statistics.median(carried):.2f} s "
              f"({statistics.median(carried) / statistics.median(hashed):.2f}x the hash's)")  # fmt: skip

        env = {**os.environ, "FORETELL_HOME": str(home)}
        env.pop("FORETELL_LEDGER", None)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "foretell", "monitor", MODEL, "--since", since.isoformat(), "--json"],
                       env=env, check=True, capture_output=True)  # fmt: skip
        print(f"foretell monitor {MODEL} --json, a new process: {time.perf_counter() - started:.2f} s")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
