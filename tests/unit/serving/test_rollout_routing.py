"""Shadow and canary on the real data plane: a registry with three versions of `sums`, a real runtime and batchers.

Version 1 is `Sums` (the champion), 2 is `Shifted` (every score + 1), 3 is `Failing`, 4 is
`Gated` (held at the gate while a test fills the comparison queue).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from servedmodels import Gate, Stack, run, started, until

import foretell
from foretell.registry import open_registry
from foretell.rollout import Guards, Rollout, arm_for, new_rollout
from foretell.serving import challenger as challenger_module
from foretell.serving.service import Call

VERSIONS = {"Sums": 1, "Shifted": 2, "Failing": 3, "Gated": 4}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    for cls, version in VERSIONS.items():
        folder = tmp_path / cls
        folder.mkdir()
        (folder / "README").write_text("nothing on disk\n")
        info = foretell.register(
            "sums",
            folder,
            flavor="python",
            flavor_options={"class": f"servedmodels:{cls}"},
            compile=False,
            aliases=["production"] if version == 1 else [],
            home=home,
        )
        assert info.version == version
    return home


def rollout_of(home: Path, challenger: int, mode: str, percent: float, **guards: float) -> Rollout:
    plan = new_rollout("sums", 1, challenger, mode, percent, guards=Guards(**guards))  # type: ignore[arg-type]
    return open_registry(home).rollouts.start(plan)


def stack_of(home: Path, tmp_path: Path) -> Stack:
    return Stack(home, tmp_path, ("sums@production",))


def rows(n: int, start: float = 1.0) -> list[dict[str, float]]:
    return [{"a": start + i, "b": 10.0} for i in range(n)]


def test_a_canary_answers_its_share_with_the_challenger_and_the_champion_shadows_it(home, tmp_path):
    rollout = rollout_of(home, 2, "canary", 30, min_requests=10**6)
    stack = stack_of(home, tmp_path)
    service = stack.inference
    keys = [f"K-{i}" for i in range(200)]
    answered: dict[str, tuple[int, float]] = {}

    async def scenario() -> None:
        async with started(service):
            slot = service.resolve(Call("infer"), "sums")
            assert slot.challenger is not None and slot.challenger.version == 2
            for key in keys:
                call = Call("infer")
                inference = await service.infer(slot, rows(1), call=call, keys=[key])
                assert call.model_version == inference.version
                answered[key] = (inference.version, float(inference.predictions.column("score")[0]))
            by_challenger = sum(v == 2 for v, _ in answered.values())
            await until(lambda: slot.challenger is not None and slot.challenger.stats.compared == by_challenger)
            stats = slot.challenger.stats
            assert stats.diffs.quantile(0.5) == pytest.approx(1.0, rel=0.02)  # Shifted is Sums + 1
            assert stats.challenger.requests == by_challenger
            assert stats.champion.requests == sum(v == 1 for v, _ in answered.values())

    run(scenario)
    for key, (version, score) in answered.items():
        expected = 2 if arm_for(rollout.id, key, 30) == "challenger" else 1
        assert version == expected
        assert score == (12.0 if version == 2 else 11.0)


def test_a_canary_challenger_that_fails_is_answered_for_by_the_champion_and_counted(home, tmp_path):
    rollout_of(home, 3, "canary", 50, min_requests=10**6)
    stack = stack_of(home, tmp_path)
    service = stack.inference

    async def scenario() -> None:
        async with started(service):
            slot = service.resolve(Call("infer"), "sums")
            versions = set()
            for i in range(60):
                inference = await service.infer(slot, rows(2, i + 1.0), call=Call("infer"), keys=[f"K-{i}", f"L-{i}"])
                versions.add(inference.version)
                assert inference.predictions.column("score").tolist() == [i + 11.0, i + 12.0]
            assert versions == {1}
            stats = slot.challenger.stats  # type: ignore[union-attr]
            assert stats.challenger.errors == stats.challenger.requests > 0
            assert stats.champion.errors == 0 and stats.champion.requests == 60

    run(scenario)


def test_shadow_drops_comparisons_past_its_bound_and_never_delays_the_answers(home, tmp_path, monkeypatch):
    monkeypatch.setattr(challenger_module, "MAX_PENDING_COMPARISONS", 3)
    rollout_of(home, 4, "shadow", 100, min_requests=10**6)
    stack = stack_of(home, tmp_path)
    service = stack.inference

    async def scenario() -> None:
        async with started(service):
            slot = service.resolve(Call("infer"), "sums")
            Gate.hold()
            try:
                for i in range(10):  # the champion answers each at once, whatever the challenger is doing
                    inference = await service.infer(slot, rows(1, i + 1.0), call=Call("infer"))
                    assert inference.version == 1
                stats = slot.challenger.stats  # type: ignore[union-attr]
                assert stats.dropped == 7 and len(slot.challenger.tasks) == 3  # type: ignore[union-attr]
            finally:
                Gate.release()
            await until(lambda: stats.compared == 3)
            assert stats.challenger.requests == 3 and stats.diffs.quantile(1.0) == 0.0

    run(scenario)


def test_the_keeper_aborts_on_a_broken_health_guard_and_detaches_the_challenger(home, tmp_path):
    rollout = rollout_of(home, 3, "shadow", 100)
    stack = stack_of(home, tmp_path)
    service = stack.inference
    registry = open_registry(home)

    async def scenario() -> None:
        async with started(service):
            slot = service.resolve(Call("infer"), "sums")
            for i in range(25):
                await service.infer(slot, rows(1, i + 1.0), call=Call("infer"))
            await until(lambda: slot.challenger is not None and slot.challenger.stats.challenger.errors == 25)
            await stack.runtime.rollouts.follow()  # the watcher's tick
            assert slot.challenger is None

    run(scenario)
    ended = registry.rollouts.latest("sums")
    assert ended is not None and ended.state == "aborted" and ended.id == rollout.id
    assert ended.reason is not None and "max_error_rate broken" in ended.reason and "25 of 25" in ended.reason
    assert registry.rollouts.stats(rollout.id).challenger.errors == 25
    assert registry.get("sums@production").version == 1


def test_the_keeper_promotes_an_auto_rollout_whose_guards_hold(home, tmp_path):
    rollout = open_registry(home).rollouts.start(
        new_rollout("sums", 1, 2, "shadow", 100, guards=Guards(min_requests=20), auto=True)
    )
    stack = stack_of(home, tmp_path)
    service = stack.inference

    async def scenario() -> None:
        async with started(service):
            slot = service.resolve(Call("infer"), "sums")
            for i in range(20):
                await service.infer(slot, rows(1, i + 1.0), call=Call("infer"))
            await until(lambda: slot.challenger is not None and slot.challenger.stats.challenger.requests == 20)
            await stack.runtime.rollouts.follow()

    run(scenario)
    registry = open_registry(home)
    ended = registry.rollouts.latest("sums")
    assert ended is not None and ended.state == "promoted" and ended.id == rollout.id
    assert registry.get("sums@production").version == 2
    assert [e["action"] for e in registry.rollouts.events(rollout.id)] == ["started", "promoted"]
