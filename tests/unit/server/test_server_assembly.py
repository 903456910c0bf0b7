"""A server put together from its settings: `build_app`, `app_from_env` for worker processes, `--autoscale`, and
where Ray Serve's replicas answer with direct ingress."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from servedmodels import Sums, run, serving

import foretell
from foretell.errors import InvalidInput, InvalidServeConfig
from foretell.memory import ALLOCATORS_ENV
from foretell.server.assembly import SERVE_CONFIG_ENV, app_from_env, build_app, run_server
from foretell.server.ray_serve import check_ingress, parse_autoscale, replica_addresses
from foretell.serving.config import ServeConfig
from foretell.serving.service import InferenceService


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home of its own: a built app keeps its prediction store and entity tables there."""
    home = tmp_path_factory.mktemp("assembly-home")
    folder = tmp_path_factory.mktemp("assembly-model")
    (folder / "README").write_text("nothing on disk\n")
    foretell.register(
        "sums",
        folder,
        flavor="python",
        signature=Sums.signature,
        flavor_options={"class": "servedmodels:Sums"},
        compile=False,
        home=home,
    )
    return home


@pytest.fixture
def serving_log() -> Iterator[None]:
    """`app_from_env` gives `foretell.serving` a stderr handler of its own, as a server process should; undone here."""
    logger = logging.getLogger("foretell.serving")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate


BODY = {"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 2], "data": [1.5, 2]}]}


def test_an_app_with_nothing_to_serve_is_refused_saying_how_to_name_models(home):
    with pytest.raises(InvalidInput) as caught:
        build_app(home, ServeConfig())
    assert str(caught.value) == (
        "nothing to serve: name models, or give one a production alias (foretell models alias)"
    )


def test_a_wrong_allocators_setting_stops_the_server_before_it_serves_naming_the_variable(home, monkeypatch):
    monkeypatch.setenv(ALLOCATORS_ENV, "fast")
    with pytest.raises(InvalidServeConfig) as caught:
        run_server(home, ServeConfig(models=("sums",), reload_seconds=0, port=1))
    assert str(caught.value) == "FORETELL_ALLOCATORS: expected one of settled, default (or unset), got 'fast'"


def test_the_built_app_serves_the_configured_models_with_the_configured_limits(home):
    config = ServeConfig(models=("sums",), reload_seconds=0, max_body_bytes=40, api_key="k")
    app = build_app(home, config)

    async def scenario() -> None:
        async with serving(app) as client:
            too_big = await client.post("/v2/models/sums/infer", json=BODY, headers={"X-API-Key": "k"})
            assert too_big.status_code == 413
            assert (await client.post("/v2/models/sums/infer", json=BODY)).status_code == 401
            assert (await client.get("/v2/health/ready")).status_code == 200
            missing = await client.get("/v1/models/sums/predictions/C-1", headers={"X-API-Key": "k"})
            assert missing.status_code == 404  # the hybrid routes are there, over the stores in the home

    run(scenario)
    assert (home / "store.db").is_file() and (home / "entities.db").is_file()


def test_a_worker_process_builds_its_app_from_the_settings_in_the_environment(home, monkeypatch, serving_log):
    settings = {**ServeConfig(models=("sums",), reload_seconds=0).to_dict(), "home": str(home)}
    monkeypatch.setenv(SERVE_CONFIG_ENV, json.dumps(settings))
    monkeypatch.setenv(ALLOCATORS_ENV, "default")  # a worker settles its allocators; this process is pytest's
    app = app_from_env()

    async def scenario() -> None:
        async with serving(app) as client:
            response = await client.post("/v2/models/sums/infer", json=BODY)
            assert response.json()["outputs"][0]["data"] == [3.5]

    run(scenario)


@pytest.mark.parametrize(("text", "replicas"), [("1:4", (1, 4)), ("0:1", (0, 1)), ("3:3", (3, 3))])
def test_autoscale_is_min_and_max_replicas(text, replicas):
    assert parse_autoscale(text) == replicas


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("4", "--autoscale takes MIN:MAX replicas, like 1:4; got '4'"),
        ("a:b", "--autoscale takes MIN:MAX replicas, like 1:4; got 'a:b'"),
        ("1:2:3", "--autoscale takes MIN:MAX replicas, like 1:4; got '1:2:3'"),
        ("4:1", "--autoscale needs 0 ≤ MIN ≤ MAX and MAX ≥ 1; got '4:1'"),
        ("0:0", "--autoscale needs 0 ≤ MIN ≤ MAX and MAX ≥ 1; got '0:0'"),
        ("-1:2", "--autoscale needs 0 ≤ MIN ≤ MAX and MAX ≥ 1; got '-1:2'"),
    ],
)
def test_autoscale_that_is_not_min_max_replicas_is_refused(text, message):
    with pytest.raises(InvalidInput) as caught:
        parse_autoscale(text)
    assert str(caught.value) == message


def details(host: str, *groups: tuple[str, list[tuple[str, int, str]]]) -> dict[str, object]:
    """Ray Serve's instance details, as much of them as `replica_addresses` reads (target groups, HTTP host)."""
    return {
        "http_options": {"host": host},
        "target_groups": [
            {
                "app_name": app,
                "protocol": "HTTP",
                "route_prefix": "/",
                "targets": [{"ip": ip, "port": port, "instance_id": "", "name": name} for ip, port, name in targets],
            }
            for app, targets in groups
        ],
    }


def test_replicas_are_reached_on_serves_host_or_their_nodes_ip_when_it_is_every_interface():
    replicas = [
        ("192.0.2.2", 30001, "SERVE_REPLICA::foretell#ForetellReplica#b"),
        ("192.0.2.7", 30000, "SERVE_REPLICA::foretell#ForetellReplica#a"),
    ]
    assert replica_addresses(details("127.0.0.1", ("foretell", replicas))) == [
        "http://127.0.0.1:30000",
        "http://127.0.0.1:30001",
    ]
    assert replica_addresses(details("0.0.0.0", ("foretell", replicas))) == [
        "http://192.0.2.2:30001",
        "http://192.0.2.7:30000",
    ]


def test_without_direct_ingress_there_are_no_replica_addresses():
    proxies = [("192.0.2.2", 8000, "SERVE_PROXY_ACTOR-node")]
    assert replica_addresses(details("127.0.0.1", ("", proxies))) is None  # the proxies' group only
    # direct ingress, no replica with its port yet: Ray points the app's group at the proxies meanwhile
    assert replica_addresses(details("127.0.0.1", ("", proxies), ("foretell", proxies))) == []


def test_ray_ingress_is_direct_or_proxy():
    assert check_ingress("direct") == "direct" and check_ingress("proxy") == "proxy"
    with pytest.raises(InvalidInput) as caught:
        check_ingress("haproxy")
    assert str(caught.value) == "--ray-ingress is direct or proxy; got 'haproxy'"


def test_with_grpc_a_replica_answers_it_on_a_port_of_its_own():
    def group(protocol: str, port: int) -> dict[str, object]:
        replica = {"ip": "192.0.2.2", "port": port, "instance_id": "", "name": "SERVE_REPLICA::foretell#GrpcReplica#a"}
        return {"app_name": "foretell", "protocol": protocol, "route_prefix": "/", "targets": [replica]}

    served = {"http_options": {"host": "127.0.0.1"}, "target_groups": [group("HTTP", 30000), group("gRPC", 40000)]}
    assert replica_addresses(served) == ["http://127.0.0.1:30000"]
    assert replica_addresses(served, "gRPC") == ["127.0.0.1:40000"]  # host:port, as gRPC clients take it
    assert replica_addresses(details("127.0.0.1", ("foretell", [])), "gRPC") is None  # no gRPC: no group


def test_build_app_hands_its_inference_service_to_whoever_asks(home: Path):
    """How a Ray Serve replica answers gRPC: through the service its HTTP app serves from."""
    handed: list[InferenceService] = []
    build_app(home, ServeConfig(models=("sums",)), served=handed.append)
    assert len(handed) == 1 and handed[0].ready is False  # not started: the app's lifespan starts it
