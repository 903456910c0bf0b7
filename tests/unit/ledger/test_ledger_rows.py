"""Entries → Arrow rows: what goes in comes back, category codes as names, missing values as null."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_entries import MODEL, SIGNATURE, error_entry, live_entry, lookup_entry

from foretell.core.feature import Feature
from foretell.core.predictor import Predictions
from foretell.core.schema import Output, Signature
from foretell.ledger.record import SEGMENT_COLUMNS, Entry, new_prediction_id
from foretell.ledger.redaction import keep_mask, redactor
from foretell.ledger.rows import entries_table
from foretell.ledger.settings import LedgerPolicy

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
a_row = st.fixed_dictionaries(
    {
        "tenure": st.none() | finite,
        "plan": st.none() | st.sampled_from(["basic", "standard", "premium"]),
        "email": st.text(max_size=12),
        "seats": st.integers(-(2**62), 2**62),
        "active": st.booleans(),
        "embedding": st.lists(finite, min_size=2, max_size=2),
    }
)


@settings(max_examples=60, deadline=None)
@given(data=st.lists(a_row, min_size=1, max_size=30), cuts=st.lists(st.integers(1, 5), min_size=1, max_size=30))
def test_rows_read_back_as_they_went_in(data: list[dict[str, Any]], cuts: list[int]) -> None:
    entries, start = [], 0
    for size in cuts:
        if start >= len(data):
            break
        part = data[start : start + size]
        entries.append(live_entry(part, keys=[f"k{start + i}" for i in range(len(part))]))
        start += len(part)
    if start < len(data):
        entries.append(live_entry(data[start:]))
    table = entries_table(entries, LedgerPolicy(), None)
    assert table.column_names == [*SEGMENT_COLUMNS, "inputs", "outputs"]
    assert table.num_rows == len(data)
    assert table.column("inputs").to_pylist() == data
    expected_scores = [
        (row["tenure"] or 0.0)
        + (["basic", "standard", "premium"].index(row["plan"]) if row["plan"] else 0.0)
        + row["seats"]
        for row in data
    ]
    scores = [row["score"] for row in table.column("outputs").to_pylist()]
    assert np.allclose(scores, expected_scores, rtol=1e-12, atol=0)
    ids = table.column("prediction_id").to_pylist()
    pairs = list(zip(ids, table.column("row").to_pylist(), strict=True))
    assert len(set(pairs)) == len(pairs)
    assert [ids.count(e.prediction_id) for e in entries] == [e.rows for e in entries]
    keys = table.column("key").to_pylist()
    assert keys[:start] == [f"k{i}" for i in range(start)]
    assert keys[start:] == [None] * (len(data) - start)


def test_every_kind_of_entry_in_one_table() -> None:
    live = live_entry(
        [{"tenure": 3.0, "plan": "premium", "email": "a@b", "seats": 1, "active": True, "embedding": [1, 2]}]
    )
    failed = error_entry()
    looked_up = lookup_entry("C-1", 0.25)
    table = entries_table([live, failed, looked_up], LedgerPolicy(), None)
    got = {row["prediction_id"]: row for row in table.to_pylist()}
    assert got[live.prediction_id]["status"] == "ok"
    assert got[live.prediction_id]["inputs"]["plan"] == "premium"
    assert got[live.prediction_id]["outputs"] == {"score": 3.0 + 2 + 1}
    assert got[live.prediction_id]["version"] == 1 and got[live.prediction_id]["sha256"] == MODEL.info.sha256
    assert got[failed.prediction_id]["status"] == "error"
    assert got[failed.prediction_id]["error"] == failed.error
    assert got[failed.prediction_id]["inputs"] is None and got[failed.prediction_id]["outputs"] is None
    assert got[failed.prediction_id]["version"] is None
    assert got[looked_up.prediction_id]["source"] == "precomputed"
    assert got[looked_up.prediction_id]["key"] == "C-1"
    assert got[looked_up.prediction_id]["outputs"] == {"score": 0.25}
    assert table.schema.field("predicted_at").type == pa.timestamp("us", tz="UTC")
    at = got[live.prediction_id]["predicted_at"].timestamp()
    assert math.isclose(at, live.predicted_at, abs_tol=1e-5)


def test_label_proba_and_top_k_outputs_of_different_k() -> None:
    signature = Signature(
        (Feature("x"),),
        (Output("label", "label", "string"), Output("proba", "proba", shape=(2,), classes=("no", "yes"))),
    )
    topk = Signature((Feature("x"),), (Output("items", "topk_items", "int64"),))

    def entry(sig: Signature, n: int, columns: dict[str, np.ndarray]) -> Entry:
        frame = sig.coerce([{"x": float(i)} for i in range(n)]).frame
        predictions = Predictions(columns, sig.outputs, n)
        return Entry(
            new_prediction_id(),
            "m",
            source="live",
            endpoint="infer",
            signature=sig,
            frame=frame,
            predictions=predictions,
        )

    labels = np.array(["no", "yes"], dtype=object)
    a = entry(signature, 2, {"label": labels, "proba": np.array([[0.9, 0.1], [0.2, 0.8]])})
    b = entry(topk, 1, {"items": np.array([[3, 1, 2]])})
    c = entry(topk, 1, {"items": np.array([[7, 8]])})
    table = entries_table([a, b, c], LedgerPolicy(), None)
    outputs = table.column("outputs").to_pylist()
    assert outputs[0] == {"label": "no", "proba": [0.9, 0.1], "items": None}
    assert outputs[1]["proba"] == [0.2, 0.8]
    assert outputs[2]["items"] == [3, 1, 2] and outputs[3]["items"] == [7, 8]


def test_inputs_policy_picks_fields_and_redaction_hashes_them() -> None:
    data: list[dict[str, Any]] = [
        {"tenure": 1.0, "plan": "basic", "email": "a@x", "seats": 2, "active": True, "embedding": [0, 0]},
        {"tenure": 2.0, "plan": None, "email": "a@x", "seats": 3, "active": False, "embedding": [0, 0]},
    ]
    entry = live_entry(data)
    none = entries_table([entry], LedgerPolicy(inputs="none"), None)
    assert none.column("inputs").null_count == 2
    some = entries_table(
        [entry], LedgerPolicy(inputs=("email", "plan", "absent"), redact=("email", "plan")), redactor(b"k" * 32)
    )
    inputs = some.column("inputs").to_pylist()
    assert list(inputs[0]) == ["plan", "email"]  # signature order, unknown names skipped
    assert inputs[0]["email"] == inputs[1]["email"] != "a@x" and len(inputs[0]["email"]) == 32
    assert inputs[1]["plan"] is None  # a missing value stays missing, not a hash of nothing
    other_key = entries_table([entry], LedgerPolicy(redact=("email",)), redactor(b"j" * 32))
    assert other_key.column("inputs").to_pylist()[0]["email"] != inputs[0]["email"]


def test_sampling_keeps_a_key_or_drops_it_everywhere() -> None:
    entries = [lookup_entry(f"C-{i}", 0.5) for i in range(4000)]
    table = entries_table(entries, LedgerPolicy(), None)
    kept = keep_mask(table, 0.3)
    assert 0.26 < kept.mean() < 0.34
    again = keep_mask(entries_table([lookup_entry(f"C-{i}", 0.1) for i in range(4000)], LedgerPolicy(), None), 0.3)
    assert (kept == again).all()
    assert keep_mask(table, 1.0).all()


def test_signature_must_be_the_entry_s_own() -> None:
    assert SIGNATURE is MODEL.info.signature
