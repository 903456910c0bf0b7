"""What the prediction ledger's writer costs per recorded request, in isolation (issue 16).

    PYTHONPATH=src flock /tmp/foretell-bench.lock .venv/bin/python benchmarks/ledger_writer.py
    PYTHONPATH=src flock /tmp/foretell-bench.lock .venv/bin/python benchmarks/ledger_writer.py --rounds 7

A server answers about 9,000 one-row requests a second on one core (docs/benchmarks.md,
"serve"); the ledger's budget is 5 % of that, about 5.5 µs per request, counting what the
request's own thread pays (building the `Entry`, `record()`) and what the writer's thread
takes from the same core under the GIL (turning entries into Arrow and publishing Parquet).

Entries are built as the server builds them: the demo churn model's signature (31 inputs, 5
of them categories), rows coerced 32 at a time as the micro-batcher joins its requests, each
one-row request's entry naming its row of that model call (`Entry.answered`, `ModelCall`).
The garbage collector is set as a server sets it once its models are loaded (`gc.freeze()`,
`serving.runtime.GC_THRESHOLDS`). Measured in one run, each a median over rounds:

- `Entry(...)`: constructing one entry (the serving path's share before `record`);
- `record()`: µs per call on the calling thread, the writer's thread not running;
- `record()` on a full queue (the drop path);
- writer CPU per 1,000 entries (median, and min of the rounds: the machine is shared):
  `time.thread_time()` around `flush()` of one round's entries (grouping, Entry → Arrow,
  Parquet with snappy, an atomic publish on a local folder), for entries with inputs recorded,
  with `inputs = "none"`, and with a key per entry and `sample = 0.5`;
- the ledger's cost per request, `record()` plus the writer's CPU per entry, against the budget
  (the `Entry(...)` the server builds is shown apart: it is the serving path's, and the
  end-to-end serve benchmark measures all of it together);
- the longest pause a thread spinning in Python (as the event loop would) sees while a flush runs
  in the writer's thread, against the same time with no flush: the writer converts 1,000 entries
  per call, so no numpy/pyarrow call of it holds the GIL for long.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import threading
import time
from typing import Any

import numpy as np

from foretell.core.predictor import Predictions
from foretell.demo.churn import CHURN_SIGNATURE, generate_customers
from foretell.ledger.record import Entry, ModelCall, Served, new_prediction_id
from foretell.ledger.settings import LedgerPolicy, LedgerSettings
from foretell.ledger.writer import LedgerWriter
from foretell.serving.runtime import GC_THRESHOLDS

BUDGET_US = 0.05 * 1e6 / 9_000


BATCH = 32  # rows per model call, as the micro-batcher makes them under load
SERVED = Served("churn", 3, "ab" * 32, "original", CHURN_SIGNATURE)


def requests(n: int) -> list[tuple[Any, int]]:
    """`n` one-row requests as the server records them: (the model call that answered it, its row in the call).

    The rows are coerced `BATCH` at a time, as the micro-batcher joins its requests' frames into one.
    """
    table = generate_customers(n).drop_columns(["customer_id", "churned"])
    rng = np.random.default_rng(7)
    work: list[tuple[Any, int]] = []
    for start in range(0, n, BATCH):
        frame = CHURN_SIGNATURE.coerce(table.slice(start, BATCH)).frame
        score = rng.random(frame.n_rows)
        predictions = Predictions(
            {"score": score, "label": (score > 0.5).astype(np.int64), "proba": np.stack([1 - score, score], axis=1)},
            CHURN_SIGNATURE.outputs,
            frame.n_rows,
        )
        call = ModelCall(frame, predictions)
        work.extend((call, offset) for offset in range(frame.n_rows))
    return work


def make_entry(call: Any, offset: int, key: str | None = None) -> Entry:
    keys = None if key is None else (key,)
    return Entry.answered(new_prediction_id(), SERVED, "live", "infer", "http", None, 0.4, BATCH, keys, call, offset, 1)


def measure(settings: LedgerSettings, work: list[tuple[Any, int]], rounds: int, keyed: bool) -> dict[str, float]:
    entry_us, record_us, flush_ms = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        writer = LedgerWriter(folder, settings, writer="bench")  # not started: flush() runs here, timed
        for _ in range(rounds):
            started = time.perf_counter()
            entries = [make_entry(f, p, f"C-{i % 5000:07d}" if keyed else None) for i, (f, p) in enumerate(work)]
            entry_us.append((time.perf_counter() - started) / len(work) * 1e6)
            started = time.perf_counter()
            for entry in entries:
                writer.record(entry)
            record_us.append((time.perf_counter() - started) / len(entries) * 1e6)
            cpu = time.thread_time()
            writer.flush()
            flush_ms.append((time.thread_time() - cpu) / len(entries) * 1000 * 1000)
        assert writer.counts["dropped"] == 0, writer.counts
        writer.close()
    return {
        "entry_us": statistics.median(entry_us),
        "record_us": statistics.median(record_us),
        "writer_ms_per_1000": statistics.median(flush_ms),
        "writer_min": min(flush_ms),
    }


def dropped_record_us(work: list[tuple[Any, int]]) -> float:
    with tempfile.TemporaryDirectory() as folder:
        writer = LedgerWriter(folder, LedgerSettings(max_pending_rows=1), writer="bench")
        writer.record(make_entry(*work[0]))
        entries = [make_entry(f, p) for f, p in work]
        started = time.perf_counter()
        for entry in entries:
            writer.record(entry)
        elapsed = time.perf_counter() - started
        assert writer.counts["dropped"] == len(entries)
        writer.close()
    return elapsed / len(entries) * 1e6


def pauses(work: list[tuple[Any, int]], rounds: int) -> tuple[float, float, float]:
    """The longest pause of a thread spinning beside a flush (the event loop's view), and beside nothing.

    Returns (longest pause beside a flush in ms, longest beside an idle writer in ms, flush wall time in ms).
    """

    def longest_gap(busy: threading.Thread | None, seconds: float) -> float:
        worst = 0.0
        last = started = time.perf_counter()
        while busy.is_alive() if busy is not None else time.perf_counter() - started < seconds:
            now = time.perf_counter()
            worst = max(worst, now - last)
            last = now
        return worst

    beside, alone, walls = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        writer = LedgerWriter(folder, LedgerSettings(flush_seconds=3600), writer="bench")
        for _ in range(rounds):
            for call, offset in work:
                writer.record(make_entry(call, offset))
            flushing = threading.Thread(target=writer.flush)
            started = time.perf_counter()
            flushing.start()
            beside.append(longest_gap(flushing, 0))
            flushing.join()
            walls.append(time.perf_counter() - started)
            alone.append(longest_gap(None, walls[-1]))
        writer.close()
    return max(beside) * 1000, max(alone) * 1000, statistics.median(walls) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=10_000, help="one-row entries per round (one flush)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    work = requests(args.entries)
    # As a server does once its models are loaded (serving/runtime.py): what is there now is never scanned
    # again, and the young generation's threshold is raised.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    cases = {
        "inputs recorded (default policy)": (LedgerSettings(flush_seconds=3600), False),
        'inputs = "none"': (LedgerSettings(flush_seconds=3600, default=LedgerPolicy(inputs="none")), False),
        "a key per entry, sample = 0.5": (LedgerSettings(flush_seconds=3600, default=LedgerPolicy(sample=0.5)), True),
    }
    print(f"{args.entries:,} one-row churn entries per flush, median of {args.rounds} rounds")
    print(f"budget: 5 % of one core at 9,000 req/s = {BUDGET_US:.2f} µs per request\n")
    print(
        f"{'case':36} {'Entry() µs':>11} {'record() µs':>12} {'writer ms/1000':>15} {'(min)':>6}"
        f" {'ledger µs/req':>14} {'of budget':>10}"
    )
    for name, (settings, keyed) in cases.items():
        got = measure(settings, work, args.rounds, keyed)
        # The ledger's own cost: record() and the writer; building the Entry is the server's, shown apart.
        total = got["record_us"] + got["writer_ms_per_1000"]
        print(
            f"{name:36} {got['entry_us']:11.2f} {got['record_us']:12.2f} {got['writer_ms_per_1000']:15.2f}"
            f" {got['writer_min']:6.2f} {total:14.2f} {total / BUDGET_US:9.0%}"
        )
    print(f"\nrecord() on a full queue (dropped): {dropped_record_us(work):.2f} µs")
    beside, alone, wall = pauses(work, args.rounds)
    print(
        f"longest pause of a thread spinning beside a flush of {len(work):,} entries ({wall:.0f} ms):"
        f" {beside:.1f} ms; beside no flush, as long: {alone:.1f} ms (sys.getswitchinterval:"
        f" {sys.getswitchinterval() * 1000:.0f} ms)"
    )


if __name__ == "__main__":
    main()
