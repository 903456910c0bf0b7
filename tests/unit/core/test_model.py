"""Model.predict / predict_batch and the Predictor's promises."""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foretell.core.feature import Feature
from foretell.core.frame import Frame
from foretell.core.predictor import PredictOptions, Predictor
from foretell.core.schema import Output, Signature
from foretell.errors import InvalidInput, PredictionError
from foretell.testing.models import FailingModel, SumModel, model_of, sum_signature


@pytest.fixture
def model():
    return model_of(SumModel(["a", "b", "c"]), sum_signature())


def test_predict_is_predict_batch_of_one(model):
    row = {"a": 1.0, "b": 2.0, "c": 3.5}
    assert model.predict(row) == {"score": 6.5}
    assert model.predict_batch([row])[0] == model.predict(row)
    assert model.predict([1.0, 2.0, 3.5]) == {"score": 6.5}


@pytest.mark.parametrize("single", [5, 5.0, "x", {"a": 1.0, "b": 2.0, "c": 3.0}, np.float64(2.0), None])
def test_predict_batch_of_a_single_input_says_what_to_do(model, single):
    with pytest.raises(InvalidInput) as caught:
        model.predict_batch(single)
    message = str(caught.value)
    assert "predict_batch expects a sequence" in message
    assert "single input" in message
    if type(single) is int:
        assert "predict(5)" in message and "predict_batch([5])" in message


def test_predict_batch_refuses_bad_rows_and_names_them(model):
    with pytest.raises(InvalidInput) as caught:
        model.predict_batch([{"a": 1.0, "b": 2.0, "c": 3.0}, {"a": "x", "b": 2.0, "c": 3.0}])
    assert "1 of 2 input row invalid: row 1, field 'a': expected a number (float64); got str 'x'" in str(caught.value)
    assert [e.row for e in caught.value.errors] == [1]


def test_many_forms_one_answer(model):
    rows = [{"a": 1.0, "b": 2.0, "c": 3.0}, {"a": -1.0, "b": 0.5, "c": 0.0}]
    expected = [6.0, -0.5]
    for form in (rows, pd.DataFrame(rows), np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]])):
        assert model.predict_batch(form).column("score").tolist() == expected


def test_predictions_rows_columns_and_exports(model):
    predictions = model.predict_batch([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]])
    assert len(predictions) == 2
    assert predictions[1] == {"score": 6.0}
    assert predictions[-1] == {"score": 6.0}
    assert predictions.to_records() == [{"score": 3.0}, {"score": 6.0}]
    assert list(predictions) == predictions.to_records()
    assert predictions.to_pandas()["score"].tolist() == [3.0, 6.0]
    assert predictions.to_arrow().column("score").to_pylist() == [3.0, 6.0]
    assert len(predictions[1:]) == 1
    with pytest.raises(IndexError):
        predictions[2]


def test_a_failing_model_raises_prediction_error_naming_it():
    model = model_of(FailingModel(), sum_signature(), name="buggy")
    with pytest.raises(PredictionError, match="model 'buggy' failed on a batch of 1 rows: ZeroDivisionError"):
        model.predict([1.0, 2.0, 3.0])


class _WrongLength:
    def predict(self, frame: Frame, options: PredictOptions) -> dict[str, np.ndarray]:
        return {"score": np.zeros(frame.n_rows + 1)}


class _MissingOutput:
    def predict(self, frame: Frame, options: PredictOptions) -> dict[str, np.ndarray]:
        return {"other": np.zeros(frame.n_rows)}


def test_n_rows_in_n_rows_out_is_enforced():
    with pytest.raises(PredictionError, match="2 rows in, 3 rows out"):
        model_of(_WrongLength(), sum_signature()).predict_batch([[1, 2, 3], [4, 5, 6]])
    with pytest.raises(PredictionError, match="missing 'score'"):
        model_of(_MissingOutput(), sum_signature()).predict([1, 2, 3])


def test_empty_batch_does_not_call_the_model():
    loaded = SumModel(["a", "b", "c"])
    predictions = model_of(loaded, sum_signature()).predict_batch([])
    assert len(predictions) == 0 and loaded.calls == 0


def test_k_must_be_positive(model):
    with pytest.raises(InvalidInput, match="k must be a positive"):
        model.predict([1, 2, 3], k=0)


def test_predictor_checks_output_shape():
    sig = Signature((Feature("a"),), (Output("proba", "proba", shape=(2,), classes=(0, 1)),))

    class Flat:
        def predict(self, frame: Frame, options: PredictOptions) -> dict[str, np.ndarray]:
            return {"proba": np.zeros(frame.n_rows)}

    with pytest.raises(PredictionError, match="per-row shape"):
        Predictor(Flat(), sig).predict(Frame({"a": np.zeros(2)}))


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.integers(),
        st.floats(),
        st.text(),
        st.none(),
        st.booleans(),
        st.lists(st.one_of(st.floats(), st.text(), st.none(), st.dictionaries(st.text(), st.floats()))),
    )
)
def test_malformed_inputs_raise_invalid_input_and_nothing_else(value):
    model = model_of(SumModel(["a", "b", "c"]), sum_signature())
    for call in (model.predict, model.predict_batch):
        with contextlib.suppress(InvalidInput):
            call(value)


def test_predict_given_a_batch_points_to_predict_batch(model):
    for batch in ([{"a": 1.0, "b": 2.0, "c": 3.0}], pd.DataFrame({"a": [1.0], "b": [2.0], "c": [3.0]})):
        with pytest.raises(InvalidInput, match=r"predict takes one input.*Use predict_batch"):
            model.predict(batch)


def test_predict_batch_takes_generators_and_ranges_but_not_sets():
    one = model_of(SumModel(["x"]), sum_signature(["x"]))
    assert one.predict_batch(range(3)).column("score").tolist() == [0.0, 1.0, 2.0]
    assert one.predict_batch(float(v) for v in (4, 5)).column("score").tolist() == [4.0, 5.0]
    with pytest.raises(InvalidInput, match="a set"):
        one.predict_batch({1.0, 2.0})
