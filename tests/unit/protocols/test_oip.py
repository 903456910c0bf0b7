"""The Open Inference Protocol codec, held against tritonclient's own encoder and decoder.

Requests are built with `tritonclient.http` (JSON and binary tensors, as a real client sends
them) and responses are read back with `InferResult`, so "compatible with tritonclient" is
checked byte for byte, not assumed. Malformed bodies of every kind must raise `ProtocolError`
and nothing else.
"""

from __future__ import annotations

import contextlib
import math
import struct
from collections.abc import Sequence
from typing import Literal

import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from foretell.core.feature import Feature
from foretell.core.schema import Output, Signature
from foretell.errors import InvalidInput, ProtocolError
from foretell.protocols.oip import (
    BINARY_HEADER,
    DATATYPES,
    InferRequest,
    RequestedOutput,
    Tensor,
    datatype_of,
    decode_infer_request,
    encode_infer_response,
    model_metadata,
    parse_header_length,
    server_metadata,
    tensor_from_array,
)

NUMERIC = [name for name in DATATYPES if name != "BYTES"]
FLOAT_WIDTHS: dict[int, Literal[16, 32, 64]] = {2: 16, 4: 32, 8: 64}  # bits of a float, by its size in bytes

SAMPLES: dict[str, np.ndarray] = {
    "BOOL": np.array([[True, False, True], [False, False, True]]),
    "UINT8": np.array([[0, 1, 255], [7, 8, 9]], dtype=np.uint8),
    "UINT16": np.array([[0, 1, 65535], [7, 8, 9]], dtype=np.uint16),
    "UINT32": np.array([[0, 1, 2**32 - 1], [7, 8, 9]], dtype=np.uint32),
    "UINT64": np.array([[0, 1, 2**64 - 1], [7, 8, 9]], dtype=np.uint64),
    "INT8": np.array([[-128, 0, 127], [7, 8, 9]], dtype=np.int8),
    "INT16": np.array([[-(2**15), 0, 2**15 - 1], [7, 8, 9]], dtype=np.int16),
    "INT32": np.array([[-(2**31), 0, 2**31 - 1], [7, 8, 9]], dtype=np.int32),
    "INT64": np.array([[-(2**63), 0, 2**63 - 1], [7, 8, 9]], dtype=np.int64),
    "FP16": np.array([[0.5, -1.25, 65504.0], [1e-3, 0.0, -0.0]], dtype=np.float16),
    "FP32": np.array([[0.1, -2.5, 3.4e38], [1e-30, 0.0, 7.0]], dtype=np.float32),
    "FP64": np.array([[0.1, -2.5, 1.7e308], [5e-324, 0.0, 7.0]], dtype=np.float64),
    "BYTES": np.array([[b"basic", b"", "pr\u00e9mium".encode()], [b"a b", b"\xe2\x82\xac", b"x" * 300]], dtype=object),
}


def triton_body(arrays: dict[str, tuple[np.ndarray, str]], binary: bool, **kwargs) -> tuple[bytes, int | None]:
    inputs = []
    for name, (array, datatype) in arrays.items():
        tensor = triton.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return triton.InferenceServerClient.generate_request_body(inputs, **kwargs)


def request_json(inputs: Sequence[object], **extra) -> bytes:
    return orjson.dumps({"inputs": inputs, **extra})


def one_input(datatype: object, shape: object, data: object, **fields) -> bytes:
    """One tensor named x; any field may be malformed, as the refusal tests need."""
    return request_json([{"name": "x", "datatype": datatype, "shape": shape, "data": data, **fields}])


def decode_response(body: bytes, headers: dict[str, str]) -> triton.InferResult:
    length = headers.get(BINARY_HEADER)
    return triton.InferResult.from_response_body(body, header_length=int(length) if length else None)


def assert_same(decoded: np.ndarray, expected: np.ndarray) -> None:
    assert decoded.shape == expected.shape
    if expected.dtype == object:
        assert decoded.tolist() == expected.tolist()
    else:
        np.testing.assert_array_equal(decoded, expected)


# -- requests: what tritonclient sends is what we decode ---------------------------------------------------


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("datatype", list(SAMPLES))
def test_every_datatype_decodes_as_tritonclient_sent_it(datatype, binary):
    array = SAMPLES[datatype]
    body, length = triton_body({"x": (array, datatype)}, binary)
    assert (length is not None) == binary
    request = decode_infer_request(body, length)
    (tensor,) = request.inputs
    assert (tensor.name, tensor.datatype, tensor.shape) == ("x", datatype, array.shape)
    assert tensor.data.dtype == DATATYPES[datatype]
    assert_same(tensor.data, array)
    if datatype == "BYTES":
        assert all(type(v) is bytes for v in tensor.data.reshape(-1))


def test_mixed_binary_and_json_inputs_in_one_body():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([b"x", b"yy"], dtype=object)
    c = np.array([[1, 2]], dtype=np.int64)
    inputs = []
    for name, array, datatype, binary in (("a", a, "FP32", True), ("c", c, "INT64", False), ("b", b, "BYTES", True)):
        tensor = triton.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    body, length = triton.InferenceServerClient.generate_request_body(inputs, request_id="r-1")
    request = decode_infer_request(body, length)
    assert request.id == "r-1"
    assert [t.name for t in request.inputs] == ["a", "c", "b"]
    expected_arrays: tuple[np.ndarray, ...] = (a, c, b)
    for tensor, expected in zip(request.inputs, expected_arrays, strict=True):
        assert_same(tensor.data, expected)


def test_tritonclient_defaults_mean_every_output_in_binary():
    body, length = triton_body({"x": (SAMPLES["FP64"], "FP64")}, True)
    request = decode_infer_request(body, length)
    assert request.outputs is None
    assert request.binary_output_default
    assert request.select_outputs(["score", "label"]) == (["score", "label"], {"score", "label"})


def test_requested_outputs_keep_their_own_binary_choice():
    outputs = [triton.InferRequestedOutput("label", binary_data=False), triton.InferRequestedOutput("score")]
    body, length = triton_body({"x": (SAMPLES["FP64"], "FP64")}, False, outputs=outputs)
    request = decode_infer_request(body, length)
    assert request.outputs == [RequestedOutput("label", False), RequestedOutput("score", True)]
    assert request.select_outputs(["score", "label", "proba"]) == (["label", "score"], {"score"})
    with pytest.raises(ProtocolError, match=r"unknown output\(s\) \['label'\] requested; this model's outputs"):
        request.select_outputs(["score"])


def test_plain_json_requests_default_to_json_outputs():
    request = decode_infer_request(one_input("FP64", [1], [1.0]))
    assert request.outputs is None
    assert not request.binary_output_default
    assert request.select_outputs(["score"]) == (["score"], set())
    explicit = decode_infer_request(
        request_json(
            [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1]}],
            outputs=[{"name": "score"}],
            parameters={"binary_data_output": True},
        )
    )
    assert explicit.outputs == [RequestedOutput("score", True)]
    empty = decode_infer_request(
        request_json([{"name": "x", "datatype": "FP64", "shape": [1], "data": [1]}], outputs=[])
    )
    assert empty.outputs is None  # an empty list names nothing: every output, as when it is absent


def test_timeout_is_tritonclients_microseconds():
    body, length = triton_body({"x": (SAMPLES["FP64"], "FP64")}, True, timeout=250_000)
    assert decode_infer_request(body, length).timeout_seconds == pytest.approx(0.25)
    assert decode_infer_request(one_input("FP64", [1], [1])).timeout_seconds is None
    zero = InferRequest(None, [], None, {"timeout": 0})
    assert zero.timeout_seconds is None  # Triton: 0 means no deadline
    assert InferRequest(None, [], None, {"timeout": 1.5e6}).timeout_seconds == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("shape", "nested", "flat"),
    [
        ([2, 3], [[1, 2, 3], [4, 5, 6]], [1, 2, 3, 4, 5, 6]),
        ([1, 31], [list(range(31))], list(range(31))),
        ([2, 1, 2], [[[1, 2]], [[3, 4]]], [1, 2, 3, 4]),
        ([2, 0], [[], []], []),
        ([0, 3], [], []),
        ([], [7], [7]),
    ],
)
def test_nested_and_flat_data_decode_the_same(shape, nested, flat):
    from_nested = decode_infer_request(one_input("INT32", shape, nested)).inputs[0]
    from_flat = decode_infer_request(one_input("INT32", shape, flat)).inputs[0]
    expected = np.array(flat, dtype=np.int32).reshape(shape)
    assert_same(from_nested.data, expected)
    assert_same(from_flat.data, expected)
    assert from_nested.shape == tuple(shape)


def test_json_kinds_that_are_accepted():
    floats = decode_infer_request(one_input("FP32", [4], [1, 2.5, None, -3])).inputs[0].data
    np.testing.assert_array_equal(floats, np.array([1, 2.5, np.nan, -3], dtype=np.float32))
    assert floats.dtype == np.float32
    text = decode_infer_request(one_input("BYTES", [2], ["plan", "\u20ac"])).inputs[0]
    assert text.data.tolist() == [b"plan", b"\xe2\x82\xac"]
    assert text.as_text().tolist() == ["plan", "\u20ac"]
    assert decode_infer_request(one_input("BOOL", [2], [True, False])).inputs[0].data.dtype == np.bool_


def test_decoded_tensors_are_writable_copies():
    body, length = triton_body({"x": (SAMPLES["FP32"], "FP32")}, True)
    data = decode_infer_request(body, length).inputs[0].data
    assert data.flags.writeable  # models may scale features in place; a read-only view of the body would break them
    data[0, 0] = 42.0


def test_whole_body_json_with_a_header_length_equal_to_the_body():
    body = one_input("FP64", [2], [1.0, 2.0])
    assert decode_infer_request(body, len(body)).inputs[0].data.tolist() == [1.0, 2.0]


# -- requests: every mistake names the tensor, the field and what was expected ----------------------------------


def binary_body(inputs: list[dict], blobs: list[bytes]) -> tuple[bytes, int]:
    header = request_json(inputs)
    return header + b"".join(blobs), len(header)


ERRORS = [
    (one_input("FP32", [2, 3], [1, 2, 3, 4, 5]), None, "input 'x': shape [2, 3] needs 6 values, got 5"),
    (
        one_input("FP32", [2], [1, "2"]),
        None,
        "input 'x': FP32 data must be numbers (or null for missing); got a string '2'",
    ),
    (
        one_input("INT64", [2], [1, 2.5]),
        None,
        "input 'x': INT64 data must be whole numbers; got a float 2.5 at position 1",
    ),
    (one_input("INT64", [1], [True]), None, "INT64 data must be whole numbers; got a bool True"),
    (one_input("FP64", [1], [False]), None, "FP64 data must be numbers"),
    (one_input("BOOL", [2], [1, 0]), None, "input 'x': BOOL data must be true or false; got an int 1 at position 0"),
    (one_input("BYTES", [1], [1]), None, "input 'x': BYTES data must be strings; got an int 1"),
    (one_input("INT32", [1], [None]), None, "INT32 data must be whole numbers; got null"),
    (one_input("UINT8", [2], [1, 256]), None, "input 'x': UINT8 values must be in 0..255, got 256"),
    (one_input("UINT64", [1], [-1]), None, "UINT64 values must be in 0..18446744073709551615, got -1"),
    (one_input("INT8", [1], [-129]), None, "INT8 values must be in -128..127, got -129"),
    (one_input("FP32", [1], [1e39]), None, "input 'x': a number is too large for FP32"),
    (one_input("FP16", [1], [70000]), None, "a number is too large for FP16"),
    (one_input("FP32", [2, 2], [[1, 2], [3]]), None, "input 'x': nested 'data' does not match shape [2, 2]"),
    (one_input("FP32", [2, 2, 1], [[1, 2], [3, 4]]), None, "nested 'data' does not match shape [2, 2, 1]"),
    (one_input("FP32", [2], [[1], [2], [3]]), None, "nested 'data' does not match shape [2]"),
    (one_input("FP32", [2], [1, [2]]), None, "nested 'data' does not match shape [2]"),
    (one_input("FP32", [1], 1.0), None, "input 'x': 'data' must be a JSON array, got a float"),
    (
        one_input("FP32", [2, -1], [1, 2]),
        None,
        "input 'x': 'shape' must be a list of at most 32 non-negative integers, got [2, -1]",
    ),
    (one_input("FP32", [2.0], [1, 2]), None, "'shape' must be a list of at most 32 non-negative integers"),
    (one_input("FP32", [True], [1]), None, "'shape' must be a list"),
    (one_input("FP32", [1] * 33, [1]), None, "at most 32"),
    (one_input("FLOAT", [1], [1]), None, "input 'x': unknown 'datatype' 'FLOAT'; expected one of BOOL, UINT8"),
    (one_input("BF16", [1], [1]), None, "BF16 is not supported"),
    (one_input(["FP32"], [1], [1]), None, "unknown 'datatype' ['FP32']"),
    (
        request_json([{"name": "x", "datatype": "FP32", "shape": [1]}]),
        None,
        "input 'x': no 'data' and no parameters.binary_data_size",
    ),
    (
        request_json([{"datatype": "FP32", "shape": [1], "data": [1]}]),
        None,
        "inputs[0]: 'name' must be a non-empty string",
    ),
    (request_json([[1, 2]]), None, "inputs[0] must be a JSON object, got an array"),
    (request_json([]), None, "request 'inputs' must be a non-empty list of tensors, got an array"),
    (b'{"id": "1"}', None, "request 'inputs' must be a non-empty list of tensors, got null"),
    (b"[1, 2]", None, "an inference request is a JSON object, got an array"),
    (b"{", None, "the request body is not valid JSON"),
    (b"", None, "the request body is not valid JSON"),
    (b"\xff\xfe{}", None, "not valid JSON"),
    (
        request_json([{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}], id=7),
        None,
        "request 'id' must be a string, got an int",
    ),
    (
        request_json([{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}] * 2),
        None,
        "input names repeat: ['x']",
    ),
    (one_input("FP32", [1], [1], parameters=[1]), None, "input 'x': 'parameters' must be a JSON object, got an array"),
    (one_input("FP32", [1], [1], parameters={"shared_memory_region": "r"}), None, "shared memory is not supported"),
    (
        request_json([{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}], parameters={"timeout": "1s"}),
        None,
        "request parameter 'timeout' must be a non-negative number of microseconds, got '1s'",
    ),
    (
        request_json([{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}], parameters={"timeout": -5}),
        None,
        "'timeout' must be a non-negative number",
    ),
    (
        request_json(
            [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}], parameters={"binary_data_output": 1}
        ),
        None,
        "'binary_data_output' must be true or false, got 1",
    ),
    (
        request_json(
            [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}],
            outputs=[{"name": "s", "parameters": {"binary_data": "yes"}}],
        ),
        None,
        "output 's': parameters.binary_data must be true or false, got 'yes'",
    ),
    (
        request_json(
            [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}],
            outputs=[{"name": "s", "parameters": {"classification": 3}}],
        ),
        None,
        "output 's': parameter 'classification' is not supported",
    ),
    (
        request_json(
            [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}], outputs=[{"name": "s"}, {"name": "s"}]
        ),
        None,
        "output names repeat: ['s']",
    ),
    (
        request_json([{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}], outputs=["s"]),
        None,
        "outputs[0] must be an object with a string 'name'",
    ),
    (
        request_json([{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}], outputs={"name": "s"}),
        None,
        "request 'outputs' must be a list, got an object",
    ),
    (
        request_json([{"name": "x", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}}]),
        None,
        "input 'x': parameters.binary_data_size is 8 but the request has no binary part "
        "(send the Inference-Header-Content-Length header",
    ),
    (
        *binary_body(
            [{"name": "x", "datatype": "FP32", "shape": [2, 3], "parameters": {"binary_data_size": 20}}], [b"\0" * 20]
        ),
        "input 'x': shape [2, 3] of FP32 needs 24 bytes of binary data, parameters.binary_data_size is 20",
    ),
    (
        *binary_body(
            [{"name": "x", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}}], [b"\0" * 6]
        ),
        "input 'x': parameters.binary_data_size is 8 but only 6 bytes of binary data are left",
    ),
    (
        *binary_body(
            [{"name": "x", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}}], [b"\0" * 9]
        ),
        "the body has 9 bytes after the JSON header but the inputs' parameters.binary_data_size add up to 8",
    ),
    (
        *binary_body([{"name": "x", "datatype": "FP32", "shape": [2], "data": [1, 2]}], [b"\0"]),
        "the body has 1 bytes after the JSON header",
    ),
    (
        *binary_body(
            [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1], "parameters": {"binary_data_size": 4}}],
            [b"\0" * 4],
        ),
        "input 'x': has both 'data' and parameters.binary_data_size; send one",
    ),
    (
        *binary_body([{"name": "x", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": -4}}], []),
        "parameters.binary_data_size must be a non-negative integer, got -4",
    ),
    (
        *binary_body([{"name": "x", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": True}}], []),
        "parameters.binary_data_size must be a non-negative integer, got True",
    ),
    (
        *binary_body(
            [{"name": "x", "datatype": "BOOL", "shape": [2], "parameters": {"binary_data_size": 2}}], [b"\x01\x02"]
        ),
        "input 'x': BOOL binary data must be bytes 0 or 1",
    ),
    (
        *binary_body(
            [{"name": "x", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 7}}],
            [struct.pack("<I", 3) + b"abc"],
        ),
        "input 'x': shape [2] needs 2 BYTES elements (each a 4-byte little-endian length, then the bytes) "
        "filling parameters.binary_data_size = 7",
    ),
    (
        *binary_body(
            [{"name": "x", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 6}}],
            [struct.pack("<I", 9) + b"ab"],
        ),
        "needs 1 BYTES elements",
    ),
    (
        *binary_body(
            [{"name": "x", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 9}}],
            [struct.pack("<I", 1) + b"a" + b"tail"],
        ),
        "needs 1 BYTES elements",
    ),
    (b'{"inputs": []}', 99, "Inference-Header-Content-Length is 99 but the body has 14 bytes"),
    (b'{"inputs": []}', -1, "Inference-Header-Content-Length is -1"),
    (b'{"inputs": []}xx', 14, "request 'inputs' must be a non-empty list"),
    (b'{"inputs": [', 5, "the JSON header (first 5 bytes) is not valid JSON"),
]


@pytest.mark.parametrize(("body", "length", "fragment"), ERRORS)
def test_malformed_requests_say_what_is_wrong(body, length, fragment):
    with pytest.raises(ProtocolError) as caught:
        decode_infer_request(body, length)
    assert fragment in str(caught.value)
    assert isinstance(caught.value, InvalidInput)


def test_header_length_is_parsed_strictly():
    assert parse_header_length(None) is None
    assert parse_header_length(" 120 ") == 120
    for bad in ("-1", "1e3", "", "abc", "\u0661\u0662"):
        with pytest.raises(ProtocolError, match="Inference-Header-Content-Length must be a non-negative integer"):
            parse_header_length(bad)


def test_as_text_refuses_what_is_not_utf8_text():
    tensor = Tensor("plan", "BYTES", (2,), np.array([b"ok", b"\xff"], dtype=object))
    with pytest.raises(ProtocolError, match="input 'plan': BYTES element 1 is not UTF-8 text"):
        tensor.as_text()
    with pytest.raises(ProtocolError, match="expected a BYTES tensor of text, got FP32"):
        Tensor("x", "FP32", (1,), np.zeros(1, np.float32)).as_text()


# -- responses: what we encode is what tritonclient reads ------------------------------------------------------


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("datatype", list(SAMPLES))
def test_every_datatype_encodes_for_tritonclient(datatype, binary):
    array = SAMPLES[datatype]
    tensor = tensor_from_array("out", array)
    assert tensor.datatype == datatype
    body, headers = encode_infer_response("churn", "3", "req-9", [tensor], {"out"} if binary else set())
    result = decode_response(body, headers)
    assert result.get_response()["model_name"] == "churn"
    assert result.get_response()["model_version"] == "3"
    assert result.get_response()["id"] == "req-9"
    decoded = result.as_numpy("out")
    if datatype == "BYTES" and not binary:  # JSON carries text: tritonclient hands back str
        assert decoded.tolist() == [[v.decode() for v in row] for row in array.tolist()]
    else:
        assert_same(decoded, array)
    if binary:
        assert headers["Content-Type"] == "application/octet-stream"
        assert int(headers[BINARY_HEADER]) < len(body)
    else:
        assert headers == {"Content-Type": "application/json"}
        assert orjson.loads(body)["outputs"][0]["shape"] == [2, 3]


def test_binary_and_json_outputs_in_one_response():
    score = tensor_from_array("score", np.array([0.25, 0.5]))
    label = tensor_from_array("label", np.array(["stay", "churn"], dtype=object))
    proba = tensor_from_array("proba", np.array([[0.75, 0.25], [0.5, 0.5]], dtype=np.float32))
    body, headers = encode_infer_response("m", "1", None, [score, label, proba], {"score", "proba"})
    result = decode_response(body, headers)
    assert "id" not in result.get_response()
    assert result.as_numpy("score").tolist() == [0.25, 0.5]
    assert result.as_numpy("label").tolist() == ["stay", "churn"]
    assert result.as_numpy("proba").tolist() == [[0.75, 0.25], [0.5, 0.5]]
    header = orjson.loads(body[: int(headers[BINARY_HEADER])])
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 16}
    assert "data" not in header["outputs"][0]


def test_nan_and_infinity_are_null_in_json_and_exact_in_binary():
    values = np.array([1.5, np.nan, np.inf, -np.inf])
    tensor = tensor_from_array("score", values)
    body, headers = encode_infer_response("m", "1", None, [tensor], set())
    assert orjson.loads(body)["outputs"][0]["data"] == [1.5, None, None, None]
    assert np.isnan(decode_response(body, headers).as_numpy("score")[1:]).all()  # tritonclient reads null as NaN
    body, headers = encode_infer_response("m", "1", None, [tensor], {"score"})
    np.testing.assert_array_equal(decode_response(body, headers).as_numpy("score"), values)


def test_bytes_that_are_not_text_must_go_binary():
    tensor = Tensor("raw", "BYTES", (1,), np.array([b"\xff\x00"], dtype=object))
    with pytest.raises(ProtocolError, match=r"output 'raw': BYTES element 0 is not UTF-8 text.*binary_data = true"):
        encode_infer_response("m", "1", None, [tensor], set())
    body, headers = encode_infer_response("m", "1", None, [tensor], {"raw"})
    assert decode_response(body, headers).as_numpy("raw").tolist() == [b"\xff\x00"]


def test_tensor_parameters_are_sent_along():
    tensor = tensor_from_array("score", np.array([1.0]))
    tensor.parameters["unit"] = "probability"
    body, headers = encode_infer_response("m", "1", None, [tensor], {"score"})
    header = orjson.loads(body[: int(headers[BINARY_HEADER])])
    assert header["outputs"][0]["parameters"] == {"unit": "probability", "binary_data_size": 8}


@pytest.mark.parametrize(
    ("array", "datatype"),
    [
        (np.array(["a", "\u00e9"]), "BYTES"),
        (np.array([b"a", b"b"]), "BYTES"),
        (np.array(["a", 3, None], dtype=object), "BYTES"),
        (np.array([1, 2], dtype=">i4"), "INT32"),
        (np.array([1.0], dtype=np.float16), "FP16"),
        (np.array(True), "BOOL"),
    ],
)
def test_tensor_from_array_picks_the_datatype(array, datatype):
    tensor = tensor_from_array("t", array)
    assert tensor.datatype == datatype
    assert tensor.shape == array.shape
    assert tensor.data.dtype == DATATYPES[datatype]
    if datatype == "BYTES":
        assert tensor.data.tolist() == [v if isinstance(v, bytes) else str(v).encode() for v in array.tolist()]
    else:
        np.testing.assert_array_equal(tensor.data, array)


def test_datatype_of_refuses_what_oip_cannot_carry():
    assert datatype_of(np.dtype("<U3")) == "BYTES"
    with pytest.raises(TypeError, match="complex128 has no Open Inference Protocol datatype"):
        datatype_of(np.dtype(np.complex128))


# -- round trips as properties -------------------------------------------------------------------------------

_SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)


@st.composite
def numeric_arrays(draw: st.DrawFn) -> tuple[np.ndarray, str]:
    datatype = draw(st.sampled_from(NUMERIC))
    dtype = DATATYPES[datatype]
    elements = None
    if dtype.kind == "f":  # JSON cannot carry NaN or infinity: those are tested on their own
        elements = st.floats(allow_nan=False, allow_infinity=False, width=FLOAT_WIDTHS[dtype.itemsize])
    return draw(hnp.arrays(dtype, _SHAPES, elements=elements)), datatype


@st.composite
def bytes_arrays(draw: st.DrawFn) -> tuple[np.ndarray, str]:
    shape = draw(_SHAPES)
    values = draw(st.lists(st.text(max_size=6), min_size=math.prod(shape), max_size=math.prod(shape)))
    array = np.empty(len(values), dtype=object)
    array[:] = [v.encode() for v in values]  # st.text() draws no lone surrogates: all valid UTF-8
    return array.reshape(shape), "BYTES"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(numeric_arrays(), bytes_arrays()), st.booleans())
def test_any_array_survives_tritonclient_then_decode(case, binary):
    array, datatype = case
    body, length = triton_body({"x": (array, datatype)}, binary)
    assert_same(decode_infer_request(body, length).inputs[0].data, array)


@settings(max_examples=150, deadline=None)
@given(st.one_of(numeric_arrays(), bytes_arrays()), st.booleans())
def test_any_array_survives_encode_then_tritonclient(case, binary):
    array, datatype = case
    tensor = tensor_from_array("y", array)
    body, headers = encode_infer_response("m", "1", None, [tensor], {"y"} if binary else set())
    decoded = decode_response(body, headers).as_numpy("y")
    if datatype == "BYTES" and not binary:
        decoded = np.array([v.encode() for v in decoded.reshape(-1).tolist()] or [], dtype=object).reshape(array.shape)
    assert_same(decoded, array)


# -- fuzzing: only ProtocolError comes out --------------------------------------------------------------------


def decode_or_protocol_error(body: bytes, length: int | None) -> None:
    with contextlib.suppress(ProtocolError):
        decode_infer_request(body, length)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), st.one_of(st.none(), st.integers(min_value=-5, max_value=320)))
def test_arbitrary_bytes_raise_only_protocol_errors(body, length):
    decode_or_protocol_error(body, length)


_JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)
_DATATYPE_NAMES = st.sampled_from([*DATATYPES, "BF16", "fp32", ""])
_TENSORS = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.sampled_from(["x", "y"]), _JSON),
        "datatype": st.one_of(_DATATYPE_NAMES, _JSON),
        "shape": st.one_of(st.lists(st.integers(min_value=-2, max_value=2**63), max_size=4), _JSON),
        "data": _JSON,
        "parameters": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "binary_data_size": st.one_of(st.integers(min_value=-2, max_value=64), _JSON),
                    "shared_memory_region": _JSON,
                },
            ),
            _JSON,
        ),
    },
)
_REQUESTS = st.fixed_dictionaries(
    {},
    optional={
        "id": _JSON,
        "inputs": st.one_of(st.lists(_TENSORS, max_size=3), _JSON),
        "outputs": st.one_of(
            st.lists(st.fixed_dictionaries({"name": _JSON}, optional={"parameters": _JSON}), max_size=3), _JSON
        ),
        "parameters": st.one_of(
            st.fixed_dictionaries({}, optional={"timeout": _JSON_SCALARS, "binary_data_output": _JSON_SCALARS}),
            _JSON,
        ),
    },
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_REQUESTS, st.binary(max_size=64), st.booleans())
def test_arbitrary_json_requests_raise_only_protocol_errors(document, tail, with_tail):
    try:
        header = orjson.dumps(document)
    except TypeError:  # ints beyond 64 bits: orjson will not write them, so no client can send them
        return
    if with_tail:
        decode_or_protocol_error(header + tail, len(header))
    else:
        decode_or_protocol_error(header, None)


def _valid_bodies() -> list[tuple[bytes, int | None]]:
    cases = []
    for datatype, array in SAMPLES.items():
        for binary in (True, False):
            cases.append(triton_body({"x": (array, datatype), "s": (SAMPLES["BYTES"], "BYTES")}, binary))
    return cases


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(_valid_bodies()),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)), max_size=4),
    st.one_of(st.none(), st.integers(min_value=0)),
    st.integers(min_value=-3, max_value=3),
)
def test_mutated_valid_bodies_raise_only_protocol_errors(case, flips, cut, length_shift):
    body, length = case
    mutated = bytearray(body)
    for position, value in flips:
        mutated[position % len(mutated)] = value
    if cut is not None:
        mutated = mutated[: cut % (len(mutated) + 1)]
    if length is not None:
        length += length_shift
    decode_or_protocol_error(bytes(mutated), length)


# -- metadata ------------------------------------------------------------------------------------------------


def test_server_metadata():
    assert server_metadata("foretell", "0.1.0", ["binary_tensor_data"]) == {
        "name": "foretell",
        "version": "0.1.0",
        "extensions": ["binary_tensor_data"],
    }


def test_model_metadata_describes_the_signature_as_tensors():
    signature = Signature(
        (
            Feature("tenure", "float64"),
            Feature("plan", "category", categories=("basic", "premium")),
            Feature("calls", "int32"),
            Feature("active", "bool"),
            Feature("city", "string"),
            Feature("embedding", "float32", shape=(4,)),
        ),
        (
            Output("score", "score"),
            Output("label", "label", "string"),
            Output("proba", "proba", shape=(2,), classes=("stay", "churn")),
            Output("items", "topk_items", "int64"),
            Output("scores", "topk_scores", "float32", shape=(10,)),
        ),
    )
    meta = model_metadata("churn", ["3"], "sklearn_joblib", signature)
    assert meta["name"] == "churn"
    assert meta["versions"] == ["3"]
    assert meta["platform"] == "sklearn_joblib"
    assert meta["inputs"] == [
        {"name": "tenure", "datatype": "FP64", "shape": [-1]},
        {"name": "plan", "datatype": "BYTES", "shape": [-1], "parameters": {"categories": ["basic", "premium"]}},
        {"name": "calls", "datatype": "INT32", "shape": [-1]},
        {"name": "active", "datatype": "BOOL", "shape": [-1]},
        {"name": "city", "datatype": "BYTES", "shape": [-1]},
        {"name": "embedding", "datatype": "FP32", "shape": [-1, 4]},
    ]
    assert meta["outputs"] == [
        {"name": "score", "datatype": "FP64", "shape": [-1]},
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "proba", "datatype": "FP64", "shape": [-1, 2], "parameters": {"classes": ["stay", "churn"]}},
        {"name": "items", "datatype": "INT64", "shape": [-1, -1]},
        {"name": "scores", "datatype": "FP32", "shape": [-1, 10]},
    ]
    orjson.dumps(meta)  # JSON-ready as is
