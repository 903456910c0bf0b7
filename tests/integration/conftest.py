"""Shared by the integration tests of both engines."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    """A local Ray instance of 2 CPUs, started once for every test that runs on Ray, and its address.

    Jobs and servers under test connect to it with `--ray-address`, as they would to a
    cluster someone else runs.
    """
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
