"""The entity store contract, run against every backend (`BACKENDS`): SQLite, and Redis on a real redis-server.

The Redis param starts one redis-server for the session (redis_server.py) and gives each
test a key prefix of its own; without redis-server it is skipped, or fails under
FORETELL_REQUIRE_REDIS=1.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest
import redis_server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foretell.errors import InvalidInput, NotFound
from foretell.store.entities import EntityStore, EntityWrite, Interactions
from foretell.store.entities_redis import RedisEntityStore
from foretell.store.entities_sqlite import SqliteEntityStore

T0 = "2026-11-29T02:00:00Z"
T1 = "2026-11-29T03:00:00Z"
RATINGS = Interactions("ratings", "movie_id", "rating")

BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], EntityStore]] = {
    "sqlite": lambda request, tmp: SqliteEntityStore(tmp / "entities.db"),
    "redis": lambda request, tmp: RedisEntityStore(
        request.getfixturevalue("redis_url"), prefix=redis_server.unique_prefix()
    ),
}


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """Only set up when a redis param runs, so a run of the SQLite params alone needs no redis-server."""
    with redis_server.shared() as url:
        yield url


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EntityStore]:
    opened = BACKENDS[request.param](request, tmp_path)
    yield opened
    opened.close()


def customers() -> pa.Table:
    return pa.table(
        {
            "customer_id": ["C-2", "C-1", "C-3"],
            "plan": ["basic", "premium", None],
            "tenure": [3.0, 0.1, float("nan")],
            "calls": [1, 7, 0],
            "autopay": [True, False, None],
        }
    )


def ratings() -> pa.Table:
    return pa.table({"user_id": [17, 17, 42, 17], "movie_id": [3301, 12, 3301, 12], "rating": [5.0, 2.0, 4.0, 3.5]})


def test_features_load_and_read_back_typed_with_missing_values_as_none(store):
    table = store.load_features("customers", "customer_id", customers(), models=["churn"], at=T0)
    assert (table.rows, table.key_type, table.models) == (3, "str", ("churn",))
    assert table.columns == ("customer_id", "plan", "tenure", "calls", "autopay")
    one = store.get("customers", "C-1")
    assert one is not None
    assert one.features == {"customer_id": "C-1", "plan": "premium", "tenure": 0.1, "calls": 7, "autopay": False}
    three = store.get("customers", "C-3")
    assert three is not None and three.features["tenure"] is None and three.features["plan"] is None
    assert store.get("customers", "C-9") is None
    assert set(store.get_many("customers", ["C-2", "C-9", "C-3"])) == {"C-2", "C-3"}


def test_interactions_become_one_map_per_key_with_the_last_value_of_a_repeat(store):
    table = store.load_interactions("users", "user_id", ratings(), RATINGS, models=["movies"], at=T0)
    assert (table.rows, table.key_type) == (2, "int")
    user = store.get("users", "17")
    assert user is not None
    assert user.features == {"user_id": 17, "ratings": {"3301": 5.0, "12": 3.5}}


def test_a_reload_replaces_the_table_whole(store):
    store.load_features("customers", "customer_id", customers(), at=T0)
    store.load_features("customers", "customer_id", customers().slice(0, 1), at=T1)
    assert store.get("customers", "C-1") is None
    assert store.table("customers").rows == 1


def test_a_features_event_sets_named_columns_and_keeps_the_rest(store):
    store.load_features("customers", "customer_id", customers(), at=T0)
    assert store.set_features("customers", "C-1", {"calls": 9, "plan": "basic"}, at=T1)
    one = store.get("customers", "C-1")
    assert one is not None and one.features["calls"] == 9 and one.features["plan"] == "basic"
    assert one.features["tenure"] == 0.1 and one.updated_at == "2026-11-29T03:00:00.000000Z"


def test_a_features_event_for_a_new_key_creates_the_entity(store):
    store.load_features("customers", "customer_id", customers(), at=T0)
    store.set_features("customers", "C-77", {"calls": 2}, at=T1)
    new = store.get("customers", "C-77")
    assert new is not None
    assert new.features == {"customer_id": "C-77", "plan": None, "tenure": None, "calls": 2, "autopay": None}


def test_an_interaction_event_adds_or_replaces_one_item(store):
    store.load_interactions("users", "user_id", ratings(), RATINGS, at=T0)
    store.set_interaction("users", "17", 99, 4.0, at=T1)
    store.set_interaction("users", "17", 12, 1.0, at=T1)
    store.set_interaction("users", "5000", 99, 5.0, at=T1)  # a user the table had never seen
    assert store.get("users", "17").features["ratings"] == {"3301": 5.0, "12": 1.0, "99": 4.0}
    assert store.get("users", "5000").features == {"user_id": 5000, "ratings": {"99": 5.0}}


def test_an_event_id_seen_before_changes_nothing(store):
    store.load_features("customers", "customer_id", customers(), at=T0)
    assert store.set_features("customers", "C-1", {"calls": 9}, at=T1, event_id="e-1")
    assert not store.set_features("customers", "C-1", {"calls": 100}, at=T1, event_id="e-1")
    assert store.get("customers", "C-1").features["calls"] == 9
    store.load_interactions("users", "user_id", ratings(), RATINGS, at=T0)
    assert store.set_interaction("users", "17", 99, 4.0, at=T1, event_id="e-2")
    assert not store.set_interaction("users", "17", 99, 1.0, at=T1, event_id="e-2")
    assert store.get("users", "17").features["ratings"]["99"] == 4.0


def test_write_events_applies_a_read_in_order_with_the_event_ids_checked_inside_it(store):
    store.load_interactions("users", "user_id", ratings(), RATINGS, at=T0)
    assert store.set_interaction("users", "17", 1, 1.0, at=T0, event_id="seen")
    writes = [
        EntityWrite("17", item=99, value=4.0, event_id="a"),
        EntityWrite("17", item=99, value=2.5, event_id="b"),  # the later event on one item wins
        EntityWrite("17", item=1, value=5.0, event_id="seen"),  # applied before: changes nothing
        EntityWrite("5000", item=7, value=3.0),
        EntityWrite("5000", item=8, value=1.0, event_id="a"),  # an id given twice in one call counts once
    ]
    assert store.write_events("users", writes, at=T1) == [True, True, False, True, False]
    assert store.get("users", "17").features["ratings"] == {"3301": 5.0, "12": 3.5, "99": 2.5, "1": 1.0}
    new = store.get("users", "5000")
    assert new.features == {"user_id": 5000, "ratings": {"7": 3.0}}
    assert new.updated_at == "2026-11-29T03:00:00.000000Z"
    store.load_features("customers", "customer_id", customers(), at=T0)
    features = [EntityWrite("C-1", values={"calls": 9}), EntityWrite("C-1", values={"plan": "basic"})]
    assert store.write_events("customers", features, at=T1) == [True, True]
    assert {k: store.get("customers", "C-1").features[k] for k in ("calls", "plan")} == {"calls": 9, "plan": "basic"}
    assert store.write_events("customers", [], at=T1) == []


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (EntityWrite("C-2", values={"nope": 1}), "no column(s) ['nope']"),
        (EntityWrite("C-2", values={"customer_id": "x"}), "cannot be changed"),
        (EntityWrite("C-2", item=1, value=1.0), "holds features, not interactions"),
    ],
)
def test_write_events_with_one_bad_write_writes_none_of_them(store, bad, message):
    store.load_features("customers", "customer_id", customers(), at=T0)
    with pytest.raises(InvalidInput) as caught:
        store.write_events("customers", [EntityWrite("C-1", values={"calls": 9}, event_id="e-1"), bad], at=T1)
    assert message in str(caught.value)
    assert store.get("customers", "C-1").features["calls"] == 7
    assert store.set_features("customers", "C-1", {"calls": 9}, at=T1, event_id="e-1")  # its id was not kept either


def test_a_features_event_keeps_every_other_value_exactly_as_the_file_held_it(store):
    awkward = pa.table(
        {
            "id": ["a"],
            "whole": [3.0],
            "big": [2**53 + 1],
            "text": ['x,"y"]\\z{'],
            "nested": [[1, 2]],
            "calls": [1],
            "tiny": [0.1 + 0.2],
        }
    )
    store.load_features("t", "id", awkward, at=T0)
    store.set_features("t", "a", {"calls": 2, "tiny": {"k": [1, "],"]}}, at=T1)
    got = store.get("t", "a").features
    expected = {**awkward.to_pylist()[0], "calls": 2, "tiny": {"k": [1, "],"]}}
    assert got == expected
    assert [type(v) for v in got.values()] == [type(v) for v in expected.values()]


def test_reloading_a_table_forgets_its_event_ids(store):
    store.load_features("customers", "customer_id", customers(), at=T0)
    assert store.set_features("customers", "C-1", {"calls": 9}, at=T1, event_id="e-1")
    store.load_features("customers", "customer_id", customers(), at=T1)
    assert store.set_features("customers", "C-1", {"calls": 9}, at=T1, event_id="e-1")  # redelivered: new again
    assert store.get("customers", "C-1").features["calls"] == 9


def test_a_dropped_table_is_gone_until_loaded_again(store):
    store.load_features("customers", "customer_id", customers(), at=T0)
    store.load_interactions("users", "user_id", ratings(), RATINGS, at=T0)
    store.drop("customers")
    assert [t.name for t in store.tables()] == ["users"]
    with pytest.raises(NotFound, match="entity tables: users"):
        store.get("customers", "C-1")
    with pytest.raises(NotFound):
        store.drop("customers")
    store.load_features("customers", "customer_id", customers().slice(0, 1), at=T1)
    assert store.get("customers", "C-2").features["calls"] == 1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.set_features("customers", "C-1", {"nope": 1}, at=T1), "no column(s) ['nope']"),
        (lambda s: s.set_features("customers", "C-1", {"customer_id": "x"}, at=T1), "cannot be changed"),
        (lambda s: s.set_features("nowhere", "C-1", {"calls": 1}, at=T1), "no entity table 'nowhere'"),
        (lambda s: s.set_interaction("customers", "C-1", 1, 1.0, at=T1), "holds features, not interactions"),
        (lambda s: s.get("nowhere", "x"), "entity tables: customers"),
    ],
)
def test_mistakes_are_refused_and_change_nothing(store, call, message):
    store.load_features("customers", "customer_id", customers(), at=T0)
    with pytest.raises((InvalidInput, NotFound)) as caught:
        call(store)
    assert message in str(caught.value)
    assert store.get("customers", "C-1").features["calls"] == 7


def test_bad_files_are_refused_with_the_column_named(store):
    with pytest.raises(InvalidInput, match="key column 'id' is not in the file"):
        store.load_features("customers", "id", customers(), at=T0)
    with pytest.raises(InvalidInput, match="missing"):
        store.load_features("customers", "plan", customers(), at=T0)  # a null key
    bad = pa.table({"user_id": [1], "movie_id": [2], "rating": [float("inf")]})
    with pytest.raises(InvalidInput, match="finite numbers"):
        store.load_interactions("users", "user_id", bad, RATINGS, at=T0)
    with pytest.raises(NotFound):
        store.table("customers")  # nothing was half-loaded


def test_concurrent_events_on_one_key_are_all_applied(store):
    store.load_interactions("users", "user_id", ratings(), RATINGS, at=T0)
    store.load_features("customers", "customer_id", customers(), at=T0)

    def rate(movie: int) -> None:
        store.set_interaction("users", "17", movie, 4.5, at=T1)

    def call(column: str) -> None:
        store.set_features("customers", "C-1", {column: 1}, at=T1)

    threads = [threading.Thread(target=rate, args=(m,)) for m in range(100, 120)]
    threads += [threading.Thread(target=call, args=(c,)) for c in ("calls", "tenure")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(store.get("users", "17").features["ratings"]) >= {str(m) for m in range(100, 120)}
    features = store.get("customers", "C-1").features
    assert features["calls"] == 1 and features["tenure"] == 1


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(values, values, values), min_size=1, max_size=6))
def test_any_file_values_read_back_as_the_file_held_them(store, rows):
    columns = {"id": [f"k{i}" for i in range(len(rows))]}
    for c in range(3):
        cells = [row[c] for row in rows]
        kinds = {type(v) for v in cells if v is not None}
        if len(kinds) > 1:  # one type per column, as in a file
            cells = [None if v is None else str(v) for v in cells]
        columns[f"c{c}"] = cells
    table = pa.table(columns)
    store.load_features("t", "id", table, at=T0)
    for i, expected in enumerate(table.to_pylist()):
        got = store.get("t", f"k{i}").features
        for name, value in expected.items():
            if isinstance(value, float) and not math.isfinite(value):
                assert got[name] is None  # JSON has no NaN or infinity: a missing value
            else:
                assert got[name] == value and type(got[name]) is type(value), (name, value, got[name])


def test_a_large_load_reads_back_typed_across_its_slices(store: EntityStore) -> None:
    n = 70_000  # more than one 65,536-row slice of the encoder, and many HSETs
    rows = pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "whole": pa.array([float(i % 5) if i % 7 else None for i in range(n)], pa.float64()),
            "count": pa.array([i if i % 11 else None for i in range(n)], pa.int64()),
            "share": pa.array([i / 3 for i in range(n)], pa.float32()),
            "plan": pa.array([("basic", 'say "hi"', None)[i % 3] for i in range(n)]),
        }
    )
    table = store.load_features("big", "id", rows, at=T0)
    assert table.rows == n
    found = store.get_many("big", ["0", "7", "11", "65536", str(n - 1)])
    assert found["7"].features == {
        "id": 7,
        "whole": None,
        "count": 7,
        "share": pytest.approx(7 / 3),
        "plan": 'say "hi"',
    }
    assert found["65536"].features["whole"] == 1.0 and isinstance(found["65536"].features["whole"], float)
    assert found["11"].features["count"] is None and found["11"].features["plan"] is None
    assert type(found[str(n - 1)].features["count"]) is int
