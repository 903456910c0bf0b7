"""The gRPC message codec, property-based: raw and typed contents decode to the same tensor as REST's binary
extension does, responses carry what they were given, and a request that does not fit is refused by name."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
from google.protobuf.message import DecodeError
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


# -- hostile messages: only ProtocolError comes out (issue 20) ------------------------------------------------------

_CONTENT_FIELDS = ["fp64_contents", "fp32_contents", "int64_contents", "int_contents", "uint_contents",
                   "uint64_contents", "bool_contents", "bytes_contents"]  # fmt: skip
_SAMPLES: dict[str, st.SearchStrategy[object]] = {
    "fp64_contents": st.floats(),
    "fp32_contents": st.floats(width=32),
    "int64_contents": st.integers(-(2**63), 2**63 - 1),
    "int_contents": st.integers(-(2**31), 2**31 - 1),
    "uint_contents": st.integers(0, 2**32 - 1),
    "uint64_contents": st.integers(0, 2**64 - 1),
    "bool_contents": st.booleans(),
    "bytes_contents": st.binary(max_size=6),
}


@st.composite
def hostile_requests(draw: st.DrawFn) -> ModelInferRequest:
    """Any ModelInferRequest a client could send: names, datatypes (known or not), shapes (huge, negative, many
    dimensions), typed contents in any field or raw bytes that may or may not fit, and parameters."""
    request = ModelInferRequest(model_name="m", id=draw(st.text(max_size=4)))
    raw = draw(st.booleans())
    for _ in range(draw(st.integers(0, 3))):
        tensor = request.inputs.add(
            name=draw(st.sampled_from(["x", "y", "", "x"])),
            datatype=draw(st.sampled_from([*sorted(DATATYPES), "BF16", "", "fp64"])),
            shape=draw(st.lists(st.one_of(st.integers(-2, 4), st.sampled_from([2**40, 2**62])), max_size=4)),
        )
        if raw:
            request.raw_input_contents.append(draw(st.binary(max_size=40)))
        else:
            field = draw(st.sampled_from(_CONTENT_FIELDS))
            getattr(tensor.contents, field).extend(draw(st.lists(_SAMPLES[field], max_size=6)))
    parameter = draw(st.sampled_from(["timeout", "binary_data_output", "key", "other"]))
    value = draw(st.one_of(st.integers(-5, 2**62).map(lambda v: ("int64_param", v)), st.booleans().map(
        lambda v: ("bool_param", v)), st.text(max_size=4).map(lambda v: ("string_param", v))))  # fmt: skip
    setattr(request.parameters[parameter], *value)
    return request


@settings(max_examples=500, deadline=None)
@given(hostile_requests())
def test_hostile_messages_decode_or_raise_only_protocol_errors(message: ModelInferRequest) -> None:
    try:
        decoded = decode_model_infer(message)
    except ProtocolError:  # what a client is told, as INVALID_ARGUMENT: anything else would be INTERNAL
        return
    for tensor in decoded.inputs:  # what is accepted fills its shape exactly
        assert tensor.data.size == math.prod(tensor.shape)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_a_decode_error_or_a_message_that_decodes_or_is_refused(wire: bytes) -> None:
    try:
        message = ModelInferRequest.FromString(wire)
    except DecodeError:
        return  # grpc answers INVALID_ARGUMENT before our code sees it
    with contextlib.suppress(ProtocolError):
        decode_model_infer(message)
