"""LedgerSettings and LedgerPolicy: the [ledger] table read, checked key by key, and written back."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from foretell.errors import InvalidServeConfig
from foretell.ledger.settings import LedgerPolicy, LedgerSettings

SPEC_TOML = """
[ledger]
enabled = true
location = "s3://bucket/ledger"
flush_seconds = 1.0
max_pending_rows = 200000
inputs = "all"
redact = ["email"]
sample = 1.0
retention_days = 30
retention_bytes = 10_000_000_000
[ledger.models.churn]
inputs = ["tenure_months", "plan"]
"""


def test_defaults_are_on_with_inputs_for_thirty_days() -> None:
    settings = LedgerSettings()
    assert settings.enabled and settings.location is None and settings.flush_seconds == 1.0
    assert settings.max_pending_rows == 200_000
    assert settings.policy_for("anything") == LedgerPolicy(inputs="all", redact=(), sample=1.0, retention_days=30.0)


def test_the_spec_table_reads_with_model_policies_inheriting_the_defaults() -> None:
    settings = LedgerSettings.from_mapping(tomllib.loads(SPEC_TOML)["ledger"], "serve.toml")
    assert settings.location == "s3://bucket/ledger"
    assert settings.default.redact == ("email",)
    assert settings.default.retention_bytes == 10_000_000_000
    churn = settings.policy_for("churn")
    assert churn.inputs == ("tenure_months", "plan")
    assert churn.redact == ("email",) and churn.retention_bytes == 10_000_000_000
    assert settings.policy_for("other") == settings.default


@pytest.mark.parametrize(
    "settings",
    [
        LedgerSettings(),
        LedgerSettings.from_mapping(tomllib.loads(SPEC_TOML)["ledger"], "serve.toml"),
        LedgerSettings(
            enabled=False,
            flush_seconds=0.25,
            max_pending_rows=10,
            default=LedgerPolicy(inputs="none", sample=0.1, retention_days=1.5),
            models={"a": LedgerPolicy(inputs=("x",), redact=("x",), retention_bytes=5)},
        ),
    ],
)
def test_to_mapping_reads_back_equal(settings: LedgerSettings) -> None:
    import orjson

    mapping = orjson.loads(orjson.dumps(settings.to_mapping()))  # what a worker process receives
    again = LedgerSettings.from_mapping(mapping, "worker")
    assert again == settings
    assert again.policy_for("a") == settings.policy_for("a")


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ({"flush_seconds": 0}, ["'flush_seconds'", "0"]),
        ({"flush_seconds": "fast"}, ["'flush_seconds'", "'fast'"]),
        ({"max_pending_rows": 0}, ["'max_pending_rows'", "0"]),
        ({"max_pending_rows": 1.5}, ["'max_pending_rows'", "1.5"]),
        ({"enabled": "yes"}, ["'enabled'", "'yes'"]),
        ({"inputs": "some"}, ["'inputs'", "'some'"]),
        ({"inputs": [1, 2]}, ["'inputs'", "(1, 2)"]),
        ({"redact": "email"}, ["'redact'", "'email'"]),
        ({"sample": 0}, ["'sample'", "(0, 1]", "0"]),
        ({"sample": 1.5}, ["'sample'", "1.5"]),
        ({"retention_days": -1}, ["'retention_days'", "-1"]),
        ({"retention_bytes": 0}, ["'retention_bytes'", "0"]),
        ({"location": ""}, ["'location'", "''"]),
        ({"flush": 1}, ["unknown [ledger] settings", "'flush'"]),
        ({"models": {"churn": {"sample": 2}}}, ["[ledger.models.churn]", "'sample'", "2"]),
        ({"models": {"churn": {"speed": 2}}}, ["[ledger.models.churn]", "'speed'"]),
        ({"models": {"churn": 3}}, ["[ledger.models.churn]", "3"]),
        ({"models": {"bad name": {}}}, ["'bad name'"]),
        ({"models": []}, ["'models'"]),
    ],
)
def test_bad_values_are_refused_naming_the_key_and_the_value(table: dict[str, Any], named: list[str]) -> None:
    with pytest.raises(InvalidServeConfig) as caught:
        LedgerSettings.from_mapping(table, "serve.toml")
    message = str(caught.value)
    assert message.startswith("serve.toml: ")
    for part in named:
        assert part in message, message


def test_a_policy_made_in_code_is_checked_too() -> None:
    with pytest.raises(ValueError, match="'sample' must be a fraction"):
        LedgerPolicy(sample=0.0)
    assert LedgerPolicy(inputs=["a", "b"]).inputs == ("a", "b")  # type: ignore[arg-type]
