"""`registry.rollouts`: one active rollout per model, compare-and-set ending, promotion moves the alias atomically."""

from __future__ import annotations

import threading
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from foretell.errors import InvalidRollout, ModelNotFound
from foretell.registry import SqliteRegistry
from foretell.rollout import Comparison, RolloutStats, new_rollout


@pytest.fixture
def registry(tmp_path: Path) -> SqliteRegistry:
    """`line` v1 (production) and v2, `other` v1 (production) and v2."""
    registry = SqliteRegistry(tmp_path / "home")
    x = np.arange(20, dtype=np.float64).reshape(-1, 1)
    for name, slope, aliases in (
        ("line", 2.0, ["production"]),
        ("line", 3.0, []),
        ("other", 1.0, ["production"]),
        ("other", 4.0, []),
    ):
        path = tmp_path / f"{name}-{slope}.joblib"
        joblib.dump(LinearRegression().fit(x, slope * x[:, 0]), path)
        registry.register(name, path, aliases=aliases)
    return registry


def production(registry: SqliteRegistry, name: str = "line") -> int:
    return registry.get(f"{name}@production").version


def worker_stats(requests: int, errors: int = 0) -> RolloutStats:
    stats = RolloutStats()
    stats.champion.requests = stats.challenger.requests = requests
    stats.challenger.errors = errors
    stats.champion.latency.add_many([0.001] * requests)
    stats.challenger.latency.add_many([0.002] * requests)
    stats.add_comparison(Comparison(np.full(requests, 0.01), np.zeros(requests, dtype=bool)))
    return stats


def test_start_records_the_plan_and_logs_it(registry: SqliteRegistry) -> None:
    started = registry.rollouts.start(new_rollout("line", 1, 2, "shadow", 100))
    assert started.started_at.endswith("Z") and started.active
    assert registry.rollouts.active("line") == started
    assert registry.rollouts.active_all() == {"line": started}
    assert registry.rollouts.latest("line") == started
    [event] = registry.rollouts.events(started.id)
    assert event["action"] == "started" and "version 2 scores 100%" in event["message"]


def test_one_active_rollout_per_model(registry: SqliteRegistry) -> None:
    first = registry.rollouts.start(new_rollout("line", 1, 2, "canary", 10))
    with pytest.raises(InvalidRollout, match=f"already has an active rollout .*id {first.id}"):
        registry.rollouts.start(new_rollout("line", 1, 2, "shadow", 50))
    other = registry.rollouts.start(new_rollout("other", 1, 2, "shadow", 5))  # one per model, not one in all
    assert registry.rollouts.active_all() == {"line": first, "other": other}
    assert registry.rollouts.end(first, "aborted", "by hand") is not None
    again = registry.rollouts.start(new_rollout("line", 1, 2, "shadow", 50))  # once ended, a new one may start
    assert [r.id for r in registry.rollouts.history("line")] == [first.id, again.id]


def test_unknown_versions_and_models_are_refused(registry: SqliteRegistry) -> None:
    with pytest.raises(ModelNotFound):
        registry.rollouts.start(new_rollout("line", 1, 9, "shadow", 100))
    with pytest.raises(ModelNotFound):
        registry.rollouts.start(new_rollout("nope", 1, 2, "shadow", 100))
    assert registry.rollouts.active("line") is None and registry.rollouts.history("line") == []


def test_promotion_moves_the_alias_and_ends_the_rollout_together(registry: SqliteRegistry) -> None:
    started = registry.rollouts.start(new_rollout("line", 1, 2, "canary", 10))
    ended = registry.rollouts.end(started, "promoted", "every guard holds", {"compared": 1000})
    assert ended is not None and ended.state == "promoted" and ended.ended_at
    assert production(registry) == 2
    assert registry.rollouts.active("line") is None
    assert registry.rollouts.latest("line") == ended
    assert registry.rollouts.events(started.id)[-1] == {
        "at": ended.ended_at, "action": "promoted", "message": "every guard holds", "figures": {"compared": 1000},
    }  # fmt: skip


def test_a_promotion_to_a_deleted_version_changes_nothing(registry: SqliteRegistry) -> None:
    started = registry.rollouts.start(new_rollout("line", 1, 2, "canary", 10))
    registry.delete_version("line", 2)
    with pytest.raises(ModelNotFound):
        registry.rollouts.end(started, "promoted", "too late")
    assert production(registry) == 1 and registry.rollouts.active("line") == started


def test_abort_keeps_the_alias(registry: SqliteRegistry) -> None:
    started = registry.rollouts.start(new_rollout("line", 1, 2, "shadow", 100))
    ended = registry.rollouts.end(started, "aborted", "max_error_rate broken")
    assert ended is not None and ended.reason == "max_error_rate broken"
    assert production(registry) == 1


def test_ending_is_compare_and_set(registry: SqliteRegistry) -> None:
    """Two workers' guards decide at once: exactly one ending wins, the other learns it came second."""
    started = registry.rollouts.start(new_rollout("line", 1, 2, "canary", 10))
    results: list[object] = []
    barrier = threading.Barrier(4)

    def decide(state: str) -> None:
        barrier.wait()
        results.append(registry.rollouts.end(started, state, f"{state} by a worker"))  # type: ignore[arg-type]

    threads = [threading.Thread(target=decide, args=(s,)) for s in ("promoted", "aborted", "promoted", "aborted")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    won = [r for r in results if r is not None]
    assert len(won) == 1 and results.count(None) == 3
    latest = registry.rollouts.latest("line")
    assert latest is not None and latest == won[0]
    assert production(registry) == (2 if latest.state == "promoted" else 1)
    assert [e["action"] for e in registry.rollouts.events(started.id)] == ["started", latest.state]
    assert registry.rollouts.end(started, "aborted", "late") is None


def test_stats_are_summed_across_workers_and_replaced_per_worker(registry: SqliteRegistry) -> None:
    started = registry.rollouts.start(new_rollout("line", 1, 2, "shadow", 100))
    assert registry.rollouts.stats(started.id).compared == 0
    registry.rollouts.report(started.id, "host-a:1", worker_stats(10))
    registry.rollouts.report(started.id, "host-b:2", worker_stats(30, errors=3))
    registry.rollouts.report(started.id, "host-a:1", worker_stats(20))  # a worker's report replaces its last one
    total = registry.rollouts.stats(started.id)
    assert (total.challenger.requests, total.challenger.errors, total.compared) == (50, 3, 50)
    assert total.challenger.latency.count == 50
    assert [w["worker"] for w in registry.rollouts.workers(started.id)] == ["host-a:1", "host-b:2"]


def test_state_survives_reopening_the_registry(registry: SqliteRegistry) -> None:
    started = registry.rollouts.start(new_rollout("line", 1, 2, "canary", 12.5, sticky="request", auto=True))
    registry.rollouts.report(started.id, "host-a:1", worker_stats(7))
    registry.rollouts.log(started.id, "blocked", "max_label_flip_rate", {"label_flip_rate": 0.2})
    reopened = SqliteRegistry(registry.home)
    assert reopened.rollouts.active("line") == started
    assert reopened.rollouts.stats(started.id).challenger.requests == 7
    assert [e["action"] for e in reopened.rollouts.events(started.id)] == ["started", "blocked"]
    assert reopened.rollouts.events(started.id)[1]["figures"] == {"label_flip_rate": 0.2}
