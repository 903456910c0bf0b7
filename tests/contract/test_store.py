"""The prediction store contract, run against every backend: SQLite, and Redis on a real redis-server.

A backend enters through `BACKENDS`: how to open a store in this process, and the same
as Python source, for the process that publishes while this one reads. The Redis params
start one redis-server for the session (redis_server.py) and give each test a key prefix
of its own; without redis-server they are skipped, or fail under FORETELL_REQUIRE_REDIS=1.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import redis_server

from foretell.errors import InvalidInput, StoreError
from foretell.store import PredictionStore, SqliteStore, StoredPrediction
from foretell.store.redis import RedisStore

T0 = "2024-05-01T02:00:00Z"  # a nightly job's start: every batch row carries it
T1 = "2024-05-01T03:00:00Z"
T2 = "2024-05-01T04:00:00Z"
T3 = "2024-05-01T05:00:00Z"


def utc(stamp: str) -> str:
    """How the store gives timestamps back: fixed-width UTC."""
    return stamp.replace("Z", ".000000Z")


@dataclass(frozen=True)
class Backend:
    name: str
    location: str
    make: Callable[[str], PredictionStore]
    opener: str
    """Python source that binds `store` from `location`, run in another process."""

    def open(self) -> PredictionStore:
        return self.make(self.location)


def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return Backend(
        name="sqlite",
        location=str(tmp_path / "home" / "store.db"),
        make=lambda location: SqliteStore(Path(location)),
        opener="from pathlib import Path\nfrom foretell.store import SqliteStore\nstore = SqliteStore(Path(location))",
    )


def _redis(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    prefix = redis_server.unique_prefix()
    return Backend(
        name="redis",
        location=request.getfixturevalue("redis_url"),
        make=lambda location: RedisStore(location, prefix=prefix),
        opener=f"from foretell.store.redis import RedisStore\nstore = RedisStore(location, prefix={prefix!r})",
    )


BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], Backend]] = {"sqlite": _sqlite, "redis": _redis}


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """Only set up when a redis param runs, so a run of the SQLite params alone needs no redis-server."""
    with redis_server.shared() as url:
        yield url


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return BACKENDS[request.param](request, tmp_path)


@pytest.fixture
def store(backend: Backend) -> Iterator[PredictionStore]:
    opened = backend.open()
    yield opened
    opened.close()


def publish(store: PredictionStore, model: str, values: dict[str, float], stamp: str = T0, version: int = 1) -> int:
    """A whole generation in one go: `values` as `{"score": value}` per key."""
    generation = store.begin_generation(model)
    store.write_batch(model, generation, [(key, {"score": v}, version, stamp) for key, v in values.items()])
    store.publish(model, generation)
    return generation


def scores(store: PredictionStore, model: str, keys: list[str]) -> dict[str, float]:
    return {key: found.prediction["score"] for key, found in store.get_many(model, keys).items()}


# -- live entries ---------------------------------------------------------------------------


def test_put_live_then_get(store: PredictionStore) -> None:
    store.put_live("churn", "c-1", {"score": 0.25, "label": "stay"}, 3, T1)
    assert store.get("churn", "c-1") == StoredPrediction(
        model="churn",
        key="c-1",
        prediction={"score": 0.25, "label": "stay"},
        model_version=3,
        computed_at=utc(T1),
        source="live",
        generation=None,
    )
    assert store.get("churn", "c-2") is None
    assert store.get("fraud", "c-1") is None
    assert store.current_generation("churn") is None


def test_a_later_live_write_replaces_an_earlier_one_but_never_the_reverse(store: PredictionStore) -> None:
    store.put_live("churn", "c-1", {"score": 0.2}, 3, T2)
    store.put_live("churn", "c-1", {"score": 0.1}, 3, T1)  # a write-back that arrived late
    assert store.get("churn", "c-1").prediction == {"score": 0.2}  # type: ignore[union-attr]
    store.put_live("churn", "c-1", {"score": 0.3}, 4, T3)
    found = store.get("churn", "c-1")
    assert found is not None
    assert (found.prediction, found.model_version, found.computed_at) == ({"score": 0.3}, 4, utc(T3))


def test_put_live_many_writes_each_row_by_the_same_precedence_as_put_live(store: PredictionStore) -> None:
    store.put_live("churn", "c-1", {"score": 0.2}, 3, T2)
    store.put_live_many(
        "churn",
        [
            ("c-1", {"score": 0.1}, 3, T1),  # older than the stored entry: ignored
            ("c-2", {"score": 0.5}, 3, T1),
            ("c-3", {"score": 0.7}, 4, T3),
            ("c-3", {"score": 0.6}, 4, T2),  # later in the call but computed earlier: ignored
        ],
    )
    assert scores(store, "churn", ["c-1", "c-2", "c-3"]) == {"c-1": 0.2, "c-2": 0.5, "c-3": 0.7}
    found = store.get("churn", "c-3")
    assert found is not None and (found.model_version, found.computed_at, found.source) == (4, utc(T3), "live")
    store.put_live_many("churn", [])  # nothing to write is no mistake


def test_put_live_many_with_a_bad_row_writes_none_of_them(store: PredictionStore) -> None:
    with pytest.raises(InvalidInput, match="model_version"):
        store.put_live_many("churn", [("c-1", {"score": 1.0}, 1, T1), ("c-2", {"score": 1.0}, "x", T1)])  # type: ignore[list-item]
    assert store.get_many("churn", ["c-1", "c-2"]) == {}


def test_timestamps_come_back_as_fixed_width_utc(store: PredictionStore) -> None:
    store.put_live("churn", "c-1", {"score": 1.0}, 1, "2024-05-01T04:00:00.5+02:00")
    assert store.get("churn", "c-1").computed_at == "2024-05-01T02:00:00.500000Z"  # type: ignore[union-attr]


def test_predictions_with_numpy_values_come_back_as_plain_json(store: PredictionStore) -> None:
    prediction = {"score": np.float32(0.5), "label": np.int64(1), "proba": np.array([0.5, 0.5])}
    store.put_live("churn", "c-1", prediction, np.int64(2), T1)  # type: ignore[arg-type]
    found = store.get("churn", "c-1")
    assert found is not None
    assert found.prediction == {"score": 0.5, "label": 1, "proba": [0.5, 0.5]}
    assert found.model_version == 2
    assert type(found.model_version) is int


# -- batch generations ----------------------------------------------------------------------


def test_a_generation_is_invisible_until_published(store: PredictionStore) -> None:
    generation = store.begin_generation("churn")
    assert generation == 1
    assert store.write_batch("churn", generation, [("a", {"score": 1.0}, 7, T0), ("b", {"score": 2.0}, 7, T0)]) == 2
    assert store.write_batch("churn", generation, iter([("c", {"score": 3.0}, 7, T0)])) == 1  # another call
    assert store.get("churn", "a") is None
    assert store.current_generation("churn") is None

    store.publish("churn", generation)
    assert store.current_generation("churn") == 1
    assert store.get("churn", "a") == StoredPrediction("churn", "a", {"score": 1.0}, 7, utc(T0), "batch", 1)
    assert scores(store, "churn", ["a", "b", "c"]) == {"a": 1.0, "b": 2.0, "c": 3.0}


def test_readers_keep_the_previous_generation_until_the_next_is_published(store: PredictionStore) -> None:
    publish(store, "churn", {"a": 1.0, "b": 1.0})
    generation = store.begin_generation("churn")
    store.write_batch("churn", generation, [("a", {"score": 2.0}, 2, T1), ("b", {"score": 2.0}, 2, T1)])
    assert scores(store, "churn", ["a", "b"]) == {"a": 1.0, "b": 1.0}
    assert store.current_generation("churn") == 1

    store.publish("churn", generation)
    found = store.get_many("churn", ["a", "b"])
    assert {k: (p.prediction["score"], p.model_version, p.generation) for k, p in found.items()} == {
        "a": (2.0, 2, 2),
        "b": (2.0, 2, 2),
    }


def test_a_new_generation_replaces_the_old_one_completely(store: PredictionStore) -> None:
    publish(store, "churn", {"a": 1.0, "b": 1.0, "gone": 1.0})
    publish(store, "churn", {"a": 2.0, "b": 2.0, "new": 2.0}, stamp=T1)
    assert store.get("churn", "gone") is None  # not a stale value from generation 1
    assert scores(store, "churn", ["a", "b", "gone", "new"]) == {"a": 2.0, "b": 2.0, "new": 2.0}


def test_a_key_written_twice_in_one_generation_keeps_the_last_write(store: PredictionStore) -> None:
    generation = store.begin_generation("churn")
    store.write_batch("churn", generation, [("a", {"score": 1.0}, 1, T0), ("b", {"score": 1.0}, 1, T0)])
    store.write_batch("churn", generation, [("a", {"score": 9.0}, 1, T0)])  # a resumed chunk, written again
    store.publish("churn", generation)
    assert scores(store, "churn", ["a", "b"]) == {"a": 9.0, "b": 1.0}
    assert store.stats("churn")["rows"] == 2


def test_publishing_deletes_older_generations_and_abandoned_ones(store: PredictionStore) -> None:
    publish(store, "churn", {"a": 1.0})
    died = store.begin_generation("churn")  # a job that crashed before publishing
    store.write_batch("churn", died, [("a", {"score": -1.0}, 1, T1)])
    running = store.begin_generation("churn")
    newest = store.begin_generation("churn")
    store.write_batch("churn", newest, [("a", {"score": 4.0}, 1, T2)])
    store.publish("churn", newest)

    assert (died, running, newest) == (2, 3, 4)
    with pytest.raises(StoreError, match=r"generation 2 of 'churn' is gone: .*superseded when generation 4"):
        store.write_batch("churn", died, [("a", {"score": 0.0}, 1, T1)])
    with pytest.raises(StoreError, match="generation 1 of 'churn' is gone"):
        store.publish("churn", 1)
    with pytest.raises(StoreError, match="generation 3 of 'churn' is gone"):
        store.publish("churn", running)
    assert store.stats("churn")["open_generations"] == []
    assert scores(store, "churn", ["a"]) == {"a": 4.0}


def test_an_open_generation_newer_than_the_published_one_survives_a_publish(store: PredictionStore) -> None:
    first = store.begin_generation("churn")
    later = store.begin_generation("churn")
    store.write_batch("churn", first, [("a", {"score": 1.0}, 1, T0)])
    store.write_batch("churn", later, [("a", {"score": 2.0}, 1, T1)])
    store.publish("churn", first)
    assert store.stats("churn")["open_generations"] == [later]
    store.publish("churn", later)
    assert scores(store, "churn", ["a"]) == {"a": 2.0}


def test_abandon_drops_an_unpublished_generation(store: PredictionStore) -> None:
    publish(store, "churn", {"a": 1.0})
    generation = store.begin_generation("churn")
    store.write_batch("churn", generation, [("a", {"score": 2.0}, 1, T1)])
    store.abandon("churn", generation)
    store.abandon("churn", generation)  # already gone: nothing to do

    assert scores(store, "churn", ["a"]) == {"a": 1.0}
    with pytest.raises(StoreError, match="generation 2 of 'churn' is gone"):
        store.publish("churn", generation)
    with pytest.raises(StoreError, match="generation 1 of 'churn' is the published one"):
        store.abandon("churn", 1)
    with pytest.raises(StoreError, match="no generation 9; the latest begun is 2"):
        store.abandon("churn", 9)
    assert store.begin_generation("churn") == 3  # numbers are never reused


def test_generation_mistakes_are_refused_by_name(store: PredictionStore) -> None:
    with pytest.raises(StoreError, match=r"model 'churn' has no generations .* call begin_generation first"):
        store.write_batch("churn", 1, [("a", {"score": 1.0}, 1, T0)])
    generation = store.begin_generation("churn")
    with pytest.raises(StoreError, match=r"generation 1 of 'churn' has no rows; .* abandon it"):
        store.publish("churn", generation)
    with pytest.raises(StoreError, match="'churn' has no generation 2; the latest begun is 1"):
        store.publish("churn", 2)
    with pytest.raises(InvalidInput, match="a generation is the integer begin_generation returned, got '1'"):
        store.publish("churn", "1")  # type: ignore[arg-type]
    store.write_batch("churn", generation, [("a", {"score": 1.0}, 1, T0)])
    store.publish("churn", generation)
    with pytest.raises(StoreError, match="generation 1 of 'churn' is already published"):
        store.publish("churn", generation)
    with pytest.raises(StoreError, match="already published"):
        store.write_batch("churn", generation, [("b", {"score": 1.0}, 1, T0)])


def test_generations_are_numbered_per_model(store: PredictionStore) -> None:
    publish(store, "churn", {"a": 1.0})
    publish(store, "churn", {"a": 2.0})
    assert publish(store, "movies", {"a": 10.0}) == 1
    assert scores(store, "churn", ["a"]) == {"a": 2.0}
    assert scores(store, "movies", ["a"]) == {"a": 10.0}


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ((17, {"score": 1.0}, 1, T0), "an entity key must be a string, got int 17; convert it with str()"),
        (("b", [1.0], 1, T0), "the prediction for key 'b' must be a mapping of output name to value, got list"),
        (("b", {"score": object()}, 1, T0), "the prediction for key 'b' is not JSON-serializable"),
        (("b", {"score": 1.0}, 1.5, T0), "model_version for key 'b' must be an integer, got float 1.5"),
        (("b", {"score": 1.0}, 1, "2024-05-01T02:00:00"), r"has no timezone; give one, e\.g\. 2024-05-01T02:00:00Z"),
        (("b", {"score": 1.0}, 1, "yesterday"), "computed_at 'yesterday' is not an ISO-8601 timestamp"),
        (("b", {"score": 1.0}), r"row 1 must be \(key, prediction, model_version, computed_at\)"),
    ],
)
def test_a_bad_row_refuses_the_whole_call(store: PredictionStore, row: tuple[object, ...], message: str) -> None:
    generation = store.begin_generation("churn")
    rows = [("a", {"score": 1.0}, 1, T0), row, ("c", {"score": 1.0}, 1, T0)]
    with pytest.raises(InvalidInput, match=message):
        store.write_batch("churn", generation, rows)  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="has no rows"):  # the good row before the bad one was not kept
        store.publish("churn", generation)


def test_bad_arguments_are_refused_by_name(store: PredictionStore) -> None:
    with pytest.raises(InvalidInput, match="get_many takes a list of keys, got the string 'abc'; for one key use get"):
        store.get_many("churn", "abc")
    with pytest.raises(InvalidInput, match="a model name must be a non-empty string, got ''"):
        store.get("", "a")
    with pytest.raises(InvalidInput, match=r"write_batch takes an iterable of .* rows, got dict"):
        store.write_batch("churn", 1, {"a": {"score": 1.0}})  # type: ignore[dict-item]
    with pytest.raises(InvalidInput, match="an entity key must be a string, got int 5"):
        store.put_live("churn", 5, {"score": 1.0}, 1, T0)  # type: ignore[arg-type]


# -- lookups --------------------------------------------------------------------------------


def test_get_many_returns_the_keys_that_have_a_prediction(store: PredictionStore) -> None:
    publish(store, "churn", {"a": 1.0, "b": 2.0})
    store.put_live("churn", "live-only", {"score": 3.0}, 1, T1)
    assert scores(store, "churn", ["b", "missing", "a", "b", "live-only"]) == {"a": 1.0, "b": 2.0, "live-only": 3.0}
    assert store.get_many("churn", []) == {}
    assert store.get_many("nobody", ["a"]) == {}
    assert set(store.get_many("churn", iter(["a"]))) == {"a"}


def test_get_many_takes_more_keys_than_sql_has_parameters(store: PredictionStore) -> None:
    values = {f"k{i}": float(i) for i in range(40_000)}
    publish(store, "churn", values)
    assert scores(store, "churn", list(values)) == values


# -- live against batch: the precedence rule (foretell/store/base.py) -----------------------


def test_a_live_entry_computed_after_the_batch_entry_wins(store: PredictionStore) -> None:
    publish(store, "churn", {"a": 1.0, "b": 1.0}, stamp=T0)
    store.put_live("churn", "a", {"score": 5.0}, 2, T1)
    found = store.get("churn", "a")
    assert found is not None
    assert (found.prediction, found.source, found.generation, found.model_version) == ({"score": 5.0}, "live", None, 2)
    assert {k: p.source for k, p in store.get_many("churn", ["a", "b"]).items()} == {"a": "live", "b": "batch"}


def test_the_batch_entry_wins_over_an_older_live_entry_and_on_a_tie(store: PredictionStore) -> None:
    publish(store, "churn", {"a": 1.0, "b": 1.0}, stamp=T0)
    store.put_live("churn", "a", {"score": 5.0}, 2, T1)
    store.put_live("churn", "b", {"score": 5.0}, 2, T2)
    publish(store, "churn", {"a": 2.0, "b": 2.0}, stamp=T2)  # a job that started at T2
    assert {k: (p.source, p.prediction["score"]) for k, p in store.get_many("churn", ["a", "b"]).items()} == {
        "a": ("batch", 2.0),
        "b": ("batch", 2.0),  # computed at the same instant: the generation wins
    }


def test_a_live_entry_for_a_key_outside_the_generation_stays_if_newer_than_the_snapshot(
    store: PredictionStore,
) -> None:
    store.put_live("churn", "old-customer", {"score": 1.0}, 1, T0)  # before the nightly job started
    store.put_live("churn", "new-customer", {"score": 2.0}, 1, T2)  # while it ran
    publish(store, "churn", {"a": 3.0}, stamp=T1)
    assert scores(store, "churn", ["old-customer", "new-customer", "a"]) == {"new-customer": 2.0, "a": 3.0}
    assert store.stats("churn")["live_rows"] == 1


def test_live_entries_before_any_publish_are_served(store: PredictionStore) -> None:
    store.put_live("churn", "a", {"score": 1.0}, 1, T0)
    assert scores(store, "churn", ["a"]) == {"a": 1.0}
    assert store.stats("churn") == {
        "model": "churn",
        "generation": None,
        "published_at": None,
        "rows": 0,
        "live_rows": 1,
        "open_generations": [],
    }


def test_stats_describe_the_published_generation(store: PredictionStore) -> None:
    publish(store, "churn", {f"k{i}": 1.0 for i in range(25)}, stamp=T0)
    store.put_live("churn", "k1", {"score": 2.0}, 1, T1)
    store.put_live("churn", "extra", {"score": 2.0}, 1, T1)
    opened = store.begin_generation("churn")
    stats = store.stats("churn")
    assert stats["published_at"].endswith("Z")
    assert {k: v for k, v in stats.items() if k != "published_at"} == {
        "model": "churn",
        "generation": 1,
        "rows": 25,
        "live_rows": 2,
        "open_generations": [opened],
    }


def test_a_second_store_on_the_same_location_sees_what_the_first_published(backend: Backend) -> None:
    first, second = backend.open(), backend.open()
    try:
        publish(first, "churn", {"a": 1.0})
        first.put_live("churn", "b", {"score": 2.0}, 1, T1)
        assert scores(second, "churn", ["a", "b"]) == {"a": 1.0, "b": 2.0}
        assert second.current_generation("churn") == 1
    finally:
        first.close()
        second.close()


# -- writers in several processes -----------------------------------------------------------

# One worker of a batch job: its chunks go into the generation the job began.
WRITER = """
import sys
location, generation, worker = sys.argv[1], int(sys.argv[2]), sys.argv[3]
{opener}
for chunk in range(3):
    rows = [(f"{{worker}}-{{chunk}}-{{i}}", {{"worker": worker}}, 1, "2024-05-01T02:00:00Z") for i in range(1000)]
    assert store.write_batch("churn", generation, rows) == 1000
store.close()
"""


def test_processes_write_one_generation_in_turn(backend: Backend, store: PredictionStore) -> None:
    generation = store.begin_generation("churn")
    script = WRITER.format(opener=backend.opener)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script, backend.location, str(generation), name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("w0", "w1")
    ]
    for worker in workers:
        _, stderr = worker.communicate(timeout=60)
        assert worker.returncode == 0, stderr
    store.publish("churn", generation)
    keys = [f"{w}-{c}-{i}" for w in ("w0", "w1") for c in range(3) for i in range(1000)]
    found = store.get_many("churn", keys)
    assert len(found) == len(keys)
    assert all(p.prediction["worker"] == k[:2] for k, p in found.items())
    assert store.stats("churn")["rows"] == len(keys)


# -- readers against a publishing process ---------------------------------------------------

RACE_KEYS = 2_000
RACE_GENERATIONS = 20

# Every key of generation n holds n, so a reader can tell generations apart row by row.
PUBLISHER = """
import sys
location = sys.argv[1]
keys, generations = int(sys.argv[2]), int(sys.argv[3])
{opener}
print("ready", flush=True)
sys.stdin.readline()
for _ in range(generations):
    n = store.begin_generation("race")
    rows = [(f"k{{i}}", {{"value": n}}, 1, "2024-05-01T02:00:00Z") for i in range(keys)]
    half = keys // 2
    store.write_batch("race", n, rows[:half])  # two calls, as a job writes chunk by chunk
    store.write_batch("race", n, rows[half:])
    store.publish("race", n)
    print(n, flush=True)
store.close()
"""


def generation_of(entry: StoredPrediction) -> int:
    """The generation of an entry the race read: the race writes no live entry, so every one has one."""
    assert entry.generation is not None, f"a live entry in a race of generations: {entry}"
    return entry.generation


def test_readers_see_one_whole_generation_while_another_process_publishes(backend: Backend) -> None:
    keys = [f"k{i}" for i in range(RACE_KEYS)]
    reader = backend.open()
    publisher = subprocess.Popen(
        [
            sys.executable,
            "-c",
            PUBLISHER.format(opener=backend.opener),
            backend.location,
            str(RACE_KEYS),
            str(RACE_GENERATIONS),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[int] = []
    reads = 0
    try:
        assert publisher.stdin is not None and publisher.stdout is not None
        if publisher.stdout.readline().strip() != "ready":
            raise AssertionError(publisher.communicate(timeout=30)[1])
        publisher.stdin.write("go\n")
        publisher.stdin.flush()
        deadline = time.monotonic() + 60
        while publisher.poll() is None and time.monotonic() < deadline:
            found = reader.get_many("race", keys)
            reads += 1
            if not found:
                assert not seen, f"every key vanished after generation {seen[-1]} was published"
                continue
            assert len(found) == RACE_KEYS, f"{RACE_KEYS - len(found)} keys missing from one read"
            generations = {generation_of(p) for p in found.values()}
            values = {p.prediction["value"] for p in found.values()}
            assert len(generations) == 1, f"one read mixed generations {sorted(generations)}"
            assert values == generations
            (current,) = generations
            assert not seen or current >= seen[-1], f"read generation {current} after {seen[-1]}"
            if not seen or current != seen[-1]:
                seen.append(current)
        _, stderr = publisher.communicate(timeout=30)
        assert publisher.returncode == 0, stderr
    finally:
        if publisher.poll() is None:
            publisher.kill()
            publisher.wait()
        reader.close()

    assert len(seen) >= 2, f"only {reads} reads, seeing {seen}: the reader never overlapped a publish"
    final = backend.open()
    assert final.current_generation("race") == RACE_GENERATIONS
    assert {p.prediction["value"] for p in final.get_many("race", keys).values()} == {RACE_GENERATIONS}
    assert final.stats("race")["rows"] == RACE_KEYS
    final.close()
