from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from foretell.core.feature import FEATURE_DTYPES, Feature
from foretell.core.schema import Output, Signature
from foretell.errors import InvalidSignature


def test_round_trip_through_dict():
    sig = Signature(
        (Feature("a"), Feature("plan", "category", categories=("x", "y")), Feature("v", "float32", shape=(3,))),
        (Output("label", "label", "int64"), Output("proba", "proba", shape=(2,), classes=(0, 1))),
        extra="ignore",
    )
    assert Signature.from_dict(sig.to_dict()) == sig


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Feature("a", "complex"), "dtype must be one of"),
        (lambda: Feature("plan", "category"), "needs its categories"),
        (lambda: Feature("n", "int64", allow_missing=True), "cannot hold missing"),
        (lambda: Feature("", "float64"), "non-empty string name"),
        (lambda: Output("p", "proba"), "needs classes"),
        (lambda: Signature((Feature("a"), Feature("a")), (Output("s", "score"),)), "input names repeat"),
        (lambda: Signature((), (Output("s", "score"),)), "at least one input"),
        (lambda: Signature.from_dict({"inputs": [], "outputs": [], "colour": 1}), "unknown signature keys"),
        (lambda: Signature.from_dict([]), "JSON object"),  # type: ignore[arg-type]  # not a mapping, on purpose
    ],
)
def test_bad_signatures_are_refused_with_a_reason(make, message):
    with pytest.raises(InvalidSignature, match=message):
        make()


@given(
    st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=6, unique=True),
    st.sampled_from([d for d in FEATURE_DTYPES if d != "category"]),
)
def test_any_valid_signature_round_trips(names, dtype):
    sig = Signature(tuple(Feature(n, dtype) for n in names), (Output("score", "score"),))
    assert Signature.from_dict(sig.to_dict()) == sig
