"""Helpers for server tests: a real `foretell serve` process on a free localhost port (imported by name)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np

FEATURES = ["a", "b", "c", "d"]


def rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, len(FEATURES))).round(6)


def cli(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`foretell ARGS` as a user runs it, on `home`: its exit code, stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "foretell", *args],
        env={**os.environ, "FORETELL_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(
    home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60, log: Path | None = None
) -> Iterator[str]:
    """Start `foretell serve ARGS` and yield its base URL once /v2/health/ready says so.

    The server's output goes to `log` (a temporary file unless given): a pipe nobody reads
    would block a server that logs every request once the pipe's buffer is full.
    """
    port = free_port()
    with contextlib.ExitStack() as stack:
        if log is None:
            log = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="foretell-serve-log-"))) / "serve.log"
        output = stack.enter_context(log.open("w"))
        process = subprocess.Popen(
            [sys.executable, "-m", "foretell", "serve", *args, "--port", str(port)],
            env={**os.environ, "FORETELL_HOME": str(home), **(env or {})},
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        try:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"server exited with {process.returncode}: {log.read_text()}")
                try:
                    if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server did not become ready: {log.read_text()}")
                time.sleep(0.05)
            yield url
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


class Lifespan:
    """Runs an ASGI app's startup and shutdown through the lifespan protocol, as a server would."""

    def __init__(self, app: object) -> None:
        import asyncio

        self._app = app
        self._to_app: asyncio.Queue[dict] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> Lifespan:
        import asyncio

        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._task = asyncio.ensure_future(self._app(scope, self._to_app.get, self._from_app.put))  # type: ignore[operator]
        await self._to_app.put({"type": "lifespan.startup"})
        message = await self._from_app.get()
        assert message["type"] == "lifespan.startup.complete", message
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._to_app.put({"type": "lifespan.shutdown"})
        message = await self._from_app.get()
        assert message["type"] == "lifespan.shutdown.complete", message
        assert self._task is not None
        await self._task


def listening_pids(url: str) -> set[int]:
    """The processes holding the server's listening socket (found through /proc, no tools needed)."""
    port = int(url.rsplit(":", 1)[1])
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(fields[9])
    pids = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    pids.add(int(proc.name))
                    break
        except OSError:  # a process that ended meanwhile, or one we may not look into
            continue
    return pids


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"process {pid} has no VmRSS")


@contextmanager
def in_process(app: object, on_exit: Callable[[], object] = lambda: None) -> Iterator[str]:
    """uvicorn serving `app` on a real socket from a thread of this process; `on_exit` runs before it stops
    (to release what a test's model holds, so that the server can drain)."""
    import threading

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, name="test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        on_exit()
        server.should_exit = True
        thread.join(timeout=30)
