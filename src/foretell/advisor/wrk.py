"""wrk, the load generator the advisor and the benchmarks measure the server with (Debian's `wrk` package)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

__all__ = ["run_wrk", "wrk_lookups", "wrk_post"]


def run_wrk(url: str, script: Path, connections: int, seconds: float, *, cpus: str | None = None) -> dict[str, float]:
    """wrk against `url` with a Lua `script` (method, body, path): req/s, p50 and p99 in ms, errors.

    `cpus` pins wrk with taskset (e.g. "1"), so a benchmark keeps the load generator off the
    server's core.
    """
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script), url]
    if cpus is not None:
        command = ["taskset", "-c", cpus, *command]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout

    def latency(label: str) -> float:
        match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not match:
            return float("nan")
        return float(match.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[match.group(2)]

    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"wrk printed no request rate:\n{out}")
    errors = 0
    for pattern in (
        r"Non-2xx or 3xx responses: (\d+)",
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
    ):
        match = re.search(pattern, out)
        if match:
            errors += sum(int(g) for g in match.groups())
    return {"rps": float(found.group(1)), "p50_ms": latency("50%"), "p99_ms": latency("99%"), "errors": errors}


def wrk_post(url: str, body: bytes, connections: int, seconds: float, work: Path) -> dict[str, float]:
    script = work / f"post-{connections}.lua"
    # wrk sends the same bytes each time; a Lua long string keeps the JSON as it is.
    script.write_text(f'wrk.method = "POST"\nwrk.body = [==[{body.decode()}]==]\n'
                      'wrk.headers["Content-Type"] = "application/json"\n')  # fmt: skip
    return run_wrk(url, script, connections, seconds)


def wrk_lookups(base: str, name: str, keys: int, seconds: float, work: Path, clients: int = 64) -> dict[str, float]:
    script = work / "lookups.lua"
    script.write_text(
        "math.randomseed(7)\nrequest = function()\n"
        f'  return wrk.format("GET", "/v1/models/{name}/predictions/k" .. math.random(0, {keys - 1}))\nend\n'
    )
    return run_wrk(base, script, clients, seconds)
