"""Labels: a POST body checked whole, a file's rows split into labels and rejects with reasons."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledgerkit import at

from foretell.errors import InvalidInput
from foretell.ledger.labels import (
    LABEL_SCHEMA,
    MAX_LABELS_PER_REQUEST,
    Label,
    load_labels,
    parse_labels,
    publish_labels,
    write_labels,
)
from foretell.ledger.segments import LedgerLocation

NOW = at("2026-12-05T08:00")


def body(labels: Any, model: Any = "churn") -> bytes:
    return orjson.dumps({"model": model, "labels": labels})


def test_a_body_by_key_and_by_prediction_id():
    model, labels = parse_labels(
        body(
            [
                {"key": "C-1", "label": 1, "observed_at": "2026-12-04T10:00:00Z"},
                {"prediction_id": "0193a1b2c3d4e5f6a7b8c9d0e1f2a3b4", "row": 2, "label": "churned"},
                {"key": 42, "label": True, "observed_at": "2026-12-04T11:00:00+01:00"},
                {"key": "C-3", "label": 0.25, "observed_at": "2026-12-04T10:00:00"},
            ]
        ),
        now=NOW,
    )
    assert model == "churn"
    assert labels == [
        Label("1", 1.0, at("2026-12-04T10:00"), key="C-1"),
        Label("churned", None, NOW, prediction_id="0193a1b2c3d4e5f6a7b8c9d0e1f2a3b4", row=2),
        Label("true", 1.0, at("2026-12-04T10:00"), key="42"),
        Label("0.25", 0.25, at("2026-12-04T10:00"), key="C-3"),
    ]


def test_one_label_object_instead_of_a_list():
    assert parse_labels(body({"key": "C-1", "label": "0"}), now=NOW)[1] == [Label("0", 0.0, NOW, key="C-1")]


def test_every_bad_label_is_named_with_its_field_rule_and_value():
    with pytest.raises(InvalidInput) as refused:
        parse_labels(
            body(
                [
                    {"key": "C-1", "label": 1},
                    {"key": "C-2", "label": [1, 2]},
                    {"label": 1},
                    {"key": "C-4", "label": 1, "observed_at": "yesterday"},
                    {"key": 1.5, "label": None, "when": "now"},
                    {"key": "C-6", "row": 1, "label": 0},
                ]
            )
        )
    message = str(refused.value)
    assert message.startswith("5 of 6 labels invalid, none recorded: ")
    for expected in (
        "labels[1].label: a label is one value: text, a number (finite) or true/false; got list [1, 2]",
        "labels[2].key: a label names its prediction by key (or by prediction_id)",
        "labels[3].observed_at: a time is ISO 8601 text (2026-12-04T10:00:00Z); got str 'yesterday'",
        "labels[4].when: unknown field; got str 'now'",
        "labels[4].key: an entity key is non-empty text or a whole number; got float 1.5",
        "labels[4].label: a label is one value",
        "labels[5].row: row goes with prediction_id, not with key; got int 1",
    ):
        assert expected in message
    assert "labels[0]" not in message
    assert {(e.row, e.field) for e in refused.value.errors} >= {(1, "label"), (3, "observed_at"), (5, "row")}


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (b"{not json", "the body is not JSON"),
        (b"[1, 2]", "the body is a JSON object with model and labels"),
        (orjson.dumps({"labels": [{"key": "a", "label": 1}]}), "model must be a registered model's name"),
        (body([{"key": "a", "label": 1}], model="../etc"), "([A-Za-z0-9][A-Za-z0-9_.-]*); got str '../etc'"),
        (body([]), "labels: a label object or a non-empty list of them"),
        (orjson.dumps({"model": "m", "labels": [], "extra": 1}), "extra: unknown field"),
        (body([{"key": "a", "label": 1}] * (MAX_LABELS_PER_REQUEST + 1)), "at most 10000 labels per request"),
    ],
)
def test_a_body_refused_whole(document, reason):
    with pytest.raises(InvalidInput) as refused:
        parse_labels(document)
    assert reason in str(refused.value)


label_values = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(min_size=1).filter(str.strip),
)
anything = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@given(st.lists(st.tuples(st.text(min_size=1), label_values), min_size=1, max_size=20))
@settings(max_examples=100, deadline=None)
def test_valid_labels_read_back_as_sent(pairs):
    _, labels = parse_labels(body([{"key": k, "label": v} for k, v in pairs]), now=NOW)
    assert [lb.key for lb in labels] == [k for k, _ in pairs]
    for label, (_, value) in zip(labels, pairs, strict=True):
        if isinstance(value, bool):
            assert (label.label, label.label_value) == (str(value).lower(), float(value))
        elif isinstance(value, int | float):
            assert label.label_value == float(value) and float(label.label) == float(value)
        else:
            assert label.label == value
            assert label.label_value is None or math.isfinite(label.label_value)


@given(st.lists(st.dictionaries(st.sampled_from(["key", "label", "observed_at", "row", "prediction_id"]), anything)))
@settings(max_examples=200, deadline=None)
def test_any_body_is_labels_or_a_refusal_that_names_the_labels(items):
    refused: InvalidInput | None = None
    try:
        _, labels = parse_labels(body(items), now=NOW)
    except InvalidInput as error:
        refused = error
    if refused is None:
        assert len(labels) == len(items)
    else:
        assert all(f"labels[{e.row}]" in str(refused) for e in refused.errors) or not items


def test_written_labels_are_one_whole_file(tmp_path):
    location = LedgerLocation(tmp_path / "ledger")
    path = publish_labels(location, "churn", [Label("1", 1.0, NOW, key="C-1"), Label("0", 0.0, NOW, key="C-2")])
    table = pq.read_table(path)
    assert table.schema.equals(LABEL_SCHEMA)
    assert table.column("key").to_pylist() == ["C-1", "C-2"] and len(set(table.column("label_id").to_pylist())) == 2
    assert Path(path).parent.name == "model=churn" and Path(path).name.startswith("labels-")
    assert [p.name for p in Path(path).parent.iterdir()] == [Path(path).name]  # no temporary left behind


def test_a_file_with_bad_rows_writes_the_good_ones_and_rejects_the_rest(tmp_path):
    source = tmp_path / "outcomes.csv"
    source.write_text(
        "customer_id,churned,known_at\n"
        "C-1,1,2026-12-04T10:00:00Z\n"
        ",0,2026-12-04T10:00:00Z\n"
        "C-3,,2026-12-04T10:00:00Z\n"
        "C-4,0,last tuesday\n"
        "C-5,0,2026-12-04\n"
    )
    location = LedgerLocation(tmp_path / "ledger")
    loaded = load_labels(location, "churn", source, key="customer_id", label="churned", at="known_at", now=NOW)

    assert (loaded.accepted, loaded.rejected) == (2, 3)
    labels = pq.read_table(loaded.labels_path).to_pylist()
    assert [(r["key"], r["label"], r["observed_at"]) for r in labels] == [
        ("C-1", "1", at("2026-12-04T10:00")),
        ("C-5", "0", at("2026-12-04T00:00")),
    ]
    assert all(r["loaded_at"] == NOW for r in labels)
    rejects = pq.read_table(loaded.rejects_path).to_pylist()
    assert [r["row"] for r in rejects] == [1, 2, 3]
    assert rejects[0]["reason"] == "customer_id: an entity key is non-empty text or a whole number; got str ''"
    assert rejects[1]["reason"].startswith("churned: a label is one value")
    assert "known_at: a time is ISO 8601 text" in rejects[2]["reason"] and "'last tuesday'" in rejects[2]["reason"]
    assert orjson.loads(rejects[2]["values"])["customer_id"] == "C-4"


def test_a_parquet_file_with_a_timestamp_column_and_no_at_column(tmp_path):
    source = tmp_path / "outcomes.parquet"
    pq.write_table(
        pa.table(
            {
                "id": pa.array([7, 8], pa.int64()),
                "y": pa.array([0.5, 1.5]),
                "t": pa.array([at("2026-12-04T10:00"), at("2026-12-04T11:00")], pa.timestamp("ms", tz="UTC")),
            }
        ),
        source,
    )
    location = LedgerLocation(tmp_path / "ledger")
    timed = load_labels(location, "churn", source, key="id", label="y", at="t")
    assert (timed.accepted, timed.rejected, timed.rejects_path) == (2, 0, None)
    first = pq.read_table(timed.labels_path).to_pylist()[0]
    assert (first["key"], first["label_value"], first["observed_at"]) == ("7", 0.5, at("2026-12-04T10:00"))

    untimed = load_labels(location, "churn", source, key="id", label="y", now=NOW)
    assert {r["observed_at"] for r in pq.read_table(untimed.labels_path).to_pylist()} == {NOW}


def test_a_missing_column_refuses_the_file_and_writes_nothing(tmp_path):
    source = tmp_path / "outcomes.jsonl"
    source.write_text('{"customer_id": "C-1", "churned": 1}\n')
    location = LedgerLocation(tmp_path / "ledger")
    with pytest.raises(InvalidInput, match=r"outcomes\.jsonl has no column 'label'"):
        load_labels(location, "churn", source, key="customer_id", label="label")
    assert not (tmp_path / "ledger").exists()


def test_a_post_body_checked_then_written(tmp_path):
    location = LedgerLocation(tmp_path / "ledger")
    model, labels = parse_labels(body([{"key": "C-1", "label": 1}, {"prediction_id": "p1", "label": 0}]))
    assert write_labels(location, model, labels) == 2
    [written] = (tmp_path / "ledger" / "labels" / "model=churn").iterdir()
    assert pq.read_table(written).column("prediction_id").to_pylist() == [None, "p1"]
    with pytest.raises(InvalidInput):
        write_labels(location, "churn", [])
