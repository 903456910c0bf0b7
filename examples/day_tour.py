"""A day of traffic against a real server, then the outcomes of yesterday's scores: what `make run` monitors.

Serves churn, sends a day's requests compressed into seconds (`foretell.demo.traffic`:
lookups, fresh lookups, infer requests, events that make one segment's support calls
drift), stops the server (its ledger flushes), and writes the outcomes that arrived for
yesterday's scores to `demo/outcomes.parquet` for `foretell labels load`, and the day's
window to `demo/day-window.txt` for `foretell advise --from-ledger`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pyarrow.parquet as pq
from demo_server import running_server

import foretell
from foretell.demo.traffic import DRIFT_CALLS, DRIFT_FEATURE, SEGMENT, day_labels, simulate_day

home = Path(os.environ.get("FORETELL_HOME", ".foretell"))


def main() -> int:
    customers = pq.read_table(home / "demo" / "customers.parquet")
    features = foretell.show("churn@production").signature.input_names
    column, value = SEGMENT
    calls = f"{DRIFT_CALLS:.0f} more support calls a month"
    print(f"\n== a day of traffic for churn: customers with {column}={value} make {calls}")
    with running_server("churn@production") as url:
        traffic = simulate_day(url, customers, list(features))
    sent = ", ".join(f"{count:,} {kind}" for kind, count in traffic.sent.items())
    statuses = ", ".join(f"{count:,} × {status}" for status, count in sorted(traffic.statuses.items()))
    print(f"   sent {sent} in {traffic.seconds:.1f} s; answers: {statuses}")
    print(f"   {len(traffic.changed_keys):,} customers' {DRIFT_FEATURE} changed by events")
    window = home / "demo" / "day-window.txt"  # what `make run` hands `foretell advise --from-ledger`
    window.write_text(" ".join(traffic.window()) + "\n")
    labels = day_labels(customers)
    pq.write_table(labels, home / "demo" / "outcomes.parquet")
    print(f"   {labels.num_rows:,} outcomes of yesterday's scores arrived: {home / 'demo' / 'outcomes.parquet'}")
    return 0 if set(traffic.statuses) == {200} else 1


if __name__ == "__main__":
    sys.exit(main())
