"""`advise --from-ledger` predicts what a recorded day costs: replayed against each set-up, within ±25 %.

A compressed day (10 s) of the hybrid set-up is recorded through real processes: the
nightly job into the store, then a real server (core 0) answering lookups and events sent
from core 1. The advisor reads that day from the ledger and measures the model on this
machine; then the recorded requests are replayed from the ledger (same keys, order and
offsets) against a real-time server and against the hybrid set-up again. Each set-up's CPU
(the server's, from /proc, plus its batch job's with the workers) is compared with the
core-seconds the advisor predicted for that day. `benchmarks/advise_ledger.py` runs the
same with a longer day and prints every figure (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from replaykit import accuracy

pytestmark = pytest.mark.slow


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="the server and the client each need a core of their own")
def test_predicted_cost_of_a_replayed_day_is_within_a_quarter_for_each_set_up(tmp_path: Path) -> None:
    # CPU seconds of a 10 s day on a shared machine: a neighbour's burst during one replay can move a
    # ratio by a tenth or more (quiet runs give 0.88-1.19). So up to two retries of the whole run when a
    # ratio is off; an advisor that is really off says so three times.
    for attempt in range(3):
        figures = accuracy(tmp_path / f"run-{attempt}", 10.0, 100_000, 1_000, 200.0, 20.0)
        ratios = {
            "recorded (hybrid)": figures["recorded_day"]["ratio"],
            **{f"replay {mode}": replay["ratio"] for mode, replay in figures["replays"].items()},
        }
        if all(0.75 <= r <= 1.25 for r in ratios.values()):
            break
    report = json.dumps({"ratios": ratios, "recorded": figures["recorded_day"], "replays": figures["replays"]})
    print(report)
    assert figures["current"] == "hybrid"
    for replay in figures["replays"].values():
        assert all(label.endswith(" 200") for label in replay["statuses"]), report  # every request answered
    assert figures["replays"]["real-time"]["requests"] == 2_000  # the day's lookups, replayed as infers
    assert all(0.75 <= r <= 1.25 for r in ratios.values()), report
