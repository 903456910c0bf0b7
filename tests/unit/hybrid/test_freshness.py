"""How old a stored prediction may be: durations as people write them, and the age of a stored stamp."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from foretell.hybrid import DEFAULT_MAX_AGE_S, parse_duration
from foretell.hybrid.freshness import age_seconds

UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "": 1.0}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90.0), ("15m", 900.0), ("26h", 93600.0), ("7d", 604800.0), ("250ms", 0.25), ("1.5h", 5400.0)],
)
def test_a_duration_is_a_number_and_a_unit(text, seconds):
    assert parse_duration(text) == seconds


def test_a_bare_number_is_seconds_as_text_or_as_a_number():
    assert (parse_duration("45"), parse_duration(45), parse_duration(2.5)) == (45.0, 45.0, 2.5)


@given(
    whole=st.integers(0, 10**6),
    fraction=st.none() | st.integers(0, 999),
    unit=st.sampled_from(sorted(UNITS)),
    pad=st.sampled_from(["", " ", "  "]),
)
def test_any_number_with_any_unit_parses_to_that_many_seconds(whole, fraction, unit, pad):
    number = f"{whole}" if fraction is None else f"{whole}.{fraction:03d}"
    assert parse_duration(f"{pad}{number}{pad}{unit}{pad}") == pytest.approx(float(number) * UNITS[unit])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("soon", "a duration is a number of seconds or text like '90s', '15m', '26h', '7d'; got 'soon'"),
        ("-5m", "a duration is a number of seconds or text like '90s', '15m', '26h', '7d'; got '-5m'"),
        ("5 weeks", "a duration is a number of seconds or text like '90s', '15m', '26h', '7d'; got '5 weeks'"),
        ("", "a duration is a number of seconds or text like '90s', '15m', '26h', '7d'; got ''"),
        (True, "a duration is a number of seconds or text like '26h', got True"),
        (-1, "a duration must be a finite number of seconds ≥ 0, got -1"),
        (math.inf, "a duration must be a finite number of seconds ≥ 0, got inf"),
        (math.nan, "a duration must be a finite number of seconds ≥ 0, got nan"),
    ],
)
def test_what_is_not_a_duration_is_refused_saying_what_is(value, message):
    with pytest.raises(ValueError, match="duration") as caught:
        parse_duration(value)
    assert str(caught.value) == message


@given(st.text(max_size=12) | st.floats() | st.integers())
def test_anything_is_a_finite_non_negative_duration_or_a_value_error(value):
    try:
        seconds = parse_duration(value)
    except ValueError:
        return
    assert math.isfinite(seconds) and seconds >= 0


def test_the_default_max_age_is_a_nightly_batch_and_two_hours():
    assert DEFAULT_MAX_AGE_S == 26 * 3600


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)))
def test_the_age_of_a_stored_stamp_is_the_time_since_it(delta):
    now = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    stamp = (now - delta).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert age_seconds(stamp, now) == pytest.approx(delta.total_seconds(), abs=1e-6)
