"""API keys with scopes and rate limits, made with `foretell keys`, enforced by a real server over REST and gRPC."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tritonclient.grpc as grpcclient
from grpckit import tensor
from servekit import FEATURES, cli, free_port, rows, server
from tritonclient.utils import InferenceServerException


def make_key(home: Path, name: str, *options: str) -> str:
    done = cli(home, "keys", "create", name, *options, "--json")
    assert done.returncode == 0, done.stderr
    token: str = json.loads(done.stdout)["token"]
    return token


@dataclass(frozen=True)
class Keyed:
    home: Path
    url: str
    grpc: str
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def keyed(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyed]:
    """A copy of the gRPC tests' home (its keys would lock the other tests out) with keys and an entity table."""
    copy = tmp_path_factory.mktemp("keys") / "home"
    shutil.copytree(home, copy)
    things = copy.parent / "things.parquet"
    pq.write_table(pa.table({"id": ["T-1", "T-2"], **{n: rows(2)[:, i] for i, n in enumerate(FEATURES)}}), things)
    loaded = cli(copy, "entities", "load", "things", str(things), "--key", "id", "--model", "clf")
    assert loaded.returncode == 0, loaded.stderr
    tokens = {
        "scorer": make_key(copy, "scorer", "--scope", "predict"),
        "feeder": make_key(copy, "feeder", "--scope", "events"),
        "ops": make_key(copy, "ops", "--scope", "admin"),
        "slow": make_key(copy, "slow", "--scope", "predict", "--rate", "2"),
        "leaked": make_key(copy, "leaked", "--scope", "predict"),
    }
    port = free_port()
    with server(copy, "clf", "--grpc-port", str(port), env={"FORETELL_API_KEY": "env-key"}) as url:
        yield Keyed(copy, url, f"127.0.0.1:{port}", tokens)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def infer(keyed: Keyed, headers: dict[str, str]) -> httpx.Response:
    x = rows(2)
    body = {"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP64", "data": x.reshape(-1).tolist()}]}
    return httpx.post(f"{keyed.url}/v2/models/clf/infer", json=body, headers=headers, timeout=30)


def event(keyed: Keyed, headers: dict[str, str]) -> httpx.Response:
    body = {"type": "features", "key": "T-1", "values": {"a": 0.5}}
    return httpx.post(f"{keyed.url}/v1/events", json=body, headers=headers, timeout=30)


def test_each_route_needs_its_scope(keyed: Keyed) -> None:
    tokens = keyed.tokens
    assert infer(keyed, {}).status_code == 401 and infer(keyed, {}).headers["www-authenticate"] == "Bearer"
    assert infer(keyed, bearer("ftk_000000000000_" + "x" * 43)).json() == {"error": "missing or wrong API key"}
    assert infer(keyed, bearer(tokens["scorer"])).status_code == 200
    assert infer(keyed, {"x-api-key": tokens["scorer"]}).status_code == 200
    refused = event(keyed, bearer(tokens["scorer"]))
    assert refused.status_code == 403
    assert refused.json() == {"error": "API key 'scorer' lacks the 'events' scope this route needs (it has: predict)"}
    assert event(keyed, bearer(tokens["feeder"])).status_code == 200
    assert infer(keyed, bearer(tokens["feeder"])).status_code == 403
    for everything in (tokens["ops"], "env-key"):  # admin, and FORETELL_API_KEY: every scope
        assert infer(keyed, bearer(everything)).status_code == 200
        assert event(keyed, bearer(everything)).status_code == 200
    for open_path in ("/v2/health/ready", "/metrics", "/ping"):
        assert httpx.get(f"{keyed.url}{open_path}", timeout=10).status_code == 200


def test_a_key_over_its_rate_gets_429_with_retry_after(keyed: Keyed) -> None:
    answers = [infer(keyed, bearer(keyed.tokens["slow"])) for _ in range(6)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited and answers[0].status_code == 200
    assert limited[0].headers["retry-after"] == "1"
    assert limited[0].json() == {"error": "API key 'slow' is over its rate limit of 2 requests/s"}
    time.sleep(1.0)
    assert infer(keyed, bearer(keyed.tokens["slow"])).status_code == 200


def test_grpc_takes_the_same_keys_and_scopes(keyed: Keyed) -> None:
    client = grpcclient.InferenceServerClient(keyed.grpc)
    x = [tensor("input", rows(2), "FP64")]
    assert client.is_server_live()  # the probes stay open

    def refusal(call: Callable[[], object]) -> InferenceServerException:
        with pytest.raises(InferenceServerException) as caught:
            call()
        return caught.value

    assert refusal(lambda: client.infer("clf", x)).status() == "StatusCode.UNAUTHENTICATED"
    denied = refusal(lambda: client.infer("clf", x, headers=bearer(keyed.tokens["feeder"])))
    assert denied.status() == "StatusCode.PERMISSION_DENIED"
    assert denied.message() == "API key 'feeder' lacks the 'predict' scope this route needs (it has: events)"
    assert client.infer("clf", x, headers=bearer(keyed.tokens["scorer"])).as_numpy("label") is not None
    assert client.infer("clf", x, headers={"x-api-key": "env-key"}).as_numpy("label") is not None


def test_a_revoked_key_is_refused_within_a_second(keyed: Keyed) -> None:
    assert infer(keyed, bearer(keyed.tokens["leaked"])).status_code == 200
    revoked = cli(keyed.home, "keys", "revoke", "leaked", "--json")
    assert revoked.returncode == 0 and json.loads(revoked.stdout)["revoked_at"], revoked.stderr
    deadline = time.monotonic() + 1.5
    while infer(keyed, bearer(keyed.tokens["leaked"])).status_code != 401:
        assert time.monotonic() < deadline, "a revoked key still works after a second"
        time.sleep(0.05)
    listed = json.loads(cli(keyed.home, "keys", "list", "--json").stdout)
    assert [k["name"] for k in listed] == ["scorer", "feeder", "ops", "slow"]
    assert all("token" not in k and "digest" not in k for k in listed)


def test_keys_hold_with_tracing_on(keyed: Keyed) -> None:
    """Tracing hands an infer request straight to its endpoint on a server without keys: never past a key."""
    env = {"OTEL_TRACES_EXPORTER": "none"}
    with server(keyed.home, "clf", "--tracing", env=env) as url:
        traced = Keyed(keyed.home, url, keyed.grpc, keyed.tokens)
        assert infer(traced, {}).status_code == 401
        assert infer(traced, bearer(keyed.tokens["feeder"])).status_code == 403
        answered = infer(traced, bearer(keyed.tokens["scorer"]))
        assert answered.status_code == 200 and answered.headers["traceparent"]
