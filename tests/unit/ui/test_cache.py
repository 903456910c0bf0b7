"""The dashboard's cache of what reads the ledger: computed once, served stale while a thread computes it again."""

from __future__ import annotations

import threading
import time

from foretell.ui.pages import _Cache


def wait_for(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_stale_value_is_served_while_a_thread_computes_the_next() -> None:
    cache = _Cache(ttl=0.05)
    values = iter(range(100))
    assert cache.get("k", lambda: next(values)) == 0
    assert cache.get("k", lambda: next(values)) == 0  # fresh
    time.sleep(0.06)
    assert cache.get("k", lambda: next(values)) == 0  # stale: served, and computed again aside
    wait_for(lambda: cache.get("k", lambda: 99) == 1)


def test_the_first_value_is_computed_once_however_many_ask() -> None:
    cache = _Cache(ttl=60)
    calls = []

    def slow() -> str:
        calls.append(1)
        time.sleep(0.1)
        return "figures"

    seen: list[str] = []
    threads = [threading.Thread(target=lambda: seen.append(cache.get("k", slow))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == ["figures"] * 4 and len(calls) == 1


def test_clear_drops_values_and_a_refresh_begun_before_it_does_not_bring_them_back() -> None:
    cache = _Cache(ttl=0.0)
    assert cache.get("k", lambda: "before") == "before"
    gate = threading.Event()

    def held() -> str:
        gate.wait(5)
        return "computed before the clear"

    assert cache.get("k", held) == "before"  # stale at once: a refresh starts, held at the gate
    cache.clear()
    gate.set()
    time.sleep(0.1)
    assert cache.get("k", lambda: "after") == "after"


def test_an_unwaited_value_is_none_until_its_first_reading_is_done_then_served() -> None:
    cache = _Cache(ttl=60)
    gate = threading.Event()

    def slow() -> str:
        gate.wait(5)
        return "figures"

    assert cache.get("monitor", slow, wait=False) is None  # not waited for: computed aside
    began = cache.computing_since("monitor")
    assert began is not None
    assert cache.get("monitor", slow, wait=False) is None and cache.computing_since("monitor") == began  # one reading
    gate.set()
    wait_for(lambda: cache.get("monitor", slow, wait=False) == "figures")
    assert cache.computing_since("monitor") is None


def test_a_seeded_value_is_served_at_once_and_replaced_by_a_fresh_reading() -> None:
    cache = _Cache(ttl=60)
    cache.seed("monitor", "kept from the last run")
    assert cache.get("monitor", lambda: "fresh", wait=False) == "kept from the last run"  # stale: refreshed aside
    wait_for(lambda: cache.get("monitor", lambda: "again", wait=False) == "fresh")
    cache.seed("monitor", "older")  # a reading already here is not replaced by a kept one
    assert cache.get("monitor", lambda: "again", wait=False) == "fresh"


def test_clear_keeps_an_unwaited_value_as_stale_rather_than_going_back_to_nothing() -> None:
    cache = _Cache(ttl=60)
    cache.get("monitor", lambda: "first", wait=False)
    wait_for(lambda: cache.get("monitor", lambda: "first", wait=False) == "first")
    cache.get("rollout", lambda: "waited")
    cache.clear()
    assert cache.get("monitor", lambda: "second", wait=False) == "first"  # served while "second" is computed
    wait_for(lambda: cache.get("monitor", lambda: "third", wait=False) == "second")
    assert cache.get("rollout", lambda: "recomputed") == "recomputed"  # a waited value is dropped
