"""The one table from domain errors to HTTP answers: status, `{"error": ...}` body, `Retry-After`."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from foretell.errors import (
    AliasNotFound,
    ArtifactIntegrityError,
    BatcherClosed,
    BodyTooLarge,
    ClientDisconnected,
    DeadlineExceeded,
    ForetellError,
    InvalidInput,
    ModelLoadError,
    ModelNotFound,
    NotFound,
    Overloaded,
    PredictionError,
    StoreError,
    UnsupportedMediaType,
    VersionNotFound,
)
from foretell.http.errors import CLIENT_CLOSED, HttpAnswers, error_reply, status_for

DOMAIN_ERRORS = [
    (UnsupportedMediaType("content type 'text/xml' is not read here"), 415),
    (InvalidInput("row 0, field 'a': expected a number"), 400),
    (ModelNotFound("model 'churn' is not served here"), 404),
    (VersionNotFound("model 'churn' version '9' is not served here"), 404),
    (AliasNotFound("model 'churn' has no alias 'staging'"), 404),
    (NotFound("no prediction stored for key 'C-1'"), 404),
    (BodyTooLarge(100), 413),
    (BatcherClosed("model 'churn' is shutting down"), 503),
    (DeadlineExceeded("the request arrived 3.0 ms past its deadline"), 504),
    (PredictionError("model 'churn/3' failed on a batch"), 500),
    (ModelLoadError("Churn.load('x') failed"), 500),
    (ArtifactIntegrityError("sha256 does not match the registry"), 500),
    (StoreError("the prediction store is locked"), 500),
    (ForetellError("something foretell knows about"), 500),
]


@pytest.mark.parametrize(
    ("error", "status"), DOMAIN_ERRORS, ids=lambda v: type(v).__name__ if not isinstance(v, int) else str(v)
)
def test_each_domain_error_is_answered_with_its_status_and_its_own_message(error, status):
    answered, body, _ = error_reply(error)
    assert (status_for(error), answered) == (status, status)
    assert orjson.loads(body) == {"error": str(error)}


def test_an_unsupported_media_type_is_415_although_it_is_also_invalid_input():
    error = UnsupportedMediaType("content type 'text/xml' is not read here")
    assert isinstance(error, InvalidInput)  # the most specific class decides, not the first base
    assert status_for(error) == 415


@pytest.mark.parametrize("error", [KeyError("api_key"), ValueError("password=hunter2"), RuntimeError("s3cret")])
def test_a_bug_is_a_500_naming_only_its_type_never_its_text(error):
    status, body, headers = error_reply(error)
    assert (status, headers) == (500, {})
    assert orjson.loads(body) == {"error": f"internal error: {type(error).__name__}"}


@pytest.mark.parametrize(
    ("retry_after_s", "header"), [(0.2, "1"), (1.0, "1"), (2.5, "3"), (7.0, "7")], ids=["under-1", "1", "2.5", "7"]
)
def test_an_overloaded_model_is_503_with_its_retry_hint_rounded_up_to_whole_seconds(retry_after_s, header):
    error = Overloaded("model 'churn' is overloaded", retry_after_s)
    status, body, headers = error_reply(error, retry_after_seconds=30)
    assert (status, headers) == (503, {"Retry-After": header})
    assert orjson.loads(body) == {"error": "model 'churn' is overloaded"}


def test_overload_answers_the_configured_status_429_with_retry_after():
    status, _, headers = error_reply(Overloaded("full", 2.0), overload_status=429)
    assert (status, headers) == (429, {"Retry-After": "2"})


def test_the_overload_status_is_for_a_full_queue_only_a_closing_model_stays_503_with_the_configured_retry():
    status, _, headers = error_reply(
        BatcherClosed("model 'churn' is shutting down"), overload_status=429, retry_after_seconds=7
    )
    assert (status, headers) == (503, {"Retry-After": "7"})


@pytest.mark.parametrize(("error", "status"), [e for e in DOMAIN_ERRORS if e[1] not in (503,)])
def test_no_other_answer_carries_retry_after(error, status):
    assert error_reply(error, overload_status=429, retry_after_seconds=5)[2] == {}


def test_http_answers_applies_the_servers_overload_settings():
    answers = HttpAnswers(overload_status=429, retry_after_seconds=4)
    assert answers.failure(Overloaded("full", 1.5)) == (429, b'{"error":"full"}', {"Retry-After": "2"})
    assert answers.failure(BatcherClosed("stopping")) == (503, b'{"error":"stopping"}', {"Retry-After": "4"})
    assert answers.failure(InvalidInput("bad")) == (400, b'{"error":"bad"}', {})


def test_a_client_that_hung_up_is_answered_with_nothing_under_499():
    answer = HttpAnswers().failure(ClientDisconnected("the client disconnected before sending the whole body"))
    assert answer == (CLIENT_CLOSED, b"", {})
    assert CLIENT_CLOSED == 499


def test_the_status_of_a_reply_is_its_first_field():
    assert HttpAnswers().status((418, b"", {})) == 418


@given(st.text(max_size=60))
def test_an_error_body_is_json_holding_exactly_the_message_whatever_its_characters(message):
    status, body, _ = error_reply(InvalidInput(message))
    assert status == 400
    assert orjson.loads(body) == {"error": message}
