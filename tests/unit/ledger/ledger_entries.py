"""Entries built the way the server builds them, from a real signature, real coercion and a real model call."""

from __future__ import annotations

import io
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from foretell.core.feature import Feature
from foretell.core.model import Model
from foretell.core.schema import Output, Signature
from foretell.ledger.record import Entry, Source, new_prediction_id
from foretell.ledger.segments import LedgerLocation
from foretell.testing.models import SumModel, model_of

SIGNATURE = Signature(
    (
        Feature("tenure", "float64", allow_missing=True),
        Feature("plan", "category", allow_missing=True, categories=("basic", "standard", "premium")),
        Feature("email", "string"),
        Feature("seats", "int64"),
        Feature("active", "bool"),
        Feature("embedding", "float64", shape=(2,)),
    ),
    (Output("score", "score"),),
)
MODEL: Model = model_of(SumModel(["tenure", "plan", "seats"]), SIGNATURE, "churn")


def rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "tenure": None if i % 4 == 3 else float(i),
            "plan": None if i % 5 == 4 else ("basic", "standard", "premium")[i % 3],
            "email": f"user{i}@example.com",
            "seats": i,
            "active": i % 2 == 0,
            "embedding": [float(i), -float(i)],
        }
        for i in range(start, start + n)
    ]


def live_entry(
    data: list[dict[str, Any]],
    *,
    keys: list[str | None] | None = None,
    source: Source = "live",
    model: Model = MODEL,
    predicted_at: float | None = None,
) -> Entry:
    columns = model.coerce(data)
    columns.raise_for_errors()
    predictions = model.predict_columns(columns)
    return Entry(
        new_prediction_id(),
        model.info.name,
        source=source,
        endpoint="infer",
        version=model.info.version,
        sha256=model.info.sha256,
        predictor="original",
        signature=model.info.signature,
        frame=columns.frame,
        predictions=predictions,
        keys=keys,
        latency_ms=1.5,
        batch_size=len(data),
        predicted_at=predicted_at,
    )


def error_entry(model: str = "churn", reason: str = "row 0: 'plan': unknown category 'gold'") -> Entry:
    return Entry(new_prediction_id(), model, source="live", endpoint="infer", status="error", error=reason)


def lookup_entry(key: str, score: float, model: str = "churn") -> Entry:
    return Entry(
        new_prediction_id(),
        model,
        source="precomputed",
        endpoint="lookup",
        version=1,
        outputs=[{"score": score}],
        keys=[key],
    )


def read_all(location: LedgerLocation, model: str = "churn") -> pa.Table:
    """Every visible row of `model`, through the reader's rule, as one table (struct fields unified by name)."""
    tables = []
    for path in location.segment_files(model):
        data = location.read_bytes(path)
        assert data is not None, path
        tables.append(pq.read_table(io.BytesIO(data)))
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables, promote_options="permissive")


def query(location: LedgerLocation, sql: str, model: str = "churn") -> list[tuple[Any, ...]]:
    """`sql` over `ledger` (the visible local segments of `model`, read by DuckDB as a reader would)."""
    files = location.segment_files(model)
    connection = duckdb.connect()
    connection.execute(f"create view ledger as select * from read_parquet({files!r}, union_by_name=true)")
    return connection.execute(sql).fetchall()
