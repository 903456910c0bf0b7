"""foretell's server as a Ray Serve application: the same ASGI app in every replica.

Each replica builds the app itself, from the same settings `foretell serve` uses, so it
loads its own models, runs its own micro-batchers, and checks the registry for moved
aliases on its own: an alias move reaches every replica within `reload_seconds`. Ray
Serve runs the app's lifespan in each replica (startup loads and warms the models;
shutdown drains them).

Two ways in. With direct ingress (the default where Ray has it, 2.60 and later), each
replica answers HTTP on its own port, with no hop through Ray Serve's proxy and no remote
call per request: a load balancer (or HAProxy, or a client) spreads requests over the
replicas' addresses, which are logged at startup and whenever they change. Ray Serve's
proxy still listens on `--host`/`--port` and reaches the same replicas the old way. With
`ingress="proxy"` (or a Ray without direct ingress, or a Serve instance already running
without it), the proxy is the only way in.

Backpressure comes in two layers. Ray Serve admits at most `max_ongoing_requests` at a
time to each replica and queues at most `max_queued_requests` more in front of them,
answering 503 beyond that. Inside a replica, foretell's own rules apply: a bounded row
queue per model, 503 (or the configured status) with Retry-After as JSON. The first
layer is sized from the second, so Ray Serve never holds back work a replica could still
batch: each replica may take as many requests as its models' queues hold.

With a gRPC port, Ray Serve also starts its gRPC proxy there, and the replicas answer the
Open Inference Protocol's gRPC service beside HTTP (`foretell.server.ray_grpc`).
"""

from __future__ import annotations

import inspect
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from foretell.errors import EngineUnavailable, InvalidInput, MissingExtra
from foretell.memory import settle_serving_allocators

__all__ = ["INGRESS_PATHS", "RayGrpcOptions", "RayServeOptions", "run_on_ray_serve"]

APP_NAME = "foretell"
INGRESS_PATHS = ("direct", "proxy")

DIRECT_INGRESS_ENV = {
    "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
    # The app runs on the replica's own event loop, the one its HTTP server answers on, rather
    # than on a second loop in another thread: no hand-over between threads per request (as in
    # Ray's own RAY_SERVE_THROUGHPUT_OPTIMIZED preset).
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
}
"""What the Serve controller and the replicas are started with for direct ingress (read by Ray at import)."""

FORWARDED_PREFIX = "RAY_SERVE_"
"""Ray Serve's settings (direct-ingress port range, draining period, ...) set for `foretell serve` reach Serve too."""

REPLICA_TARGET = "SERVE_REPLICA::"
"""How Ray names a target that is a replica's own port (a proxy's target is named otherwise)."""

ADDRESSES_WAIT_S = 60
WATCH_EVERY_S = 5

log = logging.getLogger("foretell.serving")


@dataclass(frozen=True)
class RayGrpcOptions:
    """Ray Serve's gRPC proxy on `port`, and what the local gRPC server enforces, enforced by each replica."""

    port: int
    api_key: str | None = None
    max_message_bytes: int = 64 * 2**20


@dataclass(frozen=True)
class RayServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    replicas: int | None = None
    """A fixed number of replicas (default 1), or None with `autoscale`."""
    autoscale: tuple[int, int] | None = None
    """(min, max) replicas, scaled by Ray Serve on ongoing requests per replica."""
    max_ongoing_requests: int = 1024
    max_queued_requests: int = 1024
    address: str | None = None
    """A running Ray cluster; None starts one on this machine (and stops it at the end)."""
    ingress: str = "direct"
    """direct: each replica answers on its own port (Ray's proxy too); proxy: only through Ray Serve's proxy."""
    grpc: RayGrpcOptions | None = None
    """The OIP over gRPC through Ray Serve's gRPC proxy; None: HTTP only."""


def parse_autoscale(text: str) -> tuple[int, int]:
    """`MIN:MAX` as two replica counts."""
    try:
        low, high = (int(part) for part in text.split(":"))
    except ValueError:
        raise InvalidInput(f"--autoscale takes MIN:MAX replicas, like 1:4; got {text!r}") from None
    if not 0 <= low <= high or high < 1:
        raise InvalidInput(f"--autoscale needs 0 ≤ MIN ≤ MAX and MAX ≥ 1; got {text!r}")
    return low, high


def check_ingress(text: str) -> str:
    if text not in INGRESS_PATHS:
        raise InvalidInput(f"--ray-ingress is direct or proxy; got {text!r}")
    return text


class WithoutDisconnectWatch:
    """Tells a replica's own HTTP server not to watch each request for a client that went away.

    Ray Serve otherwise starts a task per request to cancel it on a disconnect, and a second
    one to run it: on one core, most of what direct ingress costs beyond the app. foretell's
    requests are short and, as on the local server, one whose client left is answered into
    the void rather than cancelled.
    """

    HEADER = (b"x-request-disconnect-disabled", b"?1")

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope["headers"] = [*scope["headers"], self.HEADER]
        await self.app(scope, receive, send)


class ForetellReplica:
    """One replica: the settings in, the app built in the replica by `__serve_build_asgi_app__`."""

    def __init__(self, build: Callable[..., Any], build_kwargs: Mapping[str, Any]) -> None:
        self._build = build
        self._build_kwargs = dict(build_kwargs)

    def __serve_build_asgi_app__(self) -> Any:
        settle_serving_allocators()  # a replica is a long-running server too (foretell.memory)
        return self._build(**self._build_kwargs)


def _serve_running(ray: Any) -> bool:
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    try:
        ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
    except ValueError:
        return False
    return True


def _has_direct_ingress(serve: Any) -> bool:
    """Ray 2.60's direct ingress, and `serve.start(controller_options=...)` to switch it on for the controller."""
    from ray.serve._private import constants

    return hasattr(constants, "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT") and (
        "controller_options" in inspect.signature(serve.start).parameters
    )


def direct_ingress_env() -> dict[str, str]:
    forwarded = {name: value for name, value in os.environ.items() if name.startswith(FORWARDED_PREFIX)}
    return {**forwarded, **DIRECT_INGRESS_ENV}


def http_middlewares() -> list[Any]:
    """What Ray Serve wraps its HTTP servers in (RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH), each replica's own too."""
    from starlette.middleware import Middleware

    return [Middleware(WithoutDisconnectWatch)]


def replica_addresses(serve_details: Mapping[str, Any], protocol: str = "HTTP") -> list[str] | None:
    """The replicas' own HTTP (or gRPC: `host:port`) addresses from Ray Serve's instance details; None if Serve
    has no direct ingress.

    Ray names each target by its node's IP; a replica listens on Serve's HTTP host (its gRPC
    server on every interface), so an address says that host unless it is every interface.
    """
    groups = [
        group
        for group in serve_details.get("target_groups", [])
        if group.get("app_name") == APP_NAME and str(group.get("protocol", "")).upper().endswith(protocol.upper())
    ]
    if not groups:
        return None  # only the proxies' groups: Serve runs without direct ingress
    host = (serve_details.get("http_options") or {}).get("host") or ""
    wildcard = host in ("", "0.0.0.0", "::")  # noqa: S104 -- compared, not bound
    scheme = "http://" if protocol == "HTTP" else ""  # gRPC clients take host:port
    return sorted(
        f"{scheme}{target['ip'] if wildcard else host}:{target['port']}"
        for group in groups
        for target in group.get("targets", [])
        if str(target.get("name", "")).startswith(REPLICA_TARGET)
    )


def _serve_details() -> Mapping[str, Any]:
    from ray.serve.context import _get_global_client

    client: Any = _get_global_client()
    details: Mapping[str, Any] = client.get_serve_details()
    return details


def run_on_ray_serve(build: Callable[..., Any], build_kwargs: Mapping[str, Any], options: RayServeOptions) -> None:
    """Deploy and serve until SIGTERM or Ctrl-C, then shut the application down (replicas drain)."""
    try:
        import ray
        from ray import serve
    except ImportError as exc:
        raise MissingExtra("ray", "ray", "ray", needed_by="--engine ray") from exc

    if not ray.is_initialized():
        try:
            ray.init(address=options.address or "local", include_dashboard=False, logging_level=logging.WARNING)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            where = f"the Ray cluster at {options.address}" if options.address else "a local Ray instance"
            raise EngineUnavailable(f"could not start on {where}: {exc}") from exc
    # At the end, foretell's application is removed; Ray Serve itself only if it was started here
    # (if it already ran, it and its other applications stay, on the HTTP port it already had); the
    # Ray instance only if it was started here.
    owned_ray = options.address is None
    owned_serve = not _serve_running(ray)
    # foretell writes its own access log when asked (--access-log); Ray Serve's line per request in
    # the proxy and the replica would cost every request, as uvicorn's would on one machine.
    quiet = {"log_level": "WARNING", "enable_access_log": False}
    deployment_options: dict[str, Any] = {
        "name": "ForetellReplica",
        "logging_config": quiet,
        "max_ongoing_requests": options.max_ongoing_requests,
        "max_queued_requests": options.max_queued_requests,
        "ray_actor_options": {"num_cpus": 1},
    }
    if options.autoscale is not None:
        low, high = options.autoscale
        deployment_options["autoscaling_config"] = {"min_replicas": low, "max_replicas": high}
    else:
        deployment_options["num_replicas"] = options.replicas or 1
    start_options: dict[str, Any] = {}
    # Direct ingress is a setting of the whole Serve instance (its controller and every replica),
    # read when they start: it is switched on only when Serve starts here. A Serve instance already
    # running keeps its own setting, and the replicas follow it.
    if options.ingress == "direct" and owned_serve:
        if _has_direct_ingress(serve):
            env = direct_ingress_env()
            start_options["controller_options"] = {"runtime_env": {"env_vars": env}}
            # Only the replicas import foretell: Ray's proxy keeps its own middlewares.
            middlewares = f"{__name__}:{http_middlewares.__name__}"
            replica_env = {**env, "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": middlewares}
            deployment_options["ray_actor_options"]["runtime_env"] = {"env_vars": replica_env}

        else:
            log.warning("Ray %s has no direct ingress (2.60 and later): requests go through its proxy", ray.__version__)
    replica: type[ForetellReplica] = ForetellReplica
    bound: tuple[Any, ...] = (build, dict(build_kwargs))
    if options.grpc is not None:
        from foretell.grpc.ray_replica import SERVICER_FUNCTIONS  # grpcio only for gRPC
        from foretell.server.ray_grpc import GrpcReplica

        if not owned_serve:
            _check_grpc_proxy(options.grpc.port, SERVICER_FUNCTIONS)
        start_options["grpc_options"] = {"port": options.grpc.port, "grpc_servicer_functions": list(SERVICER_FUNCTIONS)}
        replica, bound = GrpcReplica, (*bound, options.grpc)
    deployment: Any = serve.deployment(serve.ingress()(replica), **deployment_options)
    stop = threading.Event()
    addresses: list[str] | None = None
    grpc_addresses: list[str] | None = None
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        serve.start(http_options={"host": options.host, "port": options.port}, logging_config=quiet, **start_options)
        serve.run(
            deployment.bind(*bound),
            name=APP_NAME,
            route_prefix="/",
            blocking=False,
            logging_config=quiet,
        )
        proxy = f"http://{options.host}:{options.port}"
        if options.grpc is not None:
            log.warning(
                "serving the Open Inference Protocol over gRPC through Ray Serve's gRPC proxy on port %d (it listens "
                "on every interface: Ray's proxy takes no host; with other applications on this Serve, clients send "
                "`application: %s` metadata)",
                options.grpc.port,
                APP_NAME,
            )
        addresses = _wait_for_addresses(stop)
        if addresses is None:
            why = "--ray-ingress proxy" if options.ingress == "proxy" else "no direct ingress on this Ray Serve"
            log.warning("serving on Ray Serve through its proxy at %s (%s) (Ctrl-C to stop)", proxy, why)
        else:
            log.warning(
                "serving on Ray Serve with direct ingress: replicas at %s (a load balancer spreads requests over "
                "them); Ray Serve's proxy at %s (Ctrl-C to stop)",
                " ".join(addresses) or "(none yet)",
                proxy,
            )
            if options.grpc is not None:
                grpc_addresses = replica_addresses(_serve_details(), "gRPC")
                log.warning("replicas answer gRPC on their own ports too, at %s", " ".join(grpc_addresses or ()))
        while not stop.wait(WATCH_EVERY_S):
            if addresses is not None:
                addresses = _log_if_moved(addresses)
            if grpc_addresses is not None:
                grpc_addresses = _log_if_moved(grpc_addresses, "gRPC")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if addresses is not None:
            log.warning(
                "stopping: replicas answer on their own ports for %.0f s more, so a load balancer can take them "
                "out (RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S), then drain",
                _draining_period_s(),
            )
        try:
            serve.delete(APP_NAME)  # replicas run the app's shutdown: in-flight requests are answered
        finally:
            if owned_serve:
                serve.shutdown()  # type: ignore[no-untyped-call]
            if owned_ray:
                ray.shutdown()


def _check_grpc_proxy(port: int, servicer_functions: tuple[str, ...]) -> None:
    """A Serve instance already running keeps the gRPC proxy it started with: refuse one not serving the OIP."""
    grpc_options = _serve_details().get("grpc_options") or {}
    registered = grpc_options.get("grpc_servicer_functions") or []
    if grpc_options.get("port") != port or not set(servicer_functions) <= set(registered):
        raise EngineUnavailable(
            f"Ray Serve is already running, and its gRPC proxy (port {grpc_options.get('port')}, services "
            f"{registered}) was fixed when it started: restart it with grpc_options port {port} and "
            f"grpc_servicer_functions {list(servicer_functions)}, or let foretell start it"
        )


def _wait_for_addresses(stop: threading.Event) -> list[str] | None:
    """The replicas' own addresses once each running replica has its port; None without direct ingress.

    A replica is running (and answers through the proxy) a moment before Ray reports its port.
    """
    deadline = time.monotonic() + ADDRESSES_WAIT_S
    while True:
        details = _serve_details()
        addresses = replica_addresses(details)
        if addresses is None:
            return None
        running = _running_replicas(details)
        if len(addresses) >= running or time.monotonic() > deadline or stop.wait(0.2):
            return addresses


def _running_replicas(details: Mapping[str, Any]) -> int:
    app = (details.get("applications") or {}).get(APP_NAME) or {}
    return sum(
        1
        for deployment in (app.get("deployments") or {}).values()
        for replica in deployment.get("replicas", [])
        if replica.get("state") == "RUNNING"
    )


def _log_if_moved(addresses: list[str], protocol: str = "HTTP") -> list[str]:
    """Replicas come and go (autoscaling, a replaced replica): each new set of addresses is logged."""
    try:
        now = replica_addresses(_serve_details(), protocol)
    except Exception:  # a missed look is retried on the next tick; serving goes on
        return addresses
    if now is not None and now != addresses:
        said = "replicas now at" if protocol == "HTTP" else f"replicas now answer {protocol} at"
        log.warning("Ray Serve %s %s", said, " ".join(now) or "(none)")
        return now
    return addresses


def _draining_period_s() -> float:
    from ray.serve._private import constants

    return float(getattr(constants, "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", 0.0))
