"""The gRPC message codec, property-based: raw and typed contents decode to the same tensor as REST's binary
extension does, responses carry what they were given, and a request that does not fit is refused by name."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from foretell.errors import ProtocolError
from foretell.grpc.messages import decode_model_infer, encode_model_infer
from foretell.grpc.stubs.grpc_predict_v2_pb2 import ModelInferRequest, ModelInferResponse
from foretell.protocols.oip import DATATYPES, Tensor, decode_raw

NUMERIC = {
    "FP64": ("fp64_contents", np.float64),
    "FP32": ("fp32_contents", np.float32),
    "INT64": ("int64_contents", np.int64),
    "INT32": ("int_contents", np.int32),
    "UINT8": ("uint_contents", np.uint8),
    "BOOL": ("bool_contents", np.bool_),
}

shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5)


@st.composite
def tensors(draw: st.DrawFn) -> tuple[str, np.ndarray]:
    datatype = draw(st.sampled_from(sorted(NUMERIC)))
    dtype = NUMERIC[datatype][1]
    elements = (
        st.floats(allow_nan=False, width=32 if dtype == np.float32 else 64)
        if dtype in (np.float32, np.float64)
        else None
    )
    return datatype, draw(hnp.arrays(dtype, draw(shapes), elements=elements))


@settings(max_examples=150, deadline=None)
@given(tensors())
def test_raw_and_typed_contents_decode_to_the_same_tensor(case: tuple[str, np.ndarray]) -> None:
    datatype, array = case
    field = NUMERIC[datatype][0]
    raw = ModelInferRequest(model_name="m")
    raw.inputs.add(name="x", datatype=datatype, shape=list(array.shape))
    raw.raw_input_contents.append(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes())
    typed = ModelInferRequest(model_name="m")
    given_tensor = typed.inputs.add(name="x", datatype=datatype, shape=list(array.shape))
    getattr(given_tensor.contents, field).extend(array.reshape(-1).tolist())
    from_raw, from_typed = decode_model_infer(raw).inputs[0], decode_model_infer(typed).inputs[0]
    assert from_raw.shape == from_typed.shape == array.shape
    np.testing.assert_array_equal(from_raw.data, array)
    np.testing.assert_array_equal(from_typed.data, array)
    assert from_raw.data.dtype == from_typed.data.dtype == DATATYPES[datatype]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=12), min_size=0, max_size=6))
def test_bytes_raw_and_typed_agree(values: list[bytes]) -> None:
    raw_bytes = b"".join(len(v).to_bytes(4, "little") + v for v in values)
    raw = ModelInferRequest(model_name="m")
    raw.inputs.add(name="tier", datatype="BYTES", shape=[len(values)])
    raw.raw_input_contents.append(raw_bytes)
    typed = ModelInferRequest(model_name="m")
    typed.inputs.add(name="tier", datatype="BYTES", shape=[len(values)]).contents.bytes_contents.extend(values)
    assert list(decode_model_infer(raw).inputs[0].data) == list(decode_model_infer(typed).inputs[0].data) == values


@settings(max_examples=100, deadline=None)
@given(tensors(), st.one_of(st.none(), st.text(min_size=1, max_size=20)))
def test_a_response_carries_each_output_raw_with_its_name_shape_and_the_prediction_id(
    case: tuple[str, np.ndarray], prediction_id: str | None
) -> None:
    datatype, array = case
    response = ModelInferResponse.FromString(
        encode_model_infer(
            "m", "3", "req-1", [Tensor("y", datatype, array.shape, array)], prediction_id
        ).SerializeToString()
    )
    assert (response.model_name, response.model_version, response.id) == ("m", "3", "req-1")
    (output,) = response.outputs
    assert (output.name, output.datatype, tuple(output.shape)) == ("y", datatype, array.shape)
    back = decode_raw("y", datatype, array.shape, response.raw_output_contents[0]).reshape(array.shape)
    np.testing.assert_array_equal(back, array)
    if prediction_id is None:
        assert "prediction_id" not in response.parameters
    else:
        assert response.parameters["prediction_id"].string_param == prediction_id


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(NUMERIC)), shapes, st.integers(min_value=0, max_value=7))
def test_contents_that_do_not_fit_the_shape_are_refused_naming_the_input(
    datatype: str, shape: tuple[int, ...], given_count: int
) -> None:
    field, dtype = NUMERIC[datatype]
    needed = math.prod(shape)
    if given_count == needed:
        given_count += 1
    typed = ModelInferRequest(model_name="m")
    typed.inputs.add(name="x", datatype=datatype, shape=list(shape))
    getattr(typed.inputs[0].contents, field).extend(np.zeros(given_count, dtype=dtype).tolist())
    with pytest.raises(ProtocolError) as refused:
        decode_model_infer(typed)
    assert f"input 'x': shape {list(shape)} needs {needed} values in contents.{field}, got {given_count}" in str(
        refused.value
    )
