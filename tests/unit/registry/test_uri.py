"""Model URIs: every accepted form, every refusal, and the round trip as a property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from foretell.errors import InvalidModelURI, RegistryError
from foretell.registry import ModelRef, parse_model_uri
from foretell.registry.uri import ACCEPTED_FORMS, MAX_VERSION, check_alias, check_model_name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models:/churn/3", ModelRef("churn", version=3)),
        ("models:/churn@production", ModelRef("churn", alias="production")),
        ("models:/churn/latest", ModelRef("churn")),
        ("models:/churn", ModelRef("churn")),
        ("churn", ModelRef("churn")),
        ("churn/3", ModelRef("churn", version=3)),
        ("churn/latest", ModelRef("churn")),
        ("churn@staging", ModelRef("churn", alias="staging")),
        ("Churn.v2_final-1@canary_2", ModelRef("Churn.v2_final-1", alias="canary_2")),
        ("7eleven/12", ModelRef("7eleven", version=12)),
        ("churn/007", ModelRef("churn", version=7)),
    ],
)
def test_accepted_forms(text: str, expected: ModelRef) -> None:
    assert parse_model_uri(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "a model name"),
        ("models:/", "a model name"),
        ("runs:/abc/model", "a model name"),
        ("churn/0", "a version is a whole number"),
        ("churn/-1", "version number or 'latest'"),
        ("churn/3/extra", "version number or 'latest'"),
        ("churn/v3", "version number or 'latest'"),
        ("churn/", "version number or 'latest'"),
        ("churn@", "an alias starts with a letter"),
        ("churn@3", "an alias starts with a letter"),
        ("churn@latest", "write models:/churn/latest"),
        ("churn@prod@x", "an alias starts with a letter"),
        ("_churn", "a model name starts with a letter or digit"),
        ("ch urn", "a model name"),
        ("churn/" + "9" * 5000, "larger than any version"),
        (f"churn/{MAX_VERSION + 1}", "a version is a whole number"),
        ("x" * 129, "at most 128 characters"),
    ],
)
def test_refused_forms_say_why_and_list_the_accepted_ones(text: str, reason: str) -> None:
    with pytest.raises(InvalidModelURI) as caught:
        parse_model_uri(text)
    message = str(caught.value)
    assert reason in message
    assert ACCEPTED_FORMS in message
    assert repr(text)[:40] in message


def test_a_non_string_is_refused_as_a_uri() -> None:
    with pytest.raises(InvalidModelURI, match="a model URI is a string, got int"):
        parse_model_uri(3)  # type: ignore[arg-type]


def test_canonical_uri() -> None:
    assert ModelRef("churn", version=3).uri == "models:/churn/3"
    assert ModelRef("churn", alias="production").uri == "models:/churn@production"
    assert str(ModelRef("churn")) == "models:/churn/latest"


@pytest.mark.parametrize("name", ["", "-a", ".a", "a/b", "a@b", "a b", "é", "x" * 129])
def test_bad_model_names(name: str) -> None:
    with pytest.raises(RegistryError, match="model name"):
        check_model_name(name)


@pytest.mark.parametrize(
    ("alias", "reason"),
    [
        ("latest", "'latest' always means the newest version"),
        ("123", "starts with a letter"),
        ("1abc", "starts with a letter"),
        ("_prod", "starts with a letter"),
        ("prod.v2", "starts with a letter"),
        ("", "starts with a letter"),
    ],
)
def test_bad_aliases(alias: str, reason: str) -> None:
    with pytest.raises(RegistryError, match=reason):
        check_alias(alias)


def test_a_ref_names_a_version_or_an_alias_not_both() -> None:
    with pytest.raises(RegistryError, match="not both"):
        ModelRef("churn", version=1, alias="production")


names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", fullmatch=True)
aliases = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,40}", fullmatch=True).filter(lambda a: a != "latest")
versions = st.integers(min_value=1, max_value=MAX_VERSION)


@given(name=names, version=versions, alias=aliases)
def test_every_valid_ref_round_trips_through_every_form(name: str, version: int, alias: str) -> None:
    for ref in (ModelRef(name), ModelRef(name, version=version), ModelRef(name, alias=alias)):
        assert parse_model_uri(ref.uri) == ref
    assert parse_model_uri(f"{name}/{version}") == ModelRef(name, version=version)
    assert parse_model_uri(f"{name}@{alias}") == ModelRef(name, alias=alias)
    assert parse_model_uri(name) == ModelRef(name)


uri_like = st.text(alphabet="models:/@latest0123456789_.-xé ", max_size=40)


@given(text=st.one_of(st.text(max_size=60), uri_like))
def test_any_text_parses_or_raises_invalid_model_uri(text: str) -> None:
    try:
        ref = parse_model_uri(text)
    except InvalidModelURI:
        return
    assert parse_model_uri(ref.uri) == ref
