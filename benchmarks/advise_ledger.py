"""`advise --from-ledger` against reality: a recorded day replayed, the CPU it took, and what the advisor predicted.

1. A compressed "day" (`--seconds`) of the current set-up, hybrid, through real processes:
   the nightly job into the store (`foretell batch run --to-store`), then a real server on
   core 0 answering lookups and events sent from core 1 at random moments, over a few hot
   keys of the population. Its CPU: the job's (with its workers) plus the server's during
   the day. The server records the day in the ledger.
2. `foretell.api.advise_from_ledger` over that window, with the window as the day's length:
   the workload measured from the ledger, the model measured on this machine (`--quick`
   plan unless `--full`), each way priced in core-seconds for the day.
3. The recorded requests replayed from the ledger (same keys, same order, same offsets)
   against each set-up, each with a fresh server: real-time (every lookup an infer with the
   key's features; events need no work there) and hybrid again (a new nightly job, lookups
   and events).
4. Predicted against measured core-seconds for each set-up, and their ratio.

    python benchmarks/advise_ledger.py [--seconds 20] [--population 200000] [--lookups 200] [--events 20]

The issue's target: the advisor's predicted cost within ±25 % of the measured one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "integration" / "serving"))
from replaykit import URI, Customers, Server, generated_day, play, recorded_day, run_job, scratch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--population", type=int, default=200_000)
    parser.add_argument("--hot-keys", type=int, default=2_000)
    parser.add_argument("--lookups", type=float, default=200.0, help="lookups a second")
    parser.add_argument("--events", type=float, default=20.0, help="events a second")
    parser.add_argument("--full", action="store_true", help="measure the model with the full plan (about a minute)")
    args = parser.parse_args()
    with scratch() as root:
        figures = accuracy(root, args)
    print(json.dumps(figures, indent=2))
    return 0


def accuracy(root: Path, args: Any) -> dict[str, Any]:
    import foretell

    customers = Customers.build(root, args.population)
    keys = list(customers.features)[: args.hot_keys]
    steps = generated_day(args.seconds, args.lookups, args.events, keys)

    # 1. The recorded day, served by the current set-up (hybrid).
    job_cpu = run_job(customers, root / "night-0")
    with Server(customers.home, root / "record.log") as server:
        since = datetime.now(UTC)
        before = server.cpu()
        statuses = play(server.url, steps, customers.features)
        until = datetime.now(UTC)
        time.sleep(1.0)  # the ledger's last segment of the day (it publishes one a second)
        served_cpu = server.cpu() - before
    recorded = {"job": job_cpu, "server": served_cpu, "total": job_cpu + served_cpu, "statuses": statuses}

    # 2. The advisor, on the ledger's record of that day.
    day = (until - since).total_seconds()
    advice = foretell.api.advise_from_ledger(
        URI, since=since - timedelta(milliseconds=1), until=until, day_length=day, home=customers.home,
        quick=not args.full,
    )  # fmt: skip
    predicted = {name: cost.core_hours_per_day * 3600 for name, cost in advice.advice.modes.items()}

    # 3. The recorded day replayed against each set-up.
    replays: dict[str, dict[str, Any]] = {}
    for mode in ("real-time", "hybrid"):
        replayed = recorded_day(customers.home / "ledger", since - timedelta(milliseconds=1), until,
                                live=mode == "real-time")  # fmt: skip
        job = run_job(customers, root / f"night-{mode}") if mode == "hybrid" else 0.0
        with Server(customers.home, root / f"{mode}.log", "--ledger-location", str(root / f"ledger-{mode}")) as server:
            before = server.cpu()
            statuses = play(server.url, replayed, customers.features)
            time.sleep(1.0)
            cpu = server.cpu() - before
        replays[mode] = {"job": job, "server": cpu, "total": job + cpu, "requests": len(replayed),
                         "statuses": statuses, "predicted": predicted[mode],
                         "ratio": predicted[mode] / (job + cpu)}  # fmt: skip
    m = advice.advice.measurements
    return {
        "command": "python benchmarks/advise_ledger.py " + " ".join(sys.argv[1:]),
        "day_seconds": day,
        "recommendation": advice.advice.recommendation,
        "current": advice.current,
        "workload": advice.observed.workload.to_dict(),
        "measurements": {k: v for k, v in m.to_dict().items() if k != "notes"},
        "recorded_day": {
            **recorded,
            "predicted": predicted["hybrid"],
            "ratio": predicted["hybrid"] / recorded["total"],
        },
        "replays": replays,
    }


if __name__ == "__main__":
    raise SystemExit(main())
