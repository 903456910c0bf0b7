"""Soak: one server under steady mixed traffic for minutes, with alias moves and a shadow rollout.

    .venv/bin/python benchmarks/soak.py [--minutes 10] [--load 0.7] [--json]

The demo (churn and movies, their entity tables) in a scratch FORETELL_HOME; a second version of each
model (the same artifacts registered again), and a shadow rollout of churn/2 against churn@production
scoring 20 % of churn's traffic. One `foretell serve churn@production movies@production` process on
core 0; the load from this process on core 1.

First the capacity: the mix below from 64 connections, closed loop, for 10 s; then, since a paced load
batches less and costs the server more per request, the highest open-loop rate the server keeps up with
(steps of 10 % of the closed-loop rate, `open_loop_capacity`). Then the soak: the same
mix, open loop, at `--load` (default 70 %) of that rate, for `--minutes`: each request has a scheduled
start, and its latency is counted from then, so a stall shows as latency and not as fewer requests
(no coordinated omission). Every minute `foretell models alias movies production` moves the alias
between versions 1 and 2, and the server reloads it under load.

The mix: 40 % churn infer (one row, one tensor per feature, as JSON), 30 % churn lookups with
`?fresh=true` (a live prediction from the entity table, written back, and shadowed 1 in 5), 20 %
movies lookups (a user's top 10), 10 % rating events (the user's row written, their recommendations
refreshed and stored).

Per minute: requests, errors (any status but 200, or a broken connection), p50 and p99, and the
server's RSS (the median and the highest of a sample every 5 s). The verdict follows issue 20's
targets: RSS growth after warm-up (the first minute: from the second minute's median to the last's)
at most 5 %, every minute's p99 within 1.5× of the median minute's, zero errors. Needs taskset.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "integration" / "serving"))
from servekit import free_port, rss_bytes

CONNECTIONS = 64
CAPACITY_SECONDS = 10
STEP_SECONDS = 8.0
KEPT_UP_S = 0.25
"""A capacity step keeps up when its last two seconds' requests were all answered within this."""
RSS_EVERY_S = 5.0
"""The server's RSS swings by tens of MB within a minute (the ledger writer's compactions, every half
minute, hold their segments and the merge at once), so one sample a minute measured where in that
cycle it fell; a minute's RSS is the median of its samples."""
STARTED_AT = [0.0]  # the soak's start on the wall clock, to line the timeline up with the server's logs


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["taskset", "-c", "1", sys.executable, "-m", "foretell", *args],
        env={**os.environ, "FORETELL_HOME": str(home)},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"foretell {' '.join(args)} failed: {done.stderr}")
    return done


def prepare(scratch: Path) -> tuple[Path, list[bytes], list[str]]:
    """The home, the churn infer bodies (one per customer without missing values) and the customer ids."""
    import foretell
    from foretell.api import get_registry

    home = scratch / "home"
    foretell_args = ("demo", "init", "--customers", "20000", "--users", "2000", "--movies", "500")
    cli(home, *foretell_args)
    demo = home / "demo"
    cli(home, "entities", "load", "customers", str(demo / "customers.parquet"), "--key", "customer_id",
             "--model", "churn")  # fmt: skip
    cli(home, "entities", "load", "users", str(demo / "ratings.parquet"), "--key", "user_id", "--model",
             "movies", "--interactions", "ratings", "--item", "movie_id", "--value", "rating")  # fmt: skip
    registry = get_registry(home)
    for name in ("churn", "movies"):  # a second version of each: the same artifact, registered again
        info = registry.get(f"{name}@production")
        with tempfile.TemporaryDirectory() as copy:  # registering copies it in; not from inside the store
            artifact = Path(copy) / registry.artifact_path(info).name
            (shutil.copytree if registry.artifact_path(info).is_dir() else shutil.copy)(
                registry.artifact_path(info), artifact
            )
            # Compiled as the first was: an uncompiled churn/2 is ~35x slower, and the rollout's p99 guard
            # (challenger within 3x of the champion) would end the shadow rollout in its first seconds.
            foretell.register(name, artifact, signature=info.signature, flavor=info.flavor,
                              flavor_options=dict(info.flavor_options), home=home)  # fmt: skip
    cli(home, "rollout", "start", "churn", "--challenger", "2", "--shadow", "20")
    signature = registry.get("churn@production").signature
    customers = pq.read_table(demo / "customers.parquet")
    bodies: list[bytes] = []
    ids = customers.column("customer_id").to_pylist()
    for row in customers.slice(0, 2000).to_pylist():
        values = [row.get(f.name) for f in signature.inputs]
        if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
            continue
        inputs = [
            {"name": f.name, "shape": [1], "datatype": "BYTES" if f.dtype == "category" else "FP64", "data": [v]}
            for f, v in zip(signature.inputs, values, strict=True)
        ]
        bodies.append(json.dumps({"inputs": inputs}).encode())
    return home, bodies, ids


def requests_of(bodies: list[bytes], ids: list[str], seed: int) -> list[bytes]:
    """A long cycle of raw HTTP/1.1 requests in the mix's proportions."""
    rng = random.Random(seed)
    made = []
    for _ in range(20_000):
        draw = rng.random()
        if draw < 0.4:
            body = rng.choice(bodies)
            made.append(_post("/v2/models/churn/infer", body))
        elif draw < 0.7:
            made.append(_get(f"/v1/models/churn/predictions/{rng.choice(ids)}?fresh=true"))
        elif draw < 0.9:
            made.append(_get(f"/v1/models/movies/predictions/{rng.randint(1, 2000)}?k=10"))
        else:
            event = {"type": "rating", "user_id": rng.randint(1, 2000), "movie_id": rng.randint(1, 500),
                     "rating": rng.randint(1, 5)}  # fmt: skip
            made.append(_post("/v1/events", json.dumps(event).encode()))
    return made


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: soak\r\n\r\n".encode()


def _post(path: str, body: bytes) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


@dataclass
class Minute:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    rss_samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds into the soak, MiB)

    @property
    def rss_mb(self) -> float:
        return statistics.median(mb for _, mb in self.rss_samples) if self.rss_samples else math.nan

    moved_at: float = math.nan  # seconds into the soak when this minute's alias move finished

    def failed(self, why: str) -> None:
        self.errors[why] = self.errors.get(why, 0) + 1


async def _answer(reader: asyncio.StreamReader) -> int:
    """Read one response; its status."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed")
    status = int(status_line.split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def closed_loop(port: int, requests: list[bytes], seconds: float) -> float:
    """Requests/s from `CONNECTIONS` connections each sending its next request as soon as one is answered."""
    done = 0
    stop = time.perf_counter() + seconds

    async def connection(offset: int) -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = offset
        while time.perf_counter() < stop:
            writer.write(requests[i % len(requests)])
            await _answer(reader)
            done += 1
            i += CONNECTIONS
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection(c) for c in range(CONNECTIONS)))
    return done / (time.perf_counter() - started)


Answered = Callable[[float, float | None, str | None], None]
"""Told of each request: its scheduled offset from the start (s), its latency (None: no answer), what went wrong."""


async def paced(port: int, requests: list[bytes], rate: float, count: int, start: float, answered: Answered) -> None:
    """`count` requests at `rate`/s from `start` (a perf_counter time) on `CONNECTIONS` connections, open loop:
    each request has a scheduled time and its latency counts from then, so a slow answer delays its connection,
    not the schedule (no coordinated omission)."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while True:
            try:
                n = queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            scheduled = start + n / rate
            wait = scheduled - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                writer.write(requests[n % len(requests)])
                status = await _answer(reader)
            except (ConnectionError, asyncio.IncompleteReadError, OSError) as exc:
                answered(scheduled - start, None, type(exc).__name__)
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            answered(scheduled - start, time.perf_counter() - scheduled, None if status == 200 else str(status))
        writer.close()

    await asyncio.gather(*(connection() for _ in range(CONNECTIONS)))


async def open_loop_capacity(port: int, requests: list[bytes], ceiling: float) -> tuple[float, list[str]]:
    """The highest open-loop rate the server keeps up with, and a line per step.

    The closed loop keeps 64 requests waiting, so the micro-batcher's batches are as full as they get;
    a paced load arrives a few at a time, and costs the server more per request. So: steps of 10 % of
    the closed-loop rate from 40 %, `STEP_SECONDS` each; a step keeps up when every request scheduled
    in its last two seconds was answered, without error, within `KEPT_UP_S` (a server falling behind
    builds a backlog that only grows). The capacity is the last step that kept up.
    """
    kept, lines = ceiling * 0.4, []
    for share in (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
        rate = ceiling * share
        worst, failures = await _step(port, requests, rate)
        lines.append(f"#   {rate:,.0f} req/s: worst of the last 2 s {worst * 1e3:,.1f} ms, {failures} errors")
        if failures or worst > KEPT_UP_S:
            break
        kept = rate
        await asyncio.sleep(2)  # what is left of a step's backlog is not the next step's
    return kept, lines


async def _step(port: int, requests: list[bytes], rate: float) -> tuple[float, int]:
    """One capacity step: the worst latency of the requests scheduled in its last two seconds, and its errors."""
    late: list[float] = []
    failures = 0

    def answered(at: float, latency: float | None, error: str | None) -> None:
        nonlocal failures
        failures += error is not None
        if at >= STEP_SECONDS - 2:
            late.append(math.inf if latency is None else latency)

    await paced(port, requests, rate, int(rate * STEP_SECONDS), time.perf_counter() + 0.2, answered)
    return max(late, default=math.inf), failures


async def open_loop(
    port: int,
    requests: list[bytes],
    rate: float,
    minutes: int,
    server_pid: int,
    home: Path,
    timeline: list[tuple[float, float]] | None = None,
    rss_log: list[tuple[float, float]] | None = None,
) -> list[Minute]:
    """`rate` requests/s (`paced`) for `minutes`, with the alias moves and the RSS samples; the figures per minute."""
    per_minute = [Minute() for _ in range(minutes)]
    start = time.perf_counter() + 0.5
    STARTED_AT[0] = time.time() + 0.5

    def answered(at: float, latency: float | None, error: str | None) -> None:
        minute = per_minute[min(minutes - 1, int(at // 60))]
        if latency is not None:
            minute.latencies.append(latency)
            if timeline is not None:
                timeline.append((at, latency))
        if error is not None:
            minute.failed(error)

    async def chores() -> None:
        version = 1
        for m in range(minutes):
            await asyncio.sleep(max(0.0, start + 60 * m + 59 - time.perf_counter()))
            if m < minutes - 1:
                version = 3 - version
                await asyncio.to_thread(cli, home, "models", "alias", "movies", "production", str(version))
                per_minute[m].moved_at = time.perf_counter() - start

    async def rss_samples() -> None:
        await asyncio.sleep(max(0.0, start - time.perf_counter()))
        while (at := time.perf_counter() - start) < 60 * minutes:
            mb = rss_bytes(server_pid) / 2**20
            per_minute[min(minutes - 1, int(at // 60))].rss_samples.append((at, mb))
            if rss_log is not None:
                rss_log.append((at, mb))
            await asyncio.sleep(RSS_EVERY_S)

    count = int(rate * 60 * minutes)
    await asyncio.gather(chores(), rss_samples(), paced(port, requests, rate, count, start, answered))
    return per_minute


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--load", type=float, default=0.7, help="share of the measured capacity")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--timeline", type=Path, help="write per-second p99/max, RSS every 10 s and alias moves here")
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})  # the load generator's own core; the server has core 0
    with tempfile.TemporaryDirectory(prefix="foretell-soak-") as scratch:
        home, bodies, ids = prepare(Path(scratch))
        requests = requests_of(bodies, ids, args.seed)
        port = free_port()
        log = Path(scratch) / "serve.log"
        with log.open("w") as output:
            server = subprocess.Popen(
                ["taskset", "-c", "0", sys.executable, "-m", "foretell", "serve", "churn@production",
                 "movies@production", "--port", str(port)],
                env={**os.environ, "FORETELL_HOME": str(home)}, stdout=output, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            import httpx

            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not start: {log.read_text()}")
                time.sleep(0.2)
            closed = asyncio.run(closed_loop(port, requests, CAPACITY_SECONDS))
            print(f"# closed loop ({CONNECTIONS} connections, {CAPACITY_SECONDS} s): {closed:,.0f} req/s; "
                  "the open-loop capacity, in steps:", flush=True)  # fmt: skip
            capacity, steps = asyncio.run(open_loop_capacity(port, requests, closed))
            print("\n".join(steps), flush=True)
            rate = capacity * args.load
            print(f"# capacity {capacity:,.0f} req/s (open loop); soak at {rate:,.0f} req/s for {args.minutes} min",
                  flush=True)  # fmt: skip
            timeline: list[tuple[float, float]] | None = [] if args.timeline else None
            rss_log: list[tuple[float, float]] | None = [] if args.timeline else None
            # The load generator's own full collections would show as the server's latency: what it holds
            # now (the requests) is never garbage, and what it adds (latencies) holds no cycles.
            gc.collect()
            gc.freeze()
            minutes = asyncio.run(open_loop(port, requests, rate, args.minutes, server.pid, home, timeline, rss_log))
            rollout = json.loads(cli(home, "rollout", "status", "churn", "--json").stdout)["rollout"]
            print(f"# the shadow rollout of churn/{rollout['challenger']} after the soak: {rollout['state']}"
                  + (f" ({rollout['reason']})" if rollout["reason"] else ""), flush=True)  # fmt: skip
            if args.timeline:
                write_timeline(args.timeline, timeline or [], rss_log or [], minutes, STARTED_AT[0])
        finally:
            server.terminate()
            server.wait(timeout=60)
    return report(minutes, capacity, rate, args.json)


def write_timeline(
    path: Path,
    timeline: list[tuple[float, float]],
    rss_log: list[tuple[float, float]],
    minutes: list[Minute],
    started_at: float,
) -> None:
    """Per second of the soak: requests, p99 and worst latency (ms); then RSS samples and alias moves."""
    seconds: dict[int, list[float]] = {}
    for at, latency in timeline:
        seconds.setdefault(int(at), []).append(latency)
    lines = []
    for second in sorted(seconds):
        lat = sorted(seconds[second])
        lines.append({"second": second, "n": len(lat), "p99_ms": round(lat[int(len(lat) * 0.99)] * 1e3, 2),
                      "max_ms": round(lat[-1] * 1e3, 2)})  # fmt: skip
    lines.insert(0, {"started_at": started_at})
    lines += [{"at": round(at, 1), "rss_mb": round(mb, 1)} for at, mb in rss_log]
    lines += [{"alias_moved_at": round(m.moved_at, 1)} for m in minutes if not math.isnan(m.moved_at)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def report(minutes: list[Minute], capacity: float, rate: float, as_json: bool) -> int:
    rows = []
    for m, minute in enumerate(minutes, 1):
        lat = sorted(minute.latencies)
        p50 = lat[len(lat) // 2] * 1e3 if lat else math.nan
        p99 = lat[int(len(lat) * 0.99)] * 1e3 if lat else math.nan
        rows.append({"minute": m, "requests": len(lat) + sum(minute.errors.values()), "errors": minute.errors,
                     "p50_ms": p50, "p99_ms": p99, "rss_mb": minute.rss_mb,
                     "rss_max_mb": max((mb for _, mb in minute.rss_samples), default=math.nan)})  # fmt: skip
    after_warmup = rows[1:] if len(rows) > 1 else rows
    # Growth after warm-up: from the first minute after it to the last, each minute's median.
    growth = after_warmup[-1]["rss_mb"] / after_warmup[0]["rss_mb"] - 1
    slope = _trend(minutes[1:] or minutes)
    # Whether RSS still climbs late in the run (a leak) or has levelled off (what a warm-up filled): the same
    # figures over the second half only.
    half = len(rows) // 2
    late_growth = rows[-1]["rss_mb"] / rows[half]["rss_mb"] - 1 if len(rows) > 1 else math.nan
    late_slope = _trend(minutes[half:])
    p99s = [r["p99_ms"] for r in after_warmup]
    spread = max(p99s) / statistics.median(p99s)
    errors = sum(sum(r["errors"].values()) for r in rows)
    verdict = {
        "rss_growth_after_warmup": growth,
        "rss_trend_mb_per_minute": slope,
        "rss_growth_second_half": late_growth,
        "rss_trend_second_half_mb_per_minute": late_slope,
        "p99_max_over_median": spread,
        "errors": errors,
        "met": growth <= 0.05 and spread <= 1.5 and errors == 0,
    }
    if as_json:
        print(json.dumps({"capacity": capacity, "rate": rate, "minutes": rows, "verdict": verdict}, indent=2))
    else:
        print(f"{'minute':>6} {'requests':>9} {'p50 ms':>8} {'p99 ms':>8} {'RSS MiB':>8} {'max MiB':>8}  errors")
        for r in rows:
            print(f"{r['minute']:>6} {r['requests']:>9,} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['rss_mb']:>8.1f} "
                  f"{r['rss_max_mb']:>8.1f}  {r['errors'] or ''}")  # fmt: skip
        met = "met" if verdict["met"] else "MISSED"
        print(f"RSS growth after minute 1: {growth:+.1%} (target <= +5%; minute medians of a sample every "
              f"{RSS_EVERY_S:.0f} s; trend {slope:+.2f} MiB/min); p99 max/median after minute 1: "
              f"{spread:.2f}x (target <= 1.5x); errors: {errors} (target 0) -> {met}")  # fmt: skip
        print(f"RSS over the second half (minute {half + 1} to {len(rows)}): {late_growth:+.1%}, "
              f"trend {late_slope:+.2f} MiB/min")  # fmt: skip
    return 0


def _trend(minutes: list[Minute]) -> float:
    """MiB per minute: the least-squares slope of every RSS sample of `minutes`."""
    samples = [sample for minute in minutes for sample in minute.rss_samples]
    if len(samples) < 2:
        return math.nan
    return statistics.linear_regression([at / 60 for at, _ in samples], [mb for _, mb in samples]).slope


if __name__ == "__main__":
    raise SystemExit(main())
