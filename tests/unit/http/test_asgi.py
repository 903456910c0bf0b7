"""The raw-ASGI pieces of the hot endpoints: bounded body reading, header lookup, whole replies.

`read_body` is fed real ASGI receive messages; hypothesis cuts random bodies into random
chunks and draws the limit, so "whole body or BodyTooLarge, never a partial one" holds for
every chunking, not for the few a person would think of.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import MutableMapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from foretell.errors import BodyTooLarge, ClientDisconnected
from foretell.http.asgi import header, read_body, reply


class Messages:
    """An ASGI `receive` that hands out the given messages in order and counts how many were asked for."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.messages = messages
        self.asked = 0

    async def __call__(self) -> dict[str, Any]:
        message = self.messages[self.asked]
        self.asked += 1
        return message

    @classmethod
    def chunked(cls, chunks: list[bytes]) -> Messages:
        last = len(chunks) - 1
        return cls([{"type": "http.request", "body": c, "more_body": i < last} for i, c in enumerate(chunks)])


def read(receive: Messages, declared: str | None, limit: int) -> bytes:
    return asyncio.run(read_body(receive, declared, limit))


@st.composite
def chunkings(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """A body and one way of cutting it into chunks (empty chunks included)."""
    body = draw(st.binary(max_size=300))
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=6)))
    edges = [0, *cuts, len(body)]
    return body, [body[a:b] for a, b in itertools.pairwise(edges)]


@given(chunking=chunkings(), limit=st.integers(0, 400))
def test_read_body_returns_the_whole_body_or_refuses_it_as_soon_as_it_passes_the_limit(chunking, limit):
    body, chunks = chunking
    receive = Messages.chunked(chunks)
    if len(body) <= limit:
        assert read(receive, None, limit) == body
        assert receive.asked == len(chunks)
        return
    with pytest.raises(BodyTooLarge) as caught:
        read(receive, None, limit)
    assert str(caught.value) == f"request body is larger than the server's limit of {limit:,} bytes (max_body_bytes)"
    sizes = [len(c) for c in chunks]
    crossing = next(i for i in range(len(chunks)) if sum(sizes[: i + 1]) > limit)
    assert receive.asked == crossing + 1  # nothing after the chunk that crossed the limit was read


@given(chunking=chunkings(), limit=st.integers(0, 400))
def test_a_declared_length_over_the_limit_is_refused_before_any_of_the_body_is_read(chunking, limit):
    body, chunks = chunking
    receive = Messages.chunked(chunks)
    with pytest.raises(BodyTooLarge):
        read(receive, str(limit + 1 + len(body)), limit)
    assert receive.asked == 0


@pytest.mark.parametrize("declared", ["", "-5", "12abc", "0x10", " 3", "²"])  # '²': a digit to str.isdigit only
def test_a_content_length_that_is_not_digits_is_ignored_and_the_body_read_as_it_comes(declared):
    assert read(Messages.chunked([b"abc", b"def"]), declared, 10) == b"abcdef"


def test_a_declared_length_under_the_limit_does_not_excuse_a_longer_body():
    with pytest.raises(BodyTooLarge):
        read(Messages.chunked([b"12345", b"67890"]), "3", 8)


def test_a_body_with_no_chunks_after_the_first_empty_one_is_empty():
    assert read(Messages([{"type": "http.request"}]), None, 0) == b""


@given(chunking=chunkings(), cut=st.integers(0, 6))
def test_a_disconnect_before_the_last_chunk_is_client_disconnected(chunking, cut):
    _, chunks = chunking
    sent = [{"type": "http.request", "body": c, "more_body": True} for c in chunks[:cut]]
    receive = Messages([*sent, {"type": "http.disconnect"}])
    with pytest.raises(ClientDisconnected) as caught:
        read(receive, None, 10_000)
    assert str(caught.value) == "the client disconnected before sending the whole body"
    assert receive.asked == len(sent) + 1


def test_header_finds_the_first_value_by_its_lower_case_name_as_latin_1():
    headers = [(b"content-type", b"text/csv"), (b"x-name", b"caf\xe9"), (b"x-name", b"second")]
    assert header(headers, b"content-type") == "text/csv"
    assert header(headers, b"x-name") == "café"
    assert header(headers, b"x-missing") is None
    assert header([], b"content-type") is None


def sent_by(status: int, body: bytes, headers: dict[str, str] | None) -> list[MutableMapping[str, Any]]:
    messages: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        messages.append(message)

    asyncio.run(reply(send, status, body, headers))
    return messages


def test_reply_sends_the_status_length_json_type_and_body_in_two_messages():
    assert sent_by(404, b'{"error":"x"}', None) == [
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [(b"content-length", b"13"), (b"content-type", b"application/json")],
        },
        {"type": "http.response.body", "body": b'{"error":"x"}'},
    ]


def test_reply_lower_cases_extra_headers_and_a_given_content_type_replaces_json():
    start, _ = sent_by(200, b"a,b\n", {"Retry-After": "2", "Content-Type": "text/csv"})
    assert start["headers"] == [(b"content-length", b"4"), (b"retry-after", b"2"), (b"content-type", b"text/csv")]
