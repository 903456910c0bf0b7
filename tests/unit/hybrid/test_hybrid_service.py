"""`HybridService` over a real inference service, a real SQLite prediction store and entity store.

The service's clock is the test's: ages are exact, and "stale" is a number of minutes,
not a sleep. Whether the model ran is read from the server's own batch metrics.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pyarrow as pa
import pytest
from servedmodels import Gate, Stack, hybrid_stack, publish, run, stamp, started, until

from foretell.errors import InvalidInput, NotFound, Overloaded
from foretell.serving.policy import BatchPolicy
from foretell.serving.service import Call


def model_calls(stack: Stack, model: str) -> float:
    return stack.metric("foretell_batch_size_count", model=model) or 0.0


@pytest.fixture
def stack(models_home, tmp_path, tables) -> Stack:
    """`things` feeds sums and tiers, `users` topk; sums may be 30 minutes old, the others an hour."""
    return hybrid_stack(models_home, tmp_path, tables)


# -- lookups ---------------------------------------------------------------------------------------------


def test_a_fresh_precomputed_prediction_is_returned_as_stored_without_running_the_model(stack):
    publish(stack, "sums", [("T-1", {"score": 99.0}, 10)])

    async def scenario() -> None:
        async with started(stack.inference):
            found = await stack.hybrid.lookup(Call("lookup"), "sums", "T-1")
            assert found.to_dict() == {
                "model": "sums",
                "key": "T-1",
                "source": "precomputed",
                "prediction": {"score": 99.0},
                "model_version": 1,
                "computed_at": stack.clock.ago(minutes=10),
                "generation": 1,
                "age_seconds": 600.0,
                "stale": False,
            }

    run(scenario)
    assert model_calls(stack, "sums") == 0.0


def test_a_stale_prediction_is_replaced_by_a_live_one_and_written_back(stack):
    publish(stack, "sums", [("T-2", {"score": 99.0}, 31)])  # sums may be 30 minutes old

    async def scenario() -> None:
        async with started(stack.inference):
            found = await stack.hybrid.lookup(Call("lookup"), "sums", "T-2")
            assert (found.source, found.prediction, found.generation, found.age_seconds, found.stale) == (
                "live",
                {"score": 22.0},  # a + b from the entity table
                None,
                0.0,
                False,
            )
            assert found.computed_at == stamp(stack.clock.now)
            written = stack.predictions.get("sums", "T-2")
            assert written is not None
            assert (written.source, written.prediction, written.computed_at) == (
                "live",
                {"score": 22.0},
                found.computed_at,
            )
            stack.clock.now += timedelta(minutes=1)
            again = await stack.hybrid.lookup(Call("lookup"), "sums", "T-2")
            assert (again.source, again.age_seconds, again.computed_at) == ("live", 60.0, found.computed_at)

    run(scenario)
    assert model_calls(stack, "sums") == 1.0  # the second lookup read the write-back


def test_each_model_has_its_own_max_age(stack):
    publish(stack, "sums", [("T-1", {"score": 99.0}, 45)])
    publish(stack, "tiers", [("T-1", {"score": 99.0}, 45)])

    async def scenario() -> None:
        async with started(stack.inference):
            assert (await stack.hybrid.lookup(Call("lookup"), "sums", "T-1")).source == "live"  # 30 minutes
            assert (
                await stack.hybrid.lookup(Call("lookup"), "tiers", "T-1")
            ).source == "precomputed"  # the default hour

    run(scenario)


def test_a_stale_prediction_with_no_features_to_replace_it_is_returned_marked_stale(stack):
    publish(stack, "sums", [("T-404", {"score": 7.0}, 90)])

    async def scenario() -> None:
        async with started(stack.inference):
            found = await stack.hybrid.lookup(Call("lookup"), "sums", "T-404")
            assert (found.source, found.prediction, found.stale, found.age_seconds) == (
                "precomputed",
                {"score": 7.0},
                True,
                5400.0,
            )

    run(scenario)


def test_fresh_true_predicts_live_whatever_is_stored(stack):
    publish(stack, "sums", [("T-3", {"score": 99.0}, 1)])

    async def scenario() -> None:
        async with started(stack.inference):
            found = await stack.hybrid.lookup(Call("lookup"), "sums", "T-3", fresh=True)
            assert (found.source, found.prediction) == ("live", {"score": 33.0})

    run(scenario)


def test_a_key_with_neither_a_prediction_nor_features_is_not_found_naming_the_table(stack):
    async def scenario() -> None:
        async with started(stack.inference):
            with pytest.raises(NotFound) as caught:
                await stack.hybrid.lookup(Call("lookup"), "sums", "T-404")
            assert str(caught.value) == (
                "model 'sums' has no prediction stored for key 'T-404', and entity table 'things' "
                "has no row for it to predict one live"
            )

    run(scenario)


def test_a_model_no_entity_table_feeds_says_how_to_give_it_one(models_home, tmp_path):
    stack = Stack(models_home, tmp_path, ("sums",))

    async def scenario() -> None:
        async with started(stack.inference):
            with pytest.raises(NotFound) as caught:
                await stack.hybrid.lookup(Call("lookup"), "sums", "T-1")
            assert str(caught.value) == (
                "model 'sums' has no prediction stored for key 'T-1', and no entity table feeds it to predict one "
                "live (foretell entities load ... --model sums)"
            )

    run(scenario)


def test_stored_features_a_model_refuses_are_reported_by_key(stack):
    async def scenario() -> None:
        async with started(stack.inference):
            with pytest.raises(InvalidInput) as caught:
                await stack.hybrid.lookup(Call("lookup"), "sums", "T-4")  # a is null in the table
            assert str(caught.value) == (
                "the stored features of things do not suit model 'sums': key 'T-4': row 0, field 'a': expected a "
                "float64 value, not a missing one (this feature does not accept missing values)"
            )

    run(scenario)


def test_many_keys_are_answered_in_the_order_asked_once_each_with_the_misses_in_one_model_call(stack):
    publish(stack, "sums", [("T-1", {"score": 99.0}, 1), ("T-2", {"score": 99.0}, 90)])

    async def scenario() -> None:
        async with started(stack.inference):
            found, missing = await stack.hybrid.lookup_many(
                Call("batchGet"), "sums", ["T-3", "T-404", "T-1", "T-3", "T-2", 0]
            )
            assert [(f.key, f.source, f.prediction["score"]) for f in found] == [
                ("T-3", "live", 33.0),
                ("T-1", "precomputed", 99.0),
                ("T-2", "live", 22.0),
            ]
            assert missing == ["T-404", "0"]

    run(scenario)
    assert model_calls(stack, "sums") == 1.0
    assert stack.metric("foretell_batch_size_sum", model="sums") == 2.0  # T-3 and T-2, together


def test_each_key_looked_up_is_counted_by_outcome_in_the_metrics(stack):
    # T-1 fresh (hit), T-2 too old and re-scored from its features (fallback), T-404 too old with no
    # features (stale), T-405 nowhere (miss); T-3 asked for fresh is predicted live (fallback).
    publish(stack, "sums", [("T-1", {"score": 99.0}, 1), ("T-2", {"score": 99.0}, 90), ("T-404", {"score": 7.0}, 90)])

    async def scenario() -> None:
        async with started(stack.inference):
            await stack.hybrid.lookup_many(Call("batchGet"), "sums", ["T-1", "T-2", "T-404", "T-405", "T-1"])
            await stack.hybrid.lookup(Call("lookup"), "sums", "T-3", fresh=True)

    run(scenario)
    counted = {
        o: stack.metric("foretell_lookups_total", model="sums", outcome=o) for o in ("hit", "fallback", "stale", "miss")
    }
    assert counted == {"hit": 1.0, "fallback": 2.0, "stale": 1.0, "miss": 1.0}  # T-1 asked twice, counted once


def test_a_key_that_is_not_an_id_is_refused(stack):
    async def scenario() -> None:
        async with started(stack.inference):
            with pytest.raises(InvalidInput) as caught:
                await stack.hybrid.lookup_many(Call("batchGet"), "sums", ["T-1", None])
            assert str(caught.value) == "'key' must be an id (a non-empty string or a whole number), got None"

    run(scenario)


# -- top-k: k slices what is stored, or asks the model for more ------------------------------------------------


def test_k_cuts_a_stored_top_k_without_running_the_model(stack):
    publish(stack, "topk", [("1", {"items": [7, 8, 9], "scores": [0.9, 0.8, 0.7]}, 5)])

    async def scenario() -> None:
        async with started(stack.inference):
            found = await stack.hybrid.lookup(Call("lookup"), "topk", "1", k=2)
            assert (found.source, found.prediction) == ("precomputed", {"items": [7, 8], "scores": [0.9, 0.8]})

    run(scenario)
    assert model_calls(stack, "topk") == 0.0


def test_k_larger_than_what_is_stored_asks_the_model_for_k_items(stack):
    publish(stack, "topk", [("1", {"items": [7, 8, 9], "scores": [0.9, 0.8, 0.7]}, 5)])

    async def scenario() -> None:
        async with started(stack.inference):
            found = await stack.hybrid.lookup(Call("lookup"), "topk", "1", k=5)
            assert (found.source, found.prediction["items"]) == ("live", [10, 11, 12, 13, 14])

    run(scenario)
    assert model_calls(stack, "topk") == 1.0


@pytest.mark.parametrize(
    ("model", "k", "message"),
    [
        ("topk", 0, "k must be between 1 and 1000, got 0"),
        ("sums", 2, "model 'sums' returns no top-k lists; 'k' is for recommenders"),
    ],
)
def test_a_k_the_model_cannot_honour_is_refused_before_the_store_is_read(stack, model, k, message):
    async def scenario() -> None:
        async with started(stack.inference):
            with pytest.raises(InvalidInput) as caught:
                await stack.hybrid.lookup(Call("lookup"), model, "1", k=k)
            assert str(caught.value) == message

    run(scenario)


# -- events ----------------------------------------------------------------------------------------------------


def test_a_features_event_changes_the_entity_and_refreshes_every_linked_model_before_answering(stack):
    async def scenario() -> None:
        async with started(stack.inference):
            answer = await stack.hybrid.apply(b'{"type": "features", "key": "T-1", "values": {"a": 5.0}}')
            assert (answer["applied"], answer["duplicate"], answer["entity"], answer["key"]) == (
                True,
                False,
                "things",
                "T-1",
            )
            assert [(r["model"], r["source"], r["prediction"]) for r in answer["refreshed"]] == [
                ("sums", "live", {"score": 15.0}),
                ("tiers", "live", {"score": 50.0}),  # T-1 is 'pro'
            ]

    run(scenario)
    entity = stack.entities.get("things", "T-1")
    assert entity is not None and entity.features["a"] == 5.0
    for model, score in (("sums", 15.0), ("tiers", 50.0)):
        written = stack.predictions.get(model, "T-1")
        assert written is not None and written.prediction == {"score": score}


def test_an_event_any_linked_model_refuses_changes_nothing(stack):
    publish(stack, "tiers", [("T-1", {"score": 99.0}, 1)])
    before = stack.entities.get("things", "T-1")

    async def scenario() -> None:
        async with started(stack.inference):
            with pytest.raises(InvalidInput) as caught:  # sums does not read 'tier'; tiers refuses 'gold'
                await stack.hybrid.apply(b'{"type": "features", "key": "T-1", "values": {"tier": "gold"}}')
            assert str(caught.value).startswith(
                "the event would give things key 'T-1' features model 'tiers' refuses: row 0, field 'tier': "
            )
            assert "'gold'" in str(caught.value)

    run(scenario)
    assert stack.entities.get("things", "T-1") == before
    stored = stack.predictions.get("tiers", "T-1")
    assert stored is not None and stored.prediction == {"score": 99.0}
    assert model_calls(stack, "sums") == model_calls(stack, "tiers") == 0.0


def test_only_served_models_are_checked_and_refreshed(models_home, tmp_path, tables):
    stack = hybrid_stack(models_home, tmp_path, tables, ("sums",))  # tiers reads the table too, but is not served here

    async def scenario() -> None:
        async with started(stack.inference):
            answer = await stack.hybrid.apply(b'{"type": "features", "key": "T-1", "values": {"tier": "gold"}}')
            assert answer["applied"]
            assert [r["model"] for r in answer["refreshed"]] == ["sums"]

    run(scenario)


def test_an_event_delivered_twice_is_applied_once_and_refreshes_from_the_features_it_left(stack):
    first = b'{"type": "features", "key": "T-2", "values": {"b": 1.0}, "event_id": "e-1"}'
    again = b'{"type": "features", "key": "T-2", "values": {"b": 500.0}, "event_id": "e-1"}'

    async def scenario() -> None:
        async with started(stack.inference):
            assert (await stack.hybrid.apply(first))["applied"]
            answer = await stack.hybrid.apply(again)
            assert (answer["applied"], answer["duplicate"]) == (False, True)
            assert [(r["model"], r["prediction"]) for r in answer["refreshed"]] == [
                ("sums", {"score": 3.0}),  # a = 2 and the first delivery's b = 1, not the second's 500
                ("tiers", {"score": 2.0}),
            ]

    run(scenario)
    entity = stack.entities.get("things", "T-2")
    assert entity is not None and entity.features["b"] == 1.0
    written = stack.predictions.get("sums", "T-2")
    assert written is not None and written.prediction == {"score": 3.0}


def test_an_interaction_event_sets_one_item_and_refreshes_the_recommendations(stack):
    async def scenario() -> None:
        async with started(stack.inference):
            answer = await stack.hybrid.apply(b'{"type": "rating", "user_id": 2, "movie_id": 202, "rating": 1}')
            assert (answer["entity"], answer["key"]) == ("users", "2")
            assert [(r["model"], r["prediction"]["items"]) for r in answer["refreshed"]] == [("topk", [20, 21, 22])]

    run(scenario)
    entity = stack.entities.get("users", "2")
    assert entity is not None and entity.features["ratings"] == {"201": 4.0, "202": 1.0}


def test_a_parsed_event_is_applied_as_its_body_would_be(stack):
    from foretell.hybrid import parse_event

    async def scenario() -> None:
        async with started(stack.inference):
            event = parse_event(b'{"type": "features", "key": "T-3", "values": {"b": 0.5}}')
            answer = await stack.hybrid.apply(event)
            assert [r["prediction"]["score"] for r in answer["refreshed"]] == [3.5, 30.0]

    run(scenario)


def test_an_event_retried_after_its_refresh_was_refused_for_load_refreshes_the_prediction(
    models_home, tmp_path, tables
):
    """A 503 (or 429) tells the client to retry; the retry is a duplicate, and must still refresh the prediction.

    The first delivery changed the entity before its refresh met the full queue. Had the
    duplicate refreshed nothing, lookups would serve the prediction from the old features
    until it aged out (a day, by default).
    """
    stack = hybrid_stack(models_home, tmp_path, tables, ("gated",), policy=BatchPolicy(max_queue=1))
    rows = pa.table({"id": ["G-1", "G-2", "G-3"], "a": [1.0, 2.0, 3.0], "b": [0.0, 0.0, 0.0]})
    stack.entities.load_features("gthings", "id", rows, models=["gated"], at=stack.clock.ago(hours=1))
    publish(stack, "gated", [("G-3", {"score": 3.0}, 5)])
    event = b'{"type": "features", "key": "G-3", "values": {"a": 9}, "entity": "gthings", "event_id": "e-9"}'

    async def scenario() -> None:
        async with started(stack.inference) as service:
            slot = service.resolve(Call("lookup"), "gated")
            Gate.hold()
            try:
                running = asyncio.create_task(stack.hybrid.lookup(Call("lookup"), "gated", "G-1", fresh=True))
                await until(Gate.entered.is_set)
                queued = asyncio.create_task(stack.hybrid.lookup(Call("lookup"), "gated", "G-2", fresh=True))
                await until(lambda: slot.batcher.queued_rows == 1)
                with pytest.raises(Overloaded):
                    await stack.hybrid.apply(event)
            finally:
                Gate.release()
            await asyncio.gather(running, queued)
            retried = await stack.hybrid.apply(event)
            assert (retried["applied"], retried["duplicate"]) == (False, True)
            assert [r["prediction"] for r in retried["refreshed"]] == [{"score": 9.0}]
            found = await stack.hybrid.lookup(Call("lookup"), "gated", "G-3")
            assert (found.source, found.prediction) == ("live", {"score": 9.0})

    run(scenario)
