"""TLS: `foretell serve --ssl-certfile --ssl-keyfile` answers HTTPS and gRPC over TLS, and nothing in plain text.

A certificate authority made for the test (trustme) signs the server's certificate for 127.0.0.1; clients
trust that authority only, as a user's would trust their own.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import Encoding, PrivateFormat
from grpckit import tensor
from servekit import free_port, rows
from tritonclient.utils import InferenceServerException


@dataclass(frozen=True)
class Secured:
    url: str
    grpc: str
    authority: Path

    @property
    def trusting(self) -> ssl.SSLContext:
        """A client context that trusts the test's authority alone."""
        return ssl.create_default_context(cafile=str(self.authority))


@dataclass(frozen=True)
class Files:
    certfile: Path
    keyfile: Path
    authority: Path
    other_keyfile: Path
    encrypted_keyfile: Path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    folder = tmp_path_factory.mktemp("tls")
    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1", "localhost")
    files = Files(*(folder / name for name in ("server.pem", "server.key", "ca.pem", "other.key", "locked.key")))
    files.certfile.write_bytes(b"".join(pem.bytes() for pem in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(files.keyfile))
    authority.cert_pem.write_to_path(str(files.authority))
    authority.issue_cert("127.0.0.1").private_key_pem.write_to_path(str(files.other_keyfile))
    key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), password=None)
    locked = serialization.BestAvailableEncryption(b"secret")
    files.encrypted_keyfile.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, locked))
    return files


def serve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "foretell", "serve", "clf@production", *args]


@pytest.fixture(scope="module")
def secured(home: Path, files: Files, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    port, grpc_port = free_port(), free_port()
    log = tmp_path_factory.mktemp("tls-log") / "serve.log"
    tls = ["--ssl-certfile", str(files.certfile), "--ssl-keyfile", str(files.keyfile)]
    with log.open("w") as output:
        process = subprocess.Popen(
            serve_command("--port", str(port), "--grpc-port", str(grpc_port), *tls),
            env={**os.environ, "FORETELL_HOME": str(home)},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"not ready in a minute: {log.read_text()}"
            try:
                trusting = ssl.create_default_context(cafile=str(files.authority))
                if httpx.get(f"{url}/v2/health/ready", verify=trusting, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        assert f"serving clf@production on {url} and grpcs://127.0.0.1:{grpc_port}" in log.read_text()
        yield Secured(url, f"127.0.0.1:{grpc_port}", files.authority)
    finally:
        process.terminate()
        process.wait(timeout=60)


def body(x: np.ndarray) -> dict[str, object]:
    return {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP64", "data": x.reshape(-1).tolist()}]}


def test_https_and_grpc_over_tls_give_the_same_answer(secured: Secured) -> None:
    x = rows(50, seed=11)
    rest = httpx.post(f"{secured.url}/v2/models/clf/infer", json=body(x), verify=secured.trusting, timeout=30)
    assert rest.status_code == 200, rest.text
    client = grpcclient.InferenceServerClient(secured.grpc, ssl=True, root_certificates=str(secured.authority))
    assert client.is_server_live() and client.is_model_ready("clf")
    result = client.infer("clf", [tensor("input", x, "FP64")])
    score = next(o for o in rest.json()["outputs"] if o["name"] == "score")
    np.testing.assert_array_equal(result.as_numpy("score").reshape(-1), np.asarray(score["data"]))


def test_plain_text_and_untrusted_certificates_are_refused(secured: Secured) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(secured.url.replace("https://", "http://") + "/v2/health/live", timeout=5)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{secured.url}/v2/health/live", timeout=5)  # the system's authorities do not know the test's
    with pytest.raises(InferenceServerException):
        grpcclient.InferenceServerClient(secured.grpc).is_server_live(client_timeout=5)
    # Still serving after all three.
    assert httpx.get(f"{secured.url}/v2/health/live", verify=secured.trusting, timeout=5).status_code == 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ssl-certfile", "{missing}", "--ssl-keyfile", "{keyfile}"], "ssl_certfile: no file at '{missing}'"),
        (["--ssl-certfile", "{certfile}"], "ssl_certfile needs ssl_keyfile too"),
        (["--ssl-keyfile", "{keyfile}"], "ssl_keyfile needs ssl_certfile too"),
        (
            ["--ssl-certfile", "{certfile}", "--ssl-keyfile", "{other_keyfile}"],
            "must be a PEM certificate chain and its unencrypted private key",
        ),
        (["--ssl-certfile", "{keyfile}", "--ssl-keyfile", "{keyfile}"], "must be a PEM certificate chain"),
        (["--ssl-certfile", "{certfile}", "--ssl-keyfile", "{encrypted_keyfile}"], "the private key is encrypted"),
        (
            ["--ssl-certfile", "{certfile}", "--ssl-keyfile", "{keyfile}", "--engine", "ray"],
            "Ray Serve's proxies take no certificate",
        ),
    ],
)
def test_tls_files_that_cannot_serve_are_refused_with_a_message(
    home: Path, files: Files, tmp_path: Path, args: list[str], message: str
) -> None:
    names = {
        "missing": str(tmp_path / "missing.pem"),
        "certfile": str(files.certfile),
        "keyfile": str(files.keyfile),
        "other_keyfile": str(files.other_keyfile),
        "encrypted_keyfile": str(files.encrypted_keyfile),
    }
    done = subprocess.run(
        serve_command("--port", str(free_port()), *(arg.format(**names) for arg in args)),
        env={**os.environ, "FORETELL_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert message.format(**names) in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
