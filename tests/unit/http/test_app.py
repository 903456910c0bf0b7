"""The ASGI app's Starlette side: probes, metadata, metrics, OpenAPI, the API key and the access log."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from importlib.metadata import version as package_version
from typing import Any

import orjson
import pytest
from servedmodels import Lifespan, Stack, run, serving

from foretell.http.access_log import ACCESS_LOGGER
from foretell.http.app import OPEN_PATHS, ServerOptions

VERSION = package_version("foretell")


@pytest.fixture
def stack(models_home, tmp_path) -> Stack:
    return Stack(models_home, tmp_path, ("sums",))


def answered(stack: Stack, model: str, endpoint: str, status: int) -> float | None:
    return stack.metric("foretell_requests_total", model=model, endpoint=endpoint, status=str(status), transport="http")


# -- probes ------------------------------------------------------------------------------------------------


def test_probes_say_live_and_ready_once_the_models_are_loaded(stack):
    async def scenario() -> None:
        async with serving(stack.app()) as client:
            assert (await client.get("/v2/health/live")).json() == {"live": True}
            ready = await client.get("/v2/health/ready")
            assert (ready.status_code, ready.json()) == (200, {"ready": True})
            for path in ("/ping", "/health"):
                ping = await client.get(path)
                assert (ping.status_code, ping.content) == (200, b"\n")

    run(scenario)


def test_a_server_that_is_not_ready_says_so_on_every_readiness_probe_but_stays_live(stack):
    async def scenario() -> None:
        async with serving(stack.app()) as client:
            stack.inference.ready = False  # what a SIGTERM does before the drain
            assert (await client.get("/v2/health/live")).status_code == 200
            ready = await client.get("/v2/health/ready")
            assert (ready.status_code, ready.json()) == (503, {"ready": False})
            assert (await client.get("/ping")).status_code == 503
            assert (await client.get("/health")).status_code == 503
            model = await client.get("/v2/models/sums/ready")
            assert (model.status_code, model.json()) == (200, {"name": "sums", "ready": False})

    run(scenario)


def test_the_server_metadata_names_foretell_its_version_and_extensions(stack):
    async def scenario() -> None:
        async with serving(stack.app()) as client:
            assert (await client.get("/v2")).json() == {
                "name": "foretell",
                "version": VERSION,
                "extensions": ["binary_tensor_data", "model_repository"],
            }
            version = await client.get("/version")
            assert (version.text, version.headers["content-type"]) == (VERSION, "text/plain; charset=utf-8")

    run(scenario)


# -- model routes ----------------------------------------------------------------------------------------------


def test_model_metadata_describes_the_served_version_and_signature(stack):
    expected = {
        "name": "sums",
        "versions": ["1"],
        "platform": "foretell_python",
        "inputs": [{"name": "a", "datatype": "FP64", "shape": [-1]}, {"name": "b", "datatype": "FP64", "shape": [-1]}],
        "outputs": [{"name": "score", "datatype": "FP64", "shape": [-1]}],
    }

    async def scenario() -> None:
        async with serving(stack.app()) as client:
            assert (await client.get("/v2/models/sums")).json() == expected
            assert (await client.get("/v2/models/sums/versions/1")).json() == expected

    run(scenario)
    assert answered(stack, "sums", "metadata", 200) == 2.0


@pytest.mark.parametrize(
    ("path", "endpoint", "message"),
    [
        ("/v2/models/churn", "metadata", "model 'churn' is not served here; served models: sums"),
        ("/v2/models/churn/ready", "ready", "model 'churn' is not served here; served models: sums"),
        (
            "/v2/models/sums/versions/4",
            "metadata",
            "model 'sums' version '4' is not served here; this server serves version 1",
        ),
        (
            "/v2/models/sums/versions/4/ready",
            "ready",
            "model 'sums' version '4' is not served here; this server serves version 1",
        ),
    ],
)
def test_a_model_route_for_what_is_not_served_is_404_counted_under_a_dash(stack, path, endpoint, message):
    async def scenario() -> None:
        async with serving(stack.app()) as client:
            response = await client.get(path)
            assert (response.status_code, response.json()) == (404, {"error": message})

    run(scenario)
    assert answered(stack, "-", endpoint, 404) == 1.0


# -- metrics and OpenAPI ----------------------------------------------------------------------------------------


def test_metrics_are_prometheus_text_with_the_requests_answered(stack):
    async def scenario() -> None:
        async with serving(stack.app()) as client:
            await client.get("/v2/models/sums")
            response = await client.get("/metrics")
            assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
            lines = response.text.splitlines()
            counted = 'foretell_requests_total{endpoint="metadata",model="sums",status="200",transport="http"} 1.0'
            assert counted in lines
            assert any(line.startswith('foretell_model_load_seconds{model="sums",version="1"} ') for line in lines)

    run(scenario)


HYBRID_PATHS = ["/v1/events", "/v1/models/{name}/predictions/{key}", "/v1/models/{name}/predictions:batchGet"]
BASE_PATHS = [
    "/health",
    "/invocations",
    "/metrics",
    "/openapi.json",
    "/ping",
    "/v2",
    "/v2/health/live",
    "/v2/health/ready",
    "/v2/models/{name}",
    "/v2/models/{name}/infer",
    "/v2/models/{name}/ready",
    "/v2/models/{name}/versions/{version}",
    "/v2/models/{name}/versions/{version}/infer",
    "/v2/models/{name}/versions/{version}/ready",
    "/version",
]


def test_the_openapi_document_describes_every_route_with_a_hybrid_service(stack):
    async def scenario() -> None:
        async with serving(stack.app()) as client:
            document = (await client.get("/openapi.json")).json()
            assert (document["openapi"], document["info"]) == ("3.1.0", {"title": "foretell", "version": VERSION})
            assert sorted(document["paths"]) == sorted(BASE_PATHS + HYBRID_PATHS)
            infer = document["paths"]["/v2/models/{name}/infer"]
            assert sorted(infer["post"]["responses"]) == ["200", "400", "404", "413", "500", "503", "504"]
            assert infer["parameters"][0]["schema"]["enum"] == ["sums"]  # the served models, the only names
            assert "401" not in infer["post"]["responses"]  # no key asked for
            lookup = document["paths"]["/v1/models/{name}/predictions/{key}"]
            assert sorted(lookup) == ["get", "head", "parameters"]
            assert [p["name"] for p in lookup["get"]["parameters"]] == ["fresh", "k"]
            for path, item in document["paths"].items():
                for method, operation in item.items():
                    if method == "parameters":
                        continue
                    for status, answer in operation["responses"].items():
                        if int(status) >= 400 and path not in ("/v2/health/ready", "/ping", "/health"):
                            schema = answer["content"]["application/json"]["schema"]
                            assert schema["required"] == ["error"], (path, method, status)
                        if status == "503" and path not in ("/v2/health/ready", "/ping", "/health"):
                            assert "Retry-After" in answer["headers"], (path, method)

    run(scenario)


def test_every_described_path_is_answered_by_a_route(stack):
    async def scenario() -> None:
        async with serving(stack.app()) as client:
            document = (await client.get("/openapi.json")).json()
            for template, item in document["paths"].items():
                path = template.format(name="sums", version="1", key="k1")
                for method in set(item) - {"parameters"}:
                    response = await client.request(method.upper(), path)
                    assert response.status_code not in (404, 405) or "no route" not in response.text, (method, path)

    run(scenario)


def test_without_a_hybrid_service_the_document_has_no_v1_routes_and_a_key_adds_401_403_429(stack):
    async def scenario() -> None:
        async with serving(stack.app(KEYED, hybrid=False)) as client:
            document = (await client.get("/openapi.json", headers={"X-API-Key": "s3cret"})).json()
            assert sorted(document["paths"]) == BASE_PATHS
            paths = document["paths"]
            infer = paths["/v2/models/{name}/infer"]["post"]["responses"]
            assert {"401", "403", "429"} <= set(infer) and "Retry-After" in infer["429"]["headers"]
            assert "401" in paths["/openapi.json"]["get"]["responses"]
            for probe in OPEN_PATHS:
                assert "401" not in paths[probe]["get"]["responses"], probe
            assert document["security"] == [{"bearer": []}, {"apiKey": []}]

    run(scenario)


def test_without_a_hybrid_service_the_v1_routes_are_not_served(stack):
    async def scenario() -> None:
        async with serving(stack.app(hybrid=False)) as client:
            assert (await client.get("/v1/models/sums/predictions/k1")).status_code == 404
            assert (await client.post("/v1/events", json={"type": "features"})).status_code == 404

    run(scenario)


# -- the API key -----------------------------------------------------------------------------------------------


KEYED = ServerOptions(api_key="s3cret")
BODY = {"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}]}


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"X-API-Key": "nope"}, 401),
        ({"Authorization": "Bearer nope"}, 401),
        ({"Authorization": "Bearer s3cret"}, 200),
        ({"X-API-Key": "s3cret"}, 200),
    ],
    ids=["none", "wrong-x-api-key", "wrong-bearer", "bearer", "x-api-key"],
)
def test_infer_needs_the_api_key_as_a_bearer_token_or_x_api_key(stack, headers, status):
    async def scenario() -> None:
        async with serving(stack.app(KEYED)) as client:
            response = await client.post("/v2/models/sums/infer", json=BODY, headers=headers)
            assert response.status_code == status
            if status == 401:
                assert response.json() == {"error": "missing or wrong API key"}
                assert response.headers["www-authenticate"] == "Bearer"

    run(scenario)


@pytest.mark.parametrize("path", ["/v2", "/v2/models/sums", "/openapi.json", "/v1/models/sums/predictions/k1"])
def test_every_other_route_needs_the_key_too(stack, path):
    async def scenario() -> None:
        async with serving(stack.app(KEYED)) as client:
            assert (await client.get(path)).status_code == 401

    run(scenario)


@pytest.mark.parametrize("path", OPEN_PATHS)
def test_probes_and_metrics_answer_without_the_key(stack, path):
    async def scenario() -> None:
        async with serving(stack.app(KEYED)) as client:
            assert (await client.get(path)).status_code == 200

    run(scenario)


# -- the access log --------------------------------------------------------------------------------------------


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.entries: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.entries.append(orjson.loads(record.getMessage()))


@pytest.fixture
def access_lines() -> Iterator[Lines]:
    logger = logging.getLogger(ACCESS_LOGGER)
    lines, level = Lines(), logger.level
    logger.addHandler(lines)  # the app keeps a handler that is there (and adds stderr only when none is)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(lines)
    logger.setLevel(level)


def test_the_access_log_writes_one_json_object_per_request(stack, access_lines):
    async def scenario() -> None:
        async with serving(stack.app(ServerOptions(access_log=True))) as client:
            await client.post("/v2/models/sums/infer", json=BODY, headers={"X-Request-ID": "abc-1"})
            await client.get("/v2/models/churn")

    run(scenario)
    first, second = access_lines.entries
    assert {k: first[k] for k in ("method", "path", "status", "request_id")} == {
        "method": "POST",
        "path": "/v2/models/sums/infer",
        "status": 200,
        "request_id": "abc-1",
    }
    assert first["bytes"] > 0 and first["ms"] > 0 and first["ts"].endswith("+00:00")
    assert first["client"] == "127.0.0.1:123"  # httpx's ASGI transport's client address
    assert {k: second[k] for k in ("method", "path", "status", "request_id")} == {
        "method": "GET",
        "path": "/v2/models/churn",
        "status": 404,
        "request_id": None,
    }
    assert second["bytes"] == len(b'{"error":"model \'churn\' is not served here; served models: sums"}')


def test_the_access_log_records_a_request_that_got_no_answer_with_no_status(stack, access_lines):
    app = stack.app(ServerOptions(access_log=True))
    scope = {"type": "http", "method": "POST", "path": "/invocations", "headers": []}

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        raise AssertionError(f"nothing should be sent to a client that left: {message}")

    async def scenario() -> None:
        async with Lifespan(app):
            await app(scope, receive, send)

    run(scenario)
    [entry] = access_lines.entries
    assert (entry["path"], entry["status"], entry["bytes"], entry["client"]) == ("/invocations", None, 0, None)


def test_no_access_log_unless_asked(stack, access_lines):
    async def scenario() -> None:
        async with serving(stack.app()) as client:
            await client.get("/v2/health/ready")

    run(scenario)
    assert access_lines.entries == []


# -- paths and methods no route takes ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", "/v2/models/sums/explain", "/v1/models/sums/predictions/"])
def test_a_path_no_route_serves_is_a_json_404(stack, path):
    async def scenario() -> None:
        async with serving(stack.app()) as client:
            response = await client.get(path)
            assert (response.status_code, response.headers["content-type"]) == (404, "application/json")
            assert response.json() == {"error": f"no route serves GET {path} (the routes: GET /openapi.json)"}

    run(scenario)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v1/events", "POST"),
        ("POST", "/v2/health/ready", "GET, HEAD"),
        ("DELETE", "/v2/models/sums", "GET, HEAD"),
    ],
)
def test_a_method_a_route_does_not_take_is_a_json_405_with_allow(stack, method, path, allow):
    async def scenario() -> None:
        async with serving(stack.app()) as client:
            response = await client.request(method, path)
            assert (response.status_code, set(response.headers["allow"].split(", "))) == (405, set(allow.split(", ")))
            assert response.json() == {"error": f"{path} does not take {method}: use {response.headers['allow']}"}

    run(scenario)
