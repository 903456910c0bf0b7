"""OIP tensors ↔ a model's rows and outputs: one 2-D tensor or one tensor per feature, by the signature."""

from __future__ import annotations

import numpy as np
import pytest
from servedmodels import Sums, Tiers, TopK

from foretell.adapters.python import PythonModel
from foretell.core.frame import Frame
from foretell.core.predictor import Predictions, PredictOptions, Predictor
from foretell.core.schema import Feature, Output, Signature
from foretell.errors import InvalidInput
from foretell.protocols.oip import Tensor
from foretell.protocols.oip.rows import inputs_from_tensors, tensors_from_predictions

SUMS = Sums.signature
TIERS = Tiers.signature


def tensor(name: str, values: list, shape: tuple[int, ...] | None = None, datatype: str = "FP64") -> Tensor:
    dtype = object if datatype == "BYTES" else np.float64
    data = np.empty(len(values), dtype=dtype) if datatype == "BYTES" else np.asarray(values, dtype=dtype)
    if datatype == "BYTES":
        data[:] = values
    shape = shape or (len(values),)
    return Tensor(name, datatype, shape, data.reshape(shape))


def test_one_2d_tensor_holds_the_features_in_signature_order():
    rows = inputs_from_tensors(SUMS, [tensor("input", [1, 2, 3, 4], (2, 2))])
    assert SUMS.coerce(rows).frame["b"].tolist() == [2.0, 4.0]


def test_a_2d_bytes_tensor_reaches_the_model_as_text():
    signature = Signature(
        (Feature("tier", "category", categories=("basic", "pro")), Feature("name", "string")),
        (Output("score", "score"),),
    )
    rows = inputs_from_tensors(signature, [tensor("input", [b"pro", b"Ada", b"basic", "Bo"], (2, 2), "BYTES")])
    assert rows.tolist() == [["pro", "Ada"], ["basic", "Bo"]]
    assert signature.coerce(rows).errors == []


def test_one_tensor_per_feature_in_any_order_becomes_columns_in_signature_order():
    rows = inputs_from_tensors(TIERS, [tensor("tier", [b"pro", b"basic"], None, "BYTES"), tensor("a", [1, 2], (2, 1))])
    assert isinstance(rows, Frame)
    assert {name: column.tolist() for name, column in rows.items()} == {"a": [1.0, 2.0], "tier": ["pro", "basic"]}
    assert TIERS.coerce(rows).frame["tier"].tolist() == [1.0, 0.0]


def test_an_optional_feature_may_be_left_out():
    signature = Signature((Feature("a"), Feature("c", allow_missing=True, required=False)), (Output("score", "score"),))
    rows = inputs_from_tensors(signature, [tensor("a", [1.0])])
    assert list(rows) == ["a"]
    frame = signature.coerce(rows).frame
    assert frame["a"].tolist() == [1.0]
    assert np.isnan(frame["c"]).all()


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ([], "the request has no inputs; the model takes ['a', 'b']"),
        (
            [tensor("a", [1]), tensor("z", [1])],
            "inputs must be one 2-D tensor with the 2 features in signature order, or one tensor per feature "
            "['a', 'b']; missing ['b']; unknown ['z']",
        ),
        (
            [tensor("b", [1])],
            "inputs must be one 2-D tensor with the 2 features in signature order, or one tensor per feature "
            "['a', 'b']; missing ['a']",
        ),
        ([tensor("a", [1, 2, 3, 4], (2, 2)), tensor("b", [1, 2])], "input 'a': shape [2, 2] is not [n] or [n, 1]"),
        ([tensor("a", [1, 2]), tensor("b", [1, 2, 3])], "input 'b' has 3 rows, the other inputs have 2"),
    ],
    ids=["none", "missing-and-unknown", "missing", "shape", "rows"],
)
def test_tensors_that_do_not_fit_the_signature_are_refused_saying_how(given, message):
    with pytest.raises(InvalidInput) as caught:
        inputs_from_tensors(SUMS, given)
    assert str(caught.value) == message


def topk_predictions(users: list[int], k: int) -> Predictions:
    predictor = Predictor(PythonModel(TopK(), TopK.signature), TopK.signature, "topk")
    return predictor.predict(TopK.signature.coerce([{"user_id": u} for u in users]).frame, PredictOptions(k=k))


def test_every_output_goes_back_as_a_tensor_in_signature_order():
    items, scores = tensors_from_predictions(topk_predictions([1, 2], 2))
    assert (items.name, items.datatype, items.shape, items.data.tolist()) == (
        "items",
        "INT64",
        (2, 2),
        [[10, 11], [20, 21]],
    )
    assert (scores.name, scores.datatype, scores.shape) == ("scores", "FP64", (2, 2))


def test_only_the_outputs_asked_for_go_back_in_the_order_asked():
    assert [t.name for t in tensors_from_predictions(topk_predictions([1], 3), ["scores", "items"])] == [
        "scores",
        "items",
    ]
    assert [t.name for t in tensors_from_predictions(topk_predictions([1], 3), ["scores"])] == ["scores"]
