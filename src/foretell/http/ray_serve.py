"""foretell's server as a Ray Serve application: the same ASGI app in every replica.

Each replica builds the app itself, from the same settings `foretell serve` uses, so it
loads its own models, runs its own micro-batchers, and checks the registry for moved
aliases on its own: an alias move reaches every replica within `reload_seconds`. Ray
Serve's proxy routes requests to replicas and runs the app's lifespan (startup loads and
warms the models; shutdown drains them).

Backpressure comes in two layers. Ray Serve admits at most `max_ongoing_requests` at a
time to each replica and queues at most `max_queued_requests` more in front of them,
answering 503 beyond that. Inside a replica, foretell's own rules apply: a bounded row
queue per model, 503 (or the configured status) with Retry-After as JSON. The first
layer is sized from the second, so Ray Serve never holds back work a replica could still
batch: each replica may take as many requests as its models' queues hold.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from foretell.errors import EngineUnavailable, InvalidInput, MissingExtra

__all__ = ["RayServeOptions", "run_on_ray_serve"]

APP_NAME = "foretell"


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


def parse_autoscale(text: str) -> tuple[int, int]:
    """`MIN:MAX` as two replica counts."""
    try:
        low, high = (int(part) for part in text.split(":"))
    except ValueError:
        raise InvalidInput(f"--autoscale takes MIN:MAX replicas, like 1:4; got {text!r}") from None
    if not 0 <= low <= high or high < 1:
        raise InvalidInput(f"--autoscale needs 0 ≤ MIN ≤ MAX and MAX ≥ 1; got {text!r}")
    return low, high


class ForetellReplica:
    """One replica: the settings in, the app built in the replica by `__serve_build_asgi_app__`."""

    def __init__(self, build: Callable[..., Any], build_kwargs: Mapping[str, Any]) -> None:
        self._build = build
        self._build_kwargs = dict(build_kwargs)

    def __serve_build_asgi_app__(self) -> Any:
        return self._build(**self._build_kwargs)


def _serve_running(ray: Any) -> bool:
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    try:
        ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
    except ValueError:
        return False
    return True


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
    deployment: Any = serve.deployment(serve.ingress()(ForetellReplica), **deployment_options)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        serve.start(http_options={"host": options.host, "port": options.port}, logging_config=quiet)
        serve.run(
            deployment.bind(build, dict(build_kwargs)),
            name=APP_NAME,
            route_prefix="/",
            blocking=False,
            logging_config=quiet,
        )
        logging.getLogger("foretell.serving").warning(
            "serving on Ray Serve at http://%s:%d (Ctrl-C to stop)", options.host, options.port
        )
        stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        try:
            serve.delete(APP_NAME)  # replicas run the app's shutdown: in-flight requests are answered
        finally:
            if owned_serve:
                serve.shutdown()  # type: ignore[no-untyped-call]
            if owned_ray:
                ray.shutdown()
