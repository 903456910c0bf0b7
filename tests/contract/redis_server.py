"""A throwaway redis-server for the store tests: one per test session, on a free localhost port.

Imported by name from the test modules that need it (test folders are not packages).
Each module's session fixture enters `shared()`; the server starts with the first and
stops with the last, so one pytest run starts one server however many modules use it.
Nothing is saved to disk (`--save ''`, no AOF); each test takes a key prefix of its own.

Without redis-server on PATH the Redis tests are skipped, unless FORETELL_REQUIRE_REDIS=1
(as CI sets it), where a missing server is a failure: CI must not pass by skipping them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

START_SECONDS = 10.0


def unique_prefix() -> str:
    """A key prefix no other test uses, so tests share the server without seeing each other's keys."""
    return f"test-{uuid.uuid4().hex[:12]}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def require_server() -> str:
    """The redis-server executable; skips the test (or fails it, under FORETELL_REQUIRE_REDIS=1) without one."""
    server = shutil.which("redis-server")
    required = os.environ.get("FORETELL_REQUIRE_REDIS") == "1"
    try:
        import redis  # noqa: F401 - the store's client, from the [redis] extra
    except ImportError:
        if required:
            pytest.fail("FORETELL_REQUIRE_REDIS=1 but the redis package is missing: pip install -e '.[all,dev]'")
        pytest.skip("the redis package is not installed (pip install 'foretell[redis]')")
    if server is None:
        if required:
            pytest.fail(
                "FORETELL_REQUIRE_REDIS=1 but redis-server is not on PATH; install it "
                "(apt-get install redis-server) to run the Redis store tests"
            )
        pytest.skip("redis-server is not on PATH: the Redis store tests need it (apt-get install redis-server)")
    return server


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def _serve(server: str) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="foretell-redis-") as folder:
        for _attempt in range(3):  # the free port may be taken between probing and binding it
            port = free_port()
            log = Path(folder) / "redis.log"
            process = subprocess.Popen(
                [
                    server,
                    "--port", str(port),
                    "--bind", "127.0.0.1",
                    "--save", "",
                    "--appendonly", "no",
                    "--dir", folder,
                    "--logfile", str(log),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            deadline = time.monotonic() + START_SECONDS
            while process.poll() is None and not _ping(port) and time.monotonic() < deadline:
                time.sleep(0.02)
            if process.poll() is None and _ping(port):
                break
            process.kill()
            process.wait()
        else:
            pytest.fail(f"redis-server did not start; its log says:\n{log.read_text() if log.exists() else '(none)'}")
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class _Session:
    def __init__(self) -> None:
        self.url = ""
        self.users = 0
        self.stack = ExitStack()


_session = _Session()


@contextmanager
def shared() -> Iterator[str]:
    """The session's server URL, started on first entry and stopped when the last user leaves."""
    server = require_server()
    if _session.users == 0:
        _session.url = _session.stack.enter_context(_serve(server))
    _session.users += 1
    try:
        yield _session.url
    finally:
        _session.users -= 1
        if _session.users == 0:
            _session.stack.close()


@contextmanager
def durable(folder: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A redis-server that writes every change to its append-only file before answering, so that one
    killed with -9 and started again on the same folder has every entry, group and acknowledgement."""
    process = subprocess.Popen(
        [
            require_server(),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(folder),
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--logfile", str(folder / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + START_SECONDS
        while not _ping(port):
            assert process.poll() is None and time.monotonic() < deadline, (folder / "redis.log").read_text()
            time.sleep(0.02)
        yield process
    finally:
        process.kill()
        process.wait()
