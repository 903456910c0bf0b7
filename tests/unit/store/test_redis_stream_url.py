"""The stream URL: what `foretell events consume --from` and `serve --events-from` take."""

from __future__ import annotations

import pytest

from foretell.errors import InvalidInput
from foretell.store.redis_stream import parse_stream_url


def test_the_stream_s_parameters_are_taken_out_and_the_rest_goes_to_redis():
    address = parse_stream_url("redis://:secret@h:6380/2?stream=ratings&group=recs&socket_timeout=5&dead=bad")
    assert (address.stream, address.group, address.dead) == ("ratings", "recs", "bad")
    assert address.server == "redis://:secret@h:6380/2?socket_timeout=5"
    assert "secret" not in str(address)


def test_defaults_and_flags_over_the_url():
    address = parse_stream_url("redis://h/0?stream=s&consumer=a", group="g", consumer="b")
    assert (address.group, address.consumer, address.dead) == ("g", "b", "s:dead")
    assert parse_stream_url("redis://h/0?stream=s").group == "foretell"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://h:6379/0", r"names no stream: add \?stream=NAME"),
        ("redis://h:6379/0?stream=", "names no stream"),
        ("kafka://h:9092?stream=s", "must be a redis:// URL"),
        ("redis://user:pw@h/0", "redis://user:\\*\\*\\*@h/0 names no stream"),
    ],
)
def test_a_bad_url_is_one_line_naming_the_problem(url, message):
    with pytest.raises(InvalidInput, match=message):
        parse_stream_url(url)
