"""The churn demo: generated customers look like a store's, and a model learns who leaves."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from foretell.demo.churn import (
    CATEGORIES,
    CHURN_SIGNATURE,
    NUMERIC_FEATURES,
    _customer_ids,
    features_matrix,
    generate_customers,
    train_churn,
)
from foretell.demo.evaluation import churn_auc
from foretell.errors import InvalidInput


@pytest.fixture(scope="module")
def customers() -> pa.Table:
    return generate_customers(6_000, seed=7)


def test_same_seed_same_table_and_another_seed_another(customers: pa.Table) -> None:
    assert generate_customers(6_000, seed=7).equals(customers)
    assert not generate_customers(6_000, seed=8).equals(customers)


def test_columns_are_id_then_signature_features_then_label(customers: pa.Table) -> None:
    assert customers.schema.names == ["customer_id", *CHURN_SIGNATURE.input_names, "churned"]
    assert 25 <= len(CHURN_SIGNATURE.inputs) <= 35
    assert customers.schema.field("churned").type == pa.int64()
    for name in CATEGORIES:
        assert customers.schema.field(name).type == pa.string()
    for name in NUMERIC_FEATURES:
        assert customers.schema.field(name).type == pa.float64()


def test_customer_ids_are_unique_and_zero_padded(customers: pa.Table) -> None:
    ids = customers.column("customer_id").to_pylist()
    assert ids[:2] == ["C-000001", "C-000002"]
    assert ids[-1] == "C-006000"
    assert len(set(ids)) == len(ids)
    assert _customer_ids(1_234_567)[-1].as_py() == "C-1234567"  # past a million the ids grow a digit


def test_signature_declares_categories_and_the_classifier_outputs() -> None:
    categories = {f.name: f.categories for f in CHURN_SIGNATURE.inputs if f.dtype == "category"}
    assert categories["plan"] == ("basic", "standard", "premium")
    assert categories["contract"] == ("monthly", "annual", "two_year")
    assert set(categories) == set(CATEGORIES)
    assert all(f.allow_missing for f in CHURN_SIGNATURE.inputs)
    assert CHURN_SIGNATURE.output_names == ["score", "label", "proba"]
    assert CHURN_SIGNATURE.output("proba").classes == (0, 1)
    assert CHURN_SIGNATURE.is_float_matrix  # so the sklearn flavor hands the model one matrix


def test_values_are_in_realistic_ranges(customers: pa.Table) -> None:
    def column(name: str) -> np.ndarray:
        return customers.column(name).to_numpy(zero_copy_only=False)

    assert np.nanmin(column("tenure_months")) >= 1 and np.nanmax(column("tenure_months")) <= 72
    assert np.nanmin(column("age")) >= 18 and np.nanmax(column("age")) <= 85
    assert 30 < np.nanmean(column("monthly_spend")) < 80
    assert np.all(column("total_spend") >= column("monthly_spend") * 0.7)
    assert np.all(column("support_calls_30d") <= column("support_calls_90d"))
    assert np.all(column("returns_90d") <= column("orders_90d"))
    for rate in ("cart_abandon_rate", "discount_usage_rate", "email_open_rate"):
        assert np.nanmin(column(rate)) >= 0 and np.nanmax(column(rate)) <= 1
    assert set(np.unique(column("autopay"))) == {0.0, 1.0}
    assert np.nanmax(column("nps_score")) <= 10
    churn_rate = column("churned").mean()
    assert 0.15 < churn_rate < 0.35


def test_some_values_are_missing_where_real_tables_have_holes(customers: pa.Table) -> None:
    n = customers.num_rows
    assert 0.03 < customers.column("age").null_count / n < 0.1
    assert customers.column("nps_score").null_count / n > 0.5  # most customers skip the survey
    no_calls = pc.equal(customers.column("support_calls_90d"), 0.0)
    resolution = customers.column("avg_resolution_hours")
    assert pc.all(pc.equal(pc.is_null(resolution), no_calls)).as_py()
    assert customers.column("tenure_months").null_count == 0
    assert customers.column("plan").null_count == 0


def test_churn_follows_the_story(customers: pa.Table) -> None:
    churned = customers.column("churned").to_numpy()
    contract = np.asarray(customers.column("contract").to_pylist())
    calls = customers.column("support_calls_30d").to_numpy()
    tenure = customers.column("tenure_months").to_numpy()
    assert churned[contract == "monthly"].mean() > 2 * churned[contract == "two_year"].mean()
    assert churned[calls >= 2].mean() > churned[calls == 0].mean()
    assert churned[tenure <= 6].mean() > churned[tenure >= 36].mean()


def test_features_matrix_matches_what_the_signature_gives_a_model(customers: pa.Table) -> None:
    matrix = features_matrix(customers)
    coerced = CHURN_SIGNATURE.coerce(customers, extra="ignore")
    assert coerced.ok
    assert matrix.shape == (customers.num_rows, len(CHURN_SIGNATURE.inputs))
    assert matrix.flags.c_contiguous
    np.testing.assert_array_equal(matrix, coerced.frame.matrix(), strict=True)
    assert set(np.unique(matrix[:, CHURN_SIGNATURE.input_names.index("plan")])) == {0.0, 1.0, 2.0}


def test_features_matrix_refuses_an_unknown_category_or_a_missing_column(customers: pa.Table) -> None:
    plans = customers.column("plan").to_pylist()
    plans[3] = "platinum"
    table = customers.set_column(customers.schema.get_field_index("plan"), "plan", pa.array(plans))
    with pytest.raises(InvalidInput, match=re.escape("'platinum'")):
        features_matrix(table)
    with pytest.raises(InvalidInput, match="tenure_months"):
        features_matrix(customers.drop_columns(["tenure_months"]))


def test_model_learns_churn_well_on_held_out_customers(customers: pa.Table) -> None:
    train, holdout = customers.slice(0, 5_000), customers.slice(5_000)
    model = train_churn(train, seed=7)
    assert not hasattr(model, "feature_names_in_")  # fitted on a matrix, as the sklearn flavor predicts
    assert model.n_features_in_ == len(CHURN_SIGNATURE.inputs)
    categorical = [f.dtype == "category" for f in CHURN_SIGNATURE.inputs]
    assert list(model.is_categorical_) == categorical
    auc = churn_auc(model, features_matrix(holdout), holdout.column("churned").to_numpy())
    assert auc > 0.75


def test_training_is_deterministic(customers: pa.Table) -> None:
    train = customers.slice(0, 1_000)
    first = train_churn(train, seed=3).predict_proba(features_matrix(train))
    second = train_churn(train, seed=3).predict_proba(features_matrix(train))
    np.testing.assert_array_equal(first, second)


def test_nonsense_size_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one customer"):
        generate_customers(0)
