"""Value domains: their forms, their round trip through the signature, and coercion refusing what lies outside."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foretell.core.domain import Domain, parse_domain, parse_domain_option
from foretell.core.feature import Feature
from foretell.core.schema import Output, Signature
from foretell.errors import InvalidSignature

OUT = (Output("score", "score"),)
TENURE = Domain(0, 120)
SIG = Signature(
    (
        Feature("tenure_months", "float64", allow_missing=True, domain=TENURE),
        Feature("calls", "int64", domain=Domain(allowed=(0.0, 1.0, 2.0))),
        Feature("plan", "string", domain=Domain(allowed=("basic", "pro"))),
        Feature("free", "float64"),
    ),
    OUT,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1:5", Domain(1, 5)),
        ("0:", Domain(0, None)),
        (":120", Domain(None, 120)),
        ("-2.5:2.5", Domain(-2.5, 2.5)),
        ("1,2,3", Domain(allowed=(1.0, 2.0, 3.0))),
        ("basic, pro", Domain(allowed=("basic", "pro"))),
        ("7", Domain(allowed=(7.0,))),
    ],
)
def test_the_option_forms_read_as_domains_and_print_back(text: str, expected: Domain) -> None:
    assert parse_domain(text) == expected
    assert parse_domain(str(expected)) == expected
    assert Domain.from_dict(expected.to_dict()) == expected


@pytest.mark.parametrize(
    ("option", "words"),
    [
        ("rating", "expected NAME=MIN:MAX"),
        ("=1:5", "expected NAME=MIN:MAX"),
        ("rating=a:5", "expected MIN:MAX"),
        ("rating=5:1", "min 5 is above its max 1"),
        ("rating=:", "needs a min, a max or its allowed values"),
        ("rating=inf:", "expected MIN:MAX"),
        ("rating=1,1", "repeat"),
        ("rating=", "expected MIN:MAX"),
    ],
)
def test_a_bad_domain_option_names_the_value_and_the_expected_form(option: str, words: str) -> None:
    with pytest.raises(InvalidSignature, match=words):
        parse_domain_option(option)


def test_an_option_gives_its_name_and_domain() -> None:
    assert parse_domain_option(" rating = 1:5") == ("rating", Domain(1, 5))
    assert parse_domain_option("plan=basic,pro") == ("plan", Domain(allowed=("basic", "pro")))


def test_a_domain_is_a_range_or_a_set_and_never_both_or_neither() -> None:
    with pytest.raises(InvalidSignature, match="not both"):
        Domain(0, 1, allowed=(0.0,))
    with pytest.raises(InvalidSignature, match="all finite numbers or all strings"):
        Domain(allowed=(1.0, "a"))  # type: ignore[arg-type]
    with pytest.raises(InvalidSignature, match="finite number"):
        Domain(math.nan, 1)
    with pytest.raises(InvalidSignature, match="unknown domain keys"):
        Domain.from_dict({"low": 1})


def test_domains_round_trip_through_the_signature_and_old_signatures_load_unchanged() -> None:
    again = Signature.from_dict(SIG.to_dict())
    assert again == SIG
    assert SIG.to_dict()["inputs"][0]["domain"] == {"min": 0, "max": 120}
    assert SIG.to_dict()["inputs"][1]["domain"] == {"values": [0, 1, 2]}
    assert "domain" not in SIG.to_dict()["inputs"][3]  # no domain: the dict is what it always was
    old = {"inputs": [{"name": "x", "dtype": "float64"}], "outputs": [{"name": "score", "kind": "score"}]}
    assert Signature.from_dict(old).inputs[0].domain is None
    text_form = {**old, "inputs": [{"name": "x", "dtype": "float64", "domain": "1:5"}]}
    assert Signature.from_dict(text_form).inputs[0].domain == Domain(1, 5)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: Feature("plan", "category", categories=("a", "b"), domain=Domain(allowed=("a",))), "categories"),
        (lambda: Feature("flag", "bool", domain=Domain(0, 1)), "not true/false"),
        (lambda: Feature("v", "float64", shape=(3,), domain=Domain(0, 1)), "not vectors"),
        (lambda: Feature("name", "string", domain=Domain(0, 1)), "set of allowed strings"),
        (lambda: Feature("x", "float64", domain=Domain(allowed=("a",))), "range"),
    ],
)
def test_a_feature_refuses_a_domain_that_cannot_judge_it(make: Any, words: str) -> None:
    with pytest.raises(InvalidSignature, match=words):
        make()


def _messages(data: object) -> list[str]:
    return [e.describe() for e in SIG.coerce(data).errors]


ROWS: list[dict[str, Any]] = [
    {"tenure_months": 12.0, "calls": 1, "plan": "basic", "free": 1e9},
    {"tenure_months": 250.0, "calls": 1, "plan": "pro", "free": 0.0},
    {"tenure_months": None, "calls": 0, "plan": "pro", "free": -1e9},
    {"tenure_months": -3.0, "calls": 5, "plan": "gold", "free": 0.0},
]
EXPECTED = [
    "row 1, field 'tenure_months': above its domain's maximum 120 (domain 0:120); got float 250.0",
    "row 3, field 'tenure_months': below its domain's minimum 0 (domain 0:120); got float -3.0",
    "row 3, field 'calls': not one of its domain's allowed values {0,1,2}; got int 5",
    "row 3, field 'plan': not one of its domain's allowed values {basic,pro}; got str 'gold'",
]


@pytest.mark.parametrize(
    "form",
    [
        lambda rows: rows,
        pd.DataFrame,
        lambda rows: pa.Table.from_pylist(rows),
    ],
    ids=["dicts", "DataFrame", "Arrow"],
)
def test_every_input_form_refuses_the_rows_outside_a_domain_naming_field_bound_and_value(form: Any) -> None:
    columns = SIG.coerce(form(ROWS))
    assert [e.describe() for e in columns.errors] == EXPECTED
    assert columns.rows.tolist() == [0, 2]  # a missing value is not outside its domain
    assert columns.frame["calls"].tolist() == [1, 0]


def test_a_float_matrix_model_refuses_out_of_domain_rows_from_a_matrix_and_from_one_dict() -> None:
    sig = Signature((Feature("a", domain=Domain(0, 1)), Feature("b", allow_missing=True)), OUT)
    matrix = np.array([[0.5, 1.0], [3.0, np.nan], [1.0, 2.0]])
    columns = sig.coerce(matrix)
    assert [e.describe() for e in columns.errors] == [
        "row 1, field 'a': above its domain's maximum 1 (domain 0:1); got float 3.0"
    ]
    assert columns.rows.tolist() == [0, 2]
    assert columns.frame.matrix().tolist() == [[0.5, 1.0], [1.0, 2.0]]
    one = sig.coerce({"a": -0.5, "b": 1.0})
    assert [e.describe() for e in one.errors] == [
        "row 0, field 'a': below its domain's minimum 0 (domain 0:1); got float -0.5"
    ]
    assert one.frame.n_rows == 0
    assert sig.coerce({"a": 1.0, "b": 1.0}).ok


def test_a_type_error_and_a_domain_error_in_other_rows_are_both_reported_in_row_order() -> None:
    columns = SIG.coerce([ROWS[1], {**ROWS[0], "calls": "x"}, ROWS[0]])
    assert [(e.row, e.field) for e in columns.errors] == [(0, "tenure_months"), (1, "calls")]
    assert columns.rows.tolist() == [2]


@settings(max_examples=200, deadline=None)
@given(
    low=st.floats(-1e6, 1e6, allow_nan=False),
    width=st.floats(0, 1e6, allow_nan=False),
    values=st.lists(st.floats(-3e6, 3e6, allow_nan=False), min_size=1, max_size=20),
)
def test_a_value_inside_its_range_is_never_refused_and_one_outside_always_is_naming_the_bound(
    low: float, width: float, values: list[float]
) -> None:
    domain = Domain(low, low + width)
    sig = Signature((Feature("x", domain=domain),), OUT)
    for data in ([{"x": v} for v in values], np.array(values)[:, None], {"x": values[0]}):
        columns = sig.coerce(data)
        rows = values if not isinstance(data, dict) else values[:1]
        outside = [r for r, v in enumerate(rows) if not low <= v <= low + width]
        assert [e.row for e in columns.errors] == outside
        assert columns.rows.tolist() == [r for r in range(len(rows)) if r not in outside]
        for error in columns.errors:
            value = rows[error.row or 0]
            side, bound = ("minimum", low) if value < low else ("maximum", low + width)
            assert error.field == "x"
            assert f"{side} {str(Domain(bound, None))[:-1]} " in error.reason  # the bound, as the option writes it
            assert error.received == value


@settings(max_examples=100, deadline=None)
@given(
    allowed=st.lists(st.integers(-50, 50), min_size=1, max_size=6, unique=True),
    values=st.lists(st.integers(-60, 60), min_size=1, max_size=20),
)
def test_a_value_in_its_allowed_set_is_never_refused_and_any_other_always_is(
    allowed: list[int], values: list[int]
) -> None:
    sig = Signature((Feature("x", "int64", domain=Domain(allowed=tuple(map(float, allowed)))),), OUT)
    columns = sig.coerce(pd.DataFrame({"x": values}))
    assert [e.row for e in columns.errors] == [r for r, v in enumerate(values) if v not in allowed]
    assert all("allowed values" in e.reason for e in columns.errors)


@settings(max_examples=200, deadline=None)
@given(
    domain=st.one_of(
        st.builds(
            lambda a, b, open_side: Domain(
                None if open_side == "low" else min(a, b), None if open_side == "high" else max(a, b)
            ),
            st.floats(-1e3, 1e3),
            st.floats(-1e3, 1e3),
            st.sampled_from(["low", "high", "neither"]),
        ),
        st.lists(st.integers(-5, 5), min_size=1, max_size=4, unique=True).map(
            lambda xs: Domain(allowed=tuple(map(float, xs)))
        ),
    ),
    values=st.lists(st.one_of(st.floats(-2e3, 2e3), st.integers(-6, 6).map(float), st.just(math.nan)), max_size=20),
)
def test_one_value_and_a_whole_column_are_judged_alike_and_nan_never_is_outside(
    domain: Domain, values: list[float]
) -> None:
    mask = domain.outside(np.array(values, dtype=np.float64)).tolist()
    assert mask == [domain.refusal(v) is not None for v in values]
    assert not any(m for m, v in zip(mask, values, strict=True) if math.isnan(v))
