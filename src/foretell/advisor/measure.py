"""Measuring a registered model on this machine, through the real paths, for `foretell advise`.

Everything runs in a scratch FORETELL_HOME holding a copy of the model (the same artifact,
verified by its sha256), so the user's registry, store and outputs are never touched:

- **batch**: the real batch job (`foretell.batch.run`, default workers) over sample rows, at
  two sizes; rows/s is the slope between them, so worker start-up is not counted as scoring.
- **serving**: a real `foretell serve` process on a free port. A lone client measures single
  requests (p50, p99); 64 concurrent clients measure the micro-batched throughput.
- **store**: the nightly generation written with `write_batch` and published (rows/s), then
  lookups by key through the same server (req/s, p99) at 64 concurrent clients.

Sample rows come from a Parquet file of real rows when given, else they are generated from the
signature (numbers around zero, categories and strings drawn from their known values).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pyarrow as pa

from foretell.advisor.cost import Measurements
from foretell.advisor.cpu import ProcessClock, event_cpu_ms, idle_cpu_per_s, job_cpu, paced_line
from foretell.advisor.wrk import run_wrk, wrk_lookups, wrk_post
from foretell.core.model import Model
from foretell.core.schema import Signature
from foretell.registry import load_model, open_registry

__all__ = ["MeasurePlan", "measure", "run_wrk", "sample_rows"]  # run_wrk: where benchmarks and tests import it

Progress = Callable[[str, float], None]
"""Called with the step being measured and the share of the whole plan done (0 to 1)."""

ScoreFile = Callable[[str, Path, Path, Path, str], object]
"""Runs the real batch job: (model URI, input file, output folder, FORETELL_HOME, id column). Passed in
by the caller (`foretell.api` hands it `foretell.batch.run`): the advisor does not reach into batch."""


@dataclass(frozen=True, slots=True)
class MeasurePlan:
    batch_rows: int
    """The larger of the two batch runs (the smaller is half)."""
    single_requests: int
    load_seconds: float
    store_rows: int
    repeats: int = 1
    """Runs per batch size; the fastest counts."""

    @property
    def estimated_seconds(self) -> float:
        return (
            6.0 + self.repeats * self.batch_rows / 50_000 + 7 * self.load_seconds
        )  # +2 job processes, 1 s idle, 2 paced runs

    @classmethod
    def quick(cls) -> MeasurePlan:
        return cls(batch_rows=100_000, single_requests=200, load_seconds=1.0, store_rows=20_000)

    @classmethod
    def full(cls) -> MeasurePlan:
        return cls(batch_rows=800_000, single_requests=1_000, load_seconds=5.0, store_rows=200_000, repeats=2)


def sample_rows(signature: Signature, n: int, *, seed: int = 7, sample: pa.Table | None = None) -> pa.Table:
    """`n` rows: `sample`'s rows repeated (all its columns: a job reads the file's shape), or generated ones."""
    if sample is not None:
        base = sample
        if base.num_rows == 0:
            raise ValueError("the sample file has no rows")
        repeats = -(-n // base.num_rows)
        return pa.concat_tables([base] * repeats).slice(0, n)
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    for feature in signature.inputs:
        if not feature.required:
            continue
        if feature.categories:
            data[feature.name] = rng.choice(np.array(feature.categories, dtype=object), n)
        elif feature.dtype == "string":
            data[feature.name] = np.array([f"s{i % 100}" for i in range(n)], dtype=object)
        elif feature.dtype == "bool":
            data[feature.name] = rng.random(n) < 0.5
        elif feature.dtype in ("int64", "int32"):
            data[feature.name] = rng.integers(1, 1_000, n)
        elif feature.shape:
            data[feature.name] = list(rng.normal(size=(n, *feature.shape)))
        else:
            data[feature.name] = rng.normal(size=n)
    return pa.table(data)


def measure(
    uri: str,
    *,
    home: Path,
    plan: MeasurePlan,
    score_file: ScoreFile,
    sample: pa.Table | None = None,
    progress: Progress | None = None,
) -> Measurements:
    """Measure `uri` on this machine (see the module docstring)."""
    report = progress or (lambda step, done: None)
    info = open_registry(home).get(uri)
    artifact = open_registry(home).artifact_path(info)
    with tempfile.TemporaryDirectory(prefix="foretell-advise-") as scratch:
        work = Path(scratch)
        registry = open_registry(work / "home")
        copy = registry.register(
            info.name, artifact, flavor=info.flavor, signature=info.signature, flavor_options=dict(info.flavor_options)
        )
        # Measured as it would run: with its compiled predictor, if it has one that passed.
        open_registry(home).compiled.copy_to(info, registry.compiled, copy)
        rows = sample_rows(info.signature, plan.batch_rows, sample=sample)
        key = _key_column(rows)
        keyed = rows.append_column(key, pa.array([f"k{i}" for i in range(rows.num_rows)]))
        with _Server(work / "home", copy.uri) as server:
            report("batch throughput", 0.05)
            batch, startup = _batch_rows_per_s(score_file, copy.uri, keyed, key, work, plan)
            sizes = [(n, work / f"rows-{n}.parquet") for n in (2_000, plan.batch_rows)]
            batch_cpu = job_cpu(copy.uri, work / "home", sizes, key, work)
            report("store bulk write", 0.35)
            model = load_model(registry, copy.uri)  # once, for the store's rows and the requests' bodies
            write_rate, prediction_bytes = _store_write(model, keyed, key, work, plan)
            report("serving: single requests", 0.45)
            url = server.url()
            clock = ProcessClock(server.process.pid)
            idle = idle_cpu_per_s(clock)
            infer = f"{url}/v2/models/{info.name}/infer"
            bodies = _infer_bodies(_inputs(keyed, info.signature), model)
            keys = min(plan.store_rows, keyed.num_rows)
            lookup_paths = [f"/v1/models/{info.name}/predictions/k{i}" for i in range(min(keys, 5_000))]

            def post(client: httpx.AsyncClient, i: int) -> Awaitable[object]:
                return client.post(infer, content=bodies[i % len(bodies)], headers=_JSON)

            def get(client: httpx.AsyncClient, i: int) -> Awaitable[object]:
                return client.get(url + lookup_paths[i * 7919 % len(lookup_paths)])

            single_cpu, active_cpu = paced_line(clock, post, plan.load_seconds, idle)
            if shutil.which("wrk"):
                wrk_post(infer, bodies[0], 8, 1, work)  # warm-up: connections, caches, the model thread
                one = wrk_post(infer, bodies[0], 1, plan.load_seconds, work)
                single = (one["p50_ms"], one["p99_ms"])
                report("serving: 64 concurrent clients", 0.65)
                live, live_cpu = _cpu_per_request(
                    clock, lambda: wrk_post(infer, bodies[0], 64, plan.load_seconds, work), plan.load_seconds
                )
                report("serving: lookups by key", 0.85)
                lookup_single_cpu, lookup_active_cpu = paced_line(clock, get, plan.load_seconds, idle)
                lookup_alone = wrk_lookups(url, info.name, keys, plan.load_seconds, work, clients=1)
                lookups, lookup_cpu = _cpu_per_request(
                    clock, lambda: wrk_lookups(url, info.name, keys, plan.load_seconds, work), plan.load_seconds
                )
            else:  # a Python client: it costs more per request than wrk, so figures come out lower
                single = _single(infer, bodies, plan.single_requests)
                report("serving: 64 concurrent clients", 0.65)
                live, live_cpu = _cpu_per_request(clock, lambda: asyncio.run(_load(infer, bodies, plan)),
                                                  plan.load_seconds)  # fmt: skip
                report("serving: lookups by key", 0.85)
                lookup_single_cpu, lookup_active_cpu = paced_line(clock, get, plan.load_seconds, idle)
                urls = [url + path for path in lookup_paths]
                lookup_alone = asyncio.run(_load(None, urls, plan, clients=1))
                lookups, lookup_cpu = _cpu_per_request(clock, lambda: asyncio.run(_load(None, urls, plan)),
                                                       plan.load_seconds)  # fmt: skip
            report("serving: events", 0.92)
            active = (active_cpu + lookup_active_cpu) / 2
            event_cpu = event_cpu_ms(work / "home", info.name, keyed, key, url, clock, plan.load_seconds, idle + active)
        report("done", 1.0)
    return Measurements(
        batch_rows_per_s=batch / max(os.cpu_count() or 1, 1),
        single_p50_ms=single[0],
        single_p99_ms=single[1],
        live_rps=live["rps"],
        live_p99_ms=live["p99_ms"],
        lookup_rps=lookups["rps"],
        lookup_p99_ms=lookup_alone["p99_ms"],
        lookup_loaded_p99_ms=lookups["p99_ms"],
        store_write_rows_per_s=write_rate,
        prediction_bytes=prediction_bytes,
        cores=os.cpu_count() or 1,
        batch_startup_s=startup,
        single_cpu_ms=single_cpu,
        live_cpu_ms=live_cpu,
        lookup_single_cpu_ms=lookup_single_cpu,
        lookup_cpu_ms=lookup_cpu,
        idle_cpu_per_s=idle,
        active_cpu_per_s=active,
        event_cpu_ms=event_cpu,
        batch_cpu_ms_per_row=batch_cpu[0],
        batch_startup_cpu_s=batch_cpu[1],
        store_write_cpu_ms_per_row=batch_cpu[2],
        notes={
            "batch_rows_per_s_machine": batch,
            "plan": dataclasses.asdict(plan),
            "load_generator": "wrk" if shutil.which("wrk") else "httpx",
        },
    )


_JSON = {"Content-Type": "application/json"}


def _cpu_per_request(
    clock: Callable[[], float], load: Callable[[], dict[str, float]], seconds: float
) -> tuple[dict[str, float], float]:
    """`load()`'s figures, and the server's CPU per answered request (ms) while it ran."""
    before = clock()
    figures = load()
    used = clock() - before
    return figures, used / max(figures["rps"] * max(1, round(seconds)), 1.0) * 1000.0


def _inputs(rows: pa.Table, signature: Signature) -> pa.Table:
    """Only the columns the model takes (a sample file may carry ids and labels too)."""
    return rows.select([name for name in signature.input_names if name in rows.column_names])


def _key_column(rows: pa.Table) -> str:
    name = "_advise_key"
    while name in rows.column_names:
        name += "_"
    return name


def _batch_rows_per_s(
    score_file: ScoreFile, uri: str, rows: pa.Table, key: str, work: Path, plan: MeasurePlan
) -> tuple[float, float]:
    import pyarrow.parquet as pq

    timings = []
    for n in (2_000, plan.batch_rows // 2, plan.batch_rows):  # the first run only starts the worker pool's server
        path = work / f"rows-{n}.parquet"
        pq.write_table(rows.slice(0, n), path)
        best = float("inf")
        for attempt in range(plan.repeats if n > 2_000 else 1):
            # The fastest of a few runs: on a shared machine the slower ones measure the neighbours.
            started = time.perf_counter()
            score_file(uri, path, work / f"out-{n}-{attempt}", work / "home", key)
            best = min(best, time.perf_counter() - started)
        timings.append((n, best))
    (n1, t1), (n2, t2) = timings[1:]
    if t2 <= t1:
        return n2 / t2, 0.0  # too noisy to take a slope: the larger run's own rate, start-up included
    rate = (n2 - n1) / (t2 - t1)
    return rate, max(0.0, t1 - n1 / rate)  # the line through both runs: rows/s, and the start-up it crosses at


def _store_write(model: Model, rows: pa.Table, key: str, work: Path, plan: MeasurePlan) -> tuple[float, float]:
    from foretell.store import open_store

    copy = model.info
    part = rows.slice(0, min(plan.store_rows, rows.num_rows))
    predictions = model.predict_batch(_inputs(part, model.signature)).to_records()
    stamp = datetime.now(UTC).isoformat()
    batch = [(k, p, copy.version, stamp) for k, p in zip(part.column(key).to_pylist(), predictions, strict=True)]
    store = open_store(work / "home")
    started = time.perf_counter()
    generation = store.begin_generation(copy.name)
    for at in range(0, len(batch), 65_536):
        store.write_batch(copy.name, generation, batch[at : at + 65_536])
    store.publish(copy.name, generation)
    rate = len(batch) / (time.perf_counter() - started)
    size = statistics.mean(len(orjson.dumps(p, option=orjson.OPT_SERIALIZE_NUMPY)) for p in predictions[:1000])
    return rate, float(size)


class _Server:
    """A real `foretell serve` process for one model, on a free port, stopped on exit.

    It starts when the block is entered; `url()` waits until it is ready. The model loads while
    the batch runs are measured: only their unmeasured warm-up run shares the CPU with it.
    """

    def __init__(self, home: Path, uri: str) -> None:
        self.home, self.uri = home, uri

    def __enter__(self) -> _Server:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {**os.environ, "FORETELL_HOME": str(self.home)}
        env.pop("FORETELL_STORE_URL", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "foretell", "serve", self.uri, "--port", str(port), "--reload-seconds", "0"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._url = f"http://127.0.0.1:{port}"
        return self

    def url(self) -> str:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the measuring server exited before it was ready")
            try:
                if httpx.get(f"{self._url}/v2/health/ready", timeout=1).status_code == 200:
                    return self._url
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("the measuring server did not become ready within 120 s")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _infer_bodies(rows: pa.Table, model: Any) -> list[bytes]:
    """An Open Inference Protocol request per row, in the cheapest form the model takes.

    A model whose inputs are all numbers (category codes count) gets one [1, n] FP64 tensor,
    as `benchmarks/serve.py` sends; others get one tensor per feature.
    """
    if model.signature.is_float_matrix:
        matrix = model.coerce(rows.slice(0, 200)).frame.matrix(np.float64)
        width = matrix.shape[1]
        return [
            orjson.dumps({"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, width], "data": row.tolist()}]})
            for row in matrix
        ]
    bodies = []
    for row in rows.slice(0, 200).to_pylist():
        inputs = []
        for name, value in row.items():
            datatype = "BYTES" if isinstance(value, str) else "BOOL" if isinstance(value, bool) else "FP64"
            if isinstance(value, int) and not isinstance(value, bool):
                datatype = "INT64"
            inputs.append({"name": name, "datatype": datatype, "shape": [1], "data": [value]})
        bodies.append(orjson.dumps({"inputs": inputs}, option=orjson.OPT_SERIALIZE_NUMPY))
    return bodies


def _single(url: str, bodies: list[bytes], count: int) -> tuple[float, float]:
    times = []
    with httpx.Client(timeout=30) as client:
        for i in range(count + 20):
            started = time.perf_counter()
            response = client.post(url, content=bodies[i % len(bodies)])
            elapsed = (time.perf_counter() - started) * 1000
            response.raise_for_status()
            if i >= 20:  # the first requests warm connections and caches
                times.append(elapsed)
    times.sort()
    return statistics.median(times), times[int(0.99 * (len(times) - 1))]


async def _load(url: str | None, items: list[Any], plan: MeasurePlan, clients: int = 64) -> dict[str, float]:
    """Closed-loop clients for `plan.load_seconds`: POST `items` (bodies) to `url`, or GET `items` (URLs)."""
    latencies: list[float] = []
    stop = time.perf_counter() + plan.load_seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one(offset: int) -> None:
            i = offset
            while time.perf_counter() < stop:
                started = time.perf_counter()
                if url is None:
                    response = await client.get(items[i % len(items)])
                else:
                    response = await client.post(url, content=items[i % len(items)])
                response.raise_for_status()
                latencies.append((time.perf_counter() - started) * 1000)
                i += clients

        started = time.perf_counter()
        await asyncio.gather(*(one(c) for c in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {"rps": len(latencies) / elapsed, "p99_ms": latencies[int(0.99 * (len(latencies) - 1))]}
