"""Shared by the integration tests of both engines."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

DRAINING_PERIOD = "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    """A local Ray instance of 2 CPUs, started once for every test that runs on Ray, and its address.

    Jobs and servers under test connect to it with `--ray-address`, as they would to a
    cluster someone else runs. Servers under test (with direct ingress) stop after 1 s of
    draining rather than Ray's 30 s, which are there for a load balancer to take replicas out.
    """
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    previous = os.environ.get(DRAINING_PERIOD)
    os.environ[DRAINING_PERIOD] = "1"  # `foretell serve` forwards it to Ray Serve
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        if previous is None:
            os.environ.pop(DRAINING_PERIOD, None)
        else:
            os.environ[DRAINING_PERIOD] = previous
        ray.shutdown()
