"""CPU time, not wall time: what the cost model charges a request, a lookup, a batch row and an idle server.

Latency and throughput say how fast an answer comes, not what it costs: a lone request at
an idle server pays for waking it (the event loop, the model thread, the ledger's thread),
and requests back to back share those wake-ups. So the advisor also reads the CPU seconds
the measuring server itself used (`/proc`), and that of a real `foretell batch run` process
with its workers (`getrusage` of the ended children), around each measurement:

- **paced**: requests sent one at a time at two steady rates (`PACED_RATES`), so each finds
  the server idle: what one more lone request costs, and what a second with any traffic
  costs whatever its rate (the ledger writes a segment for it);
- **saturated**: the server's CPU over the 64-client run, per answered request;
- **idle**: the server's CPU per second with no traffic at all (it runs all day);
- **events**: paced events through an entity table of sample rows (hybrid refreshes);
- **batch**: job processes over a small and a large input: CPU per row and at start-up, and
  per row written to the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import orjson

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["PACED_RATES", "ProcessClock", "children_cpu", "event_cpu_ms", "idle_cpu_per_s", "job_cpu", "paced_line"]

PACED_RATES = (20.0, 100.0)
"""Requests a second when measuring a lone request's cost: 50 and 10 ms apart, the server idles in between."""


@dataclass(frozen=True)
class ProcessClock:
    """CPU seconds another process has used so far, read from /proc.

    Per thread from `schedstat` (nanoseconds), summed: `stat` counts in clock ticks (10 ms),
    too coarse for a second of paced requests. Threads that ended are not counted; a
    server's are long-lived.
    """

    pid: int

    def __call__(self) -> float:
        total = 0
        try:
            for task in Path(f"/proc/{self.pid}/task").iterdir():
                with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # a thread ending now
                    total += int((task / "schedstat").read_text().split()[0])
        except FileNotFoundError:  # no schedstat here: the kernel's ticks
            stat = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
        return total / 1e9


def children_cpu() -> float:
    """CPU seconds of this process's ended children (and theirs: a batch job's workers)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def job_cpu(uri: str, home: Path, sizes: Sequence[tuple[int, Path]], key: str, work: Path) -> tuple[float, ...]:
    """A `foretell batch run` process's CPU: ms per row, start-up seconds, and ms per row to write the store.

    As a nightly job runs: its own process (the interpreter, the imports, the model, the
    worker pool), which a job measured inside this process would not pay. Three jobs: a
    small and a large input, then the large one again into the store (`--to-store`).
    """
    env = {**os.environ, "FORETELL_HOME": str(home)}
    env.pop("FORETELL_STORE_URL", None)

    def run(n: int, path: Path, *extra: str) -> float:
        before = children_cpu()
        subprocess.run(
            [sys.executable, "-m", "foretell", "batch", "run", uri, "--input", str(path),
             "--output", str(work / f"cpu-{n}-{len(extra)}"), "--id-column", key, "--no-ledger", *extra],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        return children_cpu() - before

    (n1, small), (n2, large) = sizes
    c1, c2, stored = run(n1, small), run(n2, large), run(n2, large, "--to-store")
    per_row = max((c2 - c1) / (n2 - n1), 0.0)
    return per_row * 1000.0, max(c1 - n1 * per_row, 0.0), max(stored - c2, 0.0) / n2 * 1000.0


def idle_cpu_per_s(clock: Callable[[], float], seconds: float = 1.0) -> float:
    """The server's CPU per second while nobody asks it anything."""
    before = clock()
    time.sleep(seconds)
    return max(clock() - before, 0.0) / seconds


def paced_line(
    clock: Callable[[], float],
    send: Callable[[httpx.AsyncClient, int], Awaitable[object]],
    seconds: float,
    idle_per_s: float,
) -> tuple[float, float]:
    """The server's CPU as a line in the request rate: (ms per request, CPU per second of traffic).

    Requests are sent one at a time at `PACED_RATES`, each for `seconds`; above its idling,
    the server's CPU a second is `active + rate × per_request`. `active` is what a second with
    any traffic costs whatever the rate (the ledger writing that second's segment).
    """
    used = [(rate, _paced(clock, send, rate, seconds) - idle_per_s) for rate in PACED_RATES]
    (r1, y1), (r2, y2) = used
    per_request = max((y2 - y1) / (r2 - r1), 0.0)
    return per_request * 1000.0, max(y1 - r1 * per_request, 0.0)


_JSON = {"Content-Type": "application/json"}

EVENT_RATE = 25.0
"""Events a second when measuring one's cost (each writes the entity and the answer: slower than a lookup)."""


def event_cpu_ms(
    home: Path,
    model: str,
    rows: pa.Table,
    key: str,
    url: str,
    clock: Callable[[], float],
    seconds: float,
    baseline_per_s: float,
) -> float:
    """The server's CPU (ms) for one event: the entity's features written, the model run, the answer stored.

    `rows` (with the `key` column) become an entity table feeding `model` in `home`, which the
    server reads; each event sets an entity's first feature to the value it has, so every
    event passes the model's checks. `baseline_per_s` (idling, a second with traffic) is taken out.
    """
    from datetime import UTC, datetime

    from foretell.store import open_entity_store

    entities = rows.slice(0, 5_000)
    open_entity_store(home, None).load_features(
        "advise_entities", key, entities, models=[model], at=datetime.now(UTC).isoformat()
    )
    name = next(n for n in entities.column_names if n != key)
    values = entities.column(name).to_pylist()
    keys = entities.column(key).to_pylist()

    def send(client: httpx.AsyncClient, i: int) -> Awaitable[object]:
        at = i * 7919 % len(keys)
        event = {"type": "features", "key": keys[at], "values": {name: values[at]}}
        return client.post(
            f"{url}/v1/events", content=orjson.dumps(event), headers={"Content-Type": "application/json"}
        )

    used = _paced(clock, send, EVENT_RATE, seconds) - baseline_per_s
    return max(used, 0.0) / EVENT_RATE * 1000.0


def _paced(
    clock: Callable[[], float], send: Callable[[httpx.AsyncClient, int], Awaitable[object]], rate: float, seconds: float
) -> float:
    """The server's CPU seconds a second while requests come one at a time, `rate` a second."""

    async def run() -> float:
        async with httpx.AsyncClient(timeout=30) as client:
            await send(client, 0)  # a connection open before the clock starts
            count = max(int(rate * seconds), 10)
            before, started = clock(), time.perf_counter()
            for i in range(count):
                wait = i / rate - (time.perf_counter() - started)
                if wait > 0:
                    await asyncio.sleep(wait)
                await send(client, i)
            await asyncio.sleep(max(count / rate - (time.perf_counter() - started), 0.0))  # the whole last slot
            return (clock() - before) / (time.perf_counter() - started)

    return asyncio.run(run())
