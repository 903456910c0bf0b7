"""API keys and what they may do: the key book (hashed, revocable) and the decision every transport asks for."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from foretell.access import KeyBook
from foretell.errors import InvalidInput, NotFound
from foretell.serving.access import CACHE_SECONDS, REFUSED, Access, presented

tokens = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=60)


@given(tokens, tokens)
def test_the_key_is_taken_from_either_header_as_text_or_bytes(key: str, other: str) -> None:
    for form in (str, lambda s: s.encode()):
        assert presented(form(key), None) == key.encode()
        assert presented(None, form(f"Bearer {key}")) == key.encode()
        assert presented(form(key), form(f"Bearer {other}")) == key.encode()  # X-API-Key wins
    assert presented(None, None) is None and presented("", "") is None


def test_the_book_keeps_no_secret_and_finds_a_key_by_its_token(tmp_path: Path) -> None:
    book = KeyBook(tmp_path)
    key, token = book.create("scorer", ("predict",), rate=5)
    assert token.startswith(f"ftk_{key.id}_") and book.find(token) == key
    secret = token[len(f"ftk_{key.id}_") :]  # a secret may hold "_" itself
    assert len(secret) == 43
    with sqlite3.connect(tmp_path / "keys.db") as conn:
        stored = b"".join(str(value).encode() for row in conn.execute("SELECT * FROM keys") for value in row)
    assert secret.encode() not in stored
    assert book.find(token[:-1] + ("A" if token[-1] != "A" else "B")) is None  # one character off
    assert book.find(f"ftk_000000000000_{secret}") is None  # no such id
    assert book.find("ftk_nonsense") is None and book.find("") is None
    assert [k.name for k in book.listed()] == ["scorer"]


@pytest.mark.parametrize(
    ("name", "scopes", "rate", "message"),
    [
        ("", ("predict",), None, "a key's name is 1 to 64"),
        ("has space", ("predict",), None, "a key's name is 1 to 64"),
        ("ok", (), None, "scopes are predict, events, admin"),
        ("ok", ("predict", "root"), None, "scopes are predict, events, admin"),
        ("ok", ("predict",), 0, "positive number of requests a second"),
    ],
)
def test_a_key_that_cannot_be_is_refused_naming_why(
    tmp_path: Path, name: str, scopes: tuple[str, ...], rate: float | None, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        KeyBook(tmp_path).create(name, scopes, rate=rate)


def test_names_are_unique_among_live_keys_and_revoking_frees_the_name(tmp_path: Path) -> None:
    book = KeyBook(tmp_path)
    first, token = book.create("ci", ("events",))
    with pytest.raises(InvalidInput, match="a key named 'ci' exists"):
        book.create("ci", ("predict",))
    assert book.revoke("ci").revoked_at is not None
    assert book.find(token) is None
    with pytest.raises(NotFound, match="no live key named 'ci'"):
        book.revoke("ci")
    second, _ = book.create("ci", ("predict",))
    assert second.id != first.id
    assert [k.revoked_at is None for k in book.listed(revoked=True)] == [False, True]


def test_access_decides_by_scope_and_says_which_is_missing(tmp_path: Path) -> None:
    book = KeyBook(tmp_path)
    _, predictor = book.create("scorer", ("predict",))
    _, feeder = book.create("feeder", ("events",))
    _, admin = book.create("ops", ("admin",))
    access = Access.of(tmp_path, "plain-env-key")
    assert access is not None
    assert access.decide(predictor.encode(), "predict").status == 0
    refused = access.decide(predictor.encode(), "events")
    assert (refused.status, refused.message) == (
        403,
        "API key 'scorer' lacks the 'events' scope this route needs (it has: predict)",
    )
    assert access.decide(feeder.encode(), "events").status == 0
    assert access.decide(admin.encode(), "events").status == access.decide(admin.encode(), "predict").status == 0
    assert access.decide(b"plain-env-key", "events").status == 0  # FORETELL_API_KEY: every scope
    assert access.decide(b"wrong", "predict").message == REFUSED
    assert access.decide(None, "predict").status == 401


def test_a_revoked_key_stops_working_within_a_second(tmp_path: Path) -> None:
    book = KeyBook(tmp_path)
    _, token = book.create("leaked", ("predict",))
    access = Access.of(tmp_path, None)
    assert access is not None and access.decide(token.encode(), "predict").status == 0
    book.revoke("leaked")
    time.sleep(CACHE_SECONDS + 0.05)
    assert access.decide(token.encode(), "predict").status == 401


def test_a_rate_limit_answers_429_with_the_wait_and_refills(tmp_path: Path) -> None:
    _, token = KeyBook(tmp_path).create("bot", ("predict",), rate=4)
    access = Access.of(tmp_path, None)
    assert access is not None
    decisions = [access.decide(token.encode(), "predict") for _ in range(6)]
    assert [d.status for d in decisions[:4]] == [0, 0, 0, 0]  # a second's worth at once
    assert decisions[4].status == 429 and decisions[4].retry_after == 1
    assert decisions[4].message == "API key 'bot' is over its rate limit of 4 requests/s"
    time.sleep(0.3)
    assert access.decide(token.encode(), "predict").status == 0


def test_no_keys_means_no_access_rules(tmp_path: Path) -> None:
    assert Access.of(tmp_path, None) is None
    assert Access.of(None, None) is None


def test_no_scope_needed_takes_any_valid_key_and_refuses_the_rest(tmp_path: Path) -> None:
    """What the dashboard's documents ask: any key of the book, whatever its scopes; no key or a wrong one: 401."""
    book = KeyBook(tmp_path)
    _, events = book.create("ingest", ("events",))
    access = Access(book=book)
    assert access.decide(events.encode(), None).status == 0
    assert access.decide(events.encode(), "admin").status == 403
    assert access.decide(b"ftk_wrong", None).status == 401
    assert access.decide(None, None).message == REFUSED
