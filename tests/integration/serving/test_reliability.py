"""Overload, hot reload and SIGTERM drain, against a real server process."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import joblib
from servekit import free_port, listening_pids, rows, rss_bytes, server
from sklearn.linear_model import LogisticRegression

import foretell


def slow_body(value: float = 1.0) -> dict:
    return {"inputs": [{"name": "a", "datatype": "FP64", "shape": [1], "data": [value]}]}


def test_flood_beyond_the_queue_gets_503_with_retry_after_memory_stays_bounded_and_it_recovers(home, tmp_path):
    # The knobs come from a config file, for this model only: the server-wide default queue is large.
    config = tmp_path / "serve.toml"
    config.write_text("[batching.slow]\nmax_queue = 2\nmax_batch_size = 1\n")
    with server(home, "slow", "clf@production", "--config", str(config)) as url:
        (pid,) = listening_pids(url)

        def call(i: int) -> httpx.Response:
            return httpx.post(f"{url}/v2/models/slow/infer", json=slow_body(i), timeout=60)

        with concurrent.futures.ThreadPoolExecutor(40) as pool:
            responses = list(pool.map(call, range(40)))
        codes = [r.status_code for r in responses]
        assert set(codes) <= {200, 503}
        assert codes.count(503) > 0 and codes.count(200) > 0
        rejected = next(r for r in responses if r.status_code == 503)
        assert int(rejected.headers["retry-after"]) >= 1 and "overloaded" in rejected.json()["error"]
        assert call(1).status_code == 200  # it recovers once the flood is over

        # A longer flood, with 20 kB bodies: what is refused is not kept, so memory stays flat. The first
        # flood brings the allocator to its working size (64 requests in flight at once; how much that
        # takes varies with the heap the earlier requests left, 20 to 50 MiB in a full run); a second,
        # twice as long, must not grow it much again: 3,000 refused bodies kept would be 60 MB (their floats 240 MB).
        big = {"inputs": [{"name": "a", "datatype": "FP64", "shape": [2500], "data": [1.0] * 2500}]}

        # Idle connections are dropped by the client before the server's 5 s keep-alive timeout could
        # close one just as a request goes out on it (that race is the client's, not a refusal).
        limits = httpx.Limits(max_connections=64, keepalive_expiry=2.0)
        with httpx.Client(timeout=60, limits=limits) as client:

            def flood(_: int) -> int:
                return client.post(f"{url}/v2/models/slow/infer", json=big).status_code

            with concurrent.futures.ThreadPoolExecutor(64) as pool:
                warm = list(pool.map(flood, range(1500)))
                before = rss_bytes(pid)
                flooded = list(pool.map(flood, range(3000)))
        grown = rss_bytes(pid) - before
        assert warm.count(503) > 1200, warm.count(200)
        assert flooded.count(503) > 2500, flooded.count(200)
        assert grown < 30 * 2**20, f"the server grew by {grown / 2**20:.1f} MiB over 3,000 more refused 20 kB requests"
        assert call(2).status_code == 200


def test_moving_the_alias_swaps_the_version_under_load_with_no_failed_request(home, tmp_path):
    x = rows(300, seed=9)
    path = tmp_path / "clf2.joblib"
    joblib.dump(LogisticRegression(C=0.01).fit(x, (x[:, 3] > 0).astype(int)), path)
    first = foretell.get_registry(home).get("clf@production")
    second = foretell.register("clf", path, signature=first.signature, home=home)
    body = {"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 4], "data": [0.1, 0.2, 0.3, 0.4]}]}
    try:
        with server(home, "clf@production", "--reload-seconds", "0.2") as url:
            versions: list[str] = []
            failures: list[int] = []
            stop = threading.Event()

            def load() -> None:
                with httpx.Client() as client:
                    while not stop.is_set():
                        response = client.post(f"{url}/v2/models/clf/infer", json=body)
                        if response.status_code != 200:
                            failures.append(response.status_code)
                        else:
                            versions.append(response.json()["model_version"])

            threads = [threading.Thread(target=load) for _ in range(4)]
            for t in threads:
                t.start()
            time.sleep(0.5)
            foretell.set_alias("clf", "production", second.version, home=home)
            deadline = time.monotonic() + 15
            while (not versions or versions[-1] != str(second.version)) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
            stop.set()
            for t in threads:
                t.join()
            assert not failures
            assert versions[0] == str(first.version) and versions[-1] == str(second.version)
    finally:
        foretell.set_alias("clf", "production", first.version, home=home)


def arrived(url: str, model: str) -> float:
    """Requests for `model` the server is answering or has answered, from its own /metrics."""
    total = 0.0
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        # prometheus_client writes labels sorted by name (endpoint, model, status): look for the model's
        # label anywhere in the line. Matching `{model="..."` first missed every answered request, and the
        # test then passed only when it caught all six in flight at once.
        if line.startswith(("foretell_in_flight_requests{", "foretell_requests_total{")) and f'model="{model}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_sigterm_lets_in_flight_requests_finish(home):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "foretell", "serve", "slow", "--port", str(port), "--max-batch-size", "1"],
        env={**os.environ, "FORETELL_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
            assert time.monotonic() < deadline

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            futures = [
                pool.submit(httpx.post, f"{url}/v2/models/slow/infer", json=slow_body(i), timeout=60) for i in range(6)
            ]
            # SIGTERM only once all six have reached the server (being answered, or answered): one
            # still connecting when the listener closes is refused, rightly, and that is not this test.
            deadline = time.monotonic() + 30
            while arrived(url, "slow") < 6:
                assert time.monotonic() < deadline, "the six requests never reached the server"
                time.sleep(0.01)
            process.send_signal(signal.SIGTERM)
            codes = [f.result().status_code for f in futures]
        assert codes == [200] * 6
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 0  # a graceful stop is a normal end
        assert b"every in-flight request was answered" in stderr
    finally:
        if process.poll() is None:
            process.kill()


def test_two_worker_processes_serve_and_stop_together(home):
    body = {"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 4], "data": [0.1, 0.2, 0.3, 0.4]}]}
    with server(home, "clf@production", "--workers", "2") as url:
        pids = listening_pids(url)
        assert len(pids) == 3, pids  # the supervisor and two workers, each with its own copy of the model
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda _: httpx.post(f"{url}/v2/models/clf/infer", json=body).status_code, range(80)))
        assert codes == [200] * 80
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in pids):  # SIGTERM to the supervisor stops them all
        assert time.monotonic() < deadline, [pid for pid in pids if Path(f"/proc/{pid}").exists()]
        time.sleep(0.1)
