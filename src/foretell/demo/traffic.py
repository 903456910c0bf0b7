"""A day of traffic for the demo churn model, sent to a real server, and the labels that arrive after it.

`make run` uses it to give `foretell monitor` and `foretell advise --from-ledger` something
real to read: the requests a day brings, compressed into seconds, through every way a
prediction is made.

- **lookups** of last night's scores by key (`precomputed`);
- **fresh lookups** (`?fresh=true`): scored live from the entity table (`live-fallback`);
- **infer** requests carrying a customer's row and its key (`live`);
- **events**: each customer's support-call count as the CRM syncs it, which the server
  applies to the entity table and re-scores at once (`event-refresh`).

One segment's customers (one region) call support far more than the training data knew:
their `support_calls_30d` grows by `DRIFT_CALLS`, in their events and in the infer requests
about them; everyone else's events re-state the count they had. That is the drift
`foretell monitor` should flag, on that one feature; every other feature is sent as last
night's batch read it, so the live scores of customers outside the segment equal the
batch's to the bit. Keys, order and values come from a fixed seed.

Then `day_labels` gives the outcomes of yesterday's scores (the demo data's `churned`
column) as `foretell labels load` reads them.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["DRIFT_CALLS", "DRIFT_FEATURE", "SEGMENT", "DayPlan", "DayTraffic", "day_labels", "simulate_day"]

#: The segment whose customers drift, and how.
SEGMENT = ("region", "europe")
DRIFT_FEATURE = "support_calls_30d"
DRIFT_CALLS = 4.0


@dataclass(frozen=True)
class DayPlan:
    """How many requests of each kind the day brings (sent `concurrency` at a time)."""

    lookups: int = 12_000
    fresh_lookups: int = 2_000
    infers: int = 2_000
    events: int = 1_000
    concurrency: int = 16
    seed: int = 17


@dataclass
class DayTraffic:
    """What was sent: requests per kind, answers per status, the keys whose events changed their features."""

    sent: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    changed_keys: list[str] = field(default_factory=list)
    seconds: float = 0.0
    started_at: datetime | None = None
    ended_at: datetime | None = None

    def window(self) -> list[str]:
        """`foretell advise --from-ledger` options for this day: its start, its end, and its length as a day."""
        if self.started_at is None or self.ended_at is None:
            raise ValueError("the day has not been sent yet")
        since = self.started_at.isoformat(timespec="seconds").replace("+00:00", "Z")
        until = (self.ended_at + timedelta(seconds=1)).isoformat(timespec="seconds").replace("+00:00", "Z")
        length = math.ceil((self.ended_at - self.started_at).total_seconds()) + 1
        return ["--since", since, "--until", until, "--day-length", f"{length}s"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "sent": dict(self.sent),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "changed_keys": len(self.changed_keys),
            "seconds": round(self.seconds, 2),
        }


def simulate_day(url: str, customers: pa.Table, features: list[str], plan: DayPlan | None = None) -> DayTraffic:
    """Send the day's requests to the server at `url`; `features` are the churn model's inputs, in order."""
    return asyncio.run(_day(url, customers, features, plan or DayPlan()))


def day_labels(customers: pa.Table, *, fraction: float = 0.1, seed: int = 19) -> pa.Table:
    """Outcomes for a `fraction` of the customers: `customer_id`, `churned` (0/1), as observed now."""
    rng = np.random.default_rng(seed)
    chosen = np.flatnonzero(rng.random(customers.num_rows) < fraction)
    picked = customers.take(pa.array(chosen))
    return pa.table({"customer_id": picked.column("customer_id"), "churned": picked.column("churned")})


async def _day(url: str, customers: pa.Table, features: list[str], plan: DayPlan) -> DayTraffic:
    import httpx

    rng = np.random.default_rng(plan.seed)
    ids = customers.column("customer_id").to_pylist()
    column, value = SEGMENT
    in_segment = np.asarray(customers.column(column).to_pylist(), dtype=object) == value
    traffic = DayTraffic()
    # Events first (the CRM's sync), then the day's reads in a shuffled order.
    event_rows = rng.choice(len(ids), size=min(plan.events, len(ids)), replace=False)
    traffic.changed_keys = [ids[i] for i in event_rows if in_segment[i]]
    requests: list[tuple[str, int]] = [("event", int(i)) for i in event_rows]
    reads = [("lookup", int(i)) for i in rng.integers(0, len(ids), plan.lookups)]
    reads += [("fresh", int(i)) for i in rng.integers(0, len(ids), plan.fresh_lookups)]
    reads += [("infer", int(i)) for i in rng.integers(0, len(ids), plan.infers)]
    requests += [reads[i] for i in rng.permutation(len(reads))]
    rows = customers.select(features)
    started = time.perf_counter()
    traffic.started_at = datetime.now(UTC).replace(microsecond=0)
    limits = httpx.Limits(max_connections=plan.concurrency, max_keepalive_connections=plan.concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        for request in requests:
            queue.put_nowait(request)

        async def worker() -> None:
            while not queue.empty():
                kind, at = queue.get_nowait()
                response = await _send(client, kind, ids[at], rows, at, bool(in_segment[at]))
                traffic.sent[kind] += 1
                traffic.statuses[response.status_code] += 1

        await asyncio.gather(*(worker() for _ in range(plan.concurrency)))
    traffic.seconds = time.perf_counter() - started
    traffic.ended_at = datetime.now(UTC)
    return traffic


async def _send(client: Any, kind: str, key: str, rows: pa.Table, at: int, drifted: bool) -> Any:
    if kind == "lookup":
        return await client.get(f"/v1/models/churn/predictions/{key}")
    if kind == "fresh":
        return await client.get(f"/v1/models/churn/predictions/{key}", params={"fresh": "true"})
    row = rows.slice(at, 1).to_pylist()[0]
    if kind == "event":
        calls = (row[DRIFT_FEATURE] or 0.0) + (DRIFT_CALLS if drifted else 0.0)
        event = {"type": "features", "key": key, "values": {DRIFT_FEATURE: calls}, "event_id": f"day-{key}"}
        return await client.post("/v1/events", json=event)
    if drifted:
        row[DRIFT_FEATURE] = (row[DRIFT_FEATURE] or 0.0) + DRIFT_CALLS
    inputs = [
        {"name": name, "datatype": "BYTES" if isinstance(v, str) else "FP64", "shape": [1], "data": [v]}
        for name, v in row.items()
    ]
    return await client.post("/v2/models/churn/infer", json={"inputs": inputs, "parameters": {"key": key}})
