"""Signature.coerce: every input form, every error case, and properties over malformed input."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foretell.core.feature import Feature
from foretell.core.schema import Output, Signature
from foretell.errors import InvalidInput

SIG = Signature(
    (
        Feature("tenure", "float64"),
        Feature("age", "float64", allow_missing=True),
        Feature("plan", "category", categories=("basic", "standard", "premium")),
        Feature("calls", "int64"),
    ),
    (Output("score", "score"),),
)
ROWS: list[dict[str, Any]] = [
    {"tenure": 12.0, "age": 40.0, "plan": "basic", "calls": 1},
    {"tenure": 3.5, "age": None, "plan": "premium", "calls": 0},
    {"tenure": 0.0, "age": 71.0, "plan": "standard", "calls": 7},
]
EXPECTED = {
    "tenure": [12.0, 3.5, 0.0],
    "age": [40.0, math.nan, 71.0],
    "plan": [0.0, 2.0, 1.0],
    "calls": [1, 0, 7],
}


def assert_expected(columns) -> None:
    assert columns.ok, columns.errors
    assert list(columns.frame) == ["tenure", "age", "plan", "calls"]
    for name, values in EXPECTED.items():
        np.testing.assert_array_equal(columns.frame[name], np.array(values))
    assert columns.frame["calls"].dtype == np.int64
    assert columns.rows.tolist() == [0, 1, 2]


def test_list_of_dicts():
    assert_expected(SIG.coerce(ROWS))


def test_list_of_value_lists_in_signature_order():
    assert_expected(SIG.coerce([list(r.values()) for r in ROWS]))


def test_pandas_dataframe():
    assert_expected(SIG.coerce(pd.DataFrame(ROWS)))


def test_pandas_nullable_dtypes():
    frame = pd.DataFrame(ROWS).astype({"age": "Float64", "calls": "Int64", "plan": "category"})
    assert_expected(SIG.coerce(frame))


def test_arrow_table_and_record_batch():
    table = pa.Table.from_pylist(ROWS)
    assert_expected(SIG.coerce(table))
    assert_expected(SIG.coerce(table.to_batches()[0]))


def test_arrow_dictionary_column():
    table = pa.Table.from_pylist(ROWS)
    table = table.set_column(2, "plan", table.column("plan").dictionary_encode())
    assert_expected(SIG.coerce(table))


def test_two_dimensional_array_uses_codes_for_categories():
    matrix = np.array([[12.0, 40.0, 0, 1], [3.5, np.nan, 2, 0], [0.0, 71.0, 1, 7]])
    assert_expected(SIG.coerce(matrix))


def test_one_dict_is_one_row():
    columns = SIG.coerce(ROWS[0])
    assert columns.ok and columns.frame.n_rows == 1
    assert columns.frame.matrix().tolist() == [[12.0, 40.0, 0.0, 1.0]]


def test_float_matrix_signature_keeps_the_array_without_copy():
    sig = Signature((Feature("a"), Feature("b")), (Output("score", "score"),))
    matrix = np.arange(6, dtype=np.float64).reshape(3, 2)
    assert sig.coerce(matrix).frame.matrix() is matrix


@pytest.mark.parametrize(
    ("row", "field", "reason"),
    [
        ({"age": 1.0, "plan": "basic", "calls": 1}, "tenure", "missing"),
        ({"tenure": "12", "age": 1.0, "plan": "basic", "calls": 1}, "tenure", "expected a number (float64)"),
        ({"tenure": True, "age": 1.0, "plan": "basic", "calls": 1}, "tenure", "expected a number (float64)"),
        ({"tenure": math.nan, "age": 1.0, "plan": "basic", "calls": 1}, "tenure", "does not accept missing"),
        ({"tenure": None, "age": 1.0, "plan": "basic", "calls": 1}, "tenure", "does not accept missing"),
        ({"tenure": math.inf, "age": 1.0, "plan": "basic", "calls": 1}, "tenure", "finite"),
        ({"tenure": 10**400, "age": 1.0, "plan": "basic", "calls": 1}, "tenure", "finite"),
        ({"tenure": 1.0, "age": 1.0, "plan": 10**400, "calls": 1}, "plan", "integer code 0..2"),
        ({"tenure": 1.0, "age": 1.0, "plan": "gold", "calls": 1}, "plan", "one of 'basic', 'standard', 'premium'"),
        ({"tenure": 1.0, "age": 1.0, "plan": 3, "calls": 1}, "plan", "integer code 0..2"),
        ({"tenure": 1.0, "age": 1.0, "plan": "basic", "calls": 1.5}, "calls", "whole number"),
        ({"tenure": 1.0, "age": 1.0, "plan": "basic", "calls": 2**70}, "calls", "whole number that fits int64"),
        ({"tenure": 1.0, "age": 1.0, "plan": "basic", "calls": 1, "colour": "red"}, "colour", "not a feature"),
    ],
)
def test_bad_values_are_named_by_row_and_field(row, field, reason):
    for batch in ([row], [ROWS[0], row]):  # the one-row fast path and the bulk path say the same
        columns = SIG.coerce(batch)
        bad_row = len(batch) - 1
        assert [e.row for e in columns.errors] == [bad_row]
        error = columns.errors[0]
        assert error.field == field
        assert reason in error.describe()
        assert columns.rows.tolist() == list(range(bad_row))


def test_extra_fields_ignored_on_request():
    row = {**ROWS[0], "customer_id": "C-1"}
    assert SIG.coerce([row], extra="ignore").ok
    assert SIG.with_extra("ignore").coerce([row]).ok


def test_every_problem_of_a_row_is_reported():
    columns = SIG.coerce([{"tenure": "x", "plan": "gold", "calls": 1, "age": 2.0}])
    assert sorted((e.field for e in columns.errors), key=str) == ["plan", "tenure"]


def test_value_list_of_wrong_length():
    columns = SIG.coerce([[1.0, 2.0]])
    assert "expected 4 values in signature order" in columns.errors[0].describe()


def test_dataframe_missing_and_unknown_columns_raise():
    frame = pd.DataFrame(ROWS).drop(columns=["calls"]).assign(colour="red")
    with pytest.raises(
        InvalidInput, match=r"missing feature column\(s\) \['calls'\].*unknown column\(s\) \['colour'\]"
    ):
        SIG.coerce(frame)
    with pytest.raises(InvalidInput, match="missing feature column"):
        SIG.coerce(frame, extra="ignore")


def test_dataframe_bad_cells_become_row_errors():
    frame = pd.DataFrame(ROWS)
    frame.loc[1, "tenure"] = np.nan
    frame["plan"] = ["basic", "platinum", "premium"]
    columns = SIG.coerce(frame)
    assert [(e.row, e.field) for e in columns.errors] == [(1, "tenure"), (1, "plan")]
    assert columns.rows.tolist() == [0, 2]
    assert columns.frame["tenure"].tolist() == [12.0, 0.0]


def test_string_column_for_a_number_feature():
    frame = pd.DataFrame(ROWS).astype({"tenure": str})
    columns = SIG.coerce(frame)
    assert {e.row for e in columns.errors} == {0, 1, 2}
    assert "expected a number" in columns.errors[0].describe()


def test_matrix_of_wrong_width_raises():
    with pytest.raises(InvalidInput, match=r"one column per feature in signature order \(4"):
        SIG.coerce(np.zeros((2, 3)))


def test_unsupported_input_type():
    with pytest.raises(InvalidInput, match="cannot read"):
        SIG.coerce(object())


def test_bool_string_and_vector_features():
    sig = Signature(
        (Feature("flag", "bool"), Feature("name", "string"), Feature("emb", "float32", shape=(3,))),
        (Output("score", "score"),),
    )
    good = sig.coerce([{"flag": True, "name": "x", "emb": [1, 2, 3]}])
    assert good.ok
    assert good.frame["emb"].shape == (1, 3) and good.frame["emb"].dtype == np.float32
    bad = sig.coerce([{"flag": 1, "name": 5, "emb": [1, 2]}])
    assert [e.field for e in bad.errors] == ["flag", "name", "emb"]


def test_one_feature_model_takes_scalars():
    sig = Signature((Feature("user_id", "int64"),), (Output("score", "score"),))
    columns = sig.coerce([17, 42])
    assert columns.frame["user_id"].tolist() == [17, 42]
    assert sig.coerce(17).frame["user_id"].tolist() == [17]


# -- properties -----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([10**400, -(10**400), 2**64])
    | st.floats()
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
field_names = st.sampled_from(["tenure", "age", "plan", "calls", "other"])
rows = st.dictionaries(field_names, json_values, max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.lists(rows | json_values, max_size=6))
def test_any_json_rows_coerce_or_report_never_crash(batch):
    columns = SIG.coerce(batch)
    assert columns.n_input == len(batch)
    bad = {e.row for e in columns.errors}
    assert None not in bad
    assert bad | set(columns.rows.tolist()) == set(range(len(batch)))
    assert not bad & set(columns.rows.tolist())
    assert columns.frame.n_rows == len(columns.rows)
    for error in columns.errors:
        assert error.describe()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "tenure": st.floats(allow_nan=False, allow_infinity=False, width=64),
                "age": st.none() | st.floats(min_value=0, max_value=120),
                "plan": st.sampled_from(["basic", "standard", "premium"]),
                "calls": st.integers(min_value=-(2**63), max_value=2**63 - 1),
            }
        ),
        min_size=1,
        max_size=8,
    )
)
def test_valid_rows_round_trip_through_every_form(batch):
    reference = SIG.coerce(batch)
    assert reference.ok
    for form in (pd.DataFrame(batch), pa.Table.from_pylist(batch)):
        other = SIG.coerce(form)
        assert other.ok, other.errors
        for name in reference.frame:
            np.testing.assert_array_equal(other.frame[name], reference.frame[name])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.floats() | st.integers(min_value=-5, max_value=5), min_size=4, max_size=4), max_size=6))
def test_any_numeric_matrix_coerces_or_reports(values):
    matrix = np.array(values, dtype=np.float64).reshape(-1, 4)
    columns = SIG.coerce(matrix)
    assert columns.frame.n_rows + len({e.row for e in columns.errors}) == len(values)
    assert np.isfinite(columns.frame["tenure"]).all()


# -- edge cases found in review -------------------------------------------------------------------

INTS = Signature((Feature("i", "int64"),), (Output("score", "score"),))


@pytest.mark.parametrize(
    "data",
    [
        [{"i": 2**63}],
        np.array([[2**64 - 1]], dtype=np.uint64),
        np.array([[2.0**63]]),
        pd.DataFrame({"i": np.array([2**63], dtype=np.uint64)}),
    ],
)
def test_ints_out_of_range_are_refused_not_wrapped(data):
    columns = INTS.coerce(data)
    assert [e.row for e in columns.errors] == [0]
    assert "whole number that fits int64" in columns.errors[0].describe()


def test_missing_int_is_reported_as_missing():
    columns = INTS.coerce(pd.DataFrame({"i": pd.array([1, None], dtype="Int64")}))
    assert "not a missing one" in columns.errors[0].describe()


def test_a_row_refused_for_an_unknown_key_is_not_predicted_beside_a_shapeless_row():
    columns = SIG.coerce([ROWS[0] | {"z": 3}, [1.0], ROWS[1]])
    assert columns.rows.tolist() == [2]
    assert {e.row for e in columns.errors} == {0, 1}


def test_repeated_and_non_string_column_names():
    with pytest.raises(InvalidInput, match="repeated column names"):
        SIG.coerce(pd.DataFrame([[1.0, 2.0, "basic", 1]], columns=["tenure", "tenure", "plan", "calls"]))
    table = pa.table([[1.0], [2.0]], names=["a", "a"])
    with pytest.raises(InvalidInput, match="repeated column names"):
        Signature((Feature("a"),), (Output("score", "score"),)).coerce(table)
    numbered = Signature((Feature("0"), Feature("1")), (Output("score", "score"),))
    assert numbered.coerce(pd.DataFrame({0: [1.0], 1: [2.0]})).ok


def test_unhashable_category_cells_become_row_errors():
    frame = pd.DataFrame(ROWS)
    frame["plan"] = pd.Series([["basic"], "basic", {"x": 1}], dtype=object)
    columns = SIG.coerce(frame)
    assert [(e.row, e.field) for e in columns.errors] == [(0, "plan"), (2, "plan")]


def test_masked_and_structured_arrays_are_refused_with_a_reason():
    with pytest.raises(InvalidInput, match="masked arrays"):
        SIG.coerce(np.ma.masked_array(np.zeros((1, 4)), mask=True))
    with pytest.raises(InvalidInput, match="structured array"):
        SIG.coerce(np.zeros(2, dtype=[("tenure", "f8"), ("age", "f8")]))


def test_datetime_column_is_refused_showing_the_datetime():
    frame = pd.DataFrame(ROWS).assign(tenure=pd.to_datetime(["2020-01-01"] * 3))
    error = SIG.coerce(frame).errors[0]
    assert "2020-01-01" in error.describe()


def test_unknown_extra_policy_is_refused():
    with pytest.raises(InvalidInput, match="extra must be"):
        SIG.coerce(ROWS, extra="bogus")  # type: ignore[arg-type]


FLOATS = Signature(
    (
        Feature("x", "float64"),
        Feature("y", "float64", allow_missing=True),
        Feature("plan", "category", categories=("basic", "standard", "premium"), allow_missing=True),
    ),
    (Output("score", "score"),),
)
CELLS = st.sampled_from([0.0, 1.0, 2.0, 3.0, -1.0, 0.5, 1e308, -1e308, math.nan, math.inf, -math.inf])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(CELLS, min_size=3, max_size=3), min_size=1, max_size=5))
def test_a_float_matrix_is_refused_cell_for_cell_as_the_same_rows_as_lists(values):
    # The matrix path clears clean matrices with a few whole-matrix comparisons; it must refuse
    # exactly what the one-value rules refuse when the same rows come as value lists.
    as_matrix = FLOATS.coerce(np.array(values, dtype=np.float64))
    as_lists = FLOATS.coerce(values)
    assert [(e.row, e.field) for e in as_matrix.errors] == [(e.row, e.field) for e in as_lists.errors]
    assert as_matrix.rows.tolist() == as_lists.rows.tolist()


OPTIONAL = Signature(
    (Feature("user_id", "int64"), Feature("ratings", "string", allow_missing=True, required=False)),
    (Output("score", "score"),),
)


@pytest.mark.parametrize(
    "data",
    [
        pa.table({"user_id": [1, 2]}),
        pd.DataFrame({"user_id": [1, 2]}),
        [{"user_id": 1}, {"user_id": 2}],
    ],
)
def test_an_optional_feature_may_be_left_out_and_is_then_missing(data):
    columns = OPTIONAL.coerce(data)
    assert columns.ok, columns.errors
    assert columns.frame["user_id"].tolist() == [1, 2]
    assert columns.frame["ratings"].tolist() == [None, None]


def test_an_optional_feature_given_is_used_and_a_required_one_left_out_is_refused():
    columns = OPTIONAL.coerce([{"user_id": 1, "ratings": '{"12": 5}'}, {"ratings": "{}"}])
    assert columns.frame["ratings"].tolist() == ['{"12": 5}']
    assert [(e.row, e.field) for e in columns.errors] == [(1, "user_id")]
    with pytest.raises(InvalidInput, match=r"missing feature column\(s\) \['user_id'\]"):
        OPTIONAL.coerce(pa.table({"ratings": ["{}"]}))


def test_an_optional_float_feature_left_out_of_the_one_row_fast_path_is_nan():
    signature = Signature((Feature("a"), Feature("b", allow_missing=True, required=False)), (Output("score", "score"),))
    columns = signature.coerce({"a": 1.0})
    assert columns.ok and math.isnan(columns.frame["b"][0])
    assert [e.field for e in signature.coerce({"a": 1.0, "c": 2.0}).errors] == ["c"]  # extras still counted


def test_an_optional_feature_must_allow_missing_values_and_survives_the_round_trip():
    from foretell.errors import InvalidSignature

    with pytest.raises(InvalidSignature, match="must allow missing values"):
        Feature("x", required=False)
    assert Signature.from_dict(OPTIONAL.to_dict()) == OPTIONAL
    assert OPTIONAL.to_dict()["inputs"][1]["required"] is False


def test_a_signature_plan_is_worked_out_once_kept_in_coerce_and_dropped_with_the_signature():
    import gc

    from foretell.core import coerce

    signature = Signature(SIG.inputs, SIG.outputs)
    assert coerce.plan_of(signature) is coerce.plan_of(signature)
    # An equal signature is another object with a plan of its own: the cache goes by identity.
    assert coerce.plan_of(SIG) is not coerce.plan_of(signature)
    assert not hasattr(signature, "_plan")  # nothing is written onto the frozen signature
    key = id(signature)
    assert key in coerce._plans
    del signature
    gc.collect()
    assert key not in coerce._plans
