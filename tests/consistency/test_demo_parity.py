"""One prediction path: the demo models give the same answer whatever form the rows come in.

Batch (an Arrow table or DataFrame, as a batch job reads them), a request body (a list of
dicts), and row by row (as lone real-time requests arrive) must agree; the conformance
suite also checks that a batch equals its parts joined.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import foretell
from foretell.testing import check_model

SIZES = {"customers": 2_000, "users": 300, "movies": 200}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("parity")
    foretell.demo_init(home=home, seed=3, **SIZES)
    return home


@pytest.fixture(scope="module")
def customers(home: Path):
    churn = foretell.load("churn@production", home=home)
    return pq.read_table(home / "demo" / "customers.parquet").select(churn.signature.input_names).slice(0, 300)


def test_churn_batch_equals_request_equals_row_by_row(home: Path, customers) -> None:
    churn = foretell.load("churn@production", home=home)
    records = customers.to_pylist()
    from_arrow = churn.predict_batch(customers)
    from_pandas = churn.predict_batch(customers.to_pandas())
    from_dicts = churn.predict_batch(records)
    one_by_one = [churn.predict(r) for r in records]
    for name in ("score", "label", "proba"):
        np.testing.assert_array_equal(from_pandas.column(name), from_arrow.column(name))
        np.testing.assert_array_equal(from_dicts.column(name), from_arrow.column(name))
    # Tree ensembles sum the same leaves whatever the batch size: equality is exact, not approximate.
    assert [r["score"] for r in one_by_one] == from_arrow.column("score").tolist()
    assert [r["label"] for r in one_by_one] == from_arrow.column("label").tolist()
    check_model(churn, records[:60])


def test_churn_missing_values_take_the_same_path(home: Path, customers) -> None:
    churn = foretell.load("churn@production", home=home)
    records = customers.slice(0, 40).to_pylist()
    with_gaps = [{**r, "age": None} for r in records]
    batch = churn.predict_batch(with_gaps).column("score").tolist()
    assert batch == [churn.predict(r)["score"] for r in with_gaps]


def test_recommender_batch_equals_row_by_row(home: Path) -> None:
    movies = foretell.load("movies@production", home=home)
    users = [*range(1, 41), 10_000_000]  # the last one is unknown: cold-start list
    batch = movies.predict_batch([{"user_id": u} for u in users], k=7)
    for i, user in enumerate(users):
        alone = movies.predict({"user_id": user}, k=7)
        assert alone["items"] == batch.column("items")[i].tolist()
        np.testing.assert_allclose(alone["scores"], batch.column("scores")[i], rtol=1e-12, atol=1e-12)
    check_model(movies, [{"user_id": u} for u in users[:20]], k=5, atol=1e-12, rtol=1e-12)
