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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "integration" / "serving"))
from replaykit import accuracy, scratch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--population", type=int, default=200_000)
    parser.add_argument("--hot-keys", type=int, default=2_000)
    parser.add_argument("--lookups", type=float, default=200.0, help="lookups a second")
    parser.add_argument("--events", type=float, default=20.0, help="events a second")
    parser.add_argument("--full", action="store_true", help="measure the model with the full plan (about a minute)")
    args = parser.parse_args()
    started = time.perf_counter()
    with scratch() as root:
        figures = accuracy(root, args.seconds, args.population, args.hot_keys, args.lookups, args.events,
                           quick=not args.full)  # fmt: skip
    figures["command"] = "python benchmarks/advise_ledger.py " + " ".join(sys.argv[1:])
    figures["seconds"] = time.perf_counter() - started
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
