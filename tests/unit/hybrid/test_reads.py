"""`CoalescedReads` over a real SQLite prediction store: off the loop, one hop for the requests that wait."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from foretell.errors import StoreError
from foretell.hybrid.reads import CoalescedReads
from foretell.store import SqliteStore
from foretell.store.base import StoredPrediction

STAMP = "2026-01-01T00:00:00.000000Z"


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    store = SqliteStore(tmp_path / "store.db")
    for model in ("a", "b"):
        generation = store.begin_generation(model)
        store.write_batch(model, generation, [(f"K-{i}", {"score": float(i)}, 1, STAMP) for i in range(300)])
        store.publish(model, generation)
    return store


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=1)
    yield pool
    pool.shutdown(wait=True)


class Hops:
    """A store's `get_many`, recording each call (its thread and keys), held at a gate when asked.

    Reading model "broken" fails as a store that has gone away does.
    """

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.calls: list[tuple[str, list[str], int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, name: str, keys: list[str]) -> Mapping[str, StoredPrediction]:
        self.calls.append((name, list(keys), threading.get_ident()))
        self.entered.set()
        self.gate.wait(10)
        if name == "broken":
            raise StoreError("the store is gone")
        return self.store.get_many(name, keys)


def scores(found: Mapping[str, StoredPrediction]) -> dict[str, float]:
    return {key: stored.prediction["score"] for key, stored in found.items()}


def test_a_lone_read_answers_what_the_store_has_in_one_hop_off_the_loop(store, executor):
    hops = Hops(store)
    reads = CoalescedReads(hops, executor)

    async def scenario() -> dict[str, float]:
        return scores(await reads.get_many("a", ["K-1", "K-404", "K-2"]))

    assert asyncio.run(scenario()) == {"K-1": 1.0, "K-2": 2.0}
    assert [(name, keys) for name, keys, _ in hops.calls] == [("a", ["K-1", "K-404", "K-2"])]
    assert hops.calls[0][2] != threading.get_ident()  # not the event loop's thread


def test_reads_arriving_during_a_hop_go_together_in_the_next_one_per_name(store, executor):
    hops = Hops(store)
    reads = CoalescedReads(hops, executor)

    async def scenario() -> list[dict[str, StoredPrediction]]:
        hops.gate.clear()
        first = asyncio.create_task(reads.get_many("a", ["K-0"]))
        await asyncio.to_thread(hops.entered.wait, 10)  # the first hop is in the store now
        later = [
            asyncio.create_task(reads.get_many("a" if i % 2 else "b", [f"K-{i}", f"K-{i + 1}"])) for i in range(1, 64)
        ]
        await asyncio.sleep(0.01)
        assert len(hops.calls) == 1  # nobody else went to the store meanwhile
        hops.gate.set()
        return [await task for task in (first, *later)]

    answers = asyncio.run(scenario())
    assert [scores(answer) for answer in answers] == [
        {"K-0": 0.0},
        *({f"K-{i}": float(i), f"K-{i + 1}": float(i + 1)} for i in range(1, 64)),
    ]
    assert [name for name, _, _ in hops.calls] == ["a", "a", "b"]  # two hops: the first, then one per name
    assert hops.calls[1][1] == _keys_of(range(1, 64, 2))  # each key once, though neighbours share one
    assert hops.calls[2][1] == _keys_of(range(2, 64, 2))


def _keys_of(requests: range) -> list[str]:
    """The keys requests `i` asked for (K-i and K-i+1), each once, in the order asked."""
    return list(dict.fromkeys(key for i in requests for key in (f"K-{i}", f"K-{i + 1}")))


def test_a_hop_takes_at_most_max_keys_and_the_rest_wait_for_the_next(store, executor):
    hops = Hops(store)
    reads = CoalescedReads(hops, executor, max_keys=10)

    async def scenario() -> list[dict[str, StoredPrediction]]:
        hops.gate.clear()
        first = asyncio.create_task(reads.get_many("a", [f"K-{i}" for i in range(25)]))  # alone: over the cap
        await asyncio.to_thread(hops.entered.wait, 10)
        later = [asyncio.create_task(reads.get_many("a", [f"K-{i}", f"K-{i + 100}"])) for i in range(8)]
        await asyncio.sleep(0.01)
        hops.gate.set()
        return [await task for task in (first, *later)]

    answers = asyncio.run(scenario())
    assert len(answers[0]) == 25
    assert [len(answer) for answer in answers[1:]] == [2] * 8
    assert [len(keys) for _, keys, _ in hops.calls] == [25, 10, 6]  # 5 requests of 2, then the other 3


def test_a_failing_read_fails_only_the_requests_of_its_name(store, executor):
    hops = Hops(store)
    reads = CoalescedReads(hops, executor)

    async def scenario() -> list[object]:
        hops.gate.clear()
        first = asyncio.create_task(reads.get_many("a", ["K-1"]))
        await asyncio.to_thread(hops.entered.wait, 10)
        broken = asyncio.create_task(reads.get_many("broken", ["K-1"]))
        fine = asyncio.create_task(reads.get_many("b", ["K-2"]))
        await asyncio.sleep(0.01)
        hops.gate.set()
        return list(await asyncio.gather(first, broken, fine, return_exceptions=True))

    first, broken, fine = asyncio.run(scenario())
    assert scores(first) == {"K-1": 1.0}  # type: ignore[arg-type]
    assert isinstance(broken, StoreError)
    assert str(broken) == "the store is gone"
    assert scores(fine) == {"K-2": 2.0}  # type: ignore[arg-type]


def test_a_cancelled_request_leaves_the_others_of_its_hop_answered(store, executor):
    hops = Hops(store)
    reads = CoalescedReads(hops, executor)

    async def scenario() -> dict[str, float]:
        hops.gate.clear()
        first = asyncio.create_task(reads.get_many("a", ["K-1"]))
        await asyncio.to_thread(hops.entered.wait, 10)
        gone = asyncio.create_task(reads.get_many("a", ["K-2"]))
        kept = asyncio.create_task(reads.get_many("a", ["K-3"]))
        await asyncio.sleep(0.01)
        gone.cancel()
        hops.gate.set()
        await first
        return scores(await kept)

    assert asyncio.run(scenario()) == {"K-3": 3.0}


def test_reads_after_the_executor_shut_down_fail_at_once_rather_than_wait(store):
    pool = ThreadPoolExecutor(max_workers=1)
    reads = CoalescedReads(store.get_many, pool)
    pool.shutdown()

    async def scenario() -> None:
        for _ in range(2):  # the first failure leaves no hop marked as in flight
            with pytest.raises(RuntimeError, match="shutdown"):
                await asyncio.wait_for(reads.get_many("a", ["K-1"]), 5)

    asyncio.run(scenario())
