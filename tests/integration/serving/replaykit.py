"""Record a compressed day of traffic through a real server, replay it against a set-up, and count the CPU it took.

Imported by name (by `test_advise_ledger_accuracy.py` and `benchmarks/advise_ledger.py`).

- `Customers.build`: a registered classifier, a population file (`customer_id`, a..d) and
  the entity table that feeds the model live, in one FORETELL_HOME.
- `run_job`: `foretell batch run ... --to-store` as a child process; its CPU seconds (the
  job and its workers, from the children's rusage).
- `Server`: `foretell serve` pinned to core 0; `cpu()` reads its CPU seconds from /proc.
- `play`: send a schedule of requests (lookups, events, infers) at their offsets from a
  client on core 1, so the server's CPU is the server's own.
- `generated_day` makes a day's schedule; `recorded_day` reads one back from the ledger,
  in order and at the offsets it was answered at.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from servekit import FEATURES, free_port
from sklearn.linear_model import LogisticRegression

import foretell
from foretell.adapters.outputs import classifier_outputs
from foretell.advisor import advise as price
from foretell.advisor.cpu import ProcessClock
from foretell.core.feature import Feature
from foretell.core.schema import Signature
from foretell.ledger.query import LedgerReader

MODEL = "clf"
URI = "clf@production"
SERVER_CORE, CLIENT_CORE = "0", 1

Step = tuple[float, str, str]
"""(seconds from the start, what: "lookup" | "event" | "infer", key)."""


@dataclass(frozen=True)
class Customers:
    home: Path
    population: Path
    features: dict[str, list[float]]

    @classmethod
    def build(cls, root: Path, size: int, seed: int = 5) -> Customers:
        home = root / "home"
        home.mkdir(parents=True)
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(2_000, len(FEATURES)))
        path = root / "clf.joblib"
        joblib.dump(LogisticRegression().fit(x, (x[:, 0] + x[:, 1] > 0).astype(int)), path)
        signature = Signature(tuple(Feature(n) for n in FEATURES), classifier_outputs([0, 1]))
        foretell.register(MODEL, path, signature=signature, aliases=["production"], home=home)
        values = rng.normal(size=(size, len(FEATURES))).round(6)
        keys = [f"C-{i:07d}" for i in range(size)]
        population = root / "customers.parquet"
        pq.write_table(pa.table({"customer_id": keys, **{n: values[:, i] for i, n in enumerate(FEATURES)}}), population)
        foretell.api.load_entities("customers", population, key="customer_id", models=[MODEL], home=home)
        return cls(home, population, dict(zip(keys, values.tolist(), strict=True)))


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_job(customers: Customers, output: Path) -> float:
    """The nightly job into the store, as a child process; the CPU seconds it and its workers took."""
    before = child_cpu()
    subprocess.run(
        [sys.executable, "-m", "foretell", "batch", "run", URI, "--input", str(customers.population),
         "--output", str(output), "--id-column", "customer_id", "--to-store"],
        env={**os.environ, "FORETELL_HOME": str(customers.home)},
        check=True,
        capture_output=True,
    )  # fmt: skip
    return child_cpu() - before


class Server:
    """`foretell serve URI` pinned to the server's core, with its default settings (the ledger on)."""

    def __init__(self, home: Path, log: Path, *args: str) -> None:
        self.home, self.log, self.args = home, log, args

    def __enter__(self) -> Server:
        port = free_port()
        self._output = self.log.open("w")
        self.process = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, sys.executable, "-m", "foretell", "serve", URI, "--port", str(port),
             "--reload-seconds", "0", *self.args],
            env={**os.environ, "FORETELL_HOME": str(self.home)},
            stdout=self._output,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not become ready: {self.log.read_text()}")
            time.sleep(0.05)

    def cpu(self) -> float:
        """CPU seconds the server process has used so far (from /proc, as the advisor reads its own server)."""
        return ProcessClock(self.process.pid)()

    def __exit__(self, *exc: object) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._output.close()


def generated_day(
    seconds: float, lookups_per_s: float, events_per_s: float, keys: Sequence[str], seed: int = 11
) -> list[Step]:
    """Lookups and events at random moments of a `seconds`-long day, over `keys` (skewed: some asked often)."""
    rng = np.random.default_rng(seed)
    steps: list[Step] = []
    for kind, rate in (("lookup", lookups_per_s), ("event", events_per_s)):
        moments = rng.uniform(0, seconds, int(rate * seconds))
        chosen = rng.zipf(1.5, moments.size) % len(keys)
        steps += [(float(at), kind, keys[int(k)]) for at, k in zip(moments, chosen, strict=True)]
    return sorted(steps)


def recorded_day(ledger: Path, since: datetime, until: datetime, *, live: bool) -> list[Step]:
    """The online requests and events the ledger holds for the model, in order, at their offsets.

    `live`: as a real-time set-up receives them (every lookup becomes an infer with the key's
    features; events need no work there, so they are left out); else as the hybrid one does.
    """
    with LedgerReader(ledger).session(MODEL, since=since, until=until) as session:
        found = session.rows(
            "SELECT epoch_us(predicted_at), source, key FROM predictions "
            "WHERE source IN ('live', 'precomputed', 'live-fallback', 'event-refresh') AND key IS NOT NULL "
            "ORDER BY predicted_at, prediction_id"
        )
    first = found[0][0]
    steps: list[Step] = []
    for micros, source, key in found:
        kind = "event" if source == "event-refresh" else ("infer" if live or source == "live" else "lookup")
        if live and kind == "event":
            continue
        steps.append(((micros - first) / 1e6, kind, str(key)))
    return steps


def play(url: str, steps: Sequence[Step], features: dict[str, list[float]]) -> dict[str, int]:
    """Send `steps` at their offsets from a client on the client's core; the answers' status counts."""
    kept = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {CLIENT_CORE})
    try:
        return asyncio.run(_play(url, steps, features))
    finally:
        os.sched_setaffinity(0, kept)


async def _play(url: str, steps: Sequence[Step], features: dict[str, list[float]]) -> dict[str, int]:
    statuses: dict[str, int] = {}
    rng = np.random.default_rng(3)
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def send(kind: str, key: str) -> None:
            if kind == "lookup":
                response = await client.get(f"/v1/models/{MODEL}/predictions/{key}")
            elif kind == "event":
                values = {"a": float(rng.normal())}
                response = await client.post("/v1/events", json={"type": "features", "key": key, "values": values})
            else:
                body: dict[str, Any] = {
                    "inputs": [{"name": "input-0", "shape": [1, len(FEATURES)], "datatype": "FP64",
                                "data": features[key]}],
                    "parameters": {"key": key},
                }  # fmt: skip
                response = await client.post(f"/v2/models/{MODEL}/infer", json=body)
            label = f"{kind} {response.status_code}"
            statuses[label] = statuses.get(label, 0) + 1

        started = time.perf_counter()
        tasks = []
        for at, kind, key in steps:
            wait = at - (time.perf_counter() - started)
            if wait > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(send(kind, key)))
        await asyncio.gather(*tasks)
    return statuses


def accuracy(
    root: Path, seconds: float, population: int, hot_keys: int, lookups: float, events: float, *, quick: bool = True
) -> dict[str, Any]:
    """Record a day through the hybrid set-up, advise on it, replay it against each way: predicted and measured CPU."""
    customers = Customers.build(root, population)
    keys = list(customers.features)[:hot_keys]
    steps = generated_day(seconds, lookups, events, keys)

    # 1. The recorded day, served by the current set-up (hybrid).
    job_cpu = run_job(customers, root / "night-0")
    with Server(customers.home, root / "record.log") as server:
        since = datetime.now(UTC)
        before = server.cpu()
        statuses = play(server.url, steps, customers.features)
        until = datetime.now(UTC)
        time.sleep(1.0)  # the ledger's last segment of the day (it publishes one a second)
        served_cpu = server.cpu() - before
    total = job_cpu + served_cpu
    recorded = {"job": job_cpu, "server": served_cpu, "total": total, "statuses": statuses}

    # 2. The advisor, on the ledger's record of that day.
    day = (until - since).total_seconds()
    advice = foretell.api.advise_from_ledger(
        URI, since=since - timedelta(milliseconds=1), until=until, day_length=day, home=customers.home,
        quick=quick,
    )  # fmt: skip
    predicted = {name: cost.core_hours_per_day * 3600 for name, cost in advice.advice.modes.items()}
    # The same measurements without their CPU figures: times as costs, as the cost model priced before them.
    timed = dataclasses.replace(
        advice.advice.measurements, single_cpu_ms=None, live_cpu_ms=None, lookup_single_cpu_ms=None,
        lookup_cpu_ms=None, event_cpu_ms=None, batch_cpu_ms_per_row=None, store_write_cpu_ms_per_row=None,
        idle_cpu_per_s=0.0, active_cpu_per_s=0.0, batch_startup_cpu_s=0.0,
    )  # fmt: skip
    by_times = {
        name: cost.core_hours_per_day * 3600 for name, cost in price(advice.observed.workload, timed).modes.items()
    }

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
                         "ratio": predicted[mode] / (job + cpu), "predicted_by_times": by_times[mode],
                         "ratio_by_times": by_times[mode] / (job + cpu)}  # fmt: skip
    m = advice.advice.measurements
    return {
        "day_seconds": day,
        "recommendation": advice.advice.recommendation,
        "current": advice.current,
        "workload": advice.observed.workload.to_dict(),
        "measurements": {k: v for k, v in m.to_dict().items() if k != "notes"},
        "recorded_day": {
            **recorded,
            "predicted": predicted["hybrid"],
            "ratio": predicted["hybrid"] / total,
            "ratio_by_times": by_times["hybrid"] / total,
        },
        "replays": replays,
    }


@contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="foretell-replay-") as folder:
        yield Path(folder)
