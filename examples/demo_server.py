"""`foretell serve` in a subprocess on a free port of 127.0.0.1, for the tours `make run` tells."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(*models: str) -> Iterator[str]:
    """The server's URL once it is ready; SIGTERM at the end (the ledger flushes what it holds)."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "foretell", "serve", *models, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            for _ in range(600):
                try:
                    if client.get("/v2/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            else:
                raise SystemExit("the server did not become ready")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=60)
