"""`POST /v1/events` bodies: parsed and checked before anything changes; each refusal names its field."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from foretell.errors import InvalidInput
from foretell.hybrid import FeaturesEvent, InteractionEvent, parse_event
from foretell.hybrid.events import interaction_parts, key_of, resolve
from foretell.store.entities import EntityTable, Interactions

THINGS = EntityTable("things", "id", "str", ("id", "a", "b"), ("sums",), None, 5, "2030-01-01T00:00:00.000000Z")
PLACES = EntityTable("places", "id", "str", ("id", "a", "city"), ("geo",), None, 5, "2030-01-01T00:00:00.000000Z")
USERS = EntityTable(
    "users",
    "user_id",
    "int",
    ("user_id", "ratings"),
    ("topk",),
    Interactions("ratings", "movie_id", "rating"),
    3,
    "2030-01-01T00:00:00.000000Z",
)
TABLES = [THINGS, PLACES, USERS]


def body(document: object) -> bytes:
    return json.dumps(document).encode()  # the standard library's: any integer, however large


# -- parsing -------------------------------------------------------------------------------------------------


def test_a_features_event_is_parsed_with_its_key_values_entity_and_id():
    event = parse_event(
        body({"type": "features", "key": 17, "values": {"a": 1.5}, "entity": "things", "event_id": "e1"})
    )
    assert event == FeaturesEvent("17", {"a": 1.5}, "things", "e1")


def test_any_other_type_is_an_interaction_carrying_the_remaining_fields():
    event = parse_event(body({"type": "rating", "user_id": 1, "movie_id": 2, "rating": 5, "event_id": "e2"}))
    assert event == InteractionEvent("rating", {"user_id": 1, "movie_id": 2, "rating": 5}, None, "e2")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"{nope", "the event is not valid JSON: "),
        (body([1, 2]), "an event is a JSON object with a 'type', got list"),
        (body({"key": "T-1"}), "an event needs a 'type': 'features', or the value an interaction carries"),
        (body({"type": ""}), "an event needs a 'type'"),
        (body({"type": 3}), "an event needs a 'type'"),
        (body({"type": "features", "values": {"a": 1}}), "'key' must be an id (a non-empty string or a whole number)"),
        (body({"type": "features", "key": True, "values": {"a": 1}}), "'key' must be an id"),
        (body({"type": "features", "key": 1.5, "values": {"a": 1}}), "'key' must be an id"),
        (body({"type": "features", "key": ""}), "'key' must be an id"),
        (body({"type": "features", "key": "T-1"}), "a features event needs 'values': an object of column → new value"),
        (body({"type": "features", "key": "T-1", "values": {}}), "needs 'values'"),
        (body({"type": "features", "key": "T-1", "values": [1]}), "needs 'values'"),
        (body({"type": "features", "key": "T-1", "values": {"a": [1, 2]}}), "'values.a' must be a single value"),
        (body({"type": "features", "key": "T-1", "values": {"a": {"b": 1}}}), "'values.a' must be a single value"),
        (
            body({"type": "features", "key": "T-1", "values": {"a": 1}, "when": 3}),
            "a features event has no field(s) ['when']",
        ),
        (body({"type": "rating", "user_id": 1, "tags": ["x"]}), "'tags' must be a single value"),
        (body({"type": "rating", "event_id": ""}), "'event_id' must be a non-empty string of at most 200 characters"),
        (body({"type": "rating", "event_id": 7}), "'event_id' must be a non-empty string"),
        (body({"type": "rating", "event_id": "x" * 201}), "'event_id' must be a non-empty string of at most 200"),
        (body({"type": "rating", "entity": ["users"]}), "'entity' must be a non-empty string"),
    ],
)
def test_a_malformed_event_is_refused_naming_the_field_and_the_rule(document, message):
    with pytest.raises(InvalidInput) as caught:
        parse_event(document)
    assert message in str(caught.value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)
events = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["features", "rating", "", None]) | json_values,
        "key": json_values,
        "values": st.dictionaries(st.text(max_size=4), json_values, max_size=3) | json_values,
        "event_id": st.text(max_size=3) | json_values,
        "entity": st.sampled_from(["things", "users"]) | json_values,
        "user_id": json_values,
    },
)


@given(st.one_of(st.binary(max_size=80), json_values.map(body), events.map(body)))
def test_any_body_is_an_event_or_invalid_input_never_another_error(document):
    try:
        event = parse_event(document)
    except InvalidInput:
        return
    assert isinstance(event, FeaturesEvent | InteractionEvent)
    fields = event.values if isinstance(event, FeaturesEvent) else event.fields
    assert all(v is None or isinstance(v, str | int | float | bool) for v in fields.values())
    assert event.event_id is None or 0 < len(event.event_id) <= 200


@given(st.integers() | st.text(min_size=1))
def test_a_key_is_kept_as_its_text(value):
    assert key_of(value, "key") == str(value)


# -- which table an event is about ------------------------------------------------------------------------------


def test_a_features_event_goes_to_the_one_table_with_all_its_columns():
    assert resolve(parse_event(body({"type": "features", "key": "T", "values": {"b": 1}})), TABLES) is THINGS


def test_entity_names_the_table_when_the_columns_fit_several():
    event = parse_event(body({"type": "features", "key": "T", "values": {"a": 1}}))
    with pytest.raises(InvalidInput) as caught:
        resolve(event, TABLES)
    assert str(caught.value) == "entity tables ['places', 'things'] all fit this event; name one with 'entity'"
    named = parse_event(body({"type": "features", "key": "T", "values": {"a": 1}, "entity": "places"}))
    assert resolve(named, TABLES) is PLACES


def test_a_features_event_no_table_fits_lists_the_tables_and_their_columns():
    with pytest.raises(InvalidInput) as caught:
        resolve(parse_event(body({"type": "features", "key": "T", "values": {"zzz": 1}})), TABLES)
    assert str(caught.value) == (
        "no features table has the column(s) ['zzz']; tables: things (id, a, b); places (id, a, city)"
    )


def test_an_entity_that_does_not_exist_is_refused_naming_those_that_do():
    event = parse_event(body({"type": "features", "key": "T", "values": {"a": 1}, "entity": "nope"}))
    with pytest.raises(InvalidInput) as caught:
        resolve(event, TABLES)
    assert str(caught.value) == "no entity table 'nope'; there are ['places', 'things', 'users']"


def test_a_features_event_for_an_interactions_table_is_refused():
    event = parse_event(body({"type": "features", "key": 1, "values": {"ratings": 1}, "entity": "users"}))
    with pytest.raises(InvalidInput) as caught:
        resolve(event, TABLES)
    assert str(caught.value) == "entity table 'users' holds interactions; send an interaction event"


def test_an_interaction_event_goes_to_the_table_whose_key_item_and_value_it_carries():
    event = parse_event(body({"type": "rating", "user_id": 3, "movie_id": 9, "rating": 4.5}))
    assert resolve(event, TABLES) is USERS
    assert interaction_parts(event, USERS) == ("3", "9", 4.5)  # type: ignore[arg-type]


def test_an_interaction_event_that_fits_no_table_shows_the_shape_expected():
    event = parse_event(body({"type": "rating", "user_id": 3, "movie_id": 9}))
    with pytest.raises(InvalidInput) as caught:
        resolve(event, TABLES)
    assert str(caught.value) == (
        "this 'rating' event with fields ['movie_id', 'user_id'] fits no interactions table; expected "
        '{"type": "rating", "user_id": ..., "movie_id": ..., "rating": ...} for users'
    )


@pytest.mark.parametrize("value", ["five", True, None, math.inf])
def test_an_interaction_value_must_be_a_finite_number(value):
    event = InteractionEvent("rating", {"user_id": 3, "movie_id": 9, "rating": value}, None, None)
    with pytest.raises(InvalidInput) as caught:
        interaction_parts(event, USERS)
    assert str(caught.value) == f"'rating' must be a finite number, got {value!r}"
