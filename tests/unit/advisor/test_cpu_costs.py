"""The cost model with CPU measurements: what each way is charged, by fixed numbers."""

from __future__ import annotations

import dataclasses

import pytest
from test_cost import M

from foretell.advisor import Workload, advise, live_cost_per_request
from foretell.advisor.cost import (
    hybrid_cost,
    job_core_seconds,
    lookup_cost_per_request,
    real_time_cost,
    server_core_seconds,
)

CPU = dataclasses.replace(
    M,
    single_cpu_ms=0.3,
    live_cpu_ms=0.06,
    lookup_single_cpu_ms=0.2,
    lookup_cpu_ms=0.05,
    idle_cpu_per_s=0.002,
    active_cpu_per_s=0.015,
    event_cpu_ms=1.5,
    batch_cpu_ms_per_row=0.001,
    batch_startup_cpu_s=0.4,
    store_write_cpu_ms_per_row=0.004,
)
DAY = Workload(
    population=100_000, active_per_day=1_000, requests_per_day=4_000, peak_rps=250, p99_ms=200, freshness_s=20,
    events_per_entity_per_day=0.002, day_s=20.0,
)  # fmt: skip


def test_a_lone_request_costs_its_measured_cpu_shared_as_traffic_rises_down_to_saturation() -> None:
    assert live_cost_per_request(CPU, 0.0) == pytest.approx(0.3e-3)
    assert live_cost_per_request(CPU, 200.0) == pytest.approx(0.3e-3 / (1 + 200 * M.single_p50_ms / 1000))
    assert live_cost_per_request(CPU, 1e9) == pytest.approx(0.06e-3)
    assert lookup_cost_per_request(CPU, 0.0) == pytest.approx(0.2e-3)
    assert lookup_cost_per_request(M, 0.0) == pytest.approx(1 / M.lookup_rps)  # no CPU figures: from the rate


def test_a_job_and_a_server_day_are_charged_as_measured() -> None:
    assert job_core_seconds(CPU, 100_000, to_store=True) == pytest.approx(0.4 + 0.1 + 0.4)
    assert job_core_seconds(CPU, 100_000, to_store=False) == pytest.approx(0.5)
    assert job_core_seconds(M, 100_000, to_store=True) == pytest.approx(100_000 / 20_000 + 100_000 / 300_000)
    # Idling all day, and each ledger second with traffic: every one of the 20 here, 3 of a quiet day.
    assert server_core_seconds(CPU, DAY, 4_000) == pytest.approx(0.002 * 20 + 0.015 * 20)
    assert server_core_seconds(CPU, DAY, 3) == pytest.approx(0.002 * 20 + 0.015 * 3)


def test_each_way_sums_its_parts() -> None:
    live = real_time_cost(DAY, CPU)
    assert live.core_hours_per_day * 3600 == pytest.approx(
        4_000 * live_cost_per_request(CPU, 200.0) + server_core_seconds(CPU, DAY, 4_000)
    )
    hybrid = hybrid_cost(DAY, CPU)
    events = 100_000 * 0.002
    assert hybrid.core_hours_per_day * 3600 == pytest.approx(
        job_core_seconds(CPU, 100_000, to_store=True)
        + 4_000 * lookup_cost_per_request(CPU, 200.0)
        + events * 1.5e-3
        + server_core_seconds(CPU, DAY, 4_000 + events)
    )
    assert advise(DAY, CPU).recommendation == "real-time"  # a population's job outweighs a few thousand requests
